"""SAGAN: attention maps are distributions, gamma learns, every layer is spectrally normalised."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from ganbench.architectures.sagan import SAGAN, SelfAttention
from ganbench.core.evaluation import evaluate_and_write
from ganbench.core.registry import create_architecture, create_dataset
from ganbench.datasets.base import DatasetSpec
from ganbench.explainers.attention import AttentionExplainer, attention_summary

GREY32 = DatasetSpec(name="grey32", version="test", image_size=32, channels=1)


def sagan(width: int = 16, seed: int = 0, **params) -> SAGAN:
    torch.manual_seed(seed)
    return create_architecture("sagan", GREY32, width=width, **params)


def trained_a_little(steps: int = 30) -> SAGAN:
    """A SAGAN after ``steps`` steps on digits: weights and BatchNorm statistics off their init."""
    digits = create_dataset("digits", image_size=32).split("train").images
    arch = sagan()
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        arch.train_step(digits[torch.randperm(len(digits), generator=g)[:32]])
    return arch


def test_attention_maps_are_distributions_over_keys():
    arch = trained_a_little().eval()
    z = arch.sample_latent(6, torch.Generator().manual_seed(0))
    maps = arch.attention_maps(z)
    assert set(maps) == {"generator", "discriminator"}
    for name, beta in maps.items():
        # attention at 16x16 (half the image size), keys max-pooled 2x2 to 8x8
        assert beta.shape == (6, 16, 16, 8, 8), name
        assert (beta >= 0).all(), name
        sums = beta.flatten(3).sum(-1)
        torch.testing.assert_close(sums, torch.ones_like(sums), atol=1e-5, rtol=0)
        assert not torch.allclose(beta, beta.mean(), atol=1e-4), f"{name}: attention is uniform"
    # recording leaves no state behind and does not change what the network computes
    assert all(
        not b.keep_attention and b.last_attention is None for b in arch.attention_blocks().values()
    )
    with torch.no_grad():
        torch.testing.assert_close(arch.generate(z), arch.generate(z))


def test_attention_maps_of_given_images_differ_from_those_of_samples():
    arch = sagan().eval()
    z = arch.sample_latent(4, torch.Generator().manual_seed(0))
    own = arch.attention_maps(z)["discriminator"]
    other = arch.attention_maps(z, images=torch.rand(4, 1, 32, 32) * 2 - 1)["discriminator"]
    assert not torch.allclose(own, other)


def test_gamma_starts_at_zero_and_moves_during_training():
    gammas = {n: float(b.gamma.detach()) for n, b in sagan().attention_blocks().items()}
    assert gammas == {"generator": 0.0, "discriminator": 0.0}
    arch = trained_a_little(29)
    digits = create_dataset("digits", image_size=32).split("train").images
    losses = arch.train_step(digits[:32])
    for name, block in arch.attention_blocks().items():
        gamma = float(block.gamma.detach())
        assert abs(gamma) > 1e-3, f"{name} gamma stayed at {gamma}"
        assert float(losses[f"gamma_{name}"]) == pytest.approx(gamma, abs=1e-6)


def _largest_singular_value(module: nn.Module) -> float:
    w = module.weight.detach()
    if isinstance(module, nn.ConvTranspose2d):
        w = w.transpose(0, 1)  # spectral norm treats the output channels as rows
    return float(torch.linalg.matrix_norm(w.flatten(1), ord=2))


def test_every_conv_and_linear_in_g_and_d_is_spectrally_normalised():
    arch = sagan()
    arch.train_step(torch.rand(16, 1, 32, 32) * 2 - 1)
    for net_name, net in arch.networks().items():
        layers = [
            m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))
        ]
        assert len(layers) >= 5
        for m in layers:
            assert parametrize.is_parametrized(m, "weight"), f"{net_name}: {m} lacks spectral norm"
        arch.eval()
        # the normalised weights have spectral norm ~1 (power iteration: one step per forward)
        sigmas = [_largest_singular_value(m) for m in layers]
        assert all(0.9 < s < 1.1 for s in sigmas), (net_name, sigmas)
        arch.train()


def test_two_time_scale_hinge_defaults_follow_the_paper():
    arch = sagan()
    (d_group,) = arch.opt_d.param_groups
    (g_group,) = arch.opt_g.param_groups
    assert d_group["lr"] == 4e-4 and g_group["lr"] == 1e-4
    assert d_group["betas"] == (0.0, 0.9) == g_group["betas"]
    # hinge: a discriminator that already separates by a margin of 1 has zero loss
    arch.discriminator = _ConstantD(arch.discriminator)
    out = arch.train_step(torch.rand(8, 1, 32, 32) * 2 - 1)
    assert float(out["loss_d"]) == 0.0 and float(out["loss_g"]) == pytest.approx(5.0)


class _ConstantD(nn.Module):
    """D that says +5 for the first batch it sees each step (real) and -5 afterwards (fakes)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        base = self.inner(x) * 0  # keep the graph (and the gradients) attached
        return base + (5.0 if self.calls % 3 == 1 else -5.0)


def test_attention_block_attends_where_the_content_says():
    """Queries read channel 0 and keys channel 1: the query lit in channel 0 attends to the
    pooled key cell lit in channel 1, and nowhere else."""
    block = SelfAttention(8)
    x = torch.zeros(1, 8, 8, 8)
    x[0, 1, 6, 6] = 10.0  # key content in the 2x2 pooled cell (3, 3)
    x[0, 0, 1, 1] = 10.0  # the query at (1, 1)
    with torch.no_grad():
        for conv, channel in ((block.query, 0), (block.key, 1)):
            conv.parametrizations.weight.original.zero_()
            conv.parametrizations.weight.original[0, channel] = 1.0
        block(x)  # a training-mode pass runs the power iteration on the new weights
        block.eval()
        block.keep_attention = True
        block(x)
    beta = block.last_attention[0]
    assert beta[1, 1].argmax() == 3 * 4 + 3
    assert beta[1, 1].max() > 0.99
    assert torch.allclose(beta[0, 0], torch.full((4, 4), 1 / 16))  # an unlit query: uniform


def test_attention_summary_on_known_maps():
    # uniform attention: entropy 1; one-hot on the key at the query's own place: entropy 0
    uniform = torch.full((1, 4, 4, 2, 2), 0.25)
    entropy, _ = attention_summary(uniform)
    assert entropy == pytest.approx(1.0)
    onehot = torch.zeros(1, 4, 4, 2, 2)
    for qy in range(4):
        for qx in range(4):
            onehot[0, qy, qx, qy // 2, qx // 2] = 1.0
    entropy, dist = attention_summary(onehot)
    assert entropy == pytest.approx(0.0, abs=1e-9)
    # query centres sit 1/8 of the side from their pooled key's centre on each axis
    assert dist == pytest.approx((2 * (1 / 8) ** 2) ** 0.5)


def test_attention_explainer_scores_and_draws(tmp_path):
    from ganbench.core.evaluator import EvalContext

    arch = sagan().eval()
    ctx = EvalContext(
        model=arch, dataset=None, device=torch.device("cpu"), seed=0, artifact_dir=tmp_path
    )
    scores = evaluate_and_write(AttentionExplainer(n=16, figure_images=2), ctx)
    assert {s.name for s in AttentionExplainer.scores} == set(scores)
    for short in ("g", "d"):
        assert 0 < scores[f"attn_entropy_{short}"] <= 1 + 1e-6
        assert 0 < scores[f"attn_distance_{short}"] < 2**0.5
        assert scores[f"attn_gamma_{short}"] == 0.0
    assert (tmp_path / "attention.png").stat().st_size > 1000
