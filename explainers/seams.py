"""COCO-GAN's coordinates as an intrinsic explanation: are the micro patches one image?

COCO-GAN draws a full image as a grid of micro patches, each generated from (z, c) alone.
Where neighbouring patches disagree, the full image has **seams**: jumps across the patch
borders that the inside of a patch does not have. For ``n`` generated full images,

* the border step is the mean absolute difference between horizontally (and vertically)
  adjacent pixels that lie on the two sides of a micro-patch border, averaged over channels;
* the interior step is the same mean over adjacent pixel pairs inside one patch;
* ``seam_ratio`` = border step / interior step: 1 when the borders look like any other
  place of the image, above 1 when the patches show as tiles.

Natural images are not perfectly homogeneous either (digits are centred, so their borders
fall where the strokes are), so the same ratio of as many real held-out images at the same
pixel positions is the control (``seam_ratio_real``), shown beside it.

Figure ``seams.png``: generated full images with the micro-patch grid drawn, each above
the same image with its patches pulled apart, and a map of the mean absolute horizontal
plus vertical step per pixel pair position (seams show as grid lines).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from ganbench.core.evaluation import Evaluation
from ganbench.core.evaluator import EvalContext, Evaluator
from ganbench.core.params import Range
from ganbench.core.registry import register_explainer
from ganbench.core.scores import Score

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def step_maps(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean absolute steps between horizontal (N, H, W-1) and vertical (N, H-1, W) neighbours."""
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().mean(1)
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().mean(1)
    return dx, dy


def seam_ratio(x: torch.Tensor, micro: int) -> dict[str, float]:
    """Border step, interior step and their ratio for a micro-patch grid of side ``micro`` px."""
    dx, dy = step_maps(x.float())
    w, h = x.shape[-1], x.shape[-2]
    col_border = torch.tensor([(j + 1) % micro == 0 for j in range(w - 1)])
    row_border = torch.tensor([(i + 1) % micro == 0 for i in range(h - 1)])
    border = torch.cat([dx[..., col_border].flatten(), dy[..., row_border, :].flatten()])
    inside = torch.cat([dx[..., ~col_border].flatten(), dy[..., ~row_border, :].flatten()])
    b, i = float(border.mean()), float(inside.mean())
    return {"border_step": b, "interior_step": i, "ratio": b / i if i > 0 else math.inf}


@register_explainer("seams")
class SeamExplainer(Evaluator):
    """Seams between COCO-GAN's micro patches in the full image, against real images."""

    version = "1"
    requires = frozenset({"coordinates"})
    defaults = {"n": 512, "figure": True}
    ranges = {"n": Range(low=1)}
    figures = ("seams.png",)
    scores = (
        Score(
            "seam_ratio",
            "lower",
            "mean absolute pixel step across micro-patch borders over the step between "
            "neighbours inside a patch, in generated full images (1: no visible seams)",
            ideal=1.0,
            control="seam_ratio_real",
        ),
        Score(
            "seam_ratio_real",
            "none",
            "the same ratio for real held-out images at the same pixel positions",
            primary=False,
        ),
    )

    @torch.no_grad()
    def evaluate(self, ctx: EvalContext) -> Evaluation:
        p = self.params
        model = ctx.model
        grid = int(round(math.sqrt(len(model.micro_coordinates()))))
        fake = ctx.fakes(p["n"])
        size = fake.shape[-1]
        if size % grid:
            raise ValueError(f"seams: image side {size} is not a multiple of the grid {grid}")
        micro = size // grid
        real = ctx.reals(p["n"])
        gen, ref = seam_ratio(fake, micro), seam_ratio(real, micro)
        scores = {"seam_ratio": gen["ratio"], "seam_ratio_real": ref["ratio"]}
        report = {
            "params": p,
            "grid": grid,
            "micro_patch": micro,
            "generated": gen,
            "real": ref,
            "generated_images": len(fake),
            "real_images": len(real),
            "scores": scores,
        }
        figures = {"seams": self.figure(fake, micro, grid)} if p["figure"] else {}
        return Evaluation(scores, reports={"seams": report}, figures=figures)

    def figure(self, fake: torch.Tensor, micro: int, grid: int) -> Figure:
        """The first generated images with their micro-patch grid, pulled apart, and the map
        of mean steps per pixel pair position."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        shown = fake[:6].cpu()
        cols = len(shown) + 1
        fig, axes = plt.subplots(2, cols, figsize=(1.5 * cols + 0.4, 3.6), squeeze=False)
        size = shown.shape[-1]
        gap = 2
        for c, x in enumerate(shown):
            img = ((x.permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy()
            grey = img.shape[-1] == 1
            show = dict(cmap="gray", vmin=0, vmax=1) if grey else {}
            pic = img[..., 0] if grey else img
            ax = axes[0, c]
            ax.imshow(pic, **show)
            for k in range(1, grid):
                ax.axhline(k * micro - 0.5, color="red", linewidth=0.6, alpha=0.7)
                ax.axvline(k * micro - 0.5, color="red", linewidth=0.6, alpha=0.7)
            # the same image with its micro patches pulled apart
            side = size + gap * (grid - 1)
            exploded = np.ones((side, side) + (() if grey else (img.shape[-1],)))
            for i in range(grid):
                for j in range(grid):
                    y0, x0 = i * (micro + gap), j * (micro + gap)
                    exploded[y0 : y0 + micro, x0 : x0 + micro] = pic[
                        i * micro : (i + 1) * micro, j * micro : (j + 1) * micro
                    ]
            axes[1, c].imshow(exploded, **show)
            for ax in axes[:, c]:
                ax.set_xticks([])
                ax.set_yticks([])
        dx, dy = step_maps(fake.float())
        steps = np.zeros((size, size))
        steps[:, :-1] += dx.mean(0).cpu().numpy()
        steps[:-1, :] += dy.mean(0).cpu().numpy()
        ax = axes[0, -1]
        im = ax.imshow(steps, cmap="magma")
        ax.set_title("mean step", fontsize=7)
        fig.colorbar(im, ax=ax, fraction=0.046)
        axes[1, -1].axis("off")
        ax.set_xticks([])
        ax.set_yticks([])
        axes[0, 0].set_ylabel("full image\n(grid in red)", fontsize=7)
        axes[1, 0].set_ylabel("micro patches", fontsize=7)
        fig.suptitle(f"COCO-GAN: {grid}x{grid} micro patches of {micro}x{micro} px", fontsize=8)
        fig.tight_layout()
        return fig
