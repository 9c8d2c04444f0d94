"""How well latent directions recover a dataset's ground-truth factors (``directions_factors``).

Beyond the paper of :mod:`ganbench.explainers.directions`, for datasets with factors and a
domain network (shapes). A is trained exactly as ``directions`` trains it (same streams:
with the same parameters and seed it is the same A); the four baselines are built as there
(no reconstructors: recovery needs none). ``n_align`` fresh latents are rendered and the
domain network's factor heads read each factor on the images (categorical: the class, as a
one-hot vector; regression: the value). A direction's movement is each latent's coordinate
along it, (z - mean z) . A_k; cut into B = min(``bins``, sqrt(n_align)) equal-frequency
bins, it explains a share of factor f: the between-bin sum of squares less what B - 1 bins
explain by chance (SS_B - (B - 1) SS_W / (N - B), at least 0), over N times the larger of
f's variance on the generated images and its variance as the same network reads it on
``n_align`` real test images (Gini impurity for a categorical factor). R[k, f] is thus a
chance-corrected R^2 (0 for a direction the images do not depend on, about cos^2 to a
planted factor direction for a mixture, near 1 for the factor's own direction) that a
generator varying the factor less than the data cannot fill.

Scores: ``recovery`` = the mean over factors of max_k R[k, f] (control ``recovery_random``;
``recovery_coordinate``, ``_ganspace``, ``_sefa`` for the baselines); ``sap`` (Kumar et al.
2018, with R as the per-code score) = the mean over factors of the best minus the second
best R[k, f] (1: each factor carried by one direction alone), for every arm. The JSON
(``directions-factors.json``) adds per arm the directions, R, the best direction per factor,
DCI disentanglement and completeness (Eastwood & Williams 2018, R as the importance matrix)
and MIG (Chen et al. 2018: plug-in mutual information of binned coordinates and binned
factors, over H(f); scale-free, so it does not see a factor the generator hardly varies).
Each learned direction is labelled with the factor it explains most where its share beats
every random direction's share of that factor; ``directions-factors.png`` shows the labels.
The measures are in :mod:`ganbench.explainers.directions_recovery`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ganbench.core.evaluation import Evaluation
from ganbench.core.evaluator import EvalContext
from ganbench.core.params import Range
from ganbench.core.registry import register_explainer
from ganbench.core.scores import NOISY, Score

from ._directions_base import ARMS, BASE_DEFAULTS, S_ALIGN, DirectionsBase, DirectionsRun
from .directions_latent import frozen
from .directions_recovery import effective_bins, factor_recovery, factor_targets, total_variance


@dataclass
class FactorReading:
    """The factors the domain network reads on the images of sampled latents."""

    heads: list  # the network's factor heads (name, levels: 0 for a regression)
    latents: torch.Tensor  # the n_align sampled latents (N, d)
    read: dict[str, torch.Tensor]  # each head's reading of the latents' images (N,)
    real_variance: list[float]  # each factor's variance as read on real test images

    @property
    def names(self) -> list[str]:
        return [h.name for h in self.heads]


def _recovery_scores() -> tuple[Score, ...]:
    """Each arm's recovery of the factors by single directions."""
    read = (
        "(factors read by the domain network on the images of n_align sampled latents; a "
        "direction's movement is each latent's coordinate along it)"
    )
    return (
        Score(
            "recovery",
            "higher",
            "how well single learned directions recover the ground-truth factors: per factor, "
            "the largest share of its variance that movement along one direction explains "
            "(binned R^2, chance-corrected, of the larger of its generated and real variance) "
            + read
            + ", averaged over factors",
            ideal=1.0,
            control="recovery_random",
            tolerance=NOISY,
        ),
        Score(
            "recovery_random",
            "none",
            "the same for K random orthonormal directions: the control",
            primary=False,
            tolerance=NOISY,
        ),
        Score(
            "recovery_coordinate",
            "none",
            "the same for K coordinate axes of z (baseline)",
            tolerance=NOISY,
        ),
        Score(
            "recovery_ganspace",
            "none",
            "the same for GANSpace's top-K directions (baseline)",
            tolerance=NOISY,
        ),
        Score(
            "recovery_sefa",
            "none",
            "the same for SeFa's top-K directions (baseline)",
            tolerance=NOISY,
        ),
    )


def _sap_scores() -> tuple[Score, ...]:
    """Each arm's SAP: how far each factor is carried by one direction alone."""
    return (
        Score(
            "sap",
            "higher",
            "disentanglement of the learned directions: per factor, the best direction's "
            "share (as in recovery) minus the second best's, averaged over factors (the SAP "
            "score of Kumar et al. 2018): 1 when each factor is carried by one direction alone",
            ideal=1.0,
            control="sap_random",
            tolerance=NOISY,
        ),
        Score(
            "sap_random",
            "none",
            "the same for K random orthonormal directions: the control",
            primary=False,
            tolerance=NOISY,
        ),
        Score(
            "sap_coordinate",
            "none",
            "the same for K coordinate axes (baseline)",
            primary=False,
            tolerance=NOISY,
        ),
        Score(
            "sap_ganspace",
            "none",
            "the same for GANSpace's directions (baseline)",
            primary=False,
            tolerance=NOISY,
        ),
        Score(
            "sap_sefa",
            "none",
            "the same for SeFa's directions (baseline)",
            primary=False,
            tolerance=NOISY,
        ),
    )


@register_explainer("directions_factors")
class DirectionFactorsExplainer(DirectionsBase):
    """How well latent directions recover the ground-truth factors, read on generated images
    by the domain network's factor heads: the learned directions against random (the
    control), coordinate, GANSpace and SeFa directions."""

    version = "2"
    family = "explainability"
    requires = frozenset({"layers"})
    requires_dataset = frozenset({"domain", "factors"})
    defaults = dict(BASE_DEFAULTS) | {"n_align": 2048, "bins": 16}
    ranges = DirectionsBase.ranges | {"n_align": Range(low=8), "bins": Range(low=2)}
    scores = _recovery_scores() + _sap_scores()
    figures = ("directions-factors.png",)
    artifact = "directions-factors"

    def evaluate(self, ctx: EvalContext) -> Evaluation:
        p = self.params
        with frozen(ctx.model):
            run = self.setup(ctx)
            base, info = self.baselines(ctx, run)
            recs, log = self.train(ctx, run, {"learned": run.deformator})
            with torch.no_grad():
                run.learned = run.deformator().detach()
            result = self.score_arm(ctx, run, run.learned, recs["learned"])
            reading = self.read_factors(ctx, run)
            dirs = {"learned": run.learned, **base}
            rec = factor_recovery(
                reading.latents, reading.read, reading.heads, dirs, reading.real_variance, p["bins"]
            )
            scores = {}
            for arm in ARMS:
                x = "" if arm == "learned" else f"_{arm}"
                scores[f"recovery{x}"] = rec[arm]["recovery"]
                scores[f"sap{x}"] = rec[arm]["sap"]
            labels = self.labels(rec, reading.names)
            report = (
                self.report_head(run)
                | {
                    "rca": result["accuracy"],
                    "rca_invisible": result["invisible"],
                    "eps_mae": result["eps_mae"],
                    "per_direction_accuracy": result["per_direction"],
                }
                | self.recovery_report(reading, dirs, rec)
                | {
                    "baselines": info,
                    "direction_factor": [labels.get(k) for k in range(run.k)],
                    "training_log": log,
                    "learned_directions": run.learned.cpu().tolist(),
                    "scores": scores,
                }
            )
            figures = self.traversal_figures(ctx, run, result["per_direction"], labels)
        return Evaluation(scores, reports={self.artifact: report}, figures=figures)

    def read_factors(self, ctx: EvalContext, run: DirectionsRun) -> FactorReading:
        """The factors the domain network reads on the images of ``n_align`` fresh latents,
        and each factor's variance as it reads it on as many real test images."""
        p = self.params
        net = ctx.domain_network()
        heads = list(net.heads_spec)
        latents = run.space.sample(p["n_align"], ctx.rng(S_ALIGN))
        read = net.predict(run.space.render_batched(latents, p["eval_batch_size"]))
        real = net.predict(ctx.reals(p["n_align"]))
        real_variance = [total_variance(t) for t in factor_targets(real, heads)]
        return FactorReading(heads, latents, read, real_variance)

    def recovery_report(
        self, reading: FactorReading, dirs: dict[str, torch.Tensor], rec: dict[str, dict]
    ) -> dict[str, Any]:
        """The JSON's part on the factors: their variances and each arm's R and summaries."""
        p, names = self.params, reading.names
        generated = factor_targets(reading.read, reading.heads)
        return {
            "factors": names,
            "n_align": p["n_align"],
            "bins": effective_bins(p["n_align"], p["bins"]),
            "factor_variance": {
                "generated": dict(zip(names, map(total_variance, generated), strict=True)),
                "real": dict(zip(names, reading.real_variance, strict=True)),
                "rule": "regression: variance of the read value; categorical: Gini "
                "impurity of the read class",
            },
            "share_rule": "R[k][f]: chance-corrected binned R^2 of factor f on the "
            "coordinate along direction k, over max(generated, real) variance of f",
            "arms": {
                arm: {
                    "directions": dirs[arm].cpu().tolist(),
                    "shares": r["shares"].tolist(),
                    **{key: v for key, v in r.items() if key != "shares"},
                }
                for arm, r in rec.items()
            },
        }

    @staticmethod
    def labels(rec: dict[str, dict[str, Any]], names: list[str]) -> dict[int, str]:
        """Each learned direction's factor: the one it explains most, if its share there beats
        every random direction's share of that factor (else none)."""
        shares, rand = rec["learned"]["shares"], rec["random"]["shares"]
        floor = rand.max(0).values if len(rand) else torch.zeros(len(names))
        out = {}
        for k, row in enumerate(shares):
            f = int(row.argmax())
            if float(row[f]) > float(floor[f]):
                out[k] = f"{names[f]} {float(row[f]):.2f}"
        return out
