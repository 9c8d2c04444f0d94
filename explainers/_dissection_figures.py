"""The figures of GAN Dissection: the best layer's units over the images where they are most
on, and images before and after ablating a concept's top units.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ganbench.core.evaluator import EvalContext

from ._dissection_generator import edited, generate, run_with_record
from ._dissection_stats import Thresholds, on_map, upsample

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def rgb(x: torch.Tensor) -> np.ndarray:
    """An image (C, H, W) in [-1, 1] as an RGB array (H, W, 3) in [0, 1]."""
    img = ((x.permute(1, 2, 0) + 1) / 2).clamp(0, 1).cpu().numpy()
    return np.repeat(img, 3, axis=2) if img.shape[-1] == 1 else img


def unit_figure(
    ctx: EvalContext,
    module: torch.nn.Module,
    layer: str,
    thresholds: Thresholds,
    summary: dict,
    concepts: list[str],
) -> Figure:
    """``dissection.png``: up to eight units of ``layer``, labelled ones first, each over the
    five images where it is most on, its on-region outlined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # labelled units first, each group by IoU
    key = summary["best_iou"].double() + 2.0 * summary["labelled"].double()
    order = key.argsort(descending=True)[:8].tolist()
    z = ctx.model.sample_latent(64, generator=ctx.rng(63)).cpu()
    x, outs = run_with_record(ctx, z, {"m": module})
    up = upsample(outs["m"], tuple(x.shape[-2:]))
    on = on_map(up, thresholds.level, thresholds.floor, thresholds.top)
    cols = 5
    fig, axes = plt.subplots(
        len(order), cols, figsize=(1.2 * cols + 1.4, 1.25 * len(order) + 0.6), squeeze=False
    )
    for r, u in enumerate(order):
        ranked = on[:, u].flatten(1).sum(1).argsort(descending=True)[:cols].tolist()
        for c, i in enumerate(ranked):
            ax = axes[r, c]
            img = rgb(x[i])
            mask = on[i, u].cpu().numpy()
            ax.imshow(img * (0.45 + 0.55 * mask[..., None]), vmin=0, vmax=1)
            if mask.any():
                ax.contour(mask.astype(float), levels=[0.5], colors="yellow", linewidths=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
        label = concepts[int(summary["best_concept"][u])]
        tag = "" if bool(summary["labelled"][u]) else " (unlabelled)"
        axes[r, 0].set_ylabel(
            f"unit {u}\n{label}{tag}\nIoU {float(summary['best_iou'][u]):.3f}", fontsize=7
        )
    fig.suptitle(
        f"GAN Dissection, layer {layer}: labelled units, then the rest, by IoU with their "
        "concept (on-region outlined, rest dimmed)",
        fontsize=8,
    )
    fig.tight_layout()
    return fig


def ablation_figure(
    ctx: EvalContext,
    module: torch.nn.Module,
    concept: int,
    top: list[int],
    random_units: list[int],
    concepts: list[str],
) -> Figure:
    """``dissection-ablation.png``: six images generated as they are, with the ``top`` units
    of ``concept`` set to 0, and with as many random units set to 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z = ctx.model.sample_latent(6, generator=ctx.rng(64)).cpu()
    rows = {
        "generated": generate(ctx, z),
        f"top {len(top)} {concepts[concept]} units off": edited(ctx, z, module, top),
        f"{len(random_units)} random units off": edited(ctx, z, module, random_units),
    }
    fig, axes = plt.subplots(3, len(z), figsize=(1.2 * len(z) + 1.4, 4.2), squeeze=False)
    for r, (title, x) in enumerate(rows.items()):
        for c in range(len(z)):
            ax = axes[r, c]
            ax.imshow(rgb(x[c]), vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(title, fontsize=7)
    fig.suptitle(f"ablating the units that agree with {concepts[concept]!r}", fontsize=8)
    fig.tight_layout()
    return fig
