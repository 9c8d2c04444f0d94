"""The vectorised LIME against captum's Lime on the same samples, on planted truth, and its checks."""

from __future__ import annotations

import functools

import pytest
import torch
from scipy.stats import spearmanr

from ganbench.core.registry import create_architecture, create_dataset
from ganbench.explainers._lime import (
    captum_lime_attributions,
    lime_attributions,
    patch_feature_mask,
    sample_lime_masks,
)


@functools.cache
def digits_discriminator():
    """A width-8 DCGAN discriminator after 30 steps on digits (it tells digits from noise),
    in eval mode, with four digits to explain."""
    dataset = create_dataset("digits")
    images = dataset.split("train").images
    torch.manual_seed(0)
    arch = create_architecture("dcgan", dataset.spec, width=8)
    for step in range(30):
        arch.train_step(images[step * 32 : (step + 1) * 32])
    arch.eval()
    return arch.discriminator, images[-4:]


def coefficients(attributions: torch.Tensor, feature_mask: torch.Tensor) -> torch.Tensor:
    """(n, F) feature coefficients read back from (n, C, H, W) attributions."""
    n, n_features = attributions.shape[0], int(feature_mask.max()) + 1
    fm = feature_mask.expand(n, *attributions.shape[1:]).reshape(n, -1)
    flat = attributions.reshape(n, -1)
    first = torch.stack([(fm[i] == f).nonzero()[0, 0] for i in range(n) for f in range(n_features)])
    return flat.gather(1, first.reshape(n, n_features))


@pytest.mark.parametrize("patch", [8, 4])  # 16 and 64 features
def test_agrees_with_captum_lime_on_the_same_samples(patch):
    D, images = digits_discriminator()
    feature_mask = patch_feature_mask(1, 32, patch)
    n_features = (32 // patch) ** 2
    masks = sample_lime_masks(4, n_features, 300, torch.Generator().manual_seed(1))
    baselines = torch.zeros_like(images)
    ours = lime_attributions(D, images, baselines, feature_mask, masks)
    ref = captum_lime_attributions(D, images, baselines, feature_mask, masks)
    assert ours.shape == ref.shape == images.shape and ours.dtype == torch.float32
    ours_c, ref_c = coefficients(ours, feature_mask), coefficients(ref, feature_mask)
    # every pixel of a feature carries its coefficient, as in captum
    torch.testing.assert_close(
        ours, ours_c.gather(1, feature_mask.reshape(1, -1).expand(4, -1)).reshape(images.shape)
    )
    rho = [spearmanr(ours_c[i], ref_c[i]).statistic for i in range(4)]
    assert min(rho) >= 0.999, rho  # the issue asks >= 0.95; measured 1.0
    # measured: max |diff| ~ 8e-7 of the largest coefficient (sklearn fits in float32)
    assert (ours_c - ref_c).abs().max() <= 2e-5 * ref_c.abs().max()


def test_per_image_feature_masks_agree_with_captum():
    D, images = digits_discriminator()
    g = torch.Generator().manual_seed(2)
    base = patch_feature_mask(1, 32, 8)
    feature_mask = torch.stack([torch.randperm(16, generator=g)[base[0]] for _ in range(4)])
    masks = sample_lime_masks(4, 16, 200, g)
    baselines = torch.full_like(images, -1.0)
    ours = lime_attributions(D, images, baselines, feature_mask, masks, kernel_width=0.5, alpha=3.0)
    ref = captum_lime_attributions(
        D, images, baselines, feature_mask, masks, kernel_width=0.5, alpha=3.0
    )
    assert (ours - ref).abs().max() <= 2e-5 * ref.abs().max()


def test_a_logit_that_sums_one_patch_credits_that_patch():
    feature_mask = patch_feature_mask(3, 16, 4)  # 16 features
    target = 6
    inside = (feature_mask == target).float()

    def forward(x: torch.Tensor) -> torch.Tensor:
        return (x * inside).flatten(1).sum(1)

    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0)) + 0.5
    masks = sample_lime_masks(3, 16, 200, torch.Generator().manual_seed(3))
    coefs = coefficients(lime_attributions(forward, images, 0.0, feature_mask, masks), feature_mask)
    assert (coefs.argmax(1) == target).all()
    # the logit is exactly linear in the masks: unregularised, the fit recovers it
    exact = coefficients(
        lime_attributions(
            forward, images, torch.zeros_like(images), feature_mask, masks, alpha=0.0
        ),
        feature_mask,
    )
    expected = torch.zeros(3, 16)
    expected[:, target] = (images * inside).flatten(1).sum(1)
    torch.testing.assert_close(exact, expected, atol=1e-4, rtol=1e-5)


def test_forward_runs_in_chunks_and_the_chunking_does_not_matter():
    D, images = digits_discriminator()
    feature_mask = patch_feature_mask(1, 32, 8)
    masks = sample_lime_masks(2, 16, 150, torch.Generator().manual_seed(4))
    sizes = []

    def forward(x: torch.Tensor) -> torch.Tensor:
        sizes.append(len(x))
        return D(x)

    small = lime_attributions(forward, images[:2], 0.0, feature_mask, masks, chunk=100)
    assert sizes == [100, 100, 100]
    sizes.clear()
    whole = lime_attributions(forward, images[:2], 0.0, feature_mask, masks)
    assert sizes == [300]
    torch.testing.assert_close(small, whole, rtol=1e-4, atol=1e-6)


def test_masks_are_reproducible_fair_coins():
    a = sample_lime_masks(3, 64, 500, torch.Generator().manual_seed(7))
    b = sample_lime_masks(3, 64, 500, torch.Generator().manual_seed(7))
    c = sample_lime_masks(3, 64, 500, torch.Generator().manual_seed(8))
    assert a.shape == (3, 500, 64) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert set(a.unique().tolist()) == {0.0, 1.0}
    assert abs(a.mean().item() - 0.5) < 0.01


def test_patch_feature_mask_layout():
    fm = patch_feature_mask(3, 8, 4)
    assert fm.shape == (1, 3, 8, 8) and fm.dtype == torch.long
    assert torch.equal(fm[0, 0], fm[0, 2])
    assert fm[0, 0, ::4, ::4].tolist() == [[0, 1], [2, 3]]
    assert (fm[0, 0, :4, :4] == 0).all() and (fm[0, 0, 4:, 4:] == 3).all()


def _raises(match: str, fn, *args, **kwargs) -> None:
    with pytest.raises(ValueError, match=match) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)


def test_bad_arguments_are_one_line_value_errors():
    images = torch.rand(2, 1, 8, 8)
    fm = patch_feature_mask(1, 8, 4)
    masks = sample_lime_masks(2, 4, 10, torch.Generator().manual_seed(0))

    def forward(x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).sum(1)

    _raises("does not divide", patch_feature_mask, 1, 8, 3)
    _raises("n_samples must be a positive int", sample_lime_masks, 1, 4, 0, torch.Generator())
    _raises("CPU torch.Generator", sample_lime_masks, 1, 4, 5, None)
    _raises("masks must be", lime_attributions, forward, images, 0.0, fm, masks[:1])
    _raises("masks must be 0/1", lime_attributions, forward, images, 0.0, fm, masks * 2)
    _raises(
        r"ids must lie in \[0, 3\)", lime_attributions, forward, images, 0.0, fm, masks[..., :3]
    )
    _raises("does not match inputs", lime_attributions, forward, images, 0.0, fm[..., :4], masks)
    _raises("1 or 2", lime_attributions, forward, images, 0.0, fm.expand(3, 1, 8, 8), masks)
    _raises("integer", lime_attributions, forward, images, 0.0, fm.float(), masks)
    _raises("baselines", lime_attributions, forward, images, torch.zeros(2, 1, 4, 4), fm, masks)
    _raises("inputs must be", lime_attributions, forward, images[0], 0.0, fm, masks)
    _raises("kernel_width", lime_attributions, forward, images, 0.0, fm, masks, kernel_width=0)
    _raises("chunk", lime_attributions, forward, images, 0.0, fm, masks, chunk=0)
    _raises("one logit per image", lime_attributions, lambda x: x.sum(), images, 0.0, fm, masks)
    _raises(
        "perturbations_per_eval",
        captum_lime_attributions,
        forward,
        images,
        0.0,
        fm,
        masks,
        perturbations_per_eval=0,
    )
