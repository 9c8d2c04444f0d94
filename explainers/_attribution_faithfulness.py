"""Faithfulness of an attribution map: the baselines, the deletion and insertion curves and
infidelity (the formulas and the reasons for them are in :mod:`ganbench.explainers.attribution`).

A map is faithful when the pixels it ranks first are the ones D's logit depends on:
blending them into the baseline first (deletion) should move the logit soonest, restoring
them first (insertion) likewise, and the map should predict how much the logit changes when
random patches are dropped (infidelity).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur with reflect padding (kernel 2⌈2σ⌉+1, separable)."""
    radius = max(1, int(np.ceil(2 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    pad = min(radius, x.shape[-1] - 1)
    out = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    if pad < radius:  # tiny images: pad the rest by replication
        out = F.pad(out, [radius - pad] * 4, mode="replicate")
    out = F.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def pixel_maps(attributions: torch.Tensor) -> torch.Tensor:
    """(n, C, H, W) attributions -> (n, H, W) per-pixel maps (summed over channels)."""
    return attributions.sum(1)


@torch.no_grad()
def batched(
    f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """``f`` of ``x`` in batches of at most ``batch_size`` images, without gradients."""
    return torch.cat([f(chunk) for chunk in x.split(batch_size)])


def curve_fractions(steps: int, device=None) -> torch.Tensor:
    """Fractions of pixels taken at each of ``steps + 1`` points, (1 - cos(πk/steps))/2: finer
    at both ends, where a map does its work in deletion and in insertion (at 32x32 and 32
    steps the first point is 2-3 pixels), and symmetric about 1/2, so that under a random
    order the deletion and insertion curves have the same expected area."""
    k = torch.arange(steps + 1, device=device, dtype=torch.float64)
    return ((1 - torch.cos(torch.pi * k / steps)) / 2).float()


@torch.no_grad()
def perturbation_curves(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    baseline: torch.Tensor,
    order_maps: torch.Tensor,
    fractions: torch.Tensor,
    batch_size: int = 256,
    mask_sigma: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Deletion and insertion curves (n, len(fractions)) of ``f``.

    Pixels (all channels at once) are taken in descending ``order_maps`` (n, H, W) order, the
    first ``fraction`` of them at each point; deletion replaces them by ``baseline``, insertion
    restores them into the baseline. With ``mask_sigma`` > 0 the 0/1 mask of taken pixels is
    Gaussian-blurred (σ pixels) into mixing weights, so that the border between taken and kept
    pixels is soft: a hard pixel-wise mix of an image and its blur is full of one-pixel seams
    that a trained D scores as far more fake than either (measured on the smoke DCGAN: -40
    against -8 for the blur, whatever the order). With fractions from 0 to 1, column 0 of
    deletion is f(x) and the last f(baseline); insertion the reverse.
    """
    n, c, h, w = x.shape
    ranks = torch.empty(n, h * w, dtype=torch.long, device=x.device)
    order = order_maps.reshape(n, -1).argsort(1, descending=True)
    ranks.scatter_(1, order, torch.arange(h * w, device=x.device).expand(n, -1))
    cut = (fractions.to(x.device) * h * w).round().long()
    points = len(cut)
    taken = (ranks[:, None, :] < cut[None, :, None]).reshape(n * points, 1, h, w).to(x.dtype)
    if mask_sigma > 0:
        taken = blur(taken, mask_sigma).clamp(0, 1)
    taken = taken.reshape(n, points, 1, h, w)
    xs, bs = x[:, None], baseline[:, None]
    deleted = xs * (1 - taken) + bs * taken
    inserted = bs * (1 - taken) + xs * taken
    flat = torch.cat([deleted, inserted]).reshape(-1, c, h, w)
    out = batched(f, flat, batch_size).reshape(2, n, points)
    return out[0], out[1]


def curve_scores(
    deletion: torch.Tensor,
    insertion: torch.Tensor,
    sign: torch.Tensor,
    fractions: torch.Tensor,
    min_response: float,
) -> dict[str, torch.Tensor]:
    """Per-image deletion and insertion AUCs (n,) of curves (n, T) over pixel ``fractions``.

    Each image's two curves are measured on one scale: the range R of D's logit over both
    (their lowest to their highest point, so overshoots beyond f(x) and f(b) are inside it),
    but at least ``min_response`` nats, centred on the middle of that range. The area of a
    curve is then 0.5 + s * mean height above the middle / max(R, min_response), with s = the
    sign of f(x) - f(b) (deletion should move toward f(b)): in [0, 1], deletion low and
    insertion high for a faithful order, both 0.5 where D does not respond. Their difference
    ``insertion - deletion`` is in [-1, 1] and 0 in expectation for a random order, whatever
    D (a random order's deletion at t and insertion at 1 - t are the same images in
    distribution, and the fractions are symmetric). ``response``: R in nats.
    """
    both = torch.cat([deletion, insertion], 1)
    high, low = both.max(1).values, both.min(1).values
    response = high - low
    scale = response.clamp_min(min_response)
    middle = (high + low) / 2
    t = fractions.to(deletion)

    def area(curves):
        height = torch.trapezoid((curves - middle[:, None]) / scale[:, None], t, dim=1)
        return 0.5 + sign.to(curves) * height

    return {"deletion": area(deletion), "insertion": area(insertion), "response": response}


def patch_drop_perturbation(patch: int, drop: float, generator: torch.Generator):
    """Random ``patch``-squares dropped to the baseline: exactly round(``drop`` x squares) of
    them (at least one) in every perturbation, so that how much of the image is dropped never
    varies and only *which* squares are dropped does.

    Returns (perturbation, perturbed) with perturbation the 0/1 drop mask, so the predicted
    change is the sum of the dropped pixels' attributions.
    """

    def perturb(inputs: torch.Tensor, baselines: torch.Tensor):
        n, c, h, w = inputs.shape
        gh, gw = -(-h // patch), -(-w // patch)
        k = min(gh * gw, max(1, round(drop * gh * gw)))
        chosen = torch.rand(n, gh * gw, generator=generator).argsort(1)[:, :k]
        grid = torch.zeros(n, gh * gw).scatter_(1, chosen, 1.0).view(n, 1, gh, gw)
        mask = grid.repeat_interleave(patch, 2).repeat_interleave(patch, 3)[..., :h, :w]
        mask = mask.to(inputs.dtype).expand(n, c, h, w).to(inputs.device)
        return mask, inputs * (1 - mask) + baselines * mask

    return perturb


def infidelity_score(
    f: nn.Module,
    x: torch.Tensor,
    baseline: torch.Tensor,
    attributions: torch.Tensor,
    *,
    perturbations: int,
    patch: int,
    drop: float,
    generator: torch.Generator,
) -> np.ndarray:
    """Infidelity (Yeh et al. 2019) per image, fitted with an intercept and a β >= 0.

    Over ``perturbations`` patch drops of one size, the change the map predicts (the sum of
    the dropped pixels' attributions) is set against D's actual change f(x) - f(perturbed):
    1 - r², r their Pearson correlation clipped at 0, which is the least squared error of
    β·predicted + γ over the variance of the actual changes. 0 = the map predicts every drop's
    effect, 1 = it predicts nothing. Yeh et al.'s normalised form (captum's ``infidelity``
    with ``normalize=True``) fits β alone, of either sign, on drops of random size; on a
    trained D, whose response grows with how much was dropped, that rewarded a map that only
    counts dropped pixels (a constant map scored 0.06 on the smoke DCGAN, DeepLIFT 0.54), and
    a negated map scored as well as the map.
    """
    n = len(x)
    mask, perturbed = patch_drop_perturbation(patch, drop, generator)(
        x.repeat_interleave(perturbations, 0), baseline.repeat_interleave(perturbations, 0)
    )
    with torch.no_grad():
        actual = f(x).repeat_interleave(perturbations) - batched(f, perturbed, 256)
        predicted = (mask * attributions.repeat_interleave(perturbations, 0)).flatten(1).sum(1)
    actual = actual.reshape(n, perturbations).double()
    predicted = predicted.reshape(n, perturbations).double()
    pc = predicted - predicted.mean(1, keepdim=True)
    ac = actual - actual.mean(1, keepdim=True)
    var_p, var_a = pc.square().sum(1), ac.square().sum(1)
    # a prediction that does not vary (a constant map) or a D that does not respond: r = 0
    varies = (var_p > 1e-12 * predicted.square().sum(1)) & (var_a > 0)
    r = torch.where(varies, (pc * ac).sum(1) / (var_p * var_a).sqrt().clamp_min(1e-300), 0.0)
    return (1 - r.clamp(min=0).square()).float().cpu().numpy()


def faithfulness(
    f: nn.Module,
    x: torch.Tensor,
    baseline: torch.Tensor,
    attributions: torch.Tensor,
    *,
    signed: bool,
    params: dict,
    generator: torch.Generator,
) -> dict:
    """The deletion, insertion and infidelity scores of ``attributions`` of ``f`` on images
    ``x`` (the first half real, the rest generated), with D's logit range along the curves
    of every image under ``_response_by_image``.

    Pixels are taken in order of s·a, s = sign(f(x) - f(b)), or of a for an unsigned map.
    """
    with torch.no_grad():
        fx, fb = f(x), f(baseline)
    sign = torch.sign(fx - fb)
    maps = pixel_maps(attributions)
    order = sign[:, None, None] * maps if signed else maps
    t = curve_fractions(params["curve_steps"], x.device)
    deletion, insertion = perturbation_curves(
        f, x, baseline, order, t, mask_sigma=params["mask_sigma"]
    )
    per_image = curve_scores(deletion, insertion, sign, t, params["min_response"])
    gap = per_image["insertion"] - per_image["deletion"]
    half = len(x) // 2
    infid = infidelity_score(
        f,
        x,
        baseline,
        attributions,
        perturbations=params["infidelity_perturbations"],
        patch=params["infidelity_patch"],
        drop=params["infidelity_drop"],
        generator=generator,
    )
    # an image on which D moves less than min_response nats along the curves counts for that
    # fraction only: the rest of it is "predicts nothing" (1), as random maps do
    weight = (per_image["response"] / params["min_response"]).clamp(max=1).cpu().numpy()
    infid = 1 - weight * (1 - infid)
    response = per_image["response"]
    return {
        "insertion_minus_deletion": float(gap.mean()),
        "deletion_auc": float(per_image["deletion"].mean()),
        "insertion_auc": float(per_image["insertion"].mean()),
        "insertion_minus_deletion_real": float(gap[:half].mean()),
        "insertion_minus_deletion_generated": float(gap[half:].mean()),
        "infidelity": float(np.mean(infid)),
        "response_nats": float(response.median()),
        "_response_by_image": response.tolist(),
    }
