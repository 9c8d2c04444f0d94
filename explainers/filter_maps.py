"""Filter maps: how active each filter of the generator's last hidden layers is, and what
pruning the near-dead ones does to the output.

Seed 000 (the DCGAN explainability report) observed that many filters of a trained
generator do nothing. For ``n`` generated images this explainer hooks the last ``layers``
(default 2) entries of ``generator_layers()`` whose outputs are 4-D feature maps (N, C, h,
w), leaving out any whose output is the generated image itself, and computes per filter:

* its **mean activation map**: the mean over the images of |activation|, (h, w);
* its **mean activation**: the mean of |activation| over images and positions. Absolute
  values, because some layers' outputs take both signs (StyleGAN's leaky ReLU) and a
  filter that contributes is one whose output is large either way; for ReLU layers
  (DCGAN, SAGAN, InfoGAN) it is the plain mean;
* whether it is **near-dead**: its mean activation is at most ``dead_threshold`` (default
  0.01) times the median mean activation of its layer's filters. A relative threshold,
  because layers differ in scale (BatchNorm-ReLU outputs are of order 1, StyleGAN's are
  not normalised); a filter whose output is exactly zero is always dead.

**Pruning**: the near-dead filters' outputs are set to zero by a forward hook while the
same ``n`` latents are generated again, and the pruned images are compared with the
unpruned ones through the dataset's domain network (``ctx.domain_network().features``):

* feature distance: the mean over images of the L2 distance between the features of the
  pruned and the unpruned image of the same latent;
* Fréchet distance between the two sets of features (Gaussian fits, as in FID);
* pixel change: the mean absolute pixel difference.

Where no filter is near-dead that says nothing about pruning, so the explainer also prunes
the ``prune_fraction`` (default 25%) least active filters of each layer and compares with
as many random filters: ``prune_least_active_feature_distance`` well below its control
means activity is a good pruning criterion for this generator.

The **control** prunes as many filters, chosen at random (``random_repeats`` draws,
averaged) among the layer's live filters (topped up with dead ones where fewer are live).
With no dead filter in a layer nothing is pruned there, in either arm: both effects are 0.
The scores prune every analysed layer at once (each with its own dead set or random set);
``filter-maps.json`` also has each layer pruned alone, every filter's mean activation, the
dead indices, and ``feature_scale``, the mean feature distance between the unpruned
images of two different latents (what "a different image" costs, to read the distances
against).

Figure ``filter-maps.png``: the mean activation maps of the ``top_k`` (default 8) most and
the ``top_k`` least active filters of the last analysed layer, on one colour scale, each
titled with its filter index and mean activation.

The filter masks, the hooks and the Fréchet distance are in ``_filter_maps_pruning``; a
change there that moves a number needs a ``version`` bump here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ganbench.core.evaluation import Evaluation
from ganbench.core.evaluator import EvalContext, Evaluator
from ganbench.core.params import Range
from ganbench.core.registry import register_explainer
from ganbench.core.scores import VERY_NOISY, Score

from ._filter_maps_pruning import (
    ActivitySums,
    Hooks,
    dead_filters,
    frechet_distance,
    hooked,
    keep_only,
    least_active,
    random_like,
    random_live,
    record_first,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class Unpruned:
    """What every pruning is compared with: the latents, the analysed layers, and the images
    generated from them unpruned with their domain features."""

    z: torch.Tensor
    modules: dict[str, torch.nn.Module]
    images: torch.Tensor
    features: torch.Tensor


@register_explainer("filter_maps")
class FilterMapsExplainer(Evaluator):
    """Filter activity of the last hidden generator layers and the effect of pruning dead filters."""

    version = "1"
    requires = frozenset({"layers"})
    requires_dataset = frozenset({"domain"})
    defaults = {
        "n": 64,
        "layers": 2,
        "dead_threshold": 0.01,
        "random_repeats": 3,
        "batch_size": 64,
        "top_k": 8,
        "prune_fraction": 0.25,
        "figure": True,
    }
    ranges = {
        "prune_fraction": Range(0.0, 1.0, low_open=True),
        "n": Range(low=2),
        "layers": Range(low=1),
        "random_repeats": Range(low=1),
    }
    figures = ("filter-maps.png",)
    scores = (
        Score(
            "dead_filter_fraction",
            "none",
            "share of the filters of the last hidden generator layers whose mean |activation| "
            "is below dead_threshold x their layer's median",
        ),
        Score(
            "prune_dead_feature_distance",
            "none",
            "mean L2 distance between the domain features of an image generated with the "
            "near-dead filters zeroed and without (near 0: pruning them is harmless; descriptive, not ranked)",
            control="prune_random_feature_distance",
            tolerance=VERY_NOISY,
        ),
        Score(
            "prune_random_feature_distance",
            "none",
            "the same with as many randomly chosen live filters zeroed",
            tolerance=VERY_NOISY,
        ),
        Score(
            "prune_least_active_feature_distance",
            "none",
            "the same distance with the prune_fraction (default 25%) least active filters of "
            "each layer zeroed: what pruning by activity costs when no filter is dead",
            control="prune_random_share_feature_distance",
            tolerance=VERY_NOISY,
        ),
        Score(
            "prune_random_share_feature_distance",
            "none",
            "the same with as many filters chosen at random zeroed",
            primary=False,
            tolerance=VERY_NOISY,
        ),
        Score(
            "prune_dead_frechet",
            "none",
            "Fréchet distance between the domain features of the images generated with the "
            "near-dead filters zeroed and without",
            control="prune_random_frechet",
            primary=False,
        ),
        Score(
            "prune_random_frechet",
            "none",
            "the same with as many randomly chosen live filters zeroed",
            primary=False,
        ),
        Score(
            "prune_dead_pixel_change",
            "none",
            "mean absolute pixel change when the near-dead filters are zeroed",
            control="prune_random_pixel_change",
            primary=False,
        ),
        Score(
            "prune_random_pixel_change",
            "none",
            "mean absolute pixel change when as many random live filters are zeroed",
            primary=False,
        ),
    )

    # --- generation with hooks ------------------------------------------------------
    def generate(self, ctx: EvalContext, z: torch.Tensor, hooks: Hooks = ()) -> torch.Tensor:
        """Images of ``z`` in batches, clamped to [-1, 1], with ``hooks`` on their modules."""
        b = self.params["batch_size"]
        with hooked(hooks):
            return torch.cat(
                [ctx.model.generate(z[i : i + b]).clamp(-1, 1) for i in range(0, len(z), b)]
            )

    def features(self, ctx: EvalContext, x: torch.Tensor) -> torch.Tensor:
        """The domain network's features of images ``x``, in batches."""
        b, net = self.params["batch_size"], ctx.domain_network()
        return torch.cat([net.features(x[i : i + b].to(ctx.device)) for i in range(0, len(x), b)])

    def select_layers(self, ctx: EvalContext, z: torch.Tensor) -> dict[str, torch.nn.Module]:
        """The last ``layers`` generator layers with 4-D outputs that are not the image itself."""
        layers = ctx.model.generator_layers()
        outputs: dict[str, torch.Tensor] = {}
        record = [(m, functools.partial(record_first, outputs, name)) for name, m in layers.items()]
        x = self.generate(ctx, z, record)
        keep = []
        for name in layers:
            out = outputs.get(name)
            if not isinstance(out, torch.Tensor) or out.dim() != 4:
                continue
            if out.shape == x.shape and torch.allclose(out.clamp(-1, 1), x, atol=1e-5):
                continue  # the image itself, not a hidden layer
            keep.append(name)
        if not keep:
            raise ValueError("filter_maps: no generator layer has 4-D feature-map outputs")
        return {name: layers[name] for name in keep[-self.params["layers"] :]}

    # --- pruning --------------------------------------------------------------------
    def effect(
        self, ctx: EvalContext, base: Unpruned, masks: dict[str, torch.Tensor]
    ) -> dict[str, float]:
        """Distances of the images with ``masks``' filters (True) zeroed from the unpruned."""
        masks = {k: v for k, v in masks.items() if v.any()}
        if not masks:
            return {"feature_distance": 0.0, "frechet": 0.0, "pixel_change": 0.0}
        hooks = [
            (base.modules[k], functools.partial(keep_only, (~mask).float()))
            for k, mask in masks.items()
        ]
        x = self.generate(ctx, base.z, hooks)
        f = self.features(ctx, x)
        return {
            "feature_distance": float((f - base.features).norm(dim=1).mean()),
            "frechet": frechet_distance(f, base.features),
            "pixel_change": float((x - base.images).abs().mean()),
        }

    def control(
        self,
        ctx: EvalContext,
        base: Unpruned,
        dead: dict[str, torch.Tensor],
        names: list[str],
        generator: torch.Generator,
    ) -> dict[str, float]:
        """The effect of pruning as many random live filters as are dead in each of ``names``,
        averaged over ``random_repeats`` draws."""
        runs = [
            self.effect(ctx, base, random_live(dead, names, generator))
            for _ in range(self.params["random_repeats"])
        ]
        return {key: float(np.mean([r[key] for r in runs])) for key in runs[0]}

    def layer_report(
        self,
        ctx: EvalContext,
        base: Unpruned,
        name: str,
        maps: torch.Tensor,
        means: torch.Tensor,
        dead: torch.Tensor,
        generator: torch.Generator,
    ) -> dict:
        """One layer's filters, its dead ones, and the effect of pruning them alone."""
        return {
            "filters": len(means),
            "map_size": list(maps.shape[1:]),
            "dead": int(dead.sum()),
            "dead_fraction": float(dead.float().mean()),
            "dead_filters": dead.nonzero().flatten().tolist(),
            "threshold": self.params["dead_threshold"] * float(means.median()),
            "median_mean_activation": float(means.median()),
            "mean_activation": means.tolist(),
            "prune_dead": self.effect(ctx, base, {name: dead}),
            "prune_random": self.control(ctx, base, {name: dead}, [name], generator),
        }

    def prune_all(
        self,
        ctx: EvalContext,
        base: Unpruned,
        dead: dict[str, torch.Tensor],
        means: dict[str, torch.Tensor],
        generator: torch.Generator,
    ) -> dict:
        """Every analysed layer pruned at once: its dead filters against as many random live
        ones, and its ``prune_fraction`` least active filters against as many random ones."""
        p = self.params
        names = list(base.modules)
        both_dead = self.effect(ctx, base, dead)
        both_random = self.control(ctx, base, dead, names, generator)
        least = least_active(means, p["prune_fraction"])
        least_effect = self.effect(ctx, base, least)
        shares = [
            self.effect(ctx, base, random_like(least, generator))["feature_distance"]
            for _ in range(p["random_repeats"])
        ]
        return {
            "prune_dead": both_dead,
            "prune_random": both_random,
            "prune_fraction": p["prune_fraction"],
            "prune_least_active": least_effect,
            "prune_random_share_feature_distance": shares,
        }

    # --- evaluation -----------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, ctx: EvalContext) -> Evaluation:
        p = self.params
        z = ctx.model.sample_latent(p["n"], generator=ctx.rng(50))
        modules = self.select_layers(ctx, z[: min(2, p["n"])])
        activity = ActivitySums(modules)
        images = self.generate(ctx, z, activity.hooks())
        maps = activity.maps()  # (C, h, w) mean |activation| maps over the n images
        means = {name: m.mean(dim=(1, 2)) for name, m in maps.items()}
        dead = {name: dead_filters(m, p["dead_threshold"]) for name, m in means.items()}
        base = Unpruned(z, modules, images, self.features(ctx, images))
        g = ctx.rng(51)
        per_layer = {
            name: self.layer_report(ctx, base, name, maps[name], means[name], dead[name], g)
            for name in modules
        }
        all_layers = self.prune_all(ctx, base, dead, means, g)
        scores = filter_scores(dead, all_layers)
        shift = torch.roll(base.features, 1, dims=0)
        report = {
            "n": p["n"],
            "dead_threshold": p["dead_threshold"],
            "dead_rule": "mean |activation| <= dead_threshold x the layer's median filter mean",
            "layers": per_layer,
            "all_layers": all_layers,
            "feature_scale": float((shift - base.features).norm(dim=1).mean()),
            "scores": scores,
        }
        figures = {}
        if p["figure"] and p["top_k"] > 0:
            last = list(modules)[-1]
            figures["filter-maps"] = self.figure(last, maps[last], means[last], dead[last])
        return Evaluation(scores, reports={"filter-maps": report}, figures=figures)

    def figure(
        self, layer: str, maps: torch.Tensor, means: torch.Tensor, dead: torch.Tensor
    ) -> Figure:
        """The mean activation maps of the ``top_k`` most and least active filters of ``layer``."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        c = len(means)
        k = max(1, min(self.params["top_k"], c // 2))
        order = means.argsort(descending=True, stable=True)
        rows = [("most active", order[:k].tolist())]
        if c > 1:
            rows.append(("least active", order.flip(0)[:k].tolist()))
        vmax = float(max(maps[i].max() for _, idx in rows for i in idx)) or 1.0
        fig, axes = plt.subplots(
            len(rows), k, figsize=(1.3 * k + 0.8, 1.5 * len(rows) + 0.6), squeeze=False
        )
        for r, (label, idx) in enumerate(rows):
            for j, i in enumerate(idx):
                ax = axes[r, j]
                im = ax.imshow(maps[i].numpy(), cmap="magma", vmin=0, vmax=vmax)
                mark = " dead" if dead[i] else ""
                ax.set_title(f"f{i}{mark}\n{float(means[i]):.3g}", fontsize=7)
                ax.set_xticks([])
                ax.set_yticks([])
            axes[r, 0].set_ylabel(label, fontsize=7)
        fig.suptitle(
            f"{layer}: mean |activation| maps (title: filter, mean |activation|)", fontsize=8
        )
        fig.tight_layout()
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8)
        return fig


def filter_scores(dead: dict[str, torch.Tensor], all_layers: dict) -> dict[str, float]:
    """The scores, from the dead filters and the effects of pruning every layer at once."""
    total = sum(len(d) for d in dead.values())
    pruned, random = all_layers["prune_dead"], all_layers["prune_random"]
    return {
        "dead_filter_fraction": sum(int(d.sum()) for d in dead.values()) / total,
        "prune_dead_feature_distance": pruned["feature_distance"],
        "prune_random_feature_distance": random["feature_distance"],
        "prune_least_active_feature_distance": all_layers["prune_least_active"]["feature_distance"],
        "prune_random_share_feature_distance": float(
            np.mean(all_layers["prune_random_share_feature_distance"])
        ),
        "prune_dead_frechet": pruned["frechet"],
        "prune_random_frechet": random["frechet"],
        "prune_dead_pixel_change": pruned["pixel_change"],
        "prune_random_pixel_change": random["pixel_change"],
    }
