"""``ganbench show-dataset``: a PNG of real images and, where a dataset has them, its masks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganbench.core.registry import create_dataset


def _to_rgb(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] to (N, H, W, 3) floats in [0, 1]."""
    x = ((images.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy()
    return np.repeat(x, 3, axis=3) if x.shape[3] == 1 else x


def _tile(images: np.ndarray, cols: int, pad: int = 1) -> np.ndarray:
    n, h, w, c = images.shape
    rows = -(-n // cols)
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 0.5)
    for i, img in enumerate(images):
        r, q = divmod(i, cols)
        out[
            pad + r * (h + pad) : pad + r * (h + pad) + h,
            pad + q * (w + pad) : pad + q * (w + pad) + w,
        ] = img
    return out


def _factor_text(dataset, factors: torch.Tensor) -> str:
    parts = []
    for name, value in zip(dataset.spec.factors, factors.tolist(), strict=True):
        levels = dataset.level_names.get(name.rstrip("2"))
        parts.append(levels[int(value)] if levels else f"{name}={value:.2f}")
    return " ".join(parts)


def show_dataset(name: str, params: dict[str, Any], out: Path, n: int = 64, rows: int = 8) -> Path:
    """Write ``n`` training images as a grid and, for datasets with masks, ``rows`` images with
    every concept mask beside them (white = in the concept)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dataset = create_dataset(name, **params)
    spec = dataset.spec
    split = dataset.split("train")
    images = split.images[:n]
    masks = split.extras.get("masks")
    grid = _tile(_to_rgb(images), cols=int(np.ceil(np.sqrt(len(images)))))
    if masks is None:
        fig, ax = plt.subplots(figsize=(6, 6))
        ax.imshow(grid, interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(f"{name}: {len(images)} training images")
    else:
        k = len(spec.concepts)
        fig, (ax, axm) = plt.subplots(
            1,
            2,
            figsize=(6 + 0.75 * (k + 1), 6.5),
            gridspec_kw={"width_ratios": [1, (k + 1) / 8 * 1.3]},
        )
        ax.imshow(grid, interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(f"{name}: {len(images)} training images")
        shown = min(rows, len(images))
        cells = []
        for i in range(shown):
            cells.append(_to_rgb(images[i : i + 1])[0])
            for c in range(k):
                cells.append(np.repeat(masks[i, c].float().numpy()[..., None], 3, axis=2))
        table = _tile(np.stack(cells), cols=k + 1, pad=2)
        axm.imshow(table, interpolation="nearest")
        h = images.shape[-1] + 2
        axm.set_xticks([2 + h * j + h / 2 - 1 for j in range(k + 1)])
        axm.set_xticklabels(["image", *spec.concepts], rotation=60, ha="left", fontsize=8)
        axm.xaxis.tick_top()
        factors = split.extras.get("factors")
        if factors is not None:
            axm.set_yticks([2 + h * i + h / 2 - 1 for i in range(shown)])
            axm.set_yticklabels(
                [_factor_text(dataset, factors[i]) for i in range(shown)], fontsize=7
            )
        else:
            axm.set_yticks([])
        axm.set_title("ground-truth concept masks", fontsize=9, pad=40)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
