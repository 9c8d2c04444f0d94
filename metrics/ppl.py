"""Perceptual path length (Karras, Laine & Aila, CVPR 2019, "A Style-Based Generator
Architecture for Generative Adversarial Networks", Sec. 3 and the official
``metrics/perceptual_path_length.py``), with the domain network's features as the distance.

For pairs of latents z1, z2 drawn from the architecture's own prior and t ~ U(0, 1)
("full" sampling; "end" sets t = 0, the paper's other variant and what torch-fidelity
computes), one pair's value is

    d(G(i(z1, z2, t)), G(i(z1, z2, t + ε))) / ε²,     ε = 1e-4,

and PPL is the mean over the pairs after discarding those below the 1st and above the 99th
percentile (the official code's and torch-fidelity's ``lower``/``higher`` percentiles).

* **Distance.** d(x1, x2) = ||φ(x1) - φ(x2)||², φ the dataset's domain network's embedding
  (``features``), in place of LPIPS (VGG-16 weights, which cannot be downloaded here). The
  numbers rank architectures on one dataset; they are not comparable with published PPLs.
* **Interpolation in Z** (``ppl``): slerp where the prior is N(0, I) (StyleGAN's choice: a
  linear path between two Gaussian latents cuts through the low-norm interior that the
  generator never sees), lerp elsewhere. Slerp is the great-circle formula
  sin((1-t)Ω)/sin Ω · z1 + sin(tΩ)/sin Ω · z2 (Shoemake 1985, as torch-fidelity's
  ``slerp_any``), without the official code's projection to the unit sphere: that
  projection is harmless for StyleGAN, whose mapping network normalises z, but would move
  every other generator's latents off its prior's shell. The prior is read from the
  architecture: the base class's ``sample_latent`` is N(0, I) (DCGAN, SAGAN, IF-GAN,
  StyleGAN); an architecture with its own ``sample_latent`` gets lerp (COCO-GAN's
  U(-1, 1)^d, a convex set that lerp never leaves); an architecture with the ``codes``
  capability (InfoGAN: noise | one-hot | continuous) is interpolated part by part: slerp of
  the Gaussian noise, lerp of the one-hot code (the path moves along the probability
  simplex, as a DCGAN's path may cross from one digit to another, so categories are not
  held fixed) and lerp of the uniform continuous codes. ``interpolation = "lerp"`` forces
  lerp everywhere (torch-fidelity's default). What was used is recorded in ``ppl.json``.
* **Interpolation in W** (``ppl_w``, architectures with ``styles``): w1 = mapping(z1),
  w2 = mapping(z2), lerp in W, images ``generate_from_w(truncate(w, psi))`` with the
  architecture's own ``truncation_psi``, exactly what ``generate`` does from z, so both
  scores measure the generator the other metrics sample from.
* **Images** are ``generate(z)`` clamped to [-1, 1], as :meth:`EvalContext.fakes` makes
  them. Both endpoints of a step go through the generator and the domain network in one
  batch; the interpolation is computed in float64 and cast to the latent's dtype, the
  feature difference in float64 (ε = 1e-4 is safe in float32 for images in [-1, 1], as in
  the official code; a test checks that ε = 1e-3 and 1e-4 agree on a smooth generator).

**Not ranked.** PPL measures smoothness, which is a virtue only at equal diversity: a
generator that draws one image has PPL 0, the least there is (the smoke board's untrained
DCGAN-family nets, one flat grey image each: 0.003-0.019 against 107-203 for the trained
ones). Dividing by the samples' spread does not mend it: PPL / E||φ(G(z1)) - φ(G(z2))||² is
at least 1 for any path and smallest for straight ones, and a near-linear untrained network
draws the straightest (measured on the digits checkpoints: untrained DCGAN 2.5, trained 5.2;
COCO-GAN 3.8 against 9.0). So ``ppl`` and ``ppl_w`` are declared ``direction = "none"``, and
beside each stands ``*_spread``: the endpoints' mean squared feature distance
E||φ(G(a)) - φ(G(b))||² over the same pairs, divided by the held-out real images' (2 Σ var φ,
the mean over pairs of distinct images): 1 = as spread as the data, near 0 = collapsed, so a
reader sees why a path is short.

The real-data reference has no latent space: ``requires = {"layers"}`` (every architecture
has it) makes it n/a, and ``ppl_w`` (``requires = {"layers", "styles"}``) is n/a wherever
there is no mapping network.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ganbench.core.errors import GanbenchError, NotApplicable
from ganbench.core.evaluation import Evaluation
from ganbench.core.evaluator import EvalContext, Evaluator
from ganbench.core.params import Range
from ganbench.core.registry import register_metric
from ganbench.core.scores import FIDELITY, Score, count_score

PAIRS_STREAM = 41  # ctx.rng stream of the latent pairs and t (the same for ppl and ppl_w)
SAMPLING = ("full", "end")
INTERPOLATION = ("auto", "lerp")
PAIRS_DRAWN = "latent pairs drawn (the mean is over those between the percentiles)"
DISTANCE = (
    "squared L2 distance between the dataset's domain-network features (replaces LPIPS, whose "
    "weights are not available offline; not comparable with published PPL)"
)


# --- interpolation ---------------------------------------------------------------------------
def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """a + (b - a) t, row by row (t: (n, 1))."""
    return a + (b - a) * t


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The great-circle arc from a to b, row by row (t: (n, 1)):
    sin((1 - t)Ω)/sin Ω · a + sin(tΩ)/sin Ω · b, Ω the angle between a and b.

    Not projected to the unit sphere (the norm runs smoothly from |a| to |b|); rows where a
    or b is zero, or the two are (anti)parallel, fall back to lerp.
    """
    norms = a.norm(dim=-1, keepdim=True) * b.norm(dim=-1, keepdim=True)
    cos = ((a * b).sum(dim=-1, keepdim=True) / norms.clamp_min(1e-30)).clamp(-1.0, 1.0)
    omega = cos.acos()
    sin = omega.sin()
    arc = (sin > 1e-6) & (norms > 0)
    safe = torch.where(arc, sin, torch.ones_like(sin))
    coef_a = torch.where(arc, ((1 - t) * omega).sin() / safe, 1 - t)
    coef_b = torch.where(arc, (t * omega).sin() / safe, t)
    return coef_a * a + coef_b * b


METHODS: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "lerp": lerp,
    "slerp": slerp,
}


@dataclass(frozen=True)
class LatentPart:
    """A slice [start, stop) of the latent with its prior and the interpolation it gets."""

    name: str
    start: int
    stop: int
    prior: str  # "normal", "one-hot", "uniform", or "architecture's own"
    method: str  # "slerp" or "lerp"


def latent_parts(model, interpolation: str = "auto") -> list[LatentPart]:
    """How each part of ``model``'s latent is interpolated (see the module doc)."""
    if interpolation not in INTERPOLATION:
        raise ValueError(f"interpolation must be one of {INTERPOLATION}, got {interpolation!r}")
    gauss = "slerp" if interpolation == "auto" else "lerp"
    if "codes" in getattr(model, "capabilities", frozenset()) and hasattr(model, "code_spec"):
        spec = model.code_spec()
        parts, start = [], 0
        for name, size, prior, method in (
            ("noise", spec.noise_dim, "normal", gauss),
            ("categorical", spec.categories, "one-hot", "lerp"),
            ("continuous", spec.continuous, "uniform", "lerp"),
        ):
            if size:
                parts.append(LatentPart(name, start, start + size, prior, method))
            start += size
        if start != model.latent_dim:
            raise ValueError(f"code layout covers {start} of {model.latent_dim} latent values")
        return parts
    if getattr(model, "has_gaussian_latent", lambda: False)():
        return [LatentPart("z", 0, model.latent_dim, "normal", gauss)]
    return [LatentPart("z", 0, model.latent_dim, "architecture's own", "lerp")]


def interpolate(
    a: torch.Tensor, b: torch.Tensor, t: torch.Tensor, parts: list[LatentPart]
) -> torch.Tensor:
    """Each part of the latents a, b (n, d) interpolated by its method at t (n, 1), computed
    in float64 and returned in a's dtype."""
    a64, b64, t64 = a.double(), b.double(), t.double().to(a.device)
    out = [
        METHODS[p.method](a64[:, p.start : p.stop], b64[:, p.start : p.stop], t64) for p in parts
    ]
    return torch.cat(out, dim=1).to(a.dtype)


# --- the estimate ----------------------------------------------------------------------------
@torch.no_grad()
def path_lengths(
    generate: Callable[[torch.Tensor], torch.Tensor],
    features: Callable[[torch.Tensor], torch.Tensor],
    start: torch.Tensor,
    end: torch.Tensor,
    t: torch.Tensor,
    *,
    epsilon: float = 1e-4,
    parts: list[LatentPart] | None = None,
    batch_size: int = 128,
) -> torch.Tensor:
    """Per-pair ||φ(G(i(t))) - φ(G(i(t + ε)))||² / ε² (float64, (n,)) for the latent pairs
    ``start``, ``end`` (n, d) at ``t`` (n,); ``parts`` says how to interpolate (default: lerp
    of the whole latent). Both points of a pair pass the generator in one batch."""
    if parts is None:
        parts = [LatentPart("z", 0, start.shape[1], "any", "lerp")]
    t = t.double().reshape(-1, 1)
    out = []
    for i in range(0, len(start), batch_size):
        a, b, tt = start[i : i + batch_size], end[i : i + batch_size], t[i : i + batch_size]
        z = torch.cat([interpolate(a, b, tt, parts), interpolate(a, b, tt + epsilon, parts)])
        f = features(generate(z)).flatten(1).double()
        f0, f1 = f.chunk(2)
        out.append((f1 - f0).square().sum(dim=1).cpu() / epsilon**2)
    return torch.cat(out)


@torch.no_grad()
def endpoint_spread(
    generate: Callable[[torch.Tensor], torch.Tensor],
    features: Callable[[torch.Tensor], torch.Tensor],
    start: torch.Tensor,
    end: torch.Tensor,
    batch_size: int = 128,
) -> float:
    """Mean over the pairs of ||φ(G(start)) - φ(G(end))||² (float64): the spread of the
    samples the paths join (independent draws, so 2 Σ var φ(G) in expectation)."""
    total = 0.0
    for i in range(0, len(start), batch_size):
        f = features(generate(torch.cat([start[i : i + batch_size], end[i : i + batch_size]])))
        f0, f1 = f.flatten(1).double().chunk(2)
        total += float((f1 - f0).square().sum())
    return total / len(start)


def trim(values: np.ndarray, lower: float, upper: float) -> tuple[np.ndarray, float, float]:
    """The values between the ``lower`` and ``upper`` percentiles (inclusive; the lower and
    higher order statistics, as the official code and torch-fidelity take them), with the
    two thresholds; 0 and 100 keep everything."""
    values = np.asarray(values, dtype=np.float64)
    keep = np.ones(len(values), dtype=bool)
    lo, hi = float(values.min()), float(values.max())
    if lower > 0:
        lo = float(np.percentile(values, lower, method="lower"))
        keep &= values >= lo
    if upper < 100:
        hi = float(np.percentile(values, upper, method="higher"))
        keep &= values <= hi
    return values[keep], lo, hi


# --- the evaluators --------------------------------------------------------------------------
class _PathLength(Evaluator):
    group = FIDELITY
    version = "2"
    requires = frozenset({"layers"})
    requires_dataset = frozenset({"domain"})
    defaults = {
        "n": 1000,  # pairs (torch-fidelity's 50k is far beyond a CPU budget)
        "epsilon": 1e-4,
        "batch_size": 128,  # pairs per forward pass (twice as many images)
        "discard_lower": 1.0,  # percentiles of the per-pair values kept for the mean
        "discard_upper": 99.0,
        "sampling": "full",  # t ~ U(0, 1); "end": t = 0
        "interpolation": "auto",  # slerp for Gaussian latents, lerp elsewhere; "lerp": lerp
    }
    ranges = {
        "n": Range(low=1),
        "epsilon": Range(low=0, high=math.inf, low_open=True, high_open=True),
        "batch_size": Range(low=1),
        "discard_lower": Range(low=0, high=100),
        "discard_upper": Range(low=0, high=100),
        "sampling": Range(choices=SAMPLING),
        "interpolation": Range(choices=INTERPOLATION),
    }
    space = "z"

    @classmethod
    def check_params(cls, params: dict) -> None:
        """The declared ranges, and a kept band of percentiles that is not empty."""
        super().check_params(params)
        if not params["discard_lower"] < params["discard_upper"]:
            raise ValueError(
                f"needs discard_lower < discard_upper, got {params['discard_lower']} and "
                f"{params['discard_upper']}"
            )

    def _pairs(self, model, n: int, ctx: EvalContext):
        g = ctx.rng(PAIRS_STREAM)
        z1 = model.sample_latent(n, generator=g)
        z2 = model.sample_latent(n, generator=g)
        t = torch.rand(n, generator=g, dtype=torch.float64)
        if self.params["sampling"] == "end":
            t = torch.zeros_like(t)
        return z1, z2, t

    def _path(self, model, z1, z2):
        """(generate, start, end, parts) of this space."""
        if self.space == "z":
            parts = latent_parts(model, self.params["interpolation"])
            return (lambda z: model.generate(z).clamp(-1, 1)), z1, z2, parts
        psi = float(model.params.get("truncation_psi", 1.0))
        bs = self.params["batch_size"]
        with torch.no_grad():
            w1 = torch.cat([model.mapping(z) for z in z1.split(bs)])
            w2 = torch.cat([model.mapping(z) for z in z2.split(bs)])
        parts = [LatentPart("w", 0, w1.shape[1], "mapping(z)", "lerp")]
        return (lambda w: model.generate_from_w(model.truncate(w, psi)).clamp(-1, 1)), w1, w2, parts

    def evaluate(self, ctx: EvalContext) -> Evaluation:
        model = ctx.model
        if model is None:
            raise NotApplicable(f"{self.name} needs a generator's latent space; real data has none")
        if self.space == "w" and not hasattr(model, "mapping"):
            raise NotApplicable(f"{self.name} needs a mapping network (capability styles)")
        p = self.params
        z1, z2, t = self._pairs(model, p["n"], ctx)
        generate, start, end, parts = self._path(model, z1, z2)
        net = ctx.domain_network()
        values = path_lengths(
            generate,
            net.features,
            start,
            end,
            t,
            epsilon=p["epsilon"],
            parts=parts,
            batch_size=p["batch_size"],
        ).numpy()
        if not np.isfinite(values).all():  # a broken generator: a failure, not n/a
            raise GanbenchError(
                f"{self.name}: {int((~np.isfinite(values)).sum())} of {len(values)} path steps "
                "gave non-finite feature distances"
            )
        spread = endpoint_spread(generate, net.features, start, end, p["batch_size"])
        data = 2 * float(ctx.features("domain", "test").double().var(0).sum())
        if not data > 0:
            raise GanbenchError(f"{self.name}: the held-out images' features do not vary")
        kept, lo, hi = trim(values, p["discard_lower"], p["discard_upper"])
        mean = float(kept.mean())
        std = float(kept.std(ddof=1)) if len(kept) > 1 else 0.0
        report = {
            "metric": self.name,
            "space": self.space,
            "distance": DISTANCE,
            "epsilon": p["epsilon"],
            "sampling": p["sampling"],
            "t": "U(0, 1)" if p["sampling"] == "full" else "0",
            "interpolation": [asdict(part) for part in parts],
            "truncation_psi": getattr(model, "params", {}).get("truncation_psi"),
            "pairs": len(values),
            "kept": len(kept),
            "discard_percentiles": [p["discard_lower"], p["discard_upper"]],
            "thresholds": [lo, hi],
            "ppl": mean,
            "std": std,
            "stderr": std / math.sqrt(len(kept)),
            "untrimmed_mean": float(values.mean()),
            "median": float(np.median(values)),
            "endpoint_spread": spread,
            "data_spread": data,
        }
        scores = {
            self.name: mean,
            f"{self.name}_spread": spread / data,
            f"{self.name}_n": float(len(values)),
        }
        return Evaluation(scores, reports={self.name: report})


def _meaning(space: str) -> str:
    if space == "z":
        path = (
            "in Z: slerp where the prior is Gaussian, lerp elsewhere (InfoGAN: slerp of the "
            "noise, lerp of the one-hot and continuous codes; ppl.json records it)"
        )
    else:
        path = "in W: w = mapping(z), lerp, truncated as generate does"
    return (
        f"perceptual path length (Karras et al. 2019) {path}: mean over latent pairs and "
        "t ~ U(0, 1) of d(G(t), G(t + ε)) / ε², ε = 1e-4, the pairs below the 1st and above the "
        f"99th percentile discarded; d is the {DISTANCE}. Not ranked: a collapsed generator "
        "has the shortest paths (read it beside the spread)"
    )


def _spread(space: str) -> str:
    return (
        f"spread of the samples the {space.upper()} paths join: mean squared domain-feature "
        "distance between the two endpoints of a pair over the same between held-out real "
        "images; 1 = as diverse as the data, near 0 = collapsed (why a PPL is small)"
    )


@register_metric("ppl")
class PerceptualPathLength(_PathLength):
    """Perceptual path length in Z (StyleGAN's definition) with domain-feature distances."""

    space = "z"
    scores = (
        Score("ppl", "none", _meaning("z")),
        Score("ppl_spread", "none", _spread("z"), ideal=1.0),
        count_score("ppl_n", PAIRS_DRAWN),
    )


@register_metric("ppl_w")
class PerceptualPathLengthW(_PathLength):
    """Perceptual path length in StyleGAN's W space with domain-feature distances."""

    space = "w"
    requires = frozenset({"layers", "styles"})
    scores = (
        Score("ppl_w", "none", _meaning("w")),
        Score("ppl_w_spread", "none", _spread("w"), ideal=1.0),
        count_score("ppl_w_n", PAIRS_DRAWN),
    )
