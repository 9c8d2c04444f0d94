"""What the three directions explainers share: one run's state, its setup, the training of
the arms, the baselines, the report's head and the traversal figure.

The explainers themselves are in :mod:`ganbench.explainers.directions` (``directions``,
``directions_w``) and :mod:`ganbench.explainers.directions_factors`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ganbench.core.evaluator import EvalContext, Evaluator
from ganbench.core.params import Range
from ganbench.core.plots import traversal_figure

from .directions_latent import (
    LatentSpace,
    complete_directions,
    coordinate_axes,
    first_hidden_layer,
    ganspace_directions,
    jacobian_weight,
    latent_scale,
    latent_weight,
    layer_outputs,
    make_deformator,
    pca_axes,
    random_orthonormal,
    sefa_directions,
)
from .directions_rca import reconstruction_accuracy, train_arms

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ARMS = ("learned", "random", "coordinate", "ganspace", "sefa")
# ctx.rng streams (other explainers use 10-11, 40, 50-51)
S_DEFORMATOR, S_TRAIN, S_BASELINES, S_SAMPLES, S_EVAL, S_INIT, S_FIGURE, S_ALIGN = range(60, 68)

BASE_DEFAULTS: dict[str, Any] = {
    "directions": 0,  # K; 0: as many as the latent has dimensions
    "deformator": "ortho",
    "steps": 2000,
    "batch_size": 32,
    "lr": 1e-4,
    "shift_scale": 6.0,
    "min_shift": 0.5,
    "shift_weight": 0.25,
    "reconstructor_width": 16,
    "eval_samples": 512,
    "pca_samples": 1024,
    "eval_batch_size": 256,
    "top_k": 8,
    "figure": True,
}


@dataclass
class DirectionsRun:
    """What one evaluation of a directions explainer carries from step to step."""

    space: LatentSpace  # where the directions live: z, or StyleGAN's w
    d: int  # the latent's dimensions
    k: int  # the number K of directions learned and compared
    scale: float  # one unit of shift: sqrt of the mean per-coordinate variance of ``samples``
    samples: torch.Tensor  # pca_samples latents: the scale, GANSpace's PCA, the hidden layer
    channels: int  # channels of a rendered image (a reconstructor sees two, stacked)
    deformator: nn.Module  # yields the learned directions A (d, K); trained in the learned arm
    init_seed: int  # arm i's reconstructor is initialised from init_seed + i
    learned: torch.Tensor | None = None  # A (d, K) once trained


class DirectionsBase(Evaluator):
    """What the three direction explainers share: the setup, the training and the figure."""

    space_kind = "z"
    artifact = "directions"  # the file stem of its report and its figure
    defaults = BASE_DEFAULTS

    ranges = {
        "deformator": Range(choices=("ortho", "linear")),
        "steps": Range(low=1),
        "batch_size": Range(low=2),
        "eval_samples": Range(low=1),
        "directions": Range(low=0),
        "pca_samples": Range(low=2),
    }

    @classmethod
    def check_params(cls, params: dict) -> None:
        """The declared ranges, and shifts drawn from a non-empty positive interval."""
        super().check_params(params)
        if not 0 < params["min_shift"] <= params["shift_scale"]:
            raise ValueError(
                f"needs 0 < min_shift <= shift_scale, got {params['min_shift']} and "
                f"{params['shift_scale']}"
            )

    def setup(self, ctx: EvalContext) -> DirectionsRun:
        """Latent space, K, scale, samples, image channels, the learned deformator."""
        p = self.params
        space = LatentSpace(ctx.model, self.space_kind, ctx.device)
        d = space.dim
        k = d if p["directions"] == 0 else min(p["directions"], d)
        samples = space.sample(p["pca_samples"], ctx.rng(S_SAMPLES))
        scale = latent_scale(samples)
        channels = space.render(samples[:1]).shape[1]
        deformator = make_deformator(p["deformator"], d, k, ctx.rng(S_DEFORMATOR)).to(ctx.device)
        init_seed = int(torch.randint(0, 2**31, (1,), generator=ctx.rng(S_INIT)))
        return DirectionsRun(
            space=space,
            d=d,
            k=k,
            scale=scale,
            samples=samples,
            channels=channels,
            deformator=deformator,
            init_seed=init_seed,
        )

    def train(self, ctx: EvalContext, run: DirectionsRun, arms: dict) -> tuple[dict, list]:
        """:func:`train_arms` at this explainer's parameters: reconstructors and a loss log."""
        p = self.params
        return train_arms(
            run.space,
            arms,
            k=run.k,
            scale=run.scale,
            steps=p["steps"],
            batch_size=p["batch_size"],
            lr=p["lr"],
            generator=ctx.rng(S_TRAIN),
            init_seed=run.init_seed,
            channels=run.channels,
            shift_scale=p["shift_scale"],
            min_shift=p["min_shift"],
            shift_weight=p["shift_weight"],
            width=p["reconstructor_width"],
        )

    def score_arm(self, ctx: EvalContext, run: DirectionsRun, a: torch.Tensor, rec) -> dict:
        """:func:`reconstruction_accuracy` of directions ``a`` (d, K) with their reconstructor."""
        p = self.params
        return reconstruction_accuracy(
            run.space,
            a,
            rec,
            n=p["eval_samples"],
            scale=run.scale,
            generator=ctx.rng(S_EVAL),  # the same samples for every arm
            batch_size=p["eval_batch_size"],
            shift_scale=p["shift_scale"],
            min_shift=p["min_shift"],
        )

    def baselines(self, ctx: EvalContext, run: DirectionsRun) -> tuple[dict, dict]:
        """The four baseline direction sets (d, K) and what the JSON says about them."""
        d, k = run.d, run.k
        g = ctx.rng(S_BASELINES)
        random_dirs = random_orthonormal(d, k, g)
        axes, chosen = coordinate_axes(d, k, g)
        gan, gan_info = self.ganspace(ctx, run, g)
        sefa, sefa_info = self.sefa(ctx, run, g)
        dirs = {"random": random_dirs, "coordinate": axes, "ganspace": gan, "sefa": sefa}
        info = {"coordinate": {"axes": chosen}, "ganspace": gan_info, "sefa": sefa_info}
        return dirs, info

    def ganspace(
        self, ctx: EvalContext, run: DirectionsRun, g: torch.Generator
    ) -> tuple[torch.Tensor, dict]:
        """GANSpace's directions from the first hidden layer's activations, and their JSON."""
        model, z, k = ctx.model, run.samples, run.k
        found = first_hidden_layer(model, z[:2])
        if found is None:
            raise ValueError(f"{self.name}: no generator layer has a 4-D or 2-D hidden output")
        name, module = found
        feats = layer_outputs(model, module, z, self.params["eval_batch_size"]).cpu()
        dirs = ganspace_directions(feats, z.cpu(), k)
        _, share = pca_axes(feats, k)
        info = {
            "layer": name,
            "features": feats.shape[1],
            "samples": len(z),
            "explained_variance": share.tolist(),
            "method": "PCA of the layer's activations; directions regressed from z",
        }
        if dirs.shape[1] < k:
            info["topped_up"] = k - dirs.shape[1]
        return complete_directions(dirs, k, g), info

    def sefa(
        self, ctx: EvalContext, run: DirectionsRun, g: torch.Generator
    ) -> tuple[torch.Tensor, dict]:
        """SeFa's directions from the first latent-reading weight (else the Jacobian of the
        first hidden layer at z = 0), and their JSON."""
        d, k, model = run.d, run.k, ctx.model
        found = latent_weight(model, d)
        if found is not None:
            name, weight = found
            info = {"layer": name, "source": "weight", "rows": weight.shape[0]}
        else:
            layer = first_hidden_layer(model, run.samples[:2])
            if layer is None:
                raise ValueError(f"{self.name}: no layer for SeFa's Jacobian fallback")
            name, module = layer
            weight = jacobian_weight(model, module, d, ctx.device)
            info = {
                "layer": name,
                "source": "jacobian at z = 0 (no generator module reads the latent by a weight)",
                "rows": weight.shape[0],
            }
        dirs, values = sefa_directions(weight, k)
        info["eigenvalues"] = values.tolist()
        return dirs, info

    def run_rca(
        self, ctx: EvalContext
    ) -> tuple[DirectionsRun, dict[str, dict[str, Any]], dict[str, Any]]:
        """Train and score the learned directions and the four baselines: the run, each arm's
        :func:`reconstruction_accuracy` and the JSON report."""
        run = self.setup(ctx)
        base, info = self.baselines(ctx, run)
        recs, log = self.train(ctx, run, {"learned": run.deformator, **base})
        with torch.no_grad():
            run.learned = run.deformator().detach()
        dirs = {"learned": run.learned, **base}
        results = {arm: self.score_arm(ctx, run, dirs[arm], recs[arm]) for arm in ARMS}
        report = self.report_head(run) | {
            "rca": {arm: r["accuracy"] for arm, r in results.items()},
            "eps_mae": {arm: r["eps_mae"] for arm, r in results.items()},
            "per_direction_accuracy": {arm: r["per_direction"] for arm, r in results.items()},
            "invisible_shifts": {arm: r["invisible"] for arm, r in results.items()},
            "per_direction_invisible": {
                arm: r["per_direction_invisible"] for arm, r in results.items()
            },
            "baselines": info,
            "training_log": log,
            "learned_directions": run.learned.cpu().tolist(),
        }
        return run, results, report

    def report_head(self, run: DirectionsRun) -> dict[str, Any]:
        """The settings every directions report starts with."""
        p = self.params
        return {
            "space": self.space_kind,
            "K": run.k,
            "d": run.d,
            "scale": run.scale,
            "scale_rule": "sqrt(mean per-coordinate variance) of pca_samples sampled latents",
            "steps": p["steps"],
            "batch_size": p["batch_size"],
            "lr": p["lr"],
            "deformator": p["deformator"],
            "eval_samples": p["eval_samples"],
            "shift": {"scale": p["shift_scale"], "min": p["min_shift"]},
        }

    @torch.no_grad()
    def traversal_figures(
        self,
        ctx: EvalContext,
        run: DirectionsRun,
        per_direction: list[float | None],
        labels: dict[int, str] | None = None,
    ) -> dict[str, Figure]:
        """Traversals of the ``top_k`` learned directions with the highest per-direction
        accuracy, for one latent, under the stem ``<artifact>`` (rows labelled with
        ``labels``); none when ``figure`` is off or ``top_k`` is 0."""
        p = self.params
        top = p["top_k"]
        if not p["figure"] or top <= 0:
            return {}
        acc = torch.tensor([-1.0 if a is None else a for a in per_direction])
        order = acc.argsort(descending=True, stable=True)[:top].tolist()
        values = torch.linspace(-p["shift_scale"], p["shift_scale"], 7)
        space, a = run.space, run.learned.to(ctx.device)
        base = space.sample(1, ctx.rng(S_FIGURE))
        rows, row_labels = [], []
        for k in order:
            latents = base + (values.to(ctx.device) * run.scale)[:, None] * a[:, k]
            rows.append(space.render_batched(latents, len(values)).cpu())
            text = f"dir {k}\nacc {float(acc[k]):.2f}" if acc[k] >= 0 else f"dir {k}"
            if labels and k in labels:
                text += f"\n{labels[k]}"
            row_labels.append(text)
        space_name = "W" if self.space_kind == "w" else "z"
        fig = traversal_figure(
            rows,
            [f"eps={float(v):+.0f}" for v in values],
            row_labels,
            f"learned directions in {space_name} (K={run.k}), most recognisable first "
            f"(acc: per-direction RCA); column: {space_name} + eps * {run.scale:.2f} * A_k",
        )
        return {self.artifact: fig}
