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

This module holds the evaluator (its scores, the evaluation and its report). Beside it,
``_dissection_stats`` has the streaming unit–concept statistics (levels, on-maps, IoU and
evidence, labels), ``_dissection_generator`` the generator driven through forward hooks,
``_dissection_layers`` the two passes, each layer's labels and report and the best layer,
``_dissection_intervention`` the ablation and insertion, and ``_dissection_figures`` the
figures. A change in any of them that moves a number needs a ``version`` bump here.
"""

from __future__ import annotations

import torch

from ganbench.core.evaluation import Evaluation
from ganbench.core.evaluator import EvalContext, Evaluator
from ganbench.core.params import Range
from ganbench.core.registry import register_explainer
from ganbench.core.scores import NOISY, UNIT_COUNT, VERY_NOISY, Score

from ._dissection_figures import ablation_figure, unit_figure
from ._dissection_generator import batches, hidden_layers
from ._dissection_intervention import intervene
from ._dissection_layers import (
    best_layer,
    dissect_layer,
    layer_report,
    tally_layers,
    unit_thresholds,
)


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
    ranges = {
        "n": Range(low=2),
        "n_intervention": Range(low=1),
        "top_k": Range(low=1),
        "random_repeats": Range(low=1),
        "alpha": Range(0.0, 1.0, low_open=True, high_open=True),
        "quantile": Range(0.0, 1.0, low_open=True, high_open=True),
    }
    figures = ("dissection.png", "dissection-ablation.png")
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

    @torch.no_grad()
    def evaluate(self, ctx: EvalContext) -> Evaluation:
        p = self.params
        segmenter = ctx.segmenter()
        concepts = list(segmenter.concepts)
        z = ctx.model.sample_latent(p["n"], generator=ctx.rng(60)).cpu()
        modules = hidden_layers(ctx, z[:2])
        names = list(modules)
        parts = batches(p["n"], p["batch_size"])
        thresholds, image_size = unit_thresholds(ctx, z, modules, parts, p["quantile"])
        tallies = tally_layers(ctx, z, modules, parts, thresholds, image_size, segmenter)
        summaries = {
            name: dissect_layer(tallies[name], len(concepts), p["iou_threshold"], p["alpha"])
            for name in names
        }
        best = best_layer(summaries)
        s_best = summaries[best]
        level = thresholds[best].level
        ace = intervene(ctx, modules[best], s_best["iou"], s_best, level, concepts, p)
        scores = best_layer_scores(summaries, best, ace["scores"])
        pixels = p["n"] * image_size[0] * image_size[1]
        concept_count = tallies[names[0]].concept
        layers = {
            name: layer_report(
                depth,
                tallies[name],
                summaries[name],
                thresholds[name],
                concept_count,
                pixels,
                concepts,
            )
            for depth, name in enumerate(names)
        }
        report = {
            "params": p,
            "concepts": concepts,
            "concept_pixel_share": dict(
                zip(concepts, (concept_count / pixels).tolist(), strict=True)
            ),
            "label_rule": (
                f"IoU > {p['iou_threshold']} and evidence > the layer's critical_evidence "
                f"(sqrt(2 ln(units x concepts / {p['alpha']})))"
            ),
            "layers": layers,
            "best_layer": best,
            "intervention": ace["report"],
            "scores": scores,
        }
        figures = {}
        if p["figure"]:
            figures["dissection"] = unit_figure(
                ctx, modules[best], best, thresholds[best], s_best, concepts
            )
            if ace["figure"] is not None:
                figures["dissection-ablation"] = ablation_figure(ctx, *ace["figure"])
        return Evaluation(scores, reports={"dissection": report}, figures=figures)


def best_layer_scores(summaries: dict[str, dict], best: str, ace: dict[str, float]) -> dict:
    """The scores: those of the ``best`` layer, the labelled units of every layer, and the
    best layer's ``ace_*`` intervention scores."""
    s = summaries[best]
    names = list(summaries)
    return {
        "dissection_agreement": s["agreement"],
        "dissection_agreement_rolled": s["agreement_rolled"],
        "interpretable_units": float(s["interpretable"]),
        "interpretable_units_rolled": float(s["interpretable_rolled"]),
        "interpretable_share": s["interpretable_share"],
        "interpretable_units_all": float(sum(summaries[n]["interpretable"] for n in names)),
        "concepts_covered": float(len(s["concepts"])),
        "best_layer_depth": names.index(best) / max(len(names) - 1, 1),
        **ace,
    }
