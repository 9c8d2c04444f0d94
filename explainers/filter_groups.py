"""Filter groups (IF-GAN's partition Q) as an intrinsic explanation: do the groups mean anything?

IF-GAN (Li et al., AAAI 2022) claims that the filters of one group in its interpretable
layer draw the same visual concept in every image, and different groups different ones.
For ``n`` generated images this explainer thresholds every filter's map and asks:

* **agreement within vs. across groups**: the IoU of two filters' thresholded maps (over
  all images and pixels at once), averaged over the pairs of filters in the same group and
  over the pairs in different groups; their ratio and difference. A partition that carries
  no information gives a ratio near 1 whatever the filters do;
* **concept alignment**: each group's mean map (fbar^c, the model's ``group_maps``),
  thresholded the same way, against the masks of every concept that the dataset's
  segmenter finds in the same generated images; each group's best IoU, averaged over the
  non-empty groups (as in Network Dissection, but per group rather than per unit). Which
  concept each group matched is written to ``filter-groups.json``.

Thresholds: each map is upsampled (bilinear) to the image size and kept above its own
``quantile`` over all images and pixels. GAN Dissection uses 0.995 per unit, made for
sparse units of large layers and big images; on 32x32 images it keeps about five pixels
an image, so two filters' masks would rarely meet by any means. The default 0.8 keeps the
top fifth of each map, about the area an object covers in the shapes dataset (its side is
25-50% of the image's, 6-25% of its area): a filter that draws objects can then reach a
high IoU with them. Concepts much smaller than that (one colour is ~2% of all pixels) or
larger (the background, ~85%) are bounded below 1 by this choice; raise or lower
``quantile`` to probe them.

Figure ``filter-groups.png``: for a few images, the image and each group's mean map.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.nn import functional as F

from ganbench.core.evaluation import Evaluation
from ganbench.core.evaluator import EvalContext, Evaluator
from ganbench.core.params import Range
from ganbench.core.registry import register_explainer
from ganbench.core.scores import Score

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def threshold_maps(maps: torch.Tensor, size: int, quantile: float) -> torch.Tensor:
    """Maps (N, M, h, w) -> bool (M, N*size*size): each map upsampled and above its quantile."""
    up = F.interpolate(maps.float(), size=(size, size), mode="bilinear", align_corners=False)
    flat = up.transpose(0, 1).reshape(maps.shape[1], -1)
    k = max(1, min(flat.shape[1], round(quantile * flat.shape[1])))
    cut = flat.kthvalue(k, dim=1, keepdim=True).values
    return flat > cut


def pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every row of ``a`` (A, P) with every row of ``b`` (B, P), bool; 0 when both empty."""
    af, bf = a.float(), b.float()
    inter = af @ bf.T
    union = af.sum(1)[:, None] + bf.sum(1)[None] - inter
    return torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(inter))


def within_across(iou: torch.Tensor, partition: torch.Tensor) -> tuple[float, float]:
    """Mean IoU over pairs of distinct filters in the same group, and in different groups."""
    same = partition[:, None] == partition[None]
    pair = ~torch.eye(len(partition), dtype=torch.bool, device=iou.device)
    within, across = iou[same & pair], iou[~same]
    return (
        float(within.mean()) if within.numel() else 0.0,
        float(across.mean()) if across.numel() else 0.0,
    )


@register_explainer("filter_groups")
class FilterGroupsExplainer(Evaluator):
    """Within- vs. across-group agreement of IF-GAN's filters, and each group's best concept."""

    version = "1"
    requires = frozenset({"filter_groups"})
    requires_dataset = frozenset({"segmenter"})
    defaults = {"n": 256, "quantile": 0.8, "batch_size": 64, "figure": True, "figure_images": 4}
    ranges = {"quantile": Range(0.0, 1.0, low_open=True, high_open=True)}
    figures = ("filter-groups.png",)
    scores = (
        Score(
            "fg_iou_within",
            "higher",
            "mean IoU of the thresholded maps of two filters in the same group",
            ideal=1.0,
        ),
        Score(
            "fg_iou_across",
            "none",
            "mean IoU of the thresholded maps of two filters in different groups",
        ),
        Score(
            "fg_iou_ratio",
            "higher",
            "fg_iou_within / fg_iou_across (about 1 for a partition that carries no information)",
        ),
        Score(
            "fg_iou_gap",
            "higher",
            "fg_iou_within - fg_iou_across",
            primary=False,
        ),
        Score(
            "fg_concept_iou",
            "higher",
            "each group's best IoU of its thresholded mean map with a segmenter concept of the "
            "generated images, averaged over the non-empty groups",
            ideal=1.0,
        ),
        Score(
            "fg_concepts_distinct",
            "none",
            "how many different concepts the groups' best matches name",
            primary=False,
        ),
        Score("fg_groups", "none", "non-empty groups in the partition", primary=False),
    )

    @torch.no_grad()
    def evaluate(self, ctx: EvalContext) -> Evaluation:
        model, p = ctx.model, self.params
        g = ctx.rng(30)
        images, filter_maps, group_maps = [], [], []
        for start in range(0, p["n"], p["batch_size"]):
            z = model.sample_latent(min(p["batch_size"], p["n"] - start), generator=g)
            images.append(model.generate(z).clamp(-1, 1).cpu())
            filter_maps.append(model.filter_maps(z).cpu())
            group_maps.append(model.group_maps(z).cpu())
        x = torch.cat(images)
        size = x.shape[-1]
        partition = model.partition().cpu()
        filters = threshold_maps(torch.cat(filter_maps), size, p["quantile"])
        within, across = within_across(pairwise_iou(filters, filters), partition)

        segmenter = ctx.segmenter()
        concepts = segmenter.segment(x).transpose(0, 1).reshape(len(segmenter.concepts), -1)
        groups = threshold_maps(torch.cat(group_maps), size, p["quantile"])
        used = sorted(set(partition.tolist()))
        concept_iou = pairwise_iou(groups[used], concepts)  # (used groups, K)
        best_iou, best = concept_iou.max(1)
        report = {
            "quantile": p["quantile"],
            "groups": {
                str(c): {
                    "filters": (partition == c).nonzero().flatten().tolist(),
                    "concept": segmenter.concepts[int(best[i])],
                    "iou": float(best_iou[i]),
                    "iou_by_concept": dict(
                        zip(segmenter.concepts, concept_iou[i].tolist(), strict=True)
                    ),
                }
                for i, c in enumerate(used)
            },
        }
        figures = {}
        if p["figure"] and p["figure_images"]:
            labels = {
                c: f"{segmenter.concepts[int(best[i])]} {float(best_iou[i]):.2f}"
                for i, c in enumerate(used)
            }
            k = p["figure_images"]
            figures["filter-groups"] = self.figure(x[:k], group_maps[0][:k], labels)
        scores = {
            "fg_iou_within": within,
            "fg_iou_across": across,
            "fg_iou_ratio": within / across if across > 0 else 0.0,
            "fg_iou_gap": within - across,
            "fg_concept_iou": float(best_iou.mean()),
            "fg_concepts_distinct": float(len(set(best.tolist()))),
            "fg_groups": float(len(used)),
        }
        return Evaluation(scores, reports={"filter-groups": report}, figures=figures)

    def figure(self, images: torch.Tensor, maps: torch.Tensor, labels: dict[int, str]) -> Figure:
        """For each of ``images``, the image and each group's mean map (``maps``), the groups
        titled with their ``labels``."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        n, c = images.shape[0], maps.shape[1]
        size = images.shape[-1]
        up = F.interpolate(maps.float(), size=(size, size), mode="bilinear", align_corners=False)
        fig, axes = plt.subplots(n, 1 + c, figsize=(1.5 * (1 + c), 1.5 * n), squeeze=False)
        for i in range(n):
            img = ((images[i].permute(1, 2, 0) + 1) / 2).numpy()
            grey = img.shape[-1] == 1
            img = img[..., 0] if grey else img
            axes[i, 0].imshow(img, cmap="gray" if grey else None, vmin=0, vmax=1)
            for j in range(c):
                axes[i, j + 1].imshow(up[i, j].numpy(), cmap="magma")
                if i == 0:
                    axes[i, j + 1].set_title(f"group {j}\n{labels.get(j, 'empty')}", fontsize=7)
        axes[0, 0].set_title("sample", fontsize=7)
        for ax in axes.flat:
            ax.set_axis_off()
        fig.suptitle("mean map of each filter group (title: best concept, IoU)", fontsize=8)
        fig.tight_layout()
        return fig
