"""GAN Dissection of the hidden generator layers: the two streaming passes over the
generated images, each layer's labels and controls, its report, and the choice of the best
layer (the rules are in :mod:`ganbench.explainers.dissection`).
"""

from __future__ import annotations

import torch

from ganbench.core.evaluator import EvalContext

from ._dissection_generator import run_with_record
from ._dissection_stats import (
    IoUTally,
    Thresholds,
    TopLevel,
    critical_evidence,
    degenerate_units,
    label_units,
    on_map,
    upsample,
)


def unit_thresholds(
    ctx: EvalContext,
    z: torch.Tensor,
    modules: dict[str, torch.nn.Module],
    parts: list[slice],
    quantile: float,
) -> tuple[dict[str, Thresholds], tuple[int, int]]:
    """Pass 1: every unit's exact ``quantile`` level, minimum and maximum over the images of
    ``z`` (generated batch by batch, ``parts``), per layer; and the images' size."""
    levels: dict[str, TopLevel] = {}
    image_size = None
    for sl in parts:
        x, outs = run_with_record(ctx, z[sl], modules)
        image_size = tuple(x.shape[-2:])
        for name in modules:
            a = outs[name]
            if name not in levels:
                total = len(z) * a.shape[2] * a.shape[3]
                levels[name] = TopLevel(a.shape[1], total, quantile)
            levels[name].update(a)
    return {name: levels[name].thresholds() for name in modules}, image_size


def tally_layers(
    ctx: EvalContext,
    z: torch.Tensor,
    modules: dict[str, torch.nn.Module],
    parts: list[slice],
    thresholds: dict[str, Thresholds],
    image_size: tuple[int, int],
    segmenter,
) -> dict[str, IoUTally]:
    """Pass 2: the same images again, segmented; per layer, the IoU counts and the pair
    statistics of every unit's on-map (at image size) with every concept."""
    tallies: dict[str, IoUTally] = {}
    for sl in parts:
        x, outs = run_with_record(ctx, z[sl], modules)
        masks = segmenter(x).bool()
        for name in modules:
            th = thresholds[name]
            on = on_map(upsample(outs[name], image_size), th.level, th.floor, th.top)
            if name not in tallies:
                tallies[name] = IoUTally(on.shape[1], len(segmenter.concepts))
            tallies[name].update(on, masks)
    return tallies


def dissect_layer(tally: IoUTally, concepts: int, iou_threshold: float, alpha: float) -> dict:
    """One layer's labels (:func:`label_units`'s summary) and their controls: the labelled
    units against other images' segmentations (``agreement_rolled``) and the units the rule
    labels when every image is given another image's segmentation (``interpretable_rolled``).
    Also the IoU table (``iou``), the critical evidence, and per unit the evidence and the
    rolled IoU for its reported concept."""
    iou = tally.iou()
    evidence = tally.evidence()
    units = iou.shape[0]
    crit = critical_evidence(units, concepts, alpha)
    s = label_units(iou, iou_threshold, evidence, crit)
    lab = s["labelled"]
    idx = torch.arange(units)
    unit_iou_rolled = tally.iou_rolled()[idx, s["best_concept"]]
    c_iou, c_evidence = tally.control()
    false_labels = label_units(c_iou, iou_threshold, c_evidence, crit)["labelled"]
    unit_evidence = evidence[idx, s["best_concept"]]
    return {
        **s,
        "iou": iou,
        "critical_evidence": crit,
        "unit_evidence": unit_evidence,
        "unit_iou_rolled": unit_iou_rolled,
        "agreement_rolled": float(unit_iou_rolled[lab].mean()) if int(lab.sum()) else 0.0,
        "interpretable_rolled": int(false_labels.sum()),
        "max_evidence": float(unit_evidence.max()) if units else 0.0,
    }


def layer_report(
    depth: int,
    tally: IoUTally,
    summary: dict,
    thresholds: Thresholds,
    concept_count: torch.Tensor,
    pixels: int,
    concepts: list[str],
) -> dict:
    """What ``dissection.json`` says of one layer: its counts, labels and controls, and every
    unit's concept, IoU, evidence, level, on-share and IoU ceiling."""
    degenerate = degenerate_units(thresholds.floor, thresholds.top)
    on_count = tally.on
    c_count = concept_count[summary["best_concept"]]
    big = torch.maximum(on_count, c_count)
    ceiling = torch.where(
        big > 0, torch.minimum(on_count, c_count) / big.clamp_min(1), torch.zeros_like(big)
    )
    units = len(summary["best_iou"])
    return {
        "depth": depth,
        "units": units,
        "degenerate_units": int(degenerate.sum()),
        "pairs": tally.pairs,
        "critical_evidence": summary["critical_evidence"],
        "interpretable": summary["interpretable"],
        "interpretable_share": summary["interpretable_share"],
        "agreement": summary["agreement"],
        "concepts_covered": [concepts[c] for c in summary["concepts"]],
        "rolled": {
            "interpretable": summary["interpretable_rolled"],
            "agreement": summary["agreement_rolled"],
        },
        "units_detail": [
            {
                "unit": u,
                "concept": concepts[int(summary["best_concept"][u])],
                "iou": float(summary["best_iou"][u]),
                "iou_rolled": float(summary["unit_iou_rolled"][u]),
                "evidence": float(summary["unit_evidence"][u]),
                "labelled": bool(summary["labelled"][u]),
                "degenerate": bool(degenerate[u]),
                "level": float(thresholds.level[u]),
                "on_share": float(on_count[u] / pixels),
                "iou_ceiling": float(ceiling[u]),
            }
            for u in range(units)
        ],
    }


def best_layer(summaries: dict[str, dict]) -> str:
    """The layer with the most labelled units, ties broken by agreement above its control
    and then by evidence; with none labelled anywhere, the layer of the largest evidence."""
    if any(s["interpretable"] for s in summaries.values()):
        return max(summaries, key=lambda name: _rank(summaries[name]))
    return max(summaries, key=lambda name: summaries[name]["max_evidence"])


def _rank(s: dict) -> tuple[int, float, float]:
    return (s["interpretable"], s["agreement"] - s["agreement_rolled"], s["max_evidence"])
