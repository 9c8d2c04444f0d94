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
"""

from __future__ import annotations

import contextlib
import json

import numpy as np
import torch

from ganbench.core.evaluator import EvalContext, Evaluator
from ganbench.core.registry import register_explainer
from ganbench.core.scores import VERY_NOISY, Score


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a (N, D) and b (M, D)."""
    x, y = a.double().cpu().numpy(), b.double().cpu().numpy()
    mu = x.mean(0) - y.mean(0)
    s1 = np.atleast_2d(np.cov(x, rowvar=False))
    s2 = np.atleast_2d(np.cov(y, rowvar=False))
    w, v = np.linalg.eigh(s1)
    root = (v * np.sqrt(w.clip(min=0))) @ v.T  # s1^(1/2)
    cross = np.linalg.eigvalsh(root @ s2 @ root).clip(min=0)  # eig(s1^½ s2 s1^½)
    value = float(mu @ mu + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(cross).sum())
    return max(value, 0.0)


def dead_filters(mean_activation: torch.Tensor, threshold: float) -> torch.Tensor:
    """Bool (C,): filters whose mean |activation| is at most ``threshold`` x the layer's median."""
    return mean_activation <= threshold * mean_activation.median()


@contextlib.contextmanager
def hooked(modules: dict[str, torch.nn.Module], hook_for):
    """Register ``hook_for(name)`` as a forward hook on each module; removed on exit."""
    handles = [m.register_forward_hook(hook_for(name)) for name, m in modules.items()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


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
    def generate(
        self, ctx: EvalContext, z: torch.Tensor, modules: dict, hook_for=None
    ) -> torch.Tensor:
        """Images of ``z`` in batches, clamped to [-1, 1], with optional hooks on ``modules``."""
        b = self.params["batch_size"]
        with hooked(modules, hook_for) if hook_for else contextlib.nullcontext():
            return torch.cat(
                [ctx.model.generate(z[i : i + b]).clamp(-1, 1) for i in range(0, len(z), b)]
            )

    def features(self, ctx: EvalContext, x: torch.Tensor) -> torch.Tensor:
        b, net = self.params["batch_size"], ctx.domain_network()
        return torch.cat([net.features(x[i : i + b].to(ctx.device)) for i in range(0, len(x), b)])

    def select_layers(self, ctx: EvalContext, z: torch.Tensor) -> dict[str, torch.nn.Module]:
        """The last ``layers`` generator layers with 4-D outputs that are not the image itself."""
        layers = ctx.model.generator_layers()
        outputs: dict[str, torch.Tensor] = {}

        def record(name):
            def hook(module, inputs, output):
                outputs.setdefault(name, output)

            return hook

        x = self.generate(ctx, z, layers, record)
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

    @torch.no_grad()
    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        p = self.params
        if not 0 < p["prune_fraction"] <= 1:
            raise ValueError(
                f"filter_maps: prune_fraction must lie in (0, 1], got {p['prune_fraction']}"
            )
        if p["n"] < 2 or p["layers"] < 1 or p["random_repeats"] < 1:
            raise ValueError("filter_maps: needs n >= 2, layers >= 1 and random_repeats >= 1")
        z = ctx.model.sample_latent(p["n"], generator=ctx.rng(50))
        modules = self.select_layers(ctx, z[: min(2, p["n"])])

        # mean |activation| maps over the n images
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = dict.fromkeys(modules, 0)

        def accumulate(name):
            def hook(module, inputs, output):
                a = output.detach().abs().sum(0).double().cpu()
                sums[name] = sums[name] + a if name in sums else a
                counts[name] += output.shape[0]

            return hook

        base = self.generate(ctx, z, modules, accumulate)
        maps = {name: (sums[name] / counts[name]).float() for name in modules}  # (C, h, w)
        means = {name: m.mean(dim=(1, 2)) for name, m in maps.items()}
        dead = {name: dead_filters(m, p["dead_threshold"]) for name, m in means.items()}
        base_f = self.features(ctx, base)

        def effect(masks: dict[str, torch.Tensor]) -> dict[str, float]:
            """Distances of the images with ``masks``' filters (True) zeroed from the base."""
            masks = {k: v for k, v in masks.items() if v.any()}
            if not masks:
                return {"feature_distance": 0.0, "frechet": 0.0, "pixel_change": 0.0}

            def prune(name):
                keep = (~masks[name]).float()

                def hook(module, inputs, output):
                    return output * keep.to(output)[None, :, None, None]

                return hook

            x = self.generate(ctx, z, {k: modules[k] for k in masks}, prune)
            f = self.features(ctx, x)
            return {
                "feature_distance": float((f - base_f).norm(dim=1).mean()),
                "frechet": frechet_distance(f, base_f),
                "pixel_change": float((x - base).abs().mean()),
            }

        g = ctx.rng(51)

        def random_masks(names: list[str]) -> dict[str, torch.Tensor]:
            out = {}
            for name in names:
                d = dead[name]
                k = int(d.sum())
                order = torch.randperm(len(d), generator=g)
                order = torch.cat([order[~d[order]], order[d[order]]])  # live ones first
                mask = torch.zeros_like(d)
                mask[order[:k]] = True
                out[name] = mask
            return out

        def control(names: list[str]) -> dict[str, float]:
            runs = [effect(random_masks(names)) for _ in range(p["random_repeats"])]
            return {key: float(np.mean([r[key] for r in runs])) for key in runs[0]}

        names = list(modules)
        per_layer = {}
        for name in names:
            per_layer[name] = {
                "filters": len(means[name]),
                "map_size": list(maps[name].shape[1:]),
                "dead": int(dead[name].sum()),
                "dead_fraction": float(dead[name].float().mean()),
                "dead_filters": dead[name].nonzero().flatten().tolist(),
                "threshold": p["dead_threshold"] * float(means[name].median()),
                "median_mean_activation": float(means[name].median()),
                "mean_activation": means[name].tolist(),
                "prune_dead": effect({name: dead[name]}),
                "prune_random": control([name]),
            }
        both_dead = effect(dead)
        both_random = control(names)
        # pruning by activity: the least active share of each layer, against as many at random
        least = {}
        for name in names:
            k = max(1, round(p["prune_fraction"] * len(means[name])))
            mask = torch.zeros(len(means[name]), dtype=torch.bool)
            mask[means[name].argsort(stable=True)[:k]] = True
            least[name] = mask
        least_effect = effect(least)
        shares = []
        for _ in range(p["random_repeats"]):
            masks = {}
            for name in names:
                mask = torch.zeros_like(least[name])
                mask[torch.randperm(len(mask), generator=g)[: int(least[name].sum())]] = True
                masks[name] = mask
            shares.append(effect(masks)["feature_distance"])
        total = sum(len(means[n]) for n in names)
        scores = {
            "dead_filter_fraction": sum(int(dead[n].sum()) for n in names) / total,
            "prune_dead_feature_distance": both_dead["feature_distance"],
            "prune_random_feature_distance": both_random["feature_distance"],
            "prune_least_active_feature_distance": least_effect["feature_distance"],
            "prune_random_share_feature_distance": float(np.mean(shares)),
            "prune_dead_frechet": both_dead["frechet"],
            "prune_random_frechet": both_random["frechet"],
            "prune_dead_pixel_change": both_dead["pixel_change"],
            "prune_random_pixel_change": both_random["pixel_change"],
        }
        shift = torch.roll(base_f, 1, dims=0)
        report = {
            "n": p["n"],
            "dead_threshold": p["dead_threshold"],
            "dead_rule": "mean |activation| <= dead_threshold x the layer's median filter mean",
            "layers": per_layer,
            "all_layers": {
                "prune_dead": both_dead,
                "prune_random": both_random,
                "prune_fraction": p["prune_fraction"],
                "prune_least_active": least_effect,
                "prune_random_share_feature_distance": shares,
            },
            "feature_scale": float((shift - base_f).norm(dim=1).mean()),
            "scores": scores,
        }
        ctx.artifact_dir.mkdir(parents=True, exist_ok=True)
        (ctx.artifact_dir / "filter-maps.json").write_text(json.dumps(report, indent=1))
        if p["figure"] and p["top_k"] > 0:
            last = names[-1]
            self.figure(ctx, last, maps[last], means[last], dead[last])
        return scores

    def figure(
        self,
        ctx: EvalContext,
        layer: str,
        maps: torch.Tensor,
        means: torch.Tensor,
        dead: torch.Tensor,
    ) -> None:
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
        fig.savefig(ctx.artifact_dir / "filter-maps.png", dpi=100)
        plt.close(fig)
