"""GAN Dissection (Bau et al., ICLR 2019): which generator units draw which concepts, and
do they cause them?

**Dissection.** For every hidden layer of ``generator_layers()`` (4-D outputs that are
not the image itself), over ``n`` generated images:

1. Each unit's **level** t_u is the ``quantile`` (default 0.995, gandissect's
   ``quantile_threshold = 0.005``) of all its activations, over every image and position,
   at the layer's own resolution; its minimum and maximum are kept too.
2. A unit whose activations hardly vary (max - min <= 1e-4 of its magnitude: a constant
   unit, a dead ReLU, a bias-only channel) cannot be thresholded meaningfully: it is marked
   **degenerate** and is never on, never labelled.
3. Each other unit's map is upsampled to image size (bilinear, as gandissect's upsampler)
   and thresholded with a float tolerance tau_u = 1e-5 of the unit's magnitude (bilinear
   interpolation of a plateau at t_u returns t_u give or take an ulp): the unit is *on*
   where its activation is >= t_u - tau_u, so ties at the level count as on and a binary map
   is on at its plateau; when t_u is the unit's minimum (a unit at its floor on more than
   1 - ``quantile`` of positions, e.g. a mostly silent ReLU), only positions above
   t_u + tau_u are on.
4. The generated images are segmented with the dataset's segmenter (digits: background,
   stroke and per-class strokes ``stroke_k`` from the domain classifier; shapes: background,
   the three shapes and the six colours).
5. IoU(u, c) = sum_images |on_u ∩ mask_c| / sum_images |on_u ∪ mask_c|: intersections and
   unions are summed over all images before dividing, not averaged per image.

**Labels: agreement beyond chance.** A fixed IoU threshold alone is reached by units that
draw nothing: a unit on at 5% of pixels independently of the image has IoU about 0.05 with a
concept covering most of the image, and a sparse unit on at more pixels (its floor is its
level) has more. So a unit is **labelled** with concept c only when both

* IoU(u, c) > ``iou_threshold`` (0.05, the paper's rule), and
* its agreement with c is significantly larger with the image's own segmentation than with
  another image's: the images are taken in pairs (2j, 2j+1) of their batch, and for each pair
  d = I(on_2j, mask_2j) + I(on_2j+1, mask_2j+1) - I(on_2j, mask_2j+1) - I(on_2j+1, mask_2j)
  (I: intersection). If the unit's map carries nothing about its own image's segmentation,
  exchanging the two masks leaves the pair's distribution unchanged, so each d is symmetric
  about 0 and the pairs are independent; the **evidence** T = sum d / sqrt(sum d^2) then
  exceeds x with probability at most exp(-x^2/2) (Hoeffding for random signs), whatever the
  maps look like (sparse, smooth, spatially biased). T must exceed
  sqrt(2 ln(U K / ``alpha``)) (U units, K concepts), so that the chance of any false label
  in a layer is at most ``alpha`` (0.01). T is at most sqrt(pairs), so with fewer than
  about 2 ln(U K / alpha) pairs no unit can be labelled. A unit's label is its passing
  concept of highest IoU; an unlabelled unit's reported concept is its best by IoU.

Per layer: the number and share of labelled (interpretable) units, the **agreement** (mean
IoU of the labelled units' concepts; 0 when none is labelled), and the number of distinct
concepts covered. The scores are those of the **best layer**: most labelled units; ties by
agreement above its control; with none labelled anywhere, the layer whose unit has the
largest evidence. Layers of noise or constant units label nothing, so they cannot be
reported in place of a layer that draws. Every layer's numbers are in ``dissection.json``.

**IoU ceiling.** Two sets of sizes A and M have IoU at most min(A, M) / max(A, M); summed
over images, a unit on at a share a of all pixels and a concept covering f of them have
IoU <= min(a, f) / max(a, f). Each unit's ``iou_ceiling`` (for its reported concept) and
``on_share`` are in the JSON: a continuous unit is on at about 1 - quantile of the pixels
(so large concepts cannot reach a high IoU at a high quantile), a binary unit at its
plateau, with a ceiling up to 1.

**Control.** The labelled units' IoU with their concepts when every image's unit maps are
paired with the segmentation of another image of its batch (rolled by one): what spatial
priors alone give those units (a unit always on at the centre agrees with centred objects
without drawing them). The count's control is the number of units the same rule (IoU and
evidence, computed the same way) labels when every image is given the segmentation of the
image two places back in its batch (so each pair is tested against another pair's masks):
every unit is unrelated to what it is compared with, so this counts the false labels to
expect (batches of fewer than 4 images are left out of it).

**Streaming, bounded memory.** Pass 1 keeps, per unit, only the top ceil((1 - q) N h w)
activations seen so far (merged batch by batch with ``topk``), which gives the exact
level; pass 2 regenerates the same latents (evaluation mode is deterministic) and
accumulates intersection counts (units x concepts), the pairs' sums of d and d^2, on-counts
and concept counts batch by batch. Nothing at full resolution outlives its batch.

**Intervention** (the best layer). For each concept that labels one of its units, the
``top_k`` units (default 20, the paper's figure; at most ``max_unit_share`` of the layer)
ranked by IoU with that concept are

* **ablated** (their outputs set to 0) while ``n_intervention`` fresh images are generated
  (the paper uses >= 1,000; fewer in smoke): the **average causal effect** is the drop in
  the concept's pixel fraction of the segmented output, averaged over the concepts, in
  absolute pixel share (``ace_ablation``) and as a share of the concept's pixels before
  (``ace_ablation_share``);
* **inserted** (set to their level t_u) in the central square of the feature map (half its
  side): ``ace_insertion`` is the concept's pixel fraction gained inside that square (in
  image coordinates).

Each is compared with as many **random units** of the same layer (``random_repeats``
draws, averaged), the leaderboard's control beside the score. With no labelled unit there is
no concept unit to intervene on: every ``ace_*`` score and its control is 0.

Figures: ``dissection.png`` (the best layer's labelled units first, then the most agreeing,
each over the images where it is most on, its on-region outlined, titled unit, concept and
IoU) and ``dissection-ablation.png`` (a few images before and after ablating the top units of
the concept with the largest effect, and after ablating as many random units).
"""

from __future__ import annotations

import contextlib
import json
import math

import numpy as np
import torch
import torch.nn.functional as F

from ganbench.core.evaluator import EvalContext, Evaluator
from ganbench.core.registry import register_explainer
from ganbench.core.scores import NOISY, UNIT_COUNT, VERY_NOISY, Score


# --- streaming statistics ---------------------------------------------------------------
class TopLevel:
    """Exact per-unit upper quantile of a stream of activations in bounded memory.

    The ``quantile`` level of T values is the m-th largest, m = ceil((1 - quantile) T), so
    only each unit's m largest values seen so far are kept (a (units, m) buffer), merged
    with every batch by ``topk``; the unit's minimum and maximum are tracked as well.
    """

    def __init__(self, units: int, total: int, quantile: float) -> None:
        if not 0.0 < quantile < 1.0:
            raise ValueError(f"dissection: quantile must lie in (0, 1), got {quantile}")
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


@contextlib.contextmanager
def hooked(module: torch.nn.Module, hook):
    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def batches(n: int, size: int) -> list[slice]:
    """Slices of range(n) of at most ``size``, none of length 1 unless n == 1 (the rolled
    control pairs each image with another of its batch)."""
    size = max(size, 2)
    out = [slice(s, min(s + size, n)) for s in range(0, n, size)]
    if len(out) > 1 and out[-1].stop - out[-1].start == 1:
        out[-2] = slice(out[-2].start, out[-2].stop - 1)
        out[-1] = slice(out[-1].start - 1, out[-1].stop)
    return out


@register_explainer("dissection")
class DissectionExplainer(Evaluator):
    """Unit–concept agreement of every hidden generator layer, labels tested against other
    images' segmentations, and the causal effect of the best layer's concept units by ablation
    and insertion, against random units."""

    version = "2"
    family = "explainability"
    requires = frozenset({"layers"})
    requires_dataset = frozenset({"segmenter", "domain"})
    defaults = {
        "n": 1000,
        "quantile": 0.995,
        "iou_threshold": 0.05,
        "alpha": 0.01,
        "top_k": 20,
        "max_unit_share": 0.25,
        "n_intervention": 1000,
        "random_repeats": 3,
        "batch_size": 64,
        "figure": True,
    }
    scores = (
        Score(
            "dissection_agreement",
            "higher",
            "mean IoU (summed over images) of the best layer's labelled units with their "
            "concept, a unit being on where it exceeds its activation quantile set by the "
            "`quantile` parameter (the paper's 0.995 by default; 0.95 in the shipped configs); "
            "labelled: IoU > 0.05 and significantly higher with each image's own segmentation "
            "than with another image's (at most 1% chance of any false label per layer); 0 when "
            "no unit is labelled",
            control="dissection_agreement_rolled",
        ),
        Score(
            "dissection_agreement_rolled",
            "none",
            "the labelled units' mean IoU when each image's unit maps are paired with another "
            "image's segmentation: the agreement spatial priors alone give them",
            primary=False,
        ),
        Score(
            "interpretable_units",
            "higher",
            "number of units of the best layer labelled with a concept (IoU > 0.05 and "
            "significantly above other images' segmentations); the best layer has the most",
            control="interpretable_units_rolled",
            tolerance=UNIT_COUNT,
            integer=True,
        ),
        Score(
            "interpretable_units_rolled",
            "none",
            "units the same rule labels when every image is given another image's "
            "segmentation: the false labels to expect",
            primary=False,
            tolerance=UNIT_COUNT,
        ),
        Score(
            "interpretable_share",
            "higher",
            "share of the best layer's units that are labelled with a concept",
            primary=False,
            tolerance=NOISY,
        ),
        Score(
            "interpretable_units_all",
            "higher",
            "number of labelled units over all hidden generator layers",
            primary=False,
            tolerance=UNIT_COUNT,
        ),
        Score(
            "concepts_covered",
            "higher",
            "number of distinct concepts labelling a unit of the best layer",
            tolerance=UNIT_COUNT,
            integer=True,
        ),
        Score(
            "best_layer_depth",
            "none",
            "depth of the best layer among the hidden generator layers (0: first, 1: last)",
            primary=False,
            tolerance=VERY_NOISY,
        ),
        Score(
            "ace_ablation",
            "higher",
            "average causal effect: drop in a concept's pixel share of the segmented output when "
            "the top-k units by IoU with it are zeroed, mean over the best layer's labelled "
            "concepts; 0 when no unit is labelled",
            control="ace_ablation_random",
            tolerance=VERY_NOISY,
        ),
        Score(
            "ace_ablation_random",
            "none",
            "the same drop when as many random units of the layer are zeroed (0 when no unit "
            "is labelled)",
            primary=False,
            tolerance=VERY_NOISY,
        ),
        Score(
            "ace_ablation_share",
            "higher",
            "the ablation drop as a share of the concept's pixels before ablation (1: removed)",
            control="ace_ablation_share_random",
            primary=False,
            tolerance=VERY_NOISY,
        ),
        Score(
            "ace_ablation_share_random",
            "none",
            "the same share for as many random units",
            primary=False,
            tolerance=VERY_NOISY,
        ),
        Score(
            "ace_insertion",
            "higher",
            "pixel share of a concept gained in a central square when its top-k units are set "
            "to their `quantile` activation level there, mean over the best layer's concepts",
            control="ace_insertion_random",
            tolerance=VERY_NOISY,
        ),
        Score(
            "ace_insertion_random",
            "none",
            "the same gain when as many random units are set there",
            primary=False,
            tolerance=VERY_NOISY,
        ),
    )

    # --- helpers ------------------------------------------------------------------------
    def _generate(self, ctx: EvalContext, z: torch.Tensor) -> torch.Tensor:
        return ctx.model.generate(z.to(ctx.device)).clamp(-1, 1)

    def hidden_layers(self, ctx: EvalContext, z: torch.Tensor) -> dict[str, torch.nn.Module]:
        """The generator layers with 4-D outputs that are not the generated image itself."""
        layers = ctx.model.generator_layers()
        x, outputs = self._run_with_record(ctx, z, layers)
        keep = {}
        for name, module in layers.items():
            out = outputs.get(name)
            if not isinstance(out, torch.Tensor) or out.dim() != 4:
                continue
            if out.shape == x.shape and torch.allclose(out.clamp(-1, 1), x, atol=1e-5):
                continue
            keep[name] = module
        if not keep:
            raise ValueError("dissection: no generator layer has 4-D feature-map outputs")
        return keep

    def _run_with_record(self, ctx, z, modules) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Images of z and every module's output for them."""
        outs: dict[str, torch.Tensor] = {}
        handles = []
        for name, module in modules.items():

            def record(m, i, o, name=name):  # the first call's output, detached
                outs.setdefault(name, o.detach() if isinstance(o, torch.Tensor) else o)

            handles.append(module.register_forward_hook(record))
        try:
            x = self._generate(ctx, z)
        finally:
            for h in handles:
                h.remove()
        return x, outs

    def _edited(self, ctx, z, module, units, value=None, region=None) -> torch.Tensor:
        """Images of z with ``units`` of ``module`` set to 0 (value None) or to ``value`` (U,)
        inside ``region`` (a bool (h, w) mask of the feature map)."""
        idx = torch.as_tensor(units, dtype=torch.long)

        def hook(m, i, out):
            out = out.clone()
            if value is None:
                out[:, idx.to(out.device)] = 0
            else:
                v = value[idx].to(out).view(1, -1, 1, 1)
                r = region.to(out.device).view(1, 1, *region.shape)
                sel = out[:, idx.to(out.device)]
                out[:, idx.to(out.device)] = torch.where(r, v.expand_as(sel), sel)
            return out

        with hooked(module, hook):
            return self._generate(ctx, z)

    # --- evaluation ---------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        p = self.params
        if p["n"] < 2 or p["n_intervention"] < 1 or p["top_k"] < 1 or p["random_repeats"] < 1:
            raise ValueError(
                "dissection: needs n >= 2, n_intervention >= 1, top_k >= 1, random_repeats >= 1"
            )
        if not 0.0 < p["alpha"] < 1.0:
            raise ValueError(f"dissection: alpha must lie in (0, 1), got {p['alpha']}")
        segmenter = ctx.segmenter()
        concepts = list(segmenter.concepts)
        z = ctx.model.sample_latent(p["n"], generator=ctx.rng(60)).cpu()
        modules = self.hidden_layers(ctx, z[:2])
        names = list(modules)
        parts = batches(p["n"], p["batch_size"])

        # pass 1: exact per-unit levels, minima and maxima, streaming
        levels: dict[str, TopLevel] = {}
        image_size = None
        for sl in parts:
            x, outs = self._run_with_record(ctx, z[sl], modules)
            image_size = tuple(x.shape[-2:])
            for name in names:
                a = outs[name]
                if name not in levels:
                    total = p["n"] * a.shape[2] * a.shape[3]
                    levels[name] = TopLevel(a.shape[1], total, p["quantile"])
                levels[name].update(a)
        level = {name: levels[name].levels() for name in names}
        floor = {name: levels[name].minimum for name in names}
        top = {name: levels[name].maximum for name in names}

        # pass 2: the same latents again, segmented; IoU counts and pair statistics
        tallies = {name: None for name in names}
        for sl in parts:
            x, outs = self._run_with_record(ctx, z[sl], modules)
            masks = segmenter(x).bool()
            for name in names:
                up = upsample(outs[name], image_size)
                on = on_map(up, level[name], floor[name], top[name])
                if tallies[name] is None:
                    tallies[name] = IoUTally(on.shape[1], len(concepts))
                tallies[name].update(on, masks)
        pixels = p["n"] * image_size[0] * image_size[1]
        concept_count = tallies[names[0]].concept
        concept_share = (concept_count / pixels).tolist()

        per_layer, summaries, iou = {}, {}, {}
        for depth, name in enumerate(names):
            t = tallies[name]
            iou[name] = t.iou()
            rolled = t.iou_rolled()
            evidence = t.evidence()
            units = iou[name].shape[0]
            crit = critical_evidence(units, len(concepts), p["alpha"])
            s = label_units(iou[name], p["iou_threshold"], evidence, crit)
            # the controls: the labelled units against other images' segmentations, and the
            # units the rule labels when every image is given another image's segmentation
            lab = s["labelled"]
            idx = torch.arange(units)
            s_rolled_iou = rolled[idx, s["best_concept"]]
            agreement_rolled = float(s_rolled_iou[lab].mean()) if int(lab.sum()) else 0.0
            c_iou, c_evidence = t.control()
            false_labels = label_units(c_iou, p["iou_threshold"], c_evidence, crit)["labelled"]
            unit_evidence = evidence[idx, s["best_concept"]]
            degenerate = degenerate_units(floor[name], top[name])
            on_count = t.on
            c_count = concept_count[s["best_concept"]]
            big = torch.maximum(on_count, c_count)
            ceiling = torch.where(
                big > 0, torch.minimum(on_count, c_count) / big.clamp_min(1), torch.zeros_like(big)
            )
            summaries[name] = {
                **s,
                "agreement_rolled": agreement_rolled,
                "interpretable_rolled": int(false_labels.sum()),
                "max_evidence": float(unit_evidence.max()) if units else 0.0,
            }
            per_layer[name] = {
                "depth": depth,
                "units": units,
                "degenerate_units": int(degenerate.sum()),
                "pairs": t.pairs,
                "critical_evidence": crit,
                "interpretable": s["interpretable"],
                "interpretable_share": s["interpretable_share"],
                "agreement": s["agreement"],
                "concepts_covered": [concepts[c] for c in s["concepts"]],
                "rolled": {
                    "interpretable": summaries[name]["interpretable_rolled"],
                    "agreement": agreement_rolled,
                },
                "units_detail": [
                    {
                        "unit": u,
                        "concept": concepts[int(s["best_concept"][u])],
                        "iou": float(s["best_iou"][u]),
                        "iou_rolled": float(s_rolled_iou[u]),
                        "evidence": float(unit_evidence[u]),
                        "labelled": bool(lab[u]),
                        "degenerate": bool(degenerate[u]),
                        "level": float(level[name][u]),
                        "on_share": float(on_count[u] / pixels),
                        "iou_ceiling": float(ceiling[u]),
                    }
                    for u in range(units)
                ],
            }

        def rank(name):
            s = summaries[name]
            return (s["interpretable"], s["agreement"] - s["agreement_rolled"], s["max_evidence"])

        if any(summaries[n]["interpretable"] for n in names):
            best = max(names, key=rank)
        else:
            best = max(names, key=lambda n: summaries[n]["max_evidence"])
        s_best = summaries[best]

        ace = self.intervene(ctx, modules[best], iou[best], s_best, level[best], concepts)
        scores = {
            "dissection_agreement": s_best["agreement"],
            "dissection_agreement_rolled": s_best["agreement_rolled"],
            "interpretable_units": float(s_best["interpretable"]),
            "interpretable_units_rolled": float(s_best["interpretable_rolled"]),
            "interpretable_share": s_best["interpretable_share"],
            "interpretable_units_all": float(sum(summaries[n]["interpretable"] for n in names)),
            "concepts_covered": float(len(s_best["concepts"])),
            "best_layer_depth": names.index(best) / max(len(names) - 1, 1),
            **ace["scores"],
        }
        report = {
            "params": p,
            "concepts": concepts,
            "concept_pixel_share": dict(zip(concepts, concept_share, strict=True)),
            "label_rule": (
                f"IoU > {p['iou_threshold']} and evidence > the layer's critical_evidence "
                f"(sqrt(2 ln(units x concepts / {p['alpha']})))"
            ),
            "layers": per_layer,
            "best_layer": best,
            "intervention": ace["report"],
            "scores": scores,
        }
        ctx.artifact_dir.mkdir(parents=True, exist_ok=True)
        (ctx.artifact_dir / "dissection.json").write_text(json.dumps(report, indent=1))
        if p["figure"]:
            self.unit_figure(
                ctx, modules[best], best, level[best], floor[best], top[best], s_best, concepts
            )
            if ace["figure"] is not None:
                self.ablation_figure(ctx, *ace["figure"])
        return scores

    def intervene(self, ctx, module, iou, summary, level, concepts) -> dict:
        """Ablation and insertion of each concept's top units, against random units."""
        p = self.params
        units = iou.shape[0]
        k = max(1, min(p["top_k"], int(p["max_unit_share"] * units)))
        targets = sorted(set(summary["concepts"]))
        if not targets:  # no concept unit: nothing to intervene on, no effect
            names = (
                "ace_ablation",
                "ace_ablation_random",
                "ace_ablation_share",
                "ace_ablation_share_random",
                "ace_insertion",
                "ace_insertion_random",
            )
            return {
                "scores": dict.fromkeys(names, 0.0),
                "report": {"k": k, "images": 0, "concepts": [], "skipped": "no labelled unit"},
                "figure": None,
            }
        z = ctx.model.sample_latent(p["n_intervention"], generator=ctx.rng(61)).cpu()
        parts = batches(len(z), p["batch_size"])
        segmenter = ctx.segmenter()
        g = ctx.rng(62)

        # the feature map's size, and the central square (half the side) for insertion
        _, outs = self._run_with_record(ctx, z[:2], {"m": module})
        h, w = outs["m"].shape[-2:]
        region = torch.zeros(h, w, dtype=torch.bool)
        rh, rw = max(1, h // 2), max(1, w // 2)
        region[(h - rh) // 2 : (h - rh) // 2 + rh, (w - rw) // 2 : (w - rw) // 2 + rw] = True

        def shares(edit) -> tuple[torch.Tensor, torch.Tensor]:
            """Per concept: pixel share over the images, and inside the region."""
            total = torch.zeros(len(concepts), dtype=torch.float64)
            inside = torch.zeros(len(concepts), dtype=torch.float64)
            img_region = None
            for sl in parts:
                x = edit(z[sl])
                m = segmenter(x).bool()
                if img_region is None:
                    img_region = (
                        F.interpolate(
                            region[None, None].float(), size=x.shape[-2:], mode="nearest"
                        )[0, 0]
                        .bool()
                        .to(m.device)
                    )
                total += m.flatten(2).float().sum((0, 2)).double().cpu()
                inside += (m & img_region).flatten(2).float().sum((0, 2)).double().cpu()
            npx = len(z) * img_region.numel()
            return total / npx, inside / (len(z) * int(img_region.sum()))

        base_total, base_inside = shares(lambda zz: self._generate(ctx, zz))
        rows = []
        figure = None
        best_effect = -math.inf
        for c in targets:
            top = iou[:, c].argsort(descending=True)[:k].tolist()
            randoms = [
                torch.randperm(units, generator=g)[:k].tolist() for _ in range(p["random_repeats"])
            ]
            abl, _ = shares(lambda zz, u=top: self._edited(ctx, zz, module, u))
            ins = shares(lambda zz, u=top: self._edited(ctx, zz, module, u, level, region))[1]
            r_abl = [shares(lambda zz, u=r: self._edited(ctx, zz, module, u))[0] for r in randoms]
            r_ins = [
                shares(lambda zz, u=r: self._edited(ctx, zz, module, u, level, region))[1]
                for r in randoms
            ]
            before = float(base_total[c])
            drop = before - float(abl[c])
            drop_r = float(np.mean([before - float(a[c]) for a in r_abl]))
            gain = float(ins[c]) - float(base_inside[c])
            gain_r = float(np.mean([float(a[c]) - float(base_inside[c]) for a in r_ins]))
            rows.append(
                {
                    "concept": concepts[c],
                    "units": top,
                    "share_before": before,
                    "ablation_drop": drop,
                    "ablation_drop_random": drop_r,
                    "ablation_share": drop / before if before > 0 else 0.0,
                    "ablation_share_random": drop_r / before if before > 0 else 0.0,
                    "region_share_before": float(base_inside[c]),
                    "insertion_gain": gain,
                    "insertion_gain_random": gain_r,
                }
            )
            if drop > best_effect:
                best_effect = drop
                figure = (module, c, top, randoms[0], concepts)

        def mean(key):
            return float(np.mean([r[key] for r in rows]))

        return {
            "scores": {
                "ace_ablation": mean("ablation_drop"),
                "ace_ablation_random": mean("ablation_drop_random"),
                "ace_ablation_share": mean("ablation_share"),
                "ace_ablation_share_random": mean("ablation_share_random"),
                "ace_insertion": mean("insertion_gain"),
                "ace_insertion_random": mean("insertion_gain_random"),
            },
            "report": {
                "k": k,
                "images": len(z),
                "region": [int(rh), int(rw)],
                "concepts": rows,
            },
            "figure": figure,
        }

    # --- figures ------------------------------------------------------------------------
    @staticmethod
    def _rgb(x: torch.Tensor) -> np.ndarray:
        img = ((x.permute(1, 2, 0) + 1) / 2).clamp(0, 1).cpu().numpy()
        return np.repeat(img, 3, axis=2) if img.shape[-1] == 1 else img

    def unit_figure(self, ctx, module, layer, level, floor, top, summary, concepts) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        # labelled units first, each group by IoU
        key = summary["best_iou"].double() + 2.0 * summary["labelled"].double()
        order = key.argsort(descending=True)[:8].tolist()
        z = ctx.model.sample_latent(64, generator=ctx.rng(63)).cpu()
        x, outs = self._run_with_record(ctx, z, {"m": module})
        on = on_map(upsample(outs["m"], tuple(x.shape[-2:])), level, floor, top)
        cols = 5
        fig, axes = plt.subplots(
            len(order), cols, figsize=(1.2 * cols + 1.4, 1.25 * len(order) + 0.6), squeeze=False
        )
        for r, u in enumerate(order):
            ranked = on[:, u].flatten(1).sum(1).argsort(descending=True)[:cols].tolist()
            for c, i in enumerate(ranked):
                ax = axes[r, c]
                img = self._rgb(x[i])
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
        fig.savefig(ctx.artifact_dir / "dissection.png", dpi=100)
        plt.close(fig)

    def ablation_figure(self, ctx, module, concept, top, random_units, concepts) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        z = ctx.model.sample_latent(6, generator=ctx.rng(64)).cpu()
        rows = {
            "generated": self._generate(ctx, z),
            f"top {len(top)} {concepts[concept]} units off": self._edited(ctx, z, module, top),
            f"{len(random_units)} random units off": self._edited(ctx, z, module, random_units),
        }
        fig, axes = plt.subplots(3, len(z), figsize=(1.2 * len(z) + 1.4, 4.2), squeeze=False)
        for r, (title, x) in enumerate(rows.items()):
            for c in range(len(z)):
                ax = axes[r, c]
                ax.imshow(self._rgb(x[c]), vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
            axes[r, 0].set_ylabel(title, fontsize=7)
        fig.suptitle(f"ablating the units that agree with {concepts[concept]!r}", fontsize=8)
        fig.tight_layout()
        fig.savefig(ctx.artifact_dir / "dissection-ablation.png", dpi=100)
        plt.close(fig)
