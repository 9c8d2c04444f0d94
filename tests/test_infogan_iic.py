"""infogan-iic: the IIC mutual information on known pairings, the transformation, and training."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from ganbench.architectures.infogan_iic import InfoGANIIC, iic_mutual_information
from ganbench.core.registry import create_architecture
from ganbench.datasets.base import DatasetSpec

GREY32 = DatasetSpec(name="grey32", version="test", image_size=32, channels=1)
BIG = 50.0  # logits this far apart give near one-hot softmaxes


def iic(width: int = 8, seed: int = 0, **params) -> InfoGANIIC:
    torch.manual_seed(seed)
    return create_architecture("infogan-iic", GREY32, width=width, **params)


def sharp(labels: torch.Tensor) -> torch.Tensor:
    return F.one_hot(labels, 10).float() * BIG


def test_mutual_information_on_known_pairings():
    codes = torch.arange(10).repeat(20)  # balanced
    # identical codes on both views: I = H(c) = log 10, the maximum
    assert float(iic_mutual_information(sharp(codes), sharp(codes))) == pytest.approx(
        math.log(10), abs=1e-3
    )
    # the joint is symmetrised (both views share one clustering): a pairing that shifts the
    # code by 3 spreads each row over two partners, leaving log 5
    shifted = sharp((codes + 3) % 10)
    assert float(iic_mutual_information(sharp(codes), shifted)) == pytest.approx(
        math.log(5), abs=1e-3
    )
    # a collapsed code carries nothing, nor do views whose codes are independent
    collapsed = sharp(torch.zeros(200, dtype=torch.long))
    assert float(iic_mutual_information(collapsed, collapsed)) == pytest.approx(0, abs=1e-3)
    independent = sharp(torch.arange(200) // 20)  # each value meets every value of codes
    assert float(iic_mutual_information(sharp(codes), independent)) == pytest.approx(0, abs=1e-3)
    two = sharp(torch.arange(200) % 2)  # two balanced clusters, paired perfectly
    assert float(iic_mutual_information(two, two)) == pytest.approx(math.log(2), abs=1e-3)


def test_transform_keeps_the_background_and_stays_within_its_bounds():
    x = torch.full((64, 1, 32, 32), -1.0)
    x[:, :, 12:20, 12:20] = 1.0  # a centred square on the background
    torch.manual_seed(0)
    y = iic(iic_rotate=0.0, iic_scale=0.0, iic_shift=0.25).transform(x)
    assert y.min() >= -1 - 1e-5 and y.max() <= 1 + 1e-5
    assert (y[:, :, :2] == -1).all()  # what comes in from outside is background, not grey 0
    mass = (y[:, 0] + 1) / 2
    total = mass.sum((1, 2))
    assert torch.allclose(total, torch.full_like(total, 64.0), rtol=0.02)  # moved, not clipped
    rows, cols = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    cy, cx = (mass * rows).sum((1, 2)) / total, (mass * cols).sum((1, 2)) / total
    # shifts of up to a quarter of the side, 8 px either way, and they do vary
    assert (cy - 15.5).abs().max() <= 8.01 and (cx - 15.5).abs().max() <= 8.01
    assert (cx - 15.5).abs().max() > 4 and cx.std() > 2
    rotated = iic(iic_rotate=90.0, iic_scale=0.0, iic_shift=0.0).transform(x)
    assert torch.allclose((rotated[:, 0] + 1).sum((1, 2)) / 2, total, rtol=0.1)  # centred: kept
    still = iic(iic_rotate=0.0, iic_scale=0.0, iic_shift=0.0).transform(x)
    assert torch.allclose(still, x, atol=1e-5)  # the identity transformation changes nothing


def test_info_augment_reads_the_category_from_a_transformed_copy_and_the_continuous_codes_not():
    arch = iic(iic_rotate=0.0, iic_scale=0.0, iic_shift=0.25, info_augment=True).eval()
    fake = torch.rand(6, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        q = arch.discriminator.forward_with_q(fake)[1]
        mixed = arch.q_of_fakes(fake, q)
    assert torch.equal(mixed[:, 10:], q[:, 10:])  # continuous means: the fakes as they are
    assert not torch.allclose(mixed[:, :10], q[:, :10])  # categorical logits: transformed
    plain = iic().eval()  # the default: the fakes as they are
    assert plain.q_of_fakes(fake, q) is q


def test_training_step_runs_and_the_knobs_are_checked():
    arch = iic(info_augment=True)
    assert arch.params["iic_lambda"] == 1.0 and iic().params["info_augment"] is False
    assert arch.code_spec().categories == 10  # InfoGAN's latent, unchanged
    out = arch.train_step(torch.rand(16, 1, 32, 32) * 2 - 1)
    assert 0 <= float(out["iic_mi"]) <= math.log(10) + 1e-4
    assert all(torch.isfinite(v) for v in out.values())
    with pytest.raises(ValueError, match="iic_lambda must be >= 0"):
        iic(iic_lambda=-1.0)
    with pytest.raises(ValueError, match="needs a categorical code"):
        iic(categories=0)


def test_iic_term_makes_q_cluster_a_transformation_invariant_partition():
    """Known truth: two kinds of image (a bar and a ring, placed anywhere) that nothing but
    their shape tells apart. Trained on the IIC term alone, Q's code must split them."""
    torch.manual_seed(0)
    arch = iic(width=8, iic_rotate=10.0, iic_scale=0.1, iic_shift=0.15, categories=2)
    rows, cols = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        kind = torch.arange(n) % 2
        cy, cx = (torch.rand(2, n, 1, 1) * 12 + 10).unbind(0)
        r = ((rows - cy) ** 2 + (cols - cx) ** 2).sqrt()
        ring = (r - 6).abs() < 1.5
        bar = ((rows - cy).abs() < 6) & ((cols - cx).abs() < 1.5)
        img = torch.where(kind[:, None, None] == 1, ring, bar).float() * 2 - 1
        return img[:, None], kind

    opt = torch.optim.Adam(arch.discriminator.parameters(), lr=1e-3)
    for _ in range(60):
        x, _ = batch(64)
        logits = arch.discriminator.forward_with_q(x)[1][:, :2]
        logits_t = arch.discriminator.forward_with_q(arch.transform(x))[1][:, :2]
        opt.zero_grad()
        (-iic_mutual_information(logits, logits_t)).backward()
        opt.step()
    x, kind = batch(400)
    with torch.no_grad():
        guess = arch.eval().discriminator.forward_with_q(x)[1][:, :2].argmax(1)
    accuracy = max((guess == kind).float().mean(), (guess != kind).float().mean())
    assert accuracy > 0.95


def test_without_its_terms_it_trains_exactly_as_the_papers_infogan():
    torch.manual_seed(3)
    batches = [torch.rand(16, 1, 32, 32) * 2 - 1 for _ in range(3)]
    models = [
        iic(seed=0, iic_lambda=0.0, info_augment=False),
        create_architecture_seeded("infogan", seed=0),
    ]
    for model in models:
        torch.manual_seed(7)  # the latents each step draws
        for real in batches:
            out = model.train_step(real)
        assert "iic_mi" not in out
    ours, paper = (
        dict(m.discriminator.state_dict()) | dict(m.generator.state_dict()) for m in models
    )
    assert ours.keys() == paper.keys()
    assert all(torch.equal(ours[name], paper[name]) for name in ours)


def create_architecture_seeded(name: str, seed: int):
    torch.manual_seed(seed)
    return create_architecture(name, GREY32, width=8)
