"""Latent sweep: how much each latent dimension changes the generated image.

A perturbation analysis of the generator's input (seed 000, the DCGAN explainability
report). For every swept latent dimension d and each of ``n`` base latents drawn by the
architecture's ``sample_latent``, coordinate d is set in turn to each of ``steps`` evenly
spaced values in [``low``, ``high``] (default -3 .. 3, 7 values: a step of 1), all other
coordinates kept, and the images are generated. Between consecutive values the explainer
measures, divided by the step size (so: change per unit of z_d):

* **pixel effect**: the mean absolute change per pixel (the RMS change per pixel is in the
  JSON too), images clamped to [-1, 1] as the metrics see them;
* **feature effect**: the L2 distance between the dataset's domain-network embeddings
  (``ctx.domain_network().features``) of the two images.

Each is averaged over the base latents and the ``steps - 1`` consecutive pairs, giving one
pixel effect and one feature effect e_d per dimension. Dimensions are ranked by e_d.

What the latent is: the vector ``generate`` takes, whatever ``sample_latent`` draws. For
StyleGAN that is Z (the mapping network is part of the swept function); for COCO-GAN it is
z ~ U(-1, 1), so values beyond +-1 leave the training support (as +-3 does for any
N(0, 1) latent in the tails). InfoGAN's latent is [noise | one-hot category | continuous
codes]: moving one coordinate of a one-hot code to -3 or 3 makes no category at all, so
by default (``skip_categorical``) the categorical coordinates are not swept (they keep the
base latent's one-hot value) and the JSON lists them as skipped; the noise and continuous
coordinates are swept like any other (the continuous codes, drawn in [-1, 1], go beyond
their range too). The explainer recognises such a latent by the architecture's
``code_spec()`` (the ``codes`` capability); every other latent is swept whole.

Scores (all descriptive, direction "none": they describe the generator, not rank it):

* ``sweep_effective_dims``: the participation ratio (sum e)^2 / sum e^2 of the feature
  effects, from 1 (one dimension does everything) to the number of swept dimensions (all
  equal); ``sweep_effective_fraction`` divides it by that number (= ``latent_dim`` except
  where coordinates are skipped);
* ``sweep_top_share``: the share of sum e carried by the top 10% of the swept dimensions
  (at least one);
* ``sweep_pixel_effect``, ``sweep_feature_effect``: the mean effects over dimensions;
* ``sweep_rank_agreement``: Spearman's rho between the pixel and the feature effects of
  the dimensions (0 where either is constant).

Artifacts: ``latent-sweep.json`` (every dimension's effects, the ranking, the values, the
skipped coordinates) and ``latent-sweep.png``, a traversal grid: one row for each of the
``top_k`` highest-ranked dimensions, one column for each sweep value, for one base latent.

Cost: ``n * steps`` images per swept dimension, generated and embedded ``batch_size`` at a
time; 128 dimensions x 32 x 7 = 28,672 images at the defaults.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ganbench.core.evaluation import Evaluation
from ganbench.core.evaluator import EvalContext, Evaluator
from ganbench.core.params import Range
from ganbench.core.plots import traversal_figure
from ganbench.core.registry import register_explainer
from ganbench.core.scores import VERY_NOISY, Score

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def participation_ratio(effects: torch.Tensor) -> float:
    """(sum e)^2 / sum e^2 of non-negative effects: 1 if one is non-zero, len(e) if all equal
    (0 when all are zero)."""
    e = effects.double()
    denom = float(e.square().sum())
    return float(e.sum()) ** 2 / denom if denom > 0 else 0.0


def top_share(effects: torch.Tensor, fraction: float = 0.1) -> float:
    """Share of the total carried by the largest ``fraction`` of the entries (at least one)."""
    e = effects.double()
    total = float(e.sum())
    if total <= 0:
        return 0.0
    k = max(1, round(fraction * len(e)))
    return float(e.sort(descending=True).values[:k].sum()) / total


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation (average ranks for ties); 0 when either side is constant."""
    from scipy.stats import rankdata  # slow to import: only when used

    ra = torch.as_tensor(rankdata(a.double().numpy()))
    rb = torch.as_tensor(rankdata(b.double().numpy()))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = float(ra.norm() * rb.norm())
    return float((ra * rb).sum()) / denom if denom > 0 else 0.0


def categorical_coordinates(model) -> list[int]:
    """The latent coordinates that hold a one-hot categorical code (InfoGAN's), if any."""
    spec_of = getattr(model, "code_spec", None)
    if spec_of is None:
        return []
    spec = spec_of()
    return list(range(spec.noise_dim, spec.noise_dim + spec.categories))


def sweep_scores(pixel: torch.Tensor, feature: torch.Tensor) -> dict[str, float]:
    """The declared scores from the swept dimensions' pixel and domain-feature effects."""
    effective = participation_ratio(feature)
    return {
        "sweep_effective_dims": effective,
        "sweep_effective_fraction": effective / len(feature),
        "sweep_top_share": top_share(feature),
        "sweep_pixel_effect": float(pixel.mean()),
        "sweep_feature_effect": float(feature.mean()),
        "sweep_rank_agreement": spearman(pixel, feature),
    }


@register_explainer("latent_sweep")
class LatentSweepExplainer(Evaluator):
    """Per-dimension effect of the latent on the image, in pixels and in domain features."""

    version = "1"
    requires = frozenset({"layers"})
    requires_dataset = frozenset({"domain"})
    defaults = {
        "n": 32,
        "steps": 7,
        "low": -3.0,
        "high": 3.0,
        "skip_categorical": True,
        "top_k": 6,
        "batch_size": 256,
        "figure": True,
    }
    ranges = {"n": Range(low=1), "steps": Range(low=2)}
    figures = ("latent-sweep.png",)
    scores = (
        Score(
            "sweep_effective_dims",
            "none",
            "participation ratio (sum e)^2 / sum e^2 of the latent dimensions' domain-feature "
            "effects: 1 = one dimension does everything, the number of swept dimensions = all "
            "equal",
        ),
        Score(
            "sweep_effective_fraction",
            "none",
            "sweep_effective_dims / the number of swept latent dimensions",
        ),
        Score(
            "sweep_top_share",
            "none",
            "share of the total domain-feature effect carried by the top 10% of the latent "
            "dimensions",
        ),
        Score(
            "sweep_pixel_effect",
            "none",
            "mean absolute change per pixel per unit step of one latent coordinate, averaged "
            "over the dimensions",
            primary=False,
        ),
        Score(
            "sweep_feature_effect",
            "none",
            "L2 change of the domain features per unit step of one latent coordinate, averaged "
            "over the dimensions",
            primary=False,
            tolerance=VERY_NOISY,
        ),
        Score(
            "sweep_rank_agreement",
            "none",
            "Spearman correlation of the dimensions' pixel-space and feature-space effects",
            primary=False,
        ),
    )

    @classmethod
    def check_params(cls, params: dict) -> None:
        """The declared ranges, and a sweep that moves forward: high > low."""
        super().check_params(params)
        if not params["high"] > params["low"]:
            raise ValueError(f"needs high > low, got low {params['low']} and high {params['high']}")

    @torch.no_grad()
    def sweep_images(self, ctx: EvalContext, z: torch.Tensor, dim: int) -> torch.Tensor:
        """Images (len(z), steps, C, H, W) with coordinate ``dim`` of each latent swept."""
        p, model = self.params, ctx.model
        values = torch.linspace(p["low"], p["high"], p["steps"]).to(z)
        zs = z[:, None, :].repeat(1, p["steps"], 1)
        zs[:, :, dim] = values
        flat = zs.reshape(-1, z.shape[1])
        out = [
            model.generate(flat[i : i + p["batch_size"]]).clamp(-1, 1)
            for i in range(0, len(flat), p["batch_size"])
        ]
        x = torch.cat(out)
        return x.reshape(len(z), p["steps"], *x.shape[1:])

    @torch.no_grad()
    def evaluate(self, ctx: EvalContext) -> Evaluation:
        p, model = self.params, ctx.model
        net = ctx.domain_network()
        step = (p["high"] - p["low"]) / (p["steps"] - 1)
        z = model.sample_latent(p["n"], generator=ctx.rng(40))
        latent_dim = z.shape[1]
        skipped = categorical_coordinates(model) if p["skip_categorical"] else []
        dims = [d for d in range(latent_dim) if d not in set(skipped)]
        if not dims:
            raise ValueError("latent_sweep: no latent coordinate left to sweep")
        pixel, pixel_rms, feature = self.effects(ctx, net, z, dims, step)
        e_pix, e_feat = torch.tensor(pixel), torch.tensor(feature)
        order = e_feat.argsort(descending=True, stable=True)
        ranking = [dims[i] for i in order.tolist()]
        scores = sweep_scores(e_pix, e_feat)
        values = torch.linspace(p["low"], p["high"], p["steps"]).tolist()
        report = {
            "latent_dim": latent_dim,
            "values": values,
            "step": step,
            "n": p["n"],
            "swept": len(dims),
            "skipped": {
                "coordinates": skipped,
                "why": "one-hot categorical code: a single coordinate at -3..3 is no category"
                if skipped
                else "",
            },
            "ranking": ranking,
            "dims": [
                {
                    "dim": d,
                    "rank": ranking.index(d),
                    "pixel_effect": pixel[i],
                    "pixel_rms_effect": pixel_rms[i],
                    "feature_effect": feature[i],
                }
                for i, d in enumerate(dims)
            ],
            "scores": scores,
        }
        figures = {}
        if p["figure"] and p["top_k"] > 0:
            top = ranking[: p["top_k"]]
            effect = {d: feature[dims.index(d)] for d in top}
            rows = [self.sweep_images(ctx, z[:1], d)[0].cpu() for d in top]
            figures["latent-sweep"] = self.figure(rows, top, effect, values)
        return Evaluation(scores, reports={"latent-sweep": report}, figures=figures)

    @torch.no_grad()
    def effects(
        self, ctx: EvalContext, net, z: torch.Tensor, dims: list[int], step: float
    ) -> tuple[list[float], list[float], list[float]]:
        """Per swept dimension, averaged over the base latents and consecutive sweep values,
        per unit step: the mean absolute and the RMS change per pixel, and the L2 change of
        the domain network's features."""
        p = self.params
        pixel, pixel_rms, feature = [], [], []
        for d in dims:
            x = self.sweep_images(ctx, z, d)  # (n, steps, C, H, W)
            diff = (x[:, 1:] - x[:, :-1]).flatten(2)  # (n, steps-1, pixels)
            pixel.append(float(diff.abs().mean()) / step)
            pixel_rms.append(float(diff.square().mean(2).sqrt().mean()) / step)
            flat = x.flatten(0, 1)
            f = torch.cat(
                [
                    net.features(flat[i : i + p["batch_size"]].to(ctx.device))
                    for i in range(0, len(flat), p["batch_size"])
                ]
            ).reshape(len(z), p["steps"], -1)
            feature.append(float((f[:, 1:] - f[:, :-1]).norm(dim=2).mean()) / step)
        return pixel, pixel_rms, feature

    def figure(
        self,
        rows: list[torch.Tensor],
        top: list[int],
        effect: dict[int, float],
        values: list[float],
    ) -> Figure:
        """The traversal grid: a row per top dimension (labelled with its effect), a column
        per sweep value."""
        return traversal_figure(
            rows,
            [f"z={v:+.1f}" for v in values],
            [f"dim {d}\ne={effect[d]:.3g}" for d in top],
            "latent traversal of the top dimensions (e: domain-feature change per unit step)",
        )
