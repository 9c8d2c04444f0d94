"""Figures: the leaderboard's trade-off scatter plots (quality against cost, quality against
explainability) and the explainers' latent traversal grids."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def _scatter(
    path: Path,
    points: dict[str, tuple[float, float]],
    xlabel: str,
    ylabel: str,
    title: str,
    xmin: float | None = None,
) -> None:
    fig, ax = plt.subplots(figsize=(5.6, 4.2), dpi=110)
    for name, (x, y) in sorted(points.items()):
        ax.scatter([x], [y], s=46, zorder=3)
        ax.annotate(name, (x, y), xytext=(5, 4), textcoords="offset points", fontsize=9)
    xs = [x for x, _ in points.values()]
    span = max(xs) - (min(xs) if xmin is None else xmin) or 1.0
    ax.set_xlim((min(xs) - 0.08 * span) if xmin is None else xmin, max(xs) + 0.22 * span)
    ax.set_ylim(-0.05, 1.08)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3, zorder=0)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def tradeoff_plots(
    out: Path,
    rel_dir: str,
    quality: dict[str, float],
    explainability: dict[str, float],
    per_step: dict[str, float],
    dataset: str,
) -> list[tuple[str, str]]:
    """Write the dataset's trade-off plots under ``out/rel_dir``; returns (caption, path) pairs.

    The quality axis is each architecture's mean win rate over the quality columns (so up is
    better); cost is the median training step in milliseconds (left is cheaper); the
    explainability axis is the mean win rate over the explainability columns. A plot needs two
    architectures with both numbers, else it is not drawn.
    """
    made = []
    cost = {a: (per_step[a] * 1000, q) for a, q in quality.items() if a in per_step}
    if len(cost) >= 2:
        rel = f"{rel_dir}/tradeoff-quality-cost.png"
        _scatter(
            out / rel,
            cost,
            "median training step (ms) ← cheaper",
            "quality: mean win rate ↑",
            f"{dataset}: sample quality vs. training cost",
            xmin=0.0,
        )
        made.append((f"{dataset}: quality vs. cost", rel))
    expl = {a: (explainability[a], q) for a, q in quality.items() if a in explainability}
    if len(expl) >= 2:
        rel = f"{rel_dir}/tradeoff-quality-explainability.png"
        _scatter(
            out / rel,
            expl,
            "explainability: mean win rate →",
            "quality: mean win rate ↑",
            f"{dataset}: sample quality vs. explainability",
        )
        made.append((f"{dataset}: quality vs. explainability", rel))
    return made


def traversal_figure(
    rows: list, column_titles: list[str], row_labels: list[str], title: str
) -> Figure:
    """A grid of image rows (each a tensor (columns, C, H, W) in [-1, 1]) with a title per
    column and a label per row: the latent traversal figures of the explainers, returned for
    the harness to write (``ganbench.core.evaluation``)."""
    n_rows, n_cols = len(rows), len(column_titles)
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(1.1 * n_cols + 0.9, 1.15 * n_rows + 0.6), squeeze=False
    )
    for r, images in enumerate(rows):
        for c in range(n_cols):
            img = ((images[c].permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy()
            grey = img.shape[-1] == 1
            ax = axes[r, c]
            ax.imshow(img[..., 0] if grey else img, cmap="gray" if grey else None, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(column_titles[c], fontsize=7)
            if c == 0:
                ax.set_ylabel(row_labels[r], fontsize=7)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return fig
