"""Attribution explainers of D (captum): maps land where the logit's evidence is, deletion
beats the random control, the randomisation test catches a model-blind explainer, and a
discriminator captum cannot explain is n/a with its reason."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ganbench.core.errors import ConfigError, NotApplicable
from ganbench.core.evaluation import evaluate_and_write
from ganbench.core.registry import (
    ARCHITECTURES,
    create_architecture,
    create_dataset,
    create_explainer,
)
from ganbench.explainers._attribution_checks import (
    Logit,
    batch_dependence,
    per_image_groups,
    reused_modules,
)
from ganbench.explainers._attribution_faithfulness import (
    curve_fractions,
    curve_scores,
    perturbation_curves,
)
from ganbench.explainers.attribution import AttributionExplainer
from tests.conftest import brief_dcgan, eval_context

EXPLAINERS = ("deeplift", "deepliftshap", "integrated_gradients", "smoothgrad", "lime")
SMALL = {"n": 8, "cascade_layers": 3, "sensitivity_perturbations": 2}


class RegionD(nn.Module):
    """A discriminator whose logit reads only the pixels of one square (rows/cols 8..19)."""

    def __init__(self) -> None:
        super().__init__()
        mask = torch.zeros(1, 1, 32, 32)
        mask[..., 8:20, 8:20] = 1
        self.register_buffer("mask", mask)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.head = nn.Linear(4 * 32 * 32, 1)
        torch.manual_seed(0)
        for p in self.parameters():
            nn.init.normal_(p, 0, 0.1)

    def forward(self, x):
        return self.head(self.act(self.conv(x * self.mask)).flatten(1))


class FakeArch:
    """Just what the explainers read of an architecture."""

    def __init__(self, discriminator: nn.Module, images: torch.Tensor) -> None:
        self.discriminator = discriminator
        self.images = images
        self.latent_dim = 4
        self.device = torch.device("cpu")

    def sample_latent(self, n, generator=None):
        return torch.randn(n, self.latent_dim, generator=generator)

    def generate(self, z):
        return self.images[: len(z)].flip(-1)  # mirrored digits: plausible, not the test set


@pytest.fixture(scope="module")
def digits():
    return create_dataset("digits")


@pytest.fixture(scope="module")
def trained_dcgan():
    return brief_dcgan(100).eval()


@pytest.mark.parametrize("name", EXPLAINERS)
def test_maps_concentrate_where_the_logit_reads(name, digits, tmp_path):
    arch = FakeArch(RegionD(), digits.split("train").images)
    ev = create_explainer(name, **SMALL)
    ctx = eval_context(arch, digits, tmp_path)
    x = ctx.reals(8)
    f = Logit(arch.discriminator).eval()
    maps = ev.attribute(f, x, ev.baseline_of(x, ctx), ctx).detach().abs().sum(1)
    inside = maps[:, 8:20, 8:20].sum() / maps.sum()
    # the square is 14% of the image. Gradient and DeepLIFT maps are exactly zero outside it;
    # LIME's coefficients of the 55 patches outside carry its regression's sampling noise
    # (256 samples for 64 patches): measured 0.82 inside
    least = 0.75 if name == "lime" else 0.99
    assert inside > least, f"{name}: {inside:.3f} of |attribution| inside the region"

    scores = evaluate_and_write(ev, ctx)
    assert scores["deletion_auc"] < scores["deletion_auc_random"], scores
    assert scores["insertion_auc"] > scores["insertion_auc_random"], scores
    assert scores["insertion_minus_deletion"] > scores["insertion_minus_deletion_random"], scores
    assert (tmp_path / f"attribution-{name}.png").stat().st_size > 1000
    assert (tmp_path / f"attribution-{name}.json").exists()


@pytest.mark.parametrize("name", ["deeplift", "integrated_gradients", "lime"])
def test_faithful_on_a_trained_discriminator(name, trained_dcgan, digits, tmp_path):
    ctx = eval_context(trained_dcgan, digits, tmp_path)
    scores = evaluate_and_write(create_explainer(name, **SMALL), ctx)
    assert scores["deletion_auc"] < scores["deletion_auc_random"] - 0.1, scores
    assert scores["insertion_auc"] > scores["insertion_auc_random"] + 0.1, scores
    margin = scores["insertion_minus_deletion"] - scores["insertion_minus_deletion_random"]
    assert margin > 0.2, scores
    assert scores["infidelity"] < scores["infidelity_random"], scores
    assert scores["s_per_image"] > 0 and scores["explained_n"] == 8


class EdgeDetector(AttributionExplainer):
    """A "saliency map" that ignores the model: the image's gradient magnitude."""

    name = "edges"
    signed = False

    def attribute(self, model, x, baseline, ctx):
        dx = torch.zeros_like(x)
        dy = torch.zeros_like(x)
        dx[..., :, 1:] = x[..., :, 1:] - x[..., :, :-1]
        dy[..., 1:, :] = x[..., 1:, :] - x[..., :-1, :]
        return (dx.square() + dy.square()).sqrt()


def test_randomisation_separates_an_explainer_from_an_edge_detector(
    trained_dcgan, digits, tmp_path
):
    edges = evaluate_and_write(
        EdgeDetector(**SMALL), eval_context(trained_dcgan, digits, tmp_path / "e")
    )
    assert edges["randomisation_rho"] > 0.99  # the same map whatever D's weights
    for name in ("deeplift", "smoothgrad", "lime"):
        real = evaluate_and_write(
            create_explainer(name, **SMALL), eval_context(trained_dcgan, digits, tmp_path / name)
        )
        assert real["randomisation_rho"] < 0.8, (name, real["randomisation_rho"])
    # random maps decorrelate by construction: the control's ρ sits near 0
    assert abs(edges["randomisation_rho_random"]) < 0.1


class ReusedReLUD(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 4, 2, 1)
        self.conv2 = nn.Conv2d(4, 4, 4, 2, 1)
        self.act = nn.ReLU()
        self.head = nn.Linear(4 * 8 * 8, 1)

    def forward(self, x):
        h = self.act(self.conv2(self.act(self.conv1(x))))
        return self.head(h.flatten(1)).reshape(x.shape[0])


class BatchCentredD(RegionD):
    def forward(self, x):
        out = super().forward(x)
        return out - out.mean()


def test_reused_module_is_not_applicable_for_deeplift(digits, tmp_path):
    arch = FakeArch(ReusedReLUD(), digits.split("train").images)
    for name in ("deeplift", "deepliftshap"):
        with pytest.raises(NotApplicable, match="act more than once"):
            evaluate_and_write(
                create_explainer(name, **SMALL), eval_context(arch, digits, tmp_path)
            )
    # gradient methods have no such rule: they still explain it
    scores = evaluate_and_write(
        create_explainer("integrated_gradients", **SMALL), eval_context(arch, digits, tmp_path)
    )
    assert np.isfinite(scores["deletion_auc"])


def test_batch_dependent_logit_is_not_applicable(digits, tmp_path):
    arch = FakeArch(BatchCentredD(), digits.split("train").images)
    for name in EXPLAINERS:
        with pytest.raises(NotApplicable, match="depends on the other images"):
            evaluate_and_write(
                create_explainer(name, **SMALL), eval_context(arch, digits, tmp_path)
            )


@pytest.mark.parametrize("name", sorted(ARCHITECTURES.names()))
def test_every_registered_discriminator_is_explainable(name, digits):
    """The ReLU-reuse check over every registered D, and batch independence once minibatch
    groups are of one image (StyleGAN's minibatch std)."""
    torch.manual_seed(0)
    arch = create_architecture(name, digits.spec, width=8).eval()
    f = Logit(arch.discriminator).eval()
    x = digits.split("test").images[:4]
    assert reused_modules(f, x) == []
    with per_image_groups(f):
        assert batch_dependence(f, x) < 1e-4


def test_curves_and_auc_on_an_additive_function():
    """f = sum of pixels: deleting in the true order falls fastest; a random order sits at 0.5
    and its insertion - deletion at 0; the reversed order is the mirror image of the true."""
    torch.manual_seed(0)
    x = torch.rand(3, 1, 8, 8)
    base = torch.zeros_like(x)

    def f(batch):
        return batch.flatten(1).sum(1)

    true_order = x[:, 0]
    t = curve_fractions(64)
    assert t[0] == 0 and t[-1] == 1 and torch.allclose(t + t.flip(0), torch.ones_like(t))
    deletion, insertion = perturbation_curves(f, x, base, true_order, t)
    assert torch.allclose(deletion[:, 0], f(x)) and torch.allclose(deletion[:, -1], f(base))
    assert torch.allclose(insertion[:, 0], f(base)) and torch.allclose(insertion[:, -1], f(x))
    # soft masks blend the same endpoints
    soft = perturbation_curves(f, x, base, true_order, t, mask_sigma=1.0)
    assert torch.allclose(soft[0][:, [0, -1]], deletion[:, [0, -1]], atol=1e-4)
    sign = torch.sign(f(x) - f(base))

    def scores(order):
        return curve_scores(*perturbation_curves(f, x, base, order, t), sign, t, 0.5)

    best, worst = scores(true_order), scores(-true_order)
    randoms = [scores(torch.rand(3, 8, 8)) for _ in range(20)]
    rand_del = torch.stack([r["deletion"] for r in randoms]).mean()
    rand_gap = torch.stack([r["insertion"] - r["deletion"] for r in randoms]).mean()
    assert (best["deletion"] < rand_del).all() and (worst["deletion"] > rand_del).all()
    assert abs(rand_del - 0.5) < 0.05 and abs(rand_gap) < 0.05
    # deletion in the reversed order is insertion in the true one, reflected
    assert torch.allclose(worst["deletion"], 1 - best["deletion"], atol=1e-5)
    assert torch.allclose(best["insertion"], 1 - best["deletion"], atol=1e-5)
    # a linear curve from the top to the bottom of the range has area 0.5 on this grid
    linear = (1 - t)[None]
    both = curve_scores(linear, 1 - linear, torch.ones(1), t, 0.5)
    assert float(both["deletion"]) == pytest.approx(0.5) and float(both["response"]) == 1
    # a response under min_response is shrunk toward 0.5
    small = curve_scores(linear * 0.01, (1 - linear) * 0.01, torch.ones(1), t, 0.5)
    assert float(small["insertion"] - small["deletion"]) == pytest.approx(0.0, abs=1e-9)
    step = torch.zeros_like(t)[None]
    step[:, 0] = 0.1  # falls at once by 0.1 nats: a perfect order of a flat D
    flat = curve_scores(step, 0.1 - step, torch.ones(1), t, 0.5)
    assert float(flat["insertion"] - flat["deletion"]) < 0.2 + 1e-6


def test_real_data_reference_is_not_applicable():
    from ganbench.core.registry import EXPLAINERS as REG

    cls = REG.get("deeplift")
    assert "capability layers" in cls.not_applicable_reason(frozenset(), frozenset(), "real data")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n": 1}, "n must be >= 2, got 1"),
        ({"min_response": 0.0}, "min_response must be > 0"),
        ({"mask_sigma": -1.0}, "mask_sigma must be >= 0"),
        ({"baseline": "noise"}, "baseline must be one of 'blur', 'mean', 'zero'"),
    ],
)
def test_parameters_out_of_range_fail_when_the_explainer_is_made(params, message):
    for name in EXPLAINERS:
        with pytest.raises(ConfigError, match=message):
            create_explainer(name, **params)
    # the bounds themselves are allowed
    create_explainer("deeplift", n=2, mask_sigma=0.0, baseline="zero")


def test_runner_records_not_applicable_with_its_reason(tmp_path, temp_architecture):
    """Through the runner, a D that reuses a ReLU gets DeepLIFT cells n/a (not failed)."""
    from ganbench.architectures.dcgan import DCGAN
    from ganbench.run.config_load import load_config
    from ganbench.run.runner import run_matrix
    from ganbench.run.store import Store
    from tests.conftest import TINY

    class ReusedGAN(DCGAN):
        def build(self):
            super().build()
            self.discriminator = ReusedReLUD()
            self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=2e-4)

    text = TINY.split("[metric.c2st]")[0]
    text = text.replace('metrics = ["c2st", "mmd"]', 'metrics = []\nexplainers = ["deeplift"]')
    text = text.replace('architectures = ["dcgan"]', 'architectures = ["reused"]')
    text = text.replace("[architecture.dcgan]", "[architecture.reused]")
    text += "\n[explainer.deeplift]\nn = 4\ncascade_layers = 2\nsensitivity_perturbations = 2\n"
    (tmp_path / "t.toml").write_text(text)
    with temp_architecture("reused", ReusedGAN):
        store = Store(tmp_path / "s.sqlite")
        summary = run_matrix(
            load_config(str(tmp_path / "t.toml")), store, device="cpu", quiet=True, in_process=True
        )
        assert not summary.failed, summary.failed
        assert summary.not_applicable == 1
        rows = [r for r in store.records() if r.kind == "evaluate"]
        assert [r.status for r in rows] == ["n/a"]
        assert "more than once" in rows[0].error
