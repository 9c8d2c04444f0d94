"""SAGAN's self-attention as an intrinsic explanation: where does each position look?

For generated images, every attention block's maps beta (for each query position, a
distribution over the 2x2-pooled key positions) are summarised by

* the normalised entropy H(beta_j) / log(N_keys), averaged over queries and images
  (1: uniform attention, the block ignores content; near 0: each query reads one place);
* the mean attended distance sum_i beta[j, i] * |p_j - p_i|, in units of the image side
  (local convolution-like attention is short; SAGAN's claim is long-range dependencies);
* the learned gate gamma, which says how much of the block's output is attention at all.

The figure ``attention.png`` shows, for a few generated images, the image and the
generator's attention maps for three query points (marked), upsampled to image size.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch.nn import functional as F

from ganbench.core.evaluation import Evaluation
from ganbench.core.evaluator import EvalContext, Evaluator
from ganbench.core.registry import register_explainer
from ganbench.core.scores import VERY_NOISY, Score

if TYPE_CHECKING:
    from matplotlib.figure import Figure

BLOCKS = {"g": "generator", "d": "discriminator"}


def attention_summary(beta: torch.Tensor) -> tuple[float, float]:
    """(normalised entropy, mean attended distance / side) of maps (B, Hq, Wq, Hk, Wk)."""
    b, hq, wq, hk, wk = beta.shape
    p = beta.reshape(b, hq * wq, hk * wk).double()
    entropy = -(p * p.clamp_min(1e-30).log()).sum(-1) / math.log(hk * wk)
    # positions as fractions of the image side; a pooled key covers (hq/hk) query cells
    qy, qx = torch.meshgrid(
        (torch.arange(hq) + 0.5) / hq, (torch.arange(wq) + 0.5) / wq, indexing="ij"
    )
    ky, kx = torch.meshgrid(
        (torch.arange(hk) + 0.5) / hk, (torch.arange(wk) + 0.5) / wk, indexing="ij"
    )
    q = torch.stack([qy.flatten(), qx.flatten()], 1).double()
    k = torch.stack([ky.flatten(), kx.flatten()], 1).double()
    dist = torch.cdist(q, k).to(p.device)  # (Nq, Nk)
    mean_dist = (p * dist).sum(-1)
    return float(entropy.mean()), float(mean_dist.mean())


@register_explainer("attention")
class AttentionExplainer(Evaluator):
    """Entropy and reach of SAGAN's attention maps in G and D, its gates, and a figure."""

    version = "1"
    requires = frozenset({"attention"})
    defaults = {"n": 256, "figure_images": 4, "batch_size": 64}
    figures = ("attention.png",)
    scores = tuple(
        s
        for short, block in BLOCKS.items()
        for s in (
            Score(
                f"attn_entropy_{short}",
                "none",
                f"{block}'s attention entropy over keys / log(number of keys), mean over "
                "queries and images (1 = uniform)",
            ),
            Score(
                f"attn_distance_{short}",
                "none",
                f"{block}'s mean attended distance, as a fraction of the image side",
            ),
            Score(
                f"attn_gamma_{short}",
                "none",
                f"{block}'s learned attention gate gamma (0 at initialisation)",
                primary=False,
                tolerance=VERY_NOISY,
            ),
        )
    )

    def evaluate(self, ctx: EvalContext) -> Evaluation:
        model, p = ctx.model, self.params
        g = ctx.rng(20)
        sums = {short: [0.0, 0.0] for short in BLOCKS}
        done = 0
        while done < p["n"]:
            m = min(p["batch_size"], p["n"] - done)
            maps = model.attention_maps(model.sample_latent(m, generator=g))
            for short, block in BLOCKS.items():
                entropy, dist = attention_summary(maps[block])
                sums[short][0] += entropy * m
                sums[short][1] += dist * m
            done += m
        blocks = model.attention_blocks()
        out = {}
        for short, block in BLOCKS.items():
            out[f"attn_entropy_{short}"] = sums[short][0] / done
            out[f"attn_distance_{short}"] = sums[short][1] / done
            out[f"attn_gamma_{short}"] = float(blocks[block].gamma.detach())
        figures = {"attention": self.figure(ctx)} if p["figure_images"] else {}
        return Evaluation(out, figures=figures)

    @torch.no_grad()
    def figure(self, ctx: EvalContext) -> Figure:
        """``figure_images`` generated images, each beside the generator's attention maps for
        three query points."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        model, n = ctx.model, self.params["figure_images"]
        z = model.sample_latent(n, generator=ctx.rng(21))
        images = model.generate(z).clamp(-1, 1).cpu()
        beta = model.attention_maps(z)["generator"].cpu()
        _, hq, wq, hk, wk = beta.shape
        size = images.shape[-1]
        queries = [(hq // 4, wq // 4), (hq // 2, wq // 2), (3 * hq // 4, 3 * wq // 4)]
        # one colour scale for every map, so that one colour bar reads them all
        top = float(max(beta[i, qy, qx].max() for i in range(n) for qy, qx in queries)) or 1.0
        fig, axes = plt.subplots(
            n, 1 + len(queries), figsize=(1.6 * (1 + len(queries)), 1.6 * n), squeeze=False
        )
        for i in range(n):
            img = ((images[i].permute(1, 2, 0) + 1) / 2).numpy()
            cmap = "gray" if img.shape[-1] == 1 else None
            img = img[..., 0] if img.shape[-1] == 1 else img
            axes[i, 0].imshow(img, cmap=cmap, vmin=0, vmax=1)
            axes[i, 0].set_title("sample" if i == 0 else "", fontsize=8)
            for j, (qy, qx) in enumerate(queries, 1):
                heat = F.interpolate(
                    beta[i, qy, qx][None, None], size=(size, size), mode="nearest"
                )[0, 0]
                axes[i, j].imshow(img, cmap=cmap, vmin=0, vmax=1)
                shown = axes[i, j].imshow(heat, cmap="magma", alpha=0.6, vmin=0, vmax=top)
                scale = size / hq
                axes[i, j].plot(
                    (qx + 0.5) * scale - 0.5, (qy + 0.5) * scale - 0.5, "c+", ms=8, mew=2
                )
                if i == 0:
                    axes[i, j].set_title(f"query ({qy},{qx})", fontsize=8)
        for ax in axes.flat:
            ax.set_axis_off()
        fig.suptitle("generator attention: weights over keys for the marked query", fontsize=8)
        fig.tight_layout()
        bar = fig.colorbar(shown, ax=axes[:, -1].tolist(), fraction=0.046, pad=0.04)
        bar.set_label("attention weight", fontsize=7)
        bar.ax.tick_params(labelsize=6)
        return fig
