"""Unit–concept statistics of GAN Dissection, streamed over batches in bounded memory: each
unit's activation level, where it is on, its IoU with every concept and the evidence that
the agreement is more than chance (the rules are in :mod:`ganbench.explainers.dissection`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F


class Thresholds(NamedTuple):
    """A layer's per-unit level (its activation quantile), minimum and maximum, each (U,)."""

    level: torch.Tensor
    floor: torch.Tensor
    top: torch.Tensor


class TopLevel:
    """Exact per-unit upper quantile of a stream of activations in bounded memory.

    The ``quantile`` level of T values is the m-th largest, m = ceil((1 - quantile) T), so
    only each unit's m largest values seen so far are kept (a (units, m) buffer), merged
    with every batch by ``topk``; the unit's minimum and maximum are tracked as well.
    ``quantile`` lies in (0, 1) (the evaluator declares that range).
    """

    def __init__(self, units: int, total: int, quantile: float) -> None:
        self.m = max(1, math.ceil((1.0 - quantile) * total - 1e-9))
        if self.m * units > 50_000_000:
            raise ValueError(
                f"dissection: quantile {quantile} keeps {self.m} values for each of {units} "
                "units; use a higher quantile or fewer images"
            )
        self.units = units
        self.top: torch.Tensor | None = None
        self.minimum = torch.full((units,), math.inf)
        self.maximum = torch.full((units,), -math.inf)
        self.seen = 0

    def update(self, acts: torch.Tensor) -> None:
        """Add activations (B, U, h, w)."""
        flat = acts.detach().float().transpose(0, 1).reshape(self.units, -1).cpu()
        self.seen += flat.shape[1]
        self.minimum = torch.minimum(self.minimum, flat.min(1).values)
        self.maximum = torch.maximum(self.maximum, flat.max(1).values)
        pool = flat if self.top is None else torch.cat([self.top, flat], 1)
        self.top = pool.topk(min(self.m, pool.shape[1]), dim=1).values

    def thresholds(self) -> Thresholds:
        """The level, minimum and maximum of every unit over the activations seen."""
        return Thresholds(self.levels(), self.minimum, self.maximum)

    def levels(self) -> torch.Tensor:
        if self.top is None or self.top.shape[1] < self.m:
            raise ValueError("dissection: fewer activations seen than the quantile needs")
        return self.top[:, self.m - 1].clone()


# float tolerance of a comparison with a unit's level, relative to the unit's magnitude: bilinear
# interpolation of a plateau at the level returns it give or take a few ulps (0.7 -> 0.70000005)
REL_TOL = 1e-5
# a unit whose activations span at most this share of its magnitude is degenerate (constant)
NEAR_CONSTANT = 1e-4


def magnitude(*values: torch.Tensor) -> torch.Tensor:
    """Per unit, the largest absolute value among ``values`` (each (U,))."""
    return torch.stack([v.abs() for v in values]).amax(0)


def degenerate_units(floor: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    """Units (bool (U,)) whose activations hardly vary: max - min <= NEAR_CONSTANT of their
    magnitude (a constant unit, a dead ReLU). No threshold separates anything in them."""
    return (top - floor) <= NEAR_CONSTANT * magnitude(floor, top)


def on_map(
    acts: torch.Tensor,
    level: torch.Tensor,
    floor: torch.Tensor,
    top: torch.Tensor | None = None,
) -> torch.Tensor:
    """Where each unit is on: >= its level (less a float tolerance), or above it (plus the
    tolerance) where the level is the unit's minimum; never, for a degenerate unit (when its
    maximum ``top`` is given).

    ``acts`` (B, U, H, W); ``level``, ``floor``, ``top`` (U,). Returns bool (B, U, H, W).
    """
    ref = (level, floor) if top is None else (level, floor, top)
    tol = REL_TOL * magnitude(*ref)
    at_floor = (level - floor) <= tol
    view = (1, -1, 1, 1)
    lv = level.to(acts).view(view)
    tv = tol.to(acts).view(view)
    strict = at_floor.to(acts.device).view(view)
    on = torch.where(strict, acts > lv + tv, acts >= lv - tv)
    if top is not None:
        on &= ~degenerate_units(floor, top).to(acts.device).view(view)
    return on


def upsample(acts: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Activations (B, U, h, w) at ``size``, bilinearly as gandissect's upsampler (as they
    are when already that size)."""
    if tuple(acts.shape[-2:]) == tuple(size):
        return acts
    return F.interpolate(acts.float(), size=size, mode="bilinear", align_corners=False)


class IoUTally:
    """Intersections of unit on-maps with concept masks, summed over images, and the counts;
    and, over pairs of images, the sums of d and d^2 of the exchange test (module docstring)."""

    def __init__(self, units: int, concepts: int) -> None:
        self.inter = torch.zeros(units, concepts, dtype=torch.float64)
        self.inter_rolled = torch.zeros(units, concepts, dtype=torch.float64)
        self.pair_sum = torch.zeros(units, concepts, dtype=torch.float64)
        self.pair_sq = torch.zeros(units, concepts, dtype=torch.float64)
        self.pairs = 0
        # the control run of the rule: every image given the segmentation two places back
        # in its batch, so that each pair is tested against another pair's masks
        self.inter_control = torch.zeros(units, concepts, dtype=torch.float64)
        self.control_sum = torch.zeros(units, concepts, dtype=torch.float64)
        self.control_sq = torch.zeros(units, concepts, dtype=torch.float64)
        self.on_control = torch.zeros(units, dtype=torch.float64)
        self.concept_control = torch.zeros(concepts, dtype=torch.float64)
        self.on = torch.zeros(units, dtype=torch.float64)
        self.concept = torch.zeros(concepts, dtype=torch.float64)

    def update(self, on: torch.Tensor, masks: torch.Tensor) -> None:
        """``on`` (B, U, H, W) bool, ``masks`` (B, K, H, W) bool, the same images in order.
        Images 2j and 2j+1 of the batch form a pair; an odd batch's last image is in no pair.
        The control run needs batches of 4 or more (two places back must be another pair)."""
        b = on.shape[0]
        a = on.flatten(2).float()
        m = masks.flatten(2).float().to(a.device)
        own = torch.einsum("bup,bkp->buk", a, m)  # per image; counts, exact in float32
        self.inter += own.sum(0).double().cpu()
        partner = m.roll(1, dims=0) if b > 1 else m
        self.inter_rolled += torch.einsum("bup,bkp->uk", a, partner).double().cpu()
        self.on += a.sum((0, 2)).double().cpu()
        self.concept += m.sum((0, 2)).double().cpu()
        s, q = self._pairs(a, m, own)
        self.pair_sum += s
        self.pair_sq += q
        self.pairs += b // 2
        if b >= 4:
            other = m.roll(2, dims=0)
            own_c = torch.einsum("bup,bkp->buk", a, other)
            self.inter_control += own_c.sum(0).double().cpu()
            s, q = self._pairs(a, other, own_c)
            self.control_sum += s
            self.control_sq += q
            self.on_control += a.sum((0, 2)).double().cpu()
            self.concept_control += m.sum((0, 2)).double().cpu()

    @staticmethod
    def _pairs(a: torch.Tensor, m: torch.Tensor, own: torch.Tensor):
        """Sums of d and d^2 over the pairs (2j, 2j+1), ``own`` the per-image intersections
        of ``a`` with ``m``."""
        even = a.shape[0] - a.shape[0] % 2
        units, concepts = own.shape[1:]
        if not even:
            zero = torch.zeros(units, concepts, dtype=torch.float64)
            return zero, zero.clone()
        swap = torch.arange(even, device=a.device).view(-1, 2).flip(1).reshape(-1)
        cross = torch.einsum("bup,bkp->buk", a[:even], m[swap])
        d = (own[:even] - cross).double().view(even // 2, 2, units, concepts).sum(1)
        return d.sum(0).cpu(), (d**2).sum(0).cpu()

    @staticmethod
    def _evidence(total: torch.Tensor, squares: torch.Tensor) -> torch.Tensor:
        root = squares.sqrt()
        return torch.where(root > 0, total / root.clamp_min(1e-300), torch.zeros_like(root))

    def evidence(self) -> torch.Tensor:
        """T = sum d / sqrt(sum d^2) per unit and concept (0 where every d is 0): under the
        hypothesis that a unit's maps carry nothing about their own image's segmentation,
        P(T >= x) <= exp(-x^2 / 2)."""
        return self._evidence(self.pair_sum, self.pair_sq)

    def control(self) -> tuple[torch.Tensor, torch.Tensor]:
        """IoU and evidence of the control run (each image given the segmentation two places
        back in its batch): the rule's chance level, every unit being unrelated to the masks
        it is compared with."""
        iou = self._iou(self.inter_control, self.on_control, self.concept_control)
        return iou, self._evidence(self.control_sum, self.control_sq)

    @staticmethod
    def _iou(inter: torch.Tensor, on: torch.Tensor, concept: torch.Tensor) -> torch.Tensor:
        union = on[:, None] + concept[None, :] - inter
        return torch.where(union > 0, inter / union.clamp_min(1e-12), torch.zeros_like(inter))

    def iou(self) -> torch.Tensor:
        return self._iou(self.inter, self.on, self.concept)

    def iou_rolled(self) -> torch.Tensor:
        return self._iou(self.inter_rolled, self.on, self.concept)


def critical_evidence(units: int, concepts: int, alpha: float) -> float:
    """The evidence a unit-concept pair needs so that, over the U K pairs of a layer, the
    chance of any false label is at most ``alpha`` (P(T >= x) <= exp(-x^2/2), Bonferroni)."""
    return math.sqrt(2.0 * math.log(max(units * concepts, 1) / alpha))


def label_units(
    iou: torch.Tensor,
    threshold: float,
    evidence: torch.Tensor | None = None,
    critical: float | None = None,
) -> dict:
    """Concept per unit and the layer's summary, from IoU (U, K).

    A unit-concept pair passes when its IoU exceeds ``threshold`` and, when ``evidence``
    (U, K) is given, its evidence exceeds ``critical``. A unit with a passing concept is
    labelled with the passing concept of highest IoU; any other unit keeps its best concept
    by IoU, unlabelled.
    """
    passes = iou > threshold
    if evidence is not None:
        passes &= evidence > critical
    labelled = passes.any(1)
    best_any, concept_any = iou.max(1)
    best_pass, concept_pass = torch.where(passes, iou, torch.full_like(iou, -1.0)).max(1)
    best = torch.where(labelled, best_pass, best_any)
    concept = torch.where(labelled, concept_pass, concept_any)
    n = int(labelled.sum())
    return {
        "best_iou": best,
        "best_concept": concept,
        "labelled": labelled,
        "interpretable": n,
        "interpretable_share": n / max(len(best), 1),
        "agreement": float(best[labelled].mean()) if n else 0.0,
        "concepts": sorted({int(c) for c in concept[labelled]}),
        "max_iou": float(best_any.max()) if len(best) else 0.0,
    }
