"""What the attribution explainers score and how: the declared scores, each beside its
random-attribution control, the parameters every explainer shares, and the pass that
computes every score of one explainer's maps.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ganbench.core.errors import GanbenchError
from ganbench.core.scores import EXACT, VERY_NOISY, Score
from ganbench.core.timing import timed

from ._attribution_faithfulness import blur, faithfulness, pixel_maps
from ._attribution_sanity import randomisation_rhos, sensitivity_score

# the scores that have a random-attribution control beside them, named <score>_random
CONTROLLED = (
    "insertion_minus_deletion",
    "deletion_auc",
    "insertion_auc",
    "infidelity",
    "randomisation_rho",
    "sensitivity",
)


def _controlled(
    name: str,
    direction: str,
    meaning: str,
    control_meaning: str,
    *,
    primary: bool = True,
    ideal: float | None = None,
) -> tuple[Score, Score]:
    """A score and its random-attribution control, ``<name>_random``."""
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
    scores = faithfulness(f, x, baseline, attributions, signed=signed, params=params, generator=g)
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
