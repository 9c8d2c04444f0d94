"""Attributions of the discriminator, through captum, scored for faithfulness, sanity and cost.

Seed 000 explained a DCGAN's discriminator with DeepLIFT, DeepSHAP and LIME and judged by
eye that only DeepLIFT was usable. Here every such explainer is scored by the same numbers,
on every architecture, beside a **random-attribution control** (i.i.d. uniform maps scored
the same way), so the leaderboard can say which explainer is faithful on which GAN.

What is explained: ``f(x) = discriminator_logits(x)``, D's realness logit, of ``n/2`` real
test images and ``n/2`` generated ones, with D in eval mode. Every attribution is computed
by captum (``DeepLift``, ``DeepLiftShap``, ``IntegratedGradients``, ``NoiseTunnel`` over
``Saliency``, ``Lime``; LIME by default through the vectorised path of
:mod:`ganbench.explainers._lime`, which agrees with captum's ``Lime`` on the same samples).

The **baseline** b(x) stands for "this pixel carries no evidence": by default a Gaussian
blur of the image (σ = ``blur_sigma`` pixels), or the dataset's mean image, or zeros. It is
both the reference of DeepLIFT and Integrated Gradients (so their attributions sum to about
f(x) - f(b(x))), LIME's "feature off" value and what deletion/insertion put in place of a
pixel. DeepLiftShap averages DeepLIFT over ``shap_baselines`` real training images instead.

Scores (each explainer declares the same ones; see ``SCORES``):

* **deletion / insertion** (Petsiuk et al. 2018; Samek et al. 2017): pixels are blended into
  the baseline (deletion) or back out of it (insertion) in attribution order, at
  ``curve_steps`` + 1 fractions (1 - cos(πk/steps))/2 of the pixels (fine at both ends,
  symmetric about 1/2), and D's **logit** is recorded (a probability saturates). The 0/1
  mask of taken pixels is blurred (σ = ``mask_sigma`` px) into blending weights: a hard
  pixel-wise mix of an image and its blur is full of one-pixel seams, which the trained
  smoke DCGAN scores ~-40 against ~-8 for the blur itself, whatever the order, so every
  hard-masked curve sat beyond f(b) and the random control's deletion AUC was 0.01.
  Pixels are ordered by s·a, s = sign(f(x) - f(b)), so that "most responsible for the gap
  between x and its baseline" comes first (unsigned maps, SmoothGrad's, by magnitude).
  Each image's two curves are put on one scale: D's logit range R over both curves (their
  lowest to their highest point, overshoots included), but at least ``min_response`` nats;
  ``deletion_auc`` and ``insertion_auc`` are 0.5 + s·(mean height of the curve above the
  middle of that range)/max(R, min_response), in [0, 1], averaged over images.
  **insertion_minus_deletion** (the primary score, in [-1, 1]) is their difference: since
  deletion least-relevant-first at t is insertion most-relevant-first at 1 - t, it is the
  area between the MoRF and LeRF deletion curves (Samek et al.'s MoRF/LeRF), which is 0 in
  expectation for a random order on any D; the off-data effect of blending (the same for
  both orders) cancels in it. An image on which D's logit moves less than ``min_response``
  nats over both curves (the untrained smoke Ds move ~0.01) is shrunk toward the chance
  level in proportion: a scale-free score gave those near-perfect values for reading a flat
  function exactly. ``response_nats`` reports the median R, the JSON every image's.
* **infidelity** (Yeh et al. 2019): ``infidelity_perturbations`` perturbations per image each
  drop exactly round(``infidelity_drop`` x squares) random ``infidelity_patch``-pixel squares
  to the baseline; the change the map predicts (the sum of the dropped pixels'
  attributions) is set against D's actual change, fitted with an intercept and a scale
  β >= 0: 1 - r², r their correlation clipped at 0, so 0 = the map predicts every
  perturbation's effect, 1 = it predicts nothing (comparable across discriminators). Drops
  of one size and the intercept make it about *which* pixels matter: captum's normalised
  form (β alone, either sign, drops of random size) scored a constant map 0.06 and DeepLIFT
  0.54 on the smoke DCGAN, whose logit falls with how much is dropped, and a negated map as
  well as the map. An image on which D moves less than ``min_response`` nats counts toward
  1 in proportion, as above.
* **model randomisation** (Adebayo et al. 2018), cascading from the top: the parameters of
  D's last k parameterised layers are shuffled (each tensor's values permuted, so their scale
  stays) for k = 1 … L, the maps recomputed on the same images, and the Spearman rank
  correlation of |map| with the trained D's |map| averaged over images and over k. An
  explanation of the model must change when the model is destroyed: lower is better. (An
  edge detector that ignores the model scores 1; random maps score ~0, which is why this
  is a sanity check and not a faithfulness score.)
* **sensitivity** by captum's ``sensitivity_max``: the largest relative change of the map
  (Frobenius norm of the difference over the norm of the map) under ``sensitivity_perturbations``
  uniform perturbations of L∞ radius ``sensitivity_radius``. Lower = more stable.
* **cost**: seconds per explained image of the attribution pass alone, and peak memory
  (CUDA peak allocated; on the CPU the process's resident set after the pass).

When an attribution cannot be trusted the trial says so instead of drawing a map: a
discriminator that calls a module twice in one forward (captum's DeepLIFT hooks then mix
the two calls), or on which DeepLIFT misses completeness (|Σa - (f(x) - f(b))| above
``completeness_tolerance`` of the gap on any image), is ``n/a`` for DeepLIFT and
DeepLiftShap, and a discriminator whose logit for one image depends on the rest of its
batch is ``n/a`` for every explainer. Minibatch-statistics layers that declare a
``group_size`` (StyleGAN's minibatch std) are explained with groups of one image, which
makes the logit a per-image function; the JSON report says so.

Figure ``attribution-<explainer>.png``: a real and a generated image, each beside its map.

This module holds the explainers: the base :class:`AttributionExplainer` (the evaluation,
the checks, the figure) and the five captum methods. Beside it, ``_attribution_checks``
wraps D's logit and tells when a map cannot be trusted, ``_attribution_faithfulness`` has
the baselines, curves and infidelity, ``_attribution_sanity`` model randomisation and
sensitivity, and ``_attribution_scores`` the declared scores and the pass that computes them.
A change in any of them that moves a number needs a ``version`` bump here, as one in this
module does (the golden fingerprints catch it).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ganbench.core.errors import GanbenchError, NotApplicable
from ganbench.core.evaluation import Evaluation
from ganbench.core.evaluator import EvalContext, Evaluator
from ganbench.core.params import Range
from ganbench.core.registry import register_explainer

from . import _lime
from ._attribution_checks import (
    Logit,
    batch_dependence,
    deeplift_completeness_miss,
    per_image_groups,
    reused_modules,
)
from ._attribution_faithfulness import blur, pixel_maps
from ._attribution_scores import (
    COMMON_DEFAULTS,
    CONTROLLED,
    SCORES,
    random_maps,
    score_attributions,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class AttributionExplainer(Evaluator):
    """Base of the captum explainers of D: subclasses implement :meth:`attribute`."""

    version = "2"
    family = "explainability"
    explains = "discriminator"  # ranked against the other attribution methods, per D
    requires = frozenset({"layers"})
    defaults = COMMON_DEFAULTS
    ranges = {
        "n": Range(low=2),
        "min_response": Range(low=0, low_open=True),
        "mask_sigma": Range(low=0),
        "baseline": Range(choices=("blur", "mean", "zero")),
    }
    scores = SCORES
    figures = ("attribution-{name}.png",)
    signed = True  # False: maps are magnitudes (ordered by size, not by s·a)
    deeplift_rules = False  # True: needs each module once and DeepLIFT completeness

    def attribute(
        self, model: nn.Module, x: torch.Tensor, baseline: torch.Tensor, ctx: EvalContext
    ) -> torch.Tensor:
        raise NotImplementedError

    def baseline_of(self, x: torch.Tensor, ctx: EvalContext) -> torch.Tensor:
        kind = self.params["baseline"]
        if kind == "blur":
            return blur(x, self.params["blur_sigma"])
        if kind == "mean":
            mean = ctx.dataset.split("train").images.mean(0, keepdim=True).to(x.device)
            return mean.expand_as(x).contiguous()
        return torch.zeros_like(x)

    def check(self, f: nn.Module, x: torch.Tensor, baseline: torch.Tensor) -> dict:
        """Raise NotApplicable when this explainer's map of ``f`` could not be trusted."""
        report: dict = {}
        dependence = batch_dependence(f, x[:8])
        report["batch_dependence"] = dependence
        if dependence > 1e-4:
            raise NotApplicable(
                f"{self.name}: D's logit of an image depends on the other images of its batch "
                f"(by up to {dependence:.1%}), so a per-image attribution is undefined"
            )
        if self.deeplift_rules:
            reused = reused_modules(f, x[:2])
            if reused:
                raise NotApplicable(
                    f"{self.name}: D calls {', '.join(reused)} more than once per forward; "
                    "captum's DeepLIFT hooks would mix the calls"
                )
            miss = deeplift_completeness_miss(f, x, baseline)
            report["deeplift_completeness_miss"] = miss
            if miss > self.params["completeness_tolerance"]:
                raise NotApplicable(
                    f"{self.name}: DeepLIFT's attributions miss f(x) - f(baseline) by up to "
                    f"{miss:.0%} (tolerance {self.params['completeness_tolerance']:.0%}): D has "
                    "operations without a DeepLIFT rule"
                )
        return report

    def evaluate(self, ctx: EvalContext) -> Evaluation:
        p = self.params
        f = Logit(ctx.model.discriminator).to(ctx.device).eval()
        reals = ctx.reals(p["n"] // 2, "test")
        x = torch.cat([reals, ctx.fakes(p["n"] - len(reals))]).detach()
        baseline = self.baseline_of(x, ctx)
        with per_image_groups(f) as grouped, warnings.catch_warnings():
            # captum's notes on hooks it sets and inputs it marks as requiring grad
            warnings.simplefilter("ignore", UserWarning)
            report = {
                "explained": self.name,
                "per_image_groups": grouped,
                **self.check(f, x, baseline),
            }

            def explain_with(model, inp, base):
                return self.attribute(model, inp, base, ctx)

            scores, attributions, extra = score_attributions(
                f, x, baseline, explain_with, signed=self.signed, params=p, seed=ctx.seed
            )
            control, _, control_extra = score_attributions(
                f, x, baseline, random_maps(ctx.rng(41)), signed=True, params=p, seed=ctx.seed
            )
        report.update(extra, control=control_extra)
        for name in CONTROLLED:
            scores[name + "_random"] = control[name]
        scores["explained_n"] = float(len(x))
        stem = f"attribution-{self.name}"
        figures = {stem: self.figure(x, attributions, len(reals))} if p["figure"] else {}
        return Evaluation(scores, reports={stem: {**report, "scores": scores}}, figures=figures)

    def figure(self, x: torch.Tensor, attributions: torch.Tensor, n_real: int) -> Figure:
        """A real and a generated image (the first of each among ``x``), each beside its map."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        maps = pixel_maps(attributions).cpu()
        picks = [(0, "real"), (n_real, "generated")]
        fig, axes = plt.subplots(1, 4, figsize=(7.2, 1.9))
        for k, (i, label) in enumerate(picks):
            img = ((x[i].detach().cpu().permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy()
            grey = img.shape[-1] == 1
            axes[2 * k].imshow(
                img[..., 0] if grey else img, cmap="gray" if grey else None, vmin=0, vmax=1
            )
            axes[2 * k].set_title(label, fontsize=8)
            m = maps[i].numpy()
            if self.signed:
                lim = float(np.abs(m).max()) or 1.0
                shown = axes[2 * k + 1].imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim)
            else:
                shown = axes[2 * k + 1].imshow(m, cmap="magma")
            axes[2 * k + 1].set_title(f"{self.name} map", fontsize=8)
            bar = fig.colorbar(shown, ax=axes[2 * k + 1], fraction=0.046, pad=0.04)
            bar.ax.tick_params(labelsize=6)
        for ax in axes:
            ax.set_axis_off()
        fig.suptitle(
            f"{self.name} of D's logit (red: evidence for 'real')"
            if self.signed
            else f"{self.name} of D's logit (magnitude)",
            fontsize=8,
        )
        fig.tight_layout()
        return fig


@register_explainer("deeplift")
class DeepLiftExplainer(AttributionExplainer):
    """captum DeepLift (rescale rule) of D's logit against the baseline."""

    deeplift_rules = True

    def attribute(self, model, x, baseline, ctx):
        from captum.attr import DeepLift

        return DeepLift(model).attribute(x, baselines=baseline)


@register_explainer("deepliftshap")
class DeepLiftShapExplainer(AttributionExplainer):
    """captum DeepLiftShap: DeepLIFT averaged over ``shap_baselines`` real training images."""

    deeplift_rules = True
    defaults = {**COMMON_DEFAULTS, "shap_baselines": 8}

    def attribute(self, model, x, baseline, ctx):
        from captum.attr import DeepLiftShap

        refs = ctx.reals(self.params["shap_baselines"], "train")
        return DeepLiftShap(model).attribute(x, baselines=refs)


@register_explainer("integrated_gradients")
class IntegratedGradientsExplainer(AttributionExplainer):
    """captum IntegratedGradients (Gauss-Legendre, ``steps`` points) from the baseline."""

    defaults = {**COMMON_DEFAULTS, "steps": 32}

    def attribute(self, model, x, baseline, ctx):
        from captum.attr import IntegratedGradients

        return IntegratedGradients(model).attribute(
            x, baselines=baseline, n_steps=self.params["steps"], internal_batch_size=512
        )


@register_explainer("smoothgrad")
class SmoothGradExplainer(AttributionExplainer):
    """captum NoiseTunnel(Saliency): mean |∂f/∂x| over ``samples`` noisy copies (σ = ``noise``)."""

    signed = False
    defaults = {**COMMON_DEFAULTS, "samples": 16, "noise": 0.2}

    def attribute(self, model, x, baseline, ctx):
        from captum.attr import NoiseTunnel, Saliency

        return NoiseTunnel(Saliency(model)).attribute(
            x, nt_type="smoothgrad", nt_samples=self.params["samples"], stdevs=self.params["noise"]
        )


@register_explainer("lime")
class LimeExplainer(AttributionExplainer):
    """LIME on square patches: ``samples`` perturbations (each patch kept with probability
    1/2, else set to the baseline), weighted by captum's default exponential kernel on the
    cosine distance, fitted by weighted ridge (``alpha``). ``vectorised`` (default) runs the
    batched path of :mod:`ganbench.explainers._lime`; false runs captum's ``Lime`` itself on
    the same samples."""

    defaults = {
        **COMMON_DEFAULTS,
        "patch": 4,
        "samples": 256,
        "alpha": 1.0,
        "kernel_width": 1.0,
        "vectorised": True,
    }
    ranges = AttributionExplainer.ranges | {
        "patch": Range(low=1),
        "samples": Range(low=1),
        "alpha": Range(low=0),
        "kernel_width": Range(low=0, low_open=True),
    }

    def attribute(self, model, x, baseline, ctx):
        p = self.params
        _, c, size, _ = x.shape
        if size % p["patch"]:
            raise GanbenchError(f"lime: patch {p['patch']} does not divide the image size {size}")
        mask = _lime.patch_feature_mask(c, size, p["patch"]).to(x.device)
        n_features = int(mask.max()) + 1
        # the same perturbations for every image and every call: LIME's sampling noise then
        # does not count as instability in sensitivity or randomisation
        masks = _lime.sample_lime_masks(1, n_features, p["samples"], ctx.rng(43))
        masks = masks.expand(len(x), -1, -1).to(x.device)
        run = _lime.lime_attributions if p["vectorised"] else _lime.captum_lime_attributions
        return run(
            model, x, baseline, mask, masks, kernel_width=p["kernel_width"], alpha=p["alpha"]
        )
