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

* **deletion / insertion** (Petsiuk et al. 2018; Samek et al. 2017): pixels are replaced
  by the baseline (deletion) or restored from it (insertion) in attribution order, in
  ``curve_steps`` steps (the first (k/steps)² of the pixels at step k: finer where a faithful
  map does its work), and D's logit is recorded. Pixels are ordered by s·a, where
  s = sign(f(x) - f(b)), so that "most responsible for the gap between x and its baseline"
  comes first (unsigned maps, SmoothGrad's, are ordered by magnitude). The area under the
  curve is that of the fraction of the way from f(b) to f(x) the logit stands at, clipped to
  [0, 1] (mixtures of an image and its blur are off the data, and D may score them beyond
  both ends), averaged over images weighted by |f(x) - f(b)| (an image whose gap is ~0 has
  fractions that are noise). A faithful map makes deletion fall fast (low AUC) and
  insertion rise fast (high AUC); for an additive D, random order gives 0.5 for both.
* **infidelity** (Yeh et al. 2019) by captum's ``infidelity`` with ``normalize=True``:
  perturbations drop random ``infidelity_patch``-pixel squares (each with probability
  ``infidelity_drop``) to the baseline; the attribution's predicted change (the sum of the
  dropped pixels' attributions, scaled by the best β) is compared with D's actual change.
  Reported divided by the mean squared actual change, so 0 = the map predicts every
  perturbation's effect, 1 = it predicts nothing (comparable across discriminators).
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
import time
import warnings
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn
from torch.nn import functional as F

from ganbench.errors import GanbenchError, NotApplicable
from ganbench.evaluator import EvalContext, Evaluator
from ganbench.registry import register_explainer
from ganbench.scores import EXACT, VERY_NOISY, Score

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
    """Fractions of pixels taken at each of ``steps + 1`` points, (k/steps)²: finer at the start,
    where a faithful map does its work (at 32x32 and 32 steps the first point is one pixel)."""
    return torch.linspace(0, 1, steps + 1, device=device).square()


@torch.no_grad()
def perturbation_curves(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    baseline: torch.Tensor,
    order_maps: torch.Tensor,
    fractions: torch.Tensor,
    batch_size: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Deletion and insertion curves (n, len(fractions)) of ``f``.

    Pixels (all channels at once) are taken in descending ``order_maps`` (n, H, W) order, the
    first ``fraction`` of them at each point; deletion replaces them by ``baseline``, insertion
    restores them into the baseline. With fractions from 0 to 1, column 0 of deletion is
    f(x) and the last f(baseline); insertion the reverse.
    """
    n, c, h, w = x.shape
    ranks = torch.empty(n, h * w, dtype=torch.long, device=x.device)
    order = order_maps.reshape(n, -1).argsort(1, descending=True)
    ranks.scatter_(1, order, torch.arange(h * w, device=x.device).expand(n, -1))
    cut = (fractions.to(x.device) * h * w).round().long()
    points = len(cut)
    taken = (ranks[:, None, :] < cut[None, :, None]).reshape(n, points, 1, h, w).to(x.dtype)
    xs, bs = x[:, None], baseline[:, None]
    deleted = xs * (1 - taken) + bs * taken
    inserted = bs * (1 - taken) + xs * taken
    flat = torch.cat([deleted, inserted]).reshape(-1, c, h, w)
    out = batched(f, flat, batch_size).reshape(2, n, points)
    return out[0], out[1]


def normalised_auc(
    curves: torch.Tensor, start: torch.Tensor, end: torch.Tensor, fractions: torch.Tensor
) -> float:
    """Area under curves (n, T) over the pixel ``fractions`` (T,), each point expressed as the
    fraction of the way from ``end`` to ``start`` it stands at, clipped to [0, 1]; images
    weighted by |start - end|.

    For deletion (start f(x), end f(b)) 0 means the logit reached the baseline's at once; for
    insertion (curves from f(b) to f(x), same start and end) 1 means it recovered at once.
    Clipping keeps an overshoot (a half-blurred image scored beyond both ends, common on
    these off-manifold mixtures) from dominating; the weights keep images whose gap is
    nearly zero, whose fractions are noise, from counting.
    """
    gap = start - end
    rel = torch.sign(gap)[:, None] * (curves - end[:, None]) / gap.abs().clamp_min(1e-12)[:, None]
    area = torch.trapezoid(rel.clamp(0, 1), fractions.to(curves), dim=1)
    weight = gap.abs()
    return float((area * weight).sum() / weight.sum()) if weight.sum() > 0 else float("nan")


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
        "deletion_auc" + suffix,
        "insertion_auc" + suffix,
        "infidelity" + suffix,
        "randomisation_rho" + suffix,
        "sensitivity" + suffix,
    ]


def patch_drop_perturbation(patch: int, drop: float, generator: torch.Generator):
    """captum infidelity perturbation: random ``patch``-squares dropped to the baseline.

    Returns (perturbation, perturbed) with perturbation the 0/1 drop mask, so captum's
    predicted change is the sum of the dropped pixels' attributions.
    """

    def perturb(inputs: torch.Tensor, baselines: torch.Tensor):
        n, c, h, w = inputs.shape
        grid = (torch.rand(n, 1, -(-h // patch), -(-w // patch), generator=generator) < drop).to(
            inputs.dtype
        )
        mask = grid.repeat_interleave(patch, 2).repeat_interleave(patch, 3)[..., :h, :w]
        mask = mask.expand(n, c, h, w).to(inputs.device)
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
    """captum's normalised infidelity per image over the mean squared actual change."""
    from captum.metrics import infidelity

    base = patch_drop_perturbation(patch, drop, generator)
    seen: list[torch.Tensor] = []

    def perturb(inputs, baselines):
        packed = isinstance(inputs, tuple)  # captum hands single inputs over as 1-tuples
        if packed:
            (inputs,), (baselines,) = inputs, baselines
        mask, perturbed = base(inputs, baselines)
        seen.append(perturbed.detach())
        return ((mask,), (perturbed,)) if packed else (mask, perturbed)

    value = infidelity(
        f,
        perturb,
        x,
        attributions,
        baselines=baseline,
        n_perturb_samples=perturbations,
        normalize=True,
    )
    with torch.no_grad():
        perturbed = torch.cat(seen)
        fx = f(x).repeat_interleave(perturbations)
        actual = (fx - batched(f, perturbed, 256)).reshape(len(x), perturbations)
    scale = actual.square().mean(1)
    return (value.detach() / scale.clamp_min(1e-12)).cpu().numpy()


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
    device = x.device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    attributions = explain_with(f, x, baseline).detach()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        from ganbench.execute import _rss_mb

        peak = _rss_mb()
    if not torch.isfinite(attributions).all():
        raise GanbenchError("the explainer returned non-finite attributions")
    scores = _faithfulness(f, x, baseline, attributions, signed=signed, params=params, generator=g)
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
    return scores, attributions, {"randomisation_rho_by_layers": rhos}


def _baseline_like(inp: torch.Tensor, x: torch.Tensor, baseline: torch.Tensor, params: dict):
    """The baseline of perturbed inputs: recomputed for blur, repeated otherwise."""
    if params["baseline"] == "blur":
        return blur(inp, params["blur_sigma"])
    reps = len(inp) // len(x)
    return baseline.repeat_interleave(reps, 0)


def _faithfulness(f, x, baseline, attributions, *, signed, params, generator) -> dict[str, float]:
    with torch.no_grad():
        fx, fb = f(x), f(baseline)
    maps = pixel_maps(attributions)
    order = torch.sign(fx - fb)[:, None, None] * maps if signed else maps
    t = curve_fractions(params["curve_steps"], x.device)
    deletion, insertion = perturbation_curves(f, x, baseline, order, t)
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
    return {
        "deletion_auc": normalised_auc(deletion, fx, fb, t),
        # insertion runs from f(b) to f(x): the same normalisation gives its rise
        "insertion_auc": normalised_auc(insertion, fx, fb, t),
        "deletion_auc_real": normalised_auc(deletion[:half], fx[:half], fb[:half], t),
        "deletion_auc_generated": normalised_auc(deletion[half:], fx[half:], fb[half:], t),
        "infidelity": float(np.mean(infid)),
    }


def _controlled(
    name: str, direction: str, meaning: str, control_meaning: str
) -> tuple[Score, Score]:
    return (
        Score(name, direction, meaning, control=name + "_random", tolerance=VERY_NOISY),
        Score(name + "_random", "none", control_meaning, primary=False, tolerance=VERY_NOISY),
    )


SCORES = (
    *_controlled(
        "deletion_auc",
        "lower",
        "area under D's logit as pixels are replaced by the baseline in attribution order, "
        "normalised by f(x) - f(baseline): 0 = the first pixels carry all the evidence",
        "deletion_auc of i.i.d. random maps (the chance level)",
    ),
    *_controlled(
        "insertion_auc",
        "higher",
        "area under D's logit as pixels are restored into the baseline in attribution order, "
        "normalised by f(x) - f(baseline): 1 = the first pixels restore all the evidence",
        "insertion_auc of i.i.d. random maps (the chance level)",
    ),
    *_controlled(
        "infidelity",
        "lower",
        "captum infidelity (normalised) of random patch drops, over the mean squared change of "
        "D's logit: 0 = the map predicts each drop's effect, 1 = it predicts nothing",
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
    ),
    Score(
        "peak_mem_mb",
        "lower",
        "peak memory of the attribution pass: CUDA max allocated, on the CPU the resident set",
        "MiB",
        primary=False,
        tolerance=None,
    ),
    Score(
        "deletion_auc_real",
        "lower",
        "deletion_auc over the real test images alone",
        primary=False,
        tolerance=VERY_NOISY,
    ),
    Score(
        "deletion_auc_generated",
        "lower",
        "deletion_auc over the generated images alone",
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

    version = "1"
    family = "explainability"
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
        fig, axes = plt.subplots(1, 4, figsize=(6.4, 1.9))
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
                axes[2 * k + 1].imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim)
            else:
                axes[2 * k + 1].imshow(m, cmap="magma")
            axes[2 * k + 1].set_title(f"{self.name} map", fontsize=8)
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
