"""The causal test of GAN Dissection: each concept's top units of the best layer ablated
(set to 0) and inserted (set to their level in a central square), against as many random
units of the layer (the rules are in :mod:`ganbench.explainers.dissection`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ganbench.core.evaluator import EvalContext

from ._dissection_generator import batches, edited, generate, run_with_record

# each ace_* score: the mean over the concepts intervened on of one effect in their rows
ACE_EFFECTS = {
    "ace_ablation": "ablation_drop",
    "ace_ablation_random": "ablation_drop_random",
    "ace_ablation_share": "ablation_share",
    "ace_ablation_share_random": "ablation_share_random",
    "ace_insertion": "insertion_gain",
    "ace_insertion_random": "insertion_gain_random",
}


def central_region(h: int, w: int) -> tuple[torch.Tensor, list[int]]:
    """The central square of an (h, w) feature map, half its side: a bool (h, w) mask and
    the square's [rows, columns]."""
    region = torch.zeros(h, w, dtype=torch.bool)
    rh, rw = max(1, h // 2), max(1, w // 2)
    region[(h - rh) // 2 : (h - rh) // 2 + rh, (w - rw) // 2 : (w - rw) // 2 + rw] = True
    return region, [int(rh), int(rw)]


@dataclass
class Intervention:
    """The images an intervention is measured on: ``z`` generated in batches ``parts`` with
    units of ``module`` edited, segmented into ``concepts`` concepts; insertion sets a unit
    to its ``level`` inside ``region`` (a bool mask of the feature map)."""

    ctx: EvalContext
    module: torch.nn.Module
    z: torch.Tensor
    parts: list[slice]
    segmenter: Callable
    concepts: int
    level: torch.Tensor
    region: torch.Tensor

    def shares(
        self, images: Callable[[torch.Tensor], torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per concept: its pixel share of ``images(z)``, and its share inside the region
        (brought to image size)."""
        total = torch.zeros(self.concepts, dtype=torch.float64)
        inside = torch.zeros(self.concepts, dtype=torch.float64)
        img_region = None
        for sl in self.parts:
            x = images(self.z[sl])
            m = self.segmenter(x).bool()
            if img_region is None:
                img_region = (
                    F.interpolate(
                        self.region[None, None].float(), size=x.shape[-2:], mode="nearest"
                    )[0, 0]
                    .bool()
                    .to(m.device)
                )
            total += m.flatten(2).float().sum((0, 2)).double().cpu()
            inside += (m & img_region).flatten(2).float().sum((0, 2)).double().cpu()
        npx = len(self.z) * img_region.numel()
        return total / npx, inside / (len(self.z) * int(img_region.sum()))

    def unedited(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per concept, its pixel share and its share inside the region, nothing edited."""
        return self.shares(lambda z: generate(self.ctx, z))

    def ablated(self, units: list[int]) -> torch.Tensor:
        """Per concept, its pixel share with ``units`` set to 0."""
        return self.shares(lambda z: edited(self.ctx, z, self.module, units))[0]

    def inserted(self, units: list[int]) -> torch.Tensor:
        """Per concept, its pixel share inside the region with ``units`` set to their level
        there."""
        return self.shares(
            lambda z: edited(self.ctx, z, self.module, units, self.level, self.region)
        )[1]


def concept_effects(
    run: Intervention,
    c: int,
    top: list[int],
    randoms: list[list[int]],
    before: tuple[torch.Tensor, torch.Tensor],
) -> dict:
    """Ablation and insertion effects on concept ``c`` of its ``top`` units and of each
    draw of ``randoms``, against the unedited shares ``before`` (total, inside the region)."""
    base_total, base_inside = before
    abl = run.ablated(top)
    ins = run.inserted(top)
    r_abl = [run.ablated(r) for r in randoms]
    r_ins = [run.inserted(r) for r in randoms]
    share = float(base_total[c])
    drop = share - float(abl[c])
    drop_r = float(np.mean([share - float(a[c]) for a in r_abl]))
    gain = float(ins[c]) - float(base_inside[c])
    gain_r = float(np.mean([float(a[c]) - float(base_inside[c]) for a in r_ins]))
    return {
        "units": top,
        "share_before": share,
        "ablation_drop": drop,
        "ablation_drop_random": drop_r,
        "ablation_share": drop / share if share > 0 else 0.0,
        "ablation_share_random": drop_r / share if share > 0 else 0.0,
        "region_share_before": float(base_inside[c]),
        "insertion_gain": gain,
        "insertion_gain_random": gain_r,
    }


def intervene(
    ctx: EvalContext,
    module: torch.nn.Module,
    iou: torch.Tensor,
    summary: dict,
    level: torch.Tensor,
    concepts: list[str],
    params: dict,
) -> dict:
    """Ablation and insertion of each labelled concept's top units of ``module``, against
    random units: the ``ace_*`` scores, the report, and what the ablation figure shows
    (None when no unit is labelled)."""
    units = iou.shape[0]
    k = max(1, min(params["top_k"], int(params["max_unit_share"] * units)))
    targets = sorted(set(summary["concepts"]))
    if not targets:  # no concept unit: nothing to intervene on, no effect
        return {
            "scores": dict.fromkeys(ACE_EFFECTS, 0.0),
            "report": {"k": k, "images": 0, "concepts": [], "skipped": "no labelled unit"},
            "figure": None,
        }
    z = ctx.model.sample_latent(params["n_intervention"], generator=ctx.rng(61)).cpu()
    parts = batches(len(z), params["batch_size"])
    segmenter = ctx.segmenter()
    g = ctx.rng(62)
    _, outs = run_with_record(ctx, z[:2], {"m": module})
    region, square = central_region(*outs["m"].shape[-2:])
    run = Intervention(ctx, module, z, parts, segmenter, len(concepts), level, region)
    before = run.unedited()
    rows = []
    figure = None
    best_effect = -math.inf
    for c in targets:
        top = iou[:, c].argsort(descending=True)[:k].tolist()
        randoms = [
            torch.randperm(units, generator=g)[:k].tolist() for _ in range(params["random_repeats"])
        ]
        rows.append({"concept": concepts[c], **concept_effects(run, c, top, randoms, before)})
        if rows[-1]["ablation_drop"] > best_effect:
            best_effect = rows[-1]["ablation_drop"]
            figure = (module, c, top, randoms[0], concepts)
    return {
        "scores": {
            score: float(np.mean([r[effect] for r in rows]))
            for score, effect in ACE_EFFECTS.items()
        },
        "report": {"k": k, "images": len(z), "region": square, "concepts": rows},
        "figure": figure,
    }
