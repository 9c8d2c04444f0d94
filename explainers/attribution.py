"""Attributions of the discriminator, through captum, scored for faithfulness, sanity and cost.

Seed 000 explained a DCGAN's discriminator with DeepLIFT, DeepSHAP and LIME and judged by
eye that only DeepLIFT was usable. Here every such explainer is scored by the same numbers,
on every architecture, beside a **random-attribution control** (i.i.d. uniform maps scored
the same way), so the leaderboard can say which explainer is faithful on which GAN.

What is explained: ``f(x) = discriminator_logits(x)``, D's realness logit, of ``n/2`` real
test images and ``n/2`` generated ones, with D in eval mode. Every attribution is computed
by captum (``DeepLift``, ``DeepLiftShap``, ``IntegratedGradients``, ``NoiseTunnel`` over
``Saliency``, ``Lime``; LIME by default through the vectorised path of
:mod:`ganbench.explainers._lime`, which agrees with captum's ``Lime`` on the same samples).

The **baseline** b(x) stands for "this pixel carries no evidence": by default a Gaussian
blur of the image (σ = ``blur_sigma`` pixels), or the dataset's mean image, or zeros. It is
both the reference of DeepLIFT and Integrated Gradients (so their attributions sum to about
f(x) - f(b(x))), LIME's "feature off" value and what deletion/insertion put in place of a
pixel. DeepLiftShap averages DeepLIFT over ``shap_baselines`` real training images instead.

Scores (each explainer declares the same ones; see ``SCORES``):

* **deletion / insertion** (Petsiuk et al. 2018; Samek et al. 2017): pixels are blended into
  the baseline (deletion) or back out of it (insertion) in attribution order, at
  ``curve_steps`` + 1 fractions (1 - cos(πk/steps))/2 of the pixels (fine at both ends,
  symmetric about 1/2), and D's **logit** is recorded (a probability saturates). The 0/1
  mask of taken pixels is blurred (σ = ``mask_sigma`` px) into blending weights: a hard
  pixel-wise mix of an image and its blur is full of one-pixel seams, which the trained
  smoke DCGAN scores ~-40 against ~-8 for the blur itself, whatever the order, so every
  hard-masked curve sat beyond f(b) and the random control's deletion AUC was 0.01.
  Pixels are ordered by s·a, s = sign(f(x) - f(b)), so that "most responsible for the gap
  between x and its baseline" comes first (unsigned maps, SmoothGrad's, by magnitude).
  Each image's two curves are put on one scale: D's logit range R over both curves (their
  lowest to their highest point, overshoots included), but at least ``min_response`` nats;
  ``deletion_auc`` and ``insertion_auc`` are 0.5 + s·(mean height of the curve above the
  middle of that range)/max(R, min_response), in [0, 1], averaged over images.
  **insertion_minus_deletion** (the primary score, in [-1, 1]) is their difference: since
  deletion least-relevant-first at t is insertion most-relevant-first at 1 - t, it is the
  area between the MoRF and LeRF deletion curves (Samek et al.'s MoRF/LeRF), which is 0 in
  expectation for a random order on any D; the off-data effect of blending (the same for
  both orders) cancels in it. An image on which D's logit moves less than ``min_response``
  nats over both curves (the untrained smoke Ds move ~0.01) is shrunk toward the chance
  level in proportion: a scale-free score gave those near-perfect values for reading a flat
  function exactly. ``response_nats`` reports the median R, the JSON every image's.
* **infidelity** (Yeh et al. 2019): ``infidelity_perturbations`` perturbations per image each
  drop exactly round(``infidelity_drop`` x squares) random ``infidelity_patch``-pixel squares
  to the baseline; the change the map predicts (the sum of the dropped pixels'
  attributions) is set against D's actual change, fitted with an intercept and a scale
  β >= 0: 1 - r², r their correlation clipped at 0, so 0 = the map predicts every
  perturbation's effect, 1 = it predicts nothing (comparable across discriminators). Drops
  of one size and the intercept make it about *which* pixels matter: captum's normalised
  form (β alone, either sign, drops of random size) scored a constant map 0.06 and DeepLIFT
  0.54 on the smoke DCGAN, whose logit falls with how much is dropped, and a negated map as
  well as the map. An image on which D moves less than ``min_response`` nats counts toward
  1 in proportion, as above.
* **model randomisation** (Adebayo et al. 2018), cascading from the top: the parameters of
  D's last k parameterised layers are shuffled (each tensor's values permuted, so their scale
  stays) for k = 1 … L, the maps recomputed on the same images, and the Spearman rank
  correlation of |map| with the trained D's |map| averaged over images and over k. An
  explanation of the model must change when the model is destroyed: lower is better. (An
  edge detector that ignores the model scores 1; random maps score ~0, which is why this
  is a sanity check and not a faithfulness score.)
* **sensitivity** by captum's ``sensitivity_max``: the largest relative change of the map
  (Frobenius norm of the difference over the norm of the map) under ``sensitivity_perturbations``
  uniform perturbations of L∞ radius ``sensitivity_radius``. Lower = more stable.
* **cost**: seconds per explained image of the attribution pass alone, and peak memory
  (CUDA peak allocated; on the CPU the process's resident set after the pass).

When an attribution cannot be trusted the trial says so instead of drawing a map: a
discriminator that calls a module twice in one forward (captum's DeepLIFT hooks then mix
the two calls), or on which DeepLIFT misses completeness (|Σa - (f(x) - f(b))| above
``completeness_tolerance`` of the gap on any image), is ``n/a`` for DeepLIFT and
DeepLiftShap, and a discriminator whose logit for one image depends on the rest of its
batch is ``n/a`` for every explainer. Minibatch-statistics layers that declare a
``group_size`` (StyleGAN's minibatch std) are explained with groups of one image, which
makes the logit a per-image function; the JSON report says so.

Figure ``attribution-<explainer>.png``: a real and a generated image, each beside its map.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn
from torch.nn import functional as F

from ganbench.core.errors import GanbenchError, NotApplicable
from ganbench.core.evaluator import EvalContext, Evaluator
from ganbench.core.registry import register_explainer
from ganbench.core.scores import EXACT, VERY_NOISY, Score
from ganbench.core.timing import timed

from . import _lime


class Logit(nn.Module):
    """D's realness logit as a module captum can hook: ``(n, C, H, W) -> (n,)``."""

    def __init__(self, discriminator: nn.Module) -> None:
        super().__init__()
        self.discriminator = discriminator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.discriminator(x).reshape(x.shape[0])


# --- checks -------------------------------------------------------------------------
def reused_modules(model: nn.Module, x: torch.Tensor) -> list[str]:
    """Leaf modules called more than once in one forward of ``x`` (captum's DeepLIFT is wrong
    on those: its hooks see the two calls as one)."""
    calls: Counter = Counter()
    hooks = [
        m.register_forward_hook(lambda m, i, o, n=n: calls.update([n]))
        for n, m in model.named_modules()
        if not list(m.children())
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return sorted(n for n, c in calls.items() if c > 1)


def batch_dependence(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> float:
    """Largest change of an image's output between its batch and a batch of its own,
    relative to the outputs' scale (0 for a per-image function)."""
    with torch.no_grad():
        together = f(x)
        alone = torch.cat([f(x[i : i + 1]) for i in range(len(x))])
    return float((together - alone).abs().max() / (together.abs().max() + 1e-6))


@contextmanager
def per_image_groups(model: nn.Module):
    """Minibatch-statistics layers (modules with an int ``group_size``) set to groups of one."""
    saved = [
        (m, m.group_size)
        for m in model.modules()
        if isinstance(getattr(m, "group_size", None), int)
    ]
    try:
        for m, _ in saved:
            m.group_size = 1
        yield [type(m).__name__ for m, _ in saved]
    finally:
        for m, g in saved:
            m.group_size = g


def parameterised_layers(model: nn.Module, x: torch.Tensor) -> list[nn.Module]:
    """Leaf modules with parameters (own or under a parametrization), in forward order."""
    order: list[nn.Module] = []

    def has_params(m: nn.Module) -> bool:
        return any(True for _ in m.parameters(recurse=False)) or hasattr(m, "parametrizations")

    # a parametrized layer (spectral norm) counts once: its ParametrizationList is not a layer
    leaves = [
        m for name, m in model.named_modules() if has_params(m) and "parametrizations" not in name
    ]
    hooks = [m.register_forward_hook(lambda m, i, o: order.append(m)) for m in leaves]
    try:
        with torch.no_grad():
            model(x[:2])
    finally:
        for h in hooks:
            h.remove()
    seen: list[nn.Module] = []
    for m in order:
        if all(m is not s for s in seen):
            seen.append(m)
    return seen


def shuffle_parameters(layer: nn.Module, generator: torch.Generator) -> None:
    """Permute the values of every parameter tensor of ``layer`` (its scale stays, its
    learned structure goes)."""
    with torch.no_grad():
        for p in layer.parameters():
            flat = p.detach().flatten()
            order = torch.randperm(flat.numel(), generator=generator).to(flat.device)
            p.copy_(flat[order].view_as(p))


# --- baselines and curves -------------------------------------------------------------
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


def spearman_per_image(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Spearman correlation (average ranks for ties) of |a_i| and |b_i| for each image i."""
    out = []
    for ai, bi in zip(
        a.abs().flatten(1).cpu().numpy(), b.abs().flatten(1).cpu().numpy(), strict=True
    ):
        if np.ptp(ai) == 0 or np.ptp(bi) == 0:
            out.append(0.0)
        else:
            out.append(float(spearmanr(ai, bi).statistic))
    return np.asarray(out)


# --- the scoring harness --------------------------------------------------------------
Explain = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x, baseline) -> attributions


def _score_names(suffix: str = "") -> list[str]:
    return [
        "insertion_minus_deletion" + suffix,
        "deletion_auc" + suffix,
        "insertion_auc" + suffix,
        "infidelity" + suffix,
        "randomisation_rho" + suffix,
        "sensitivity" + suffix,
    ]


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


def sensitivity_score(
    explain: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    radius: float,
    perturbations: int,
) -> np.ndarray:
    from captum.metrics import sensitivity_max

    def explain_one(inputs):  # captum hands the input over, and wants the map back, as 1-tuples
        with torch.enable_grad():
            return (explain(inputs[0] if isinstance(inputs, tuple) else inputs),)

    return (
        sensitivity_max(explain_one, x, perturb_radius=radius, n_perturb_samples=perturbations)
        .detach()
        .cpu()
        .numpy()
    )


def randomisation_rhos(
    model: nn.Module,
    x: torch.Tensor,
    maps: torch.Tensor,
    explain_with: Callable[[nn.Module], torch.Tensor],
    *,
    max_layers: int,
    generator: torch.Generator,
) -> list[float]:
    """Cascading model randomisation: mean Spearman ρ of |maps| per number of shuffled top layers."""
    layers = parameterised_layers(model, x)
    if max_layers:
        layers = layers[-max_layers:]
    randomised = copy.deepcopy(model)
    by_id = dict(zip(map(id, model.modules()), randomised.modules(), strict=True))
    rhos = []
    for layer in reversed(layers):
        shuffle_parameters(by_id[id(layer)], generator)
        rhos.append(float(spearman_per_image(maps, pixel_maps(explain_with(randomised))).mean()))
    return rhos


def score_attributions(
    f: nn.Module,
    x: torch.Tensor,
    baseline: torch.Tensor,
    explain_with: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    signed: bool,
    params: dict,
    seed: int,
) -> tuple[dict[str, float], torch.Tensor, dict]:
    """Every score of one explainer (and nothing of the control), with its attributions.

    ``explain_with(model, x, baseline)`` returns attributions (n, C, H, W) of ``model``.
    """
    g = torch.Generator().manual_seed(seed)
    with timed(x.device) as cost:
        attributions = explain_with(f, x, baseline).detach()
    seconds, peak = cost["seconds"], cost["peak_mem_mb"]
    if not torch.isfinite(attributions).all():
        raise GanbenchError("the explainer returned non-finite attributions")
    scores = _faithfulness(f, x, baseline, attributions, signed=signed, params=params, generator=g)
    response_by_image = scores.pop("_response_by_image")
    rhos = randomisation_rhos(
        f,
        x,
        pixel_maps(attributions),
        lambda m: explain_with(m, x, baseline).detach(),
        max_layers=params["cascade_layers"],
        generator=g,
    )
    sens = sensitivity_score(
        lambda inp: explain_with(f, inp, _baseline_like(inp, x, baseline, params)),
        x,
        radius=params["sensitivity_radius"],
        perturbations=params["sensitivity_perturbations"],
    )
    scores.update(
        randomisation_rho=float(np.mean(rhos)),
        randomisation_rho_full=rhos[-1],
        sensitivity=float(np.mean(sens)),
        s_per_image=seconds / len(x),
        peak_mem_mb=peak,
    )
    extra = {"randomisation_rho_by_layers": rhos, "response_nats_by_image": response_by_image}
    return scores, attributions, extra


def _baseline_like(inp: torch.Tensor, x: torch.Tensor, baseline: torch.Tensor, params: dict):
    """The baseline of perturbed inputs: recomputed for blur, repeated otherwise."""
    if params["baseline"] == "blur":
        return blur(inp, params["blur_sigma"])
    reps = len(inp) // len(x)
    return baseline.repeat_interleave(reps, 0)


def _faithfulness(f, x, baseline, attributions, *, signed, params, generator) -> dict[str, float]:
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


def _controlled(
    name: str,
    direction: str,
    meaning: str,
    control_meaning: str,
    *,
    primary: bool = True,
    ideal: float | None = None,
) -> tuple[Score, Score]:
    return (
        Score(
            name,
            direction,
            meaning,
            primary=primary,
            ideal=ideal,
            control=name + "_random",
            tolerance=VERY_NOISY,
        ),
        Score(name + "_random", "none", control_meaning, primary=False, tolerance=VERY_NOISY),
    )


SCORES = (
    *_controlled(
        "insertion_minus_deletion",
        "higher",
        "insertion_auc - deletion_auc: how much sooner D's logit moves when pixels are "
        "restored/removed most-attributed first than least-attributed first (the LeRF "
        "deletion curve is the insertion curve reversed), over D's logit range along the "
        "curves (at least min_response nats): 1 = all at once, 0 = a random order, < 0 = "
        "worse than random; an image D barely responds to scores ~0",
        "insertion_minus_deletion of i.i.d. random maps (0 in expectation, whatever D)",
        ideal=1.0,
    ),
    *_controlled(
        "deletion_auc",
        "lower",
        "area under D's logit as pixels are blended (soft mask) into the baseline in "
        "attribution order, on D's logit range along the deletion and insertion curves "
        "(at least min_response nats), 0.5 = the middle of that range: 0 = the first "
        "pixels carry all the evidence",
        "deletion_auc of i.i.d. random maps (the chance level)",
        primary=False,
    ),
    *_controlled(
        "insertion_auc",
        "higher",
        "area under D's logit as pixels are blended (soft mask) back into the baseline in "
        "attribution order, on the same scale as deletion_auc: 1 = the first pixels "
        "restore all the evidence",
        "insertion_auc of i.i.d. random maps (the chance level)",
        primary=False,
    ),
    *_controlled(
        "infidelity",
        "lower",
        "1 - r² (r clipped at 0) between the change of D's logit the map predicts for random "
        "patch drops of one size and the actual change (Yeh et al.'s infidelity with an "
        "intercept and β >= 0): 0 = the map predicts each drop's effect, 1 = it predicts "
        "nothing (an image on which D moves < min_response nats counts toward 1)",
        "infidelity of i.i.d. random maps (the chance level)",
    ),
    *_controlled(
        "randomisation_rho",
        "lower",
        "Spearman ρ of |map| between the trained D and D with its top 1…L layers shuffled, "
        "mean over the cascade (Adebayo et al. 2018): a map of the model must change, so lower",
        "randomisation_rho of random maps (~0: passes this sanity check by being noise)",
    ),
    *_controlled(
        "sensitivity",
        "lower",
        "captum sensitivity_max: largest relative change of the map under small uniform "
        "input perturbations (radius sensitivity_radius)",
        "sensitivity of random maps (redrawn each time)",
    ),
    Score(
        "s_per_image",
        "lower",
        "seconds of the attribution pass per explained image",
        "s",
        tolerance=None,  # a cost: never compared between runs
        cost=True,  # shown in the explainer cost table, never ranked
    ),
    Score(
        "peak_mem_mb",
        "lower",
        "peak memory of the attribution pass: CUDA max allocated, on the CPU the resident set",
        "MiB",
        primary=False,
        tolerance=None,
        cost=True,
    ),
    Score(
        "insertion_minus_deletion_real",
        "higher",
        "insertion_minus_deletion over the real test images alone",
        primary=False,
        tolerance=VERY_NOISY,
    ),
    Score(
        "insertion_minus_deletion_generated",
        "higher",
        "insertion_minus_deletion over the generated images alone",
        primary=False,
        tolerance=VERY_NOISY,
    ),
    Score(
        "response_nats",
        "none",
        "median over images of how far D's logit moves along this map's deletion and "
        "insertion curves; below min_response the faithfulness scores are shrunk toward "
        "chance (the untrained smoke Ds move ~0.01)",
        "nats",
        primary=False,
        tolerance=VERY_NOISY,
    ),
    Score(
        "randomisation_rho_full",
        "lower",
        "randomisation_rho with every parameterised layer of D shuffled",
        primary=False,
        tolerance=VERY_NOISY,
    ),
    Score(
        "explained_n",
        "none",
        "images explained (half real, half generated)",
        primary=False,
        tolerance=EXACT,
    ),
)

COMMON_DEFAULTS = {
    "n": 16,  # images explained: n/2 real test images and n/2 generated
    "baseline": "blur",  # blur | mean | zero
    "blur_sigma": 4.0,  # pixels (at 32x32: an eighth of the side)
    "curve_steps": 32,
    "mask_sigma": 1.0,  # pixels: deletion/insertion masks blurred into soft blends (0: hard)
    "min_response": 0.5,  # nats: D's logit range below which an image counts as no response
    "infidelity_perturbations": 16,
    "infidelity_patch": 4,
    "infidelity_drop": 0.25,
    "sensitivity_radius": 0.02,  # L∞, images in [-1, 1]
    "sensitivity_perturbations": 4,
    "cascade_layers": 0,  # 0: every parameterised layer of D
    "completeness_tolerance": 0.1,
    "figure": True,
}


def random_maps(
    generator: torch.Generator,
) -> Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The control: i.i.d. uniform(-1, 1) attributions, redrawn on every call."""

    def explain(model, x, baseline):
        return (torch.rand(x.shape, generator=generator) * 2 - 1).to(x.device)

    return explain


class AttributionExplainer(Evaluator):
    """Base of the captum explainers of D: subclasses implement :meth:`attribute`."""

    version = "2"
    family = "explainability"
    explains = "discriminator"  # ranked against the other attribution methods, per D
    requires = frozenset({"layers"})
    defaults = COMMON_DEFAULTS
    scores = SCORES
    signed = True  # False: maps are magnitudes (ordered by size, not by s·a)
    deeplift_rules = False  # True: needs each module once and DeepLIFT completeness

    def attribute(
        self, model: nn.Module, x: torch.Tensor, baseline: torch.Tensor, ctx: EvalContext
    ) -> torch.Tensor:
        raise NotImplementedError

    def baseline_of(self, x: torch.Tensor, ctx: EvalContext) -> torch.Tensor:
        kind = self.params["baseline"]
        if kind == "blur":
            return blur(x, self.params["blur_sigma"])
        if kind == "mean":
            mean = ctx.dataset.split("train").images.mean(0, keepdim=True).to(x.device)
            return mean.expand_as(x).contiguous()
        if kind == "zero":
            return torch.zeros_like(x)
        raise GanbenchError(f"{self.name}: baseline must be blur, mean or zero, got {kind!r}")

    def check(self, f: nn.Module, x: torch.Tensor, baseline: torch.Tensor) -> dict:
        """Raise NotApplicable when this explainer's map of ``f`` could not be trusted."""
        report: dict = {}
        dependence = batch_dependence(f, x[:8])
        report["batch_dependence"] = dependence
        if dependence > 1e-4:
            raise NotApplicable(
                f"{self.name}: D's logit of an image depends on the other images of its batch "
                f"(by up to {dependence:.1%}), so a per-image attribution is undefined"
            )
        if self.deeplift_rules:
            reused = reused_modules(f, x[:2])
            if reused:
                raise NotApplicable(
                    f"{self.name}: D calls {', '.join(reused)} more than once per forward; "
                    "captum's DeepLIFT hooks would mix the calls"
                )
            from captum.attr import DeepLift

            attr, delta = DeepLift(f).attribute(
                x, baselines=baseline, return_convergence_delta=True
            )
            with torch.no_grad():
                gap = (f(x) - f(baseline)).abs()
            miss = float((delta.detach().abs() / (gap + 1e-3)).max())
            report["deeplift_completeness_miss"] = miss
            if miss > self.params["completeness_tolerance"]:
                raise NotApplicable(
                    f"{self.name}: DeepLIFT's attributions miss f(x) - f(baseline) by up to "
                    f"{miss:.0%} (tolerance {self.params['completeness_tolerance']:.0%}): D has "
                    "operations without a DeepLIFT rule"
                )
        return report

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        p = self.params
        if p["n"] < 2:
            raise GanbenchError(f"{self.name}: n must be at least 2, got {p['n']}")
        if not p["min_response"] > 0 or p["mask_sigma"] < 0:
            raise GanbenchError(
                f"{self.name}: min_response must be > 0 and mask_sigma >= 0, got "
                f"{p['min_response']} and {p['mask_sigma']}"
            )
        f = Logit(ctx.model.discriminator).to(ctx.device).eval()
        reals = ctx.reals(p["n"] // 2, "test")
        x = torch.cat([reals, ctx.fakes(p["n"] - len(reals))]).detach()
        baseline = self.baseline_of(x, ctx)
        with per_image_groups(f) as grouped, warnings.catch_warnings():
            # captum's notes on hooks it sets and inputs it marks as requiring grad
            warnings.simplefilter("ignore", UserWarning)
            report = {
                "explained": self.name,
                "per_image_groups": grouped,
                **self.check(f, x, baseline),
            }

            def explain_with(model, inp, base):
                return self.attribute(model, inp, base, ctx)

            scores, attributions, extra = score_attributions(
                f, x, baseline, explain_with, signed=self.signed, params=p, seed=ctx.seed
            )
            control, _, control_extra = score_attributions(
                f, x, baseline, random_maps(ctx.rng(41)), signed=True, params=p, seed=ctx.seed
            )
        report.update(extra, control=control_extra)
        for name in _score_names():
            scores[name + "_random"] = control[name]
        scores["explained_n"] = float(len(x))
        ctx.artifact_dir.mkdir(parents=True, exist_ok=True)
        (ctx.artifact_dir / f"attribution-{self.name}.json").write_text(
            json.dumps({**report, "scores": scores}, indent=1)
        )
        if p["figure"]:
            self.figure(ctx, x, attributions, len(reals))
        return scores

    def figure(
        self, ctx: EvalContext, x: torch.Tensor, attributions: torch.Tensor, n_real: int
    ) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        maps = pixel_maps(attributions).cpu()
        picks = [(0, "real"), (n_real, "generated")]
        fig, axes = plt.subplots(1, 4, figsize=(7.2, 1.9))
        for k, (i, label) in enumerate(picks):
            img = ((x[i].detach().cpu().permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy()
            grey = img.shape[-1] == 1
            axes[2 * k].imshow(
                img[..., 0] if grey else img, cmap="gray" if grey else None, vmin=0, vmax=1
            )
            axes[2 * k].set_title(label, fontsize=8)
            m = maps[i].numpy()
            if self.signed:
                lim = float(np.abs(m).max()) or 1.0
                shown = axes[2 * k + 1].imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim)
            else:
                shown = axes[2 * k + 1].imshow(m, cmap="magma")
            axes[2 * k + 1].set_title(f"{self.name} map", fontsize=8)
            bar = fig.colorbar(shown, ax=axes[2 * k + 1], fraction=0.046, pad=0.04)
            bar.ax.tick_params(labelsize=6)
        for ax in axes:
            ax.set_axis_off()
        fig.suptitle(
            f"{self.name} of D's logit (red: evidence for 'real')"
            if self.signed
            else f"{self.name} of D's logit (magnitude)",
            fontsize=8,
        )
        fig.tight_layout()
        fig.savefig(ctx.artifact_dir / f"attribution-{self.name}.png", dpi=100)
        plt.close(fig)


@register_explainer("deeplift")
class DeepLiftExplainer(AttributionExplainer):
    """captum DeepLift (rescale rule) of D's logit against the baseline."""

    deeplift_rules = True

    def attribute(self, model, x, baseline, ctx):
        from captum.attr import DeepLift

        return DeepLift(model).attribute(x, baselines=baseline)


@register_explainer("deepliftshap")
class DeepLiftShapExplainer(AttributionExplainer):
    """captum DeepLiftShap: DeepLIFT averaged over ``shap_baselines`` real training images."""

    deeplift_rules = True
    defaults = {**COMMON_DEFAULTS, "shap_baselines": 8}

    def attribute(self, model, x, baseline, ctx):
        from captum.attr import DeepLiftShap

        refs = ctx.reals(self.params["shap_baselines"], "train")
        return DeepLiftShap(model).attribute(x, baselines=refs)


@register_explainer("integrated_gradients")
class IntegratedGradientsExplainer(AttributionExplainer):
    """captum IntegratedGradients (Gauss-Legendre, ``steps`` points) from the baseline."""

    defaults = {**COMMON_DEFAULTS, "steps": 32}

    def attribute(self, model, x, baseline, ctx):
        from captum.attr import IntegratedGradients

        return IntegratedGradients(model).attribute(
            x, baselines=baseline, n_steps=self.params["steps"], internal_batch_size=512
        )


@register_explainer("smoothgrad")
class SmoothGradExplainer(AttributionExplainer):
    """captum NoiseTunnel(Saliency): mean |∂f/∂x| over ``samples`` noisy copies (σ = ``noise``)."""

    signed = False
    defaults = {**COMMON_DEFAULTS, "samples": 16, "noise": 0.2}

    def attribute(self, model, x, baseline, ctx):
        from captum.attr import NoiseTunnel, Saliency

        return NoiseTunnel(Saliency(model)).attribute(
            x, nt_type="smoothgrad", nt_samples=self.params["samples"], stdevs=self.params["noise"]
        )


@register_explainer("lime")
class LimeExplainer(AttributionExplainer):
    """LIME on square patches: ``samples`` perturbations (each patch kept with probability
    1/2, else set to the baseline), weighted by captum's default exponential kernel on the
    cosine distance, fitted by weighted ridge (``alpha``). ``vectorised`` (default) runs the
    batched path of :mod:`ganbench.explainers._lime`; false runs captum's ``Lime`` itself on
    the same samples."""

    defaults = {
        **COMMON_DEFAULTS,
        "patch": 4,
        "samples": 256,
        "alpha": 1.0,
        "kernel_width": 1.0,
        "vectorised": True,
    }

    def attribute(self, model, x, baseline, ctx):
        p = self.params
        _, c, size, _ = x.shape
        if size % p["patch"]:
            raise GanbenchError(f"lime: patch {p['patch']} does not divide the image size {size}")
        mask = _lime.patch_feature_mask(c, size, p["patch"]).to(x.device)
        n_features = int(mask.max()) + 1
        # the same perturbations for every image and every call: LIME's sampling noise then
        # does not count as instability in sensitivity or randomisation
        masks = _lime.sample_lime_masks(1, n_features, p["samples"], ctx.rng(43))
        masks = masks.expand(len(x), -1, -1).to(x.device)
        run = _lime.lime_attributions if p["vectorised"] else _lime.captum_lime_attributions
        return run(
            model, x, baseline, mask, masks, kernel_width=p["kernel_width"], alpha=p["alpha"]
        )
