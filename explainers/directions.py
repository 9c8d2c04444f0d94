"""Unsupervised discovery of interpretable latent directions (Voynov & Babenko, ICML 2020:
"Unsupervised Discovery of Interpretable Directions in the GAN Latent Space").

The generator G is frozen. A matrix A of K unit directions in the latent space (d x K) and
a reconstructor R are trained together: for a latent z, a direction index k and a shift
eps, R sees the pair (G(z), G(z + eps * scale * A e_k)), concatenated on the channel
axis, and must say which direction was moved (K-way logits, cross-entropy) and by how much
(a regression of eps, L1 loss with weight 0.25). Gradients flow through G into A only. A
direction set that R can tell apart easily is one whose directions change the image in
distinct, recognisable ways: the paper's proxy for interpretability.

* **Deformator** (``deformator``): ``"ortho"`` (default, the paper's best) A = the first K
  columns of exp(S - S^T), the matrix exponential of a skew-symmetric matrix, hence
  orthonormal; S (d x d) is initialised N(0, 1) from the trial seed, so training starts
  from a random rotation (the authors' code starts near the identity, 0.001 N(0, 1), i.e.
  near the coordinate axes, which are a baseline here). ``"linear"``: a free d x K matrix
  whose columns are normalised to unit length in every forward pass.
* **Shifts**: k uniform over the K directions, eps ~ U(-``shift_scale``, ``shift_scale``)
  (6), with |eps| raised to ``min_shift`` (0.5) where it is smaller, sign kept (the
  paper's values). ``scale`` puts eps in units of the latent's own spread: the square root
  of the mean per-coordinate variance of sampled latents (measured on ``pca_samples``
  draws of ``sample_latent``): about 1 for N(0, I) latents, 1/sqrt(3) for COCO-GAN's
  U(-1, 1) ones, about 0.93 for InfoGAN's [noise | one-hot | U(-1, 1)]. Shifts of 6 such
  units leave any training support; the one-hot code of InfoGAN and the box of COCO-GAN
  are shifted like any other coordinates.
* **Reconstructor**: three stride-2 3x3 convolutions (BatchNorm, ReLU) of widths w, 2w, 4w
  (w = ``reconstructor_width``), 2x2 average pooling, a hidden layer and the two heads:
  a small stand-in for the paper's LeNet (MNIST) and ResNet-18 (other datasets).
* **Optimisation**: Adam, ``lr`` 1e-4 for A and R (the paper's), ``batch_size`` 32,
  ``steps`` (default 2000; the paper trains 1e5 steps, far beyond a benchmark matrix on
  CPUs). At a few hundred steps lr 1e-4 leaves every arm near chance: measured on a DCGAN
  of width 32 after 50 training steps (K = 16, 400 steps, chance 0.06), rca 0.10 and
  rca_random 0.08 at lr 1e-4, but rca 0.81, rca_random 0.61, rca_sefa 0.47,
  rca_ganspace 0.42 and rca_coordinate 0.34 at lr 1e-3: short budgets want a larger lr.
  (Scores are reproducible for a fixed thread count; another count changes the float
  rounding and, slightly, the scores.)

**Reconstruction classification accuracy** (RCA, the paper's metric): on ``eval_samples``
fresh (z, k, eps) drawn as in training (k balanced over the directions), the share for
which R names k. A pair whose shifted image changes no pixel by one 8-bit step (2/255 in
[-1, 1]) counts as a miss whatever R says: before, R named a direction the decoder ignores
by its null effect, so an inert direction scored high (the JSON gives each arm's share of
such invisible shifts). RCA is declared **not ranked** (``"none"``): it measures how
distinguishable the K image changes are, not whether a direction is interpretable, and
random mixtures of factors and untrained generators are distinguishable too. On a planted
generator (3 factor directions, a random rotation in a 16-d latent, the rest inert;
tests/test_direction_recovery.py) RCA scores random directions 0.64 and SeFa, which finds
the three exactly, 0.50 at K = 6 (its other three are inert); at K = 3 learned directions
whose squared cosines with their factors' directions are 0.27-0.53 score 0.98 (SeFa, exact,
0.99; the axis-aligned blob of tests/test_directions.py). ``recovery`` ranks them by what
they recover. The same protocol, with a fresh reconstructor trained for the same number of
steps and A held fixed, scores four baselines:

* ``random``: K random orthonormal directions (QR of a seeded Gaussian d x K);
* ``coordinate``: K coordinate axes (a seeded random subset of the d; all when K = d);
* ``ganspace`` (Härkönen et al., NeurIPS 2020, the BigGAN recipe): PCA of the first hidden
  generator layer's activations (the first entry of ``generator_layers()`` whose output is
  a 4-D or 2-D tensor other than the image, flattened) over ``pca_samples`` latents; the
  latent directions are the rows of the least-squares regression of (centred) z on the
  top-K PCA coordinates, each normalised;
* ``sefa`` (Shen & Zhou, CVPR 2021): the top-K eigenvectors of W^T W, W the generator's
  first weight that reads the latent: the first module, in the order of ``modules()`` of
  ``generator_ema`` (when the architecture has one) else ``generator``, that is a
  ConvTranspose2d with d input channels (weight (d, out, kh, kw) read as (out*kh*kw, d))
  or has a 2-D weight (out, in) with in >= d (its first d columns: COCO-GAN's stem also
  reads the coordinate). Where no such module exists, W is the Jacobian of the first
  hidden layer's output at z = 0 (``torch.autograd.functional.jacobian``); the JSON says
  which.

All arms are trained in lockstep on the same (z, k, eps) and G(z) each step and evaluated
on the same fresh samples: a paired comparison.

**Explainers** (the runner wants every declared score of an evaluator, as finite floats,
so scores that apply only to some architectures or datasets live in their own evaluators,
whose requirements make them n/a elsewhere):

* ``directions`` — the above in the architecture's input latent (Z; for StyleGAN the
  mapping network is part of G). Scores ``rca`` (control ``rca_random``),
  ``rca_coordinate``, ``rca_ganspace``, ``rca_sefa``, ``rca_chance`` (1/K), ``eps_mae``.
* ``directions_w`` (capability ``styles``: StyleGAN) — the same in W: shifts on
  w = mapping(z), truncated with the model's ``truncation_psi`` as ``generate`` does, then
  ``generate_from_w``; ``scale`` measured on w. GANSpace = PCA of w samples (the
  principal axes themselves, the StyleGAN recipe); SeFa = eigenvectors of W^T W for W the
  style affines' weights (each (in_channels, w_dim)) stacked, every row normalised to unit
  length as in the authors' code. Scores ``rca_w`` ... ``eps_w_mae``.
* ``directions_factors`` (datasets with factors and a domain network: shapes) — how well
  the same learned directions and baselines **recover the ground-truth factors**, beyond
  the paper: :mod:`ganbench.explainers.directions_factors`.

Artifacts: ``directions.json`` / ``directions-w.json`` / ``directions-factors.json`` (K, d,
scale, steps, every RCA and eps error, per-direction accuracies, the learned A, the layers
GANSpace and SeFa read, the share of invisible shifts; for factors each arm's R and
summaries, the factor variances, the labels) and the
traversal figures ``directions.png`` / ``directions-w.png`` / ``directions-factors.png``:
the ``top_k`` (8) learned directions with the highest per-direction accuracy, for one z,
columns eps in linspace(-shift_scale, shift_scale, 7) * scale, rows labelled with the
direction, its accuracy (and its factor).

Cost (``directions``): per step one G(z) batch, one shifted batch with backward through G
for the learned A (and the matrix exponential's), one shifted batch per baseline and five
reconstructor steps; then 5 x 2 x ``eval_samples`` images and ``pca_samples`` for GANSpace.
Measured at K = 16, 400 steps of 32, 512 evaluation samples on a DCGAN of width 32 (32x32
digits), one CPU thread shared with other jobs: 34-42 s, ~80 ms a step (generator ~45 ms,
the five reconstructors ~23 ms), cost linear in ``steps``. ``directions_factors`` trains
the learned arm only (~30 ms a step there) and adds ``pca_samples`` generator passes for
GANSpace, ``n_align`` images and ``n_align`` real ones read by the domain network (the
same images serve every arm).

Where the code is: the latent space and the direction sets in
:mod:`~ganbench.explainers.directions_latent`, the reconstructors and RCA in
:mod:`~ganbench.explainers.directions_rca`, the factor measures in
:mod:`~ganbench.explainers.directions_recovery`, and what the three explainers share (the
run's state, setup, training, report and figure) in ``_directions_base.py``.
"""

from __future__ import annotations

import torch

from ganbench.core.evaluation import Evaluation
from ganbench.core.evaluator import EvalContext
from ganbench.core.registry import register_explainer
from ganbench.core.scores import EXACT, NOISY, VERY_NOISY, Score

from ._directions_base import BASE_DEFAULTS, DirectionsBase, DirectionsRun
from .directions_latent import complete_directions, frozen, pca_axes, sefa_directions


def _rca_scores(suffix: str, space: str) -> tuple[Score, ...]:
    """The scores of ``directions`` (suffix "", space "z") or ``directions_w`` ("_w", "w")."""
    return _learned_scores(suffix, space) + _baseline_scores(suffix, space)


def _learned_scores(suffix: str, space: str) -> tuple[Score, ...]:
    """RCA of the learned directions, its random control and the shift's error."""
    where = "W (w = mapping(z))" if space == "w" else "the latent z"
    pair = "(G(w), G(w + eps*scale*A_k))" if space == "w" else "(G(z), G(z + eps*scale*A_k))"
    return (
        # not ranked: RCA measures how distinguishable K image changes are, which random
        # mixtures of factors and untrained generators have too; on a planted generator it
        # ranks directions that recover no factor above ones that recover every factor
        # exactly (tests/test_directions.py). directions_factors ranks recovery instead.
        Score(
            f"rca{suffix}",
            "none",
            f"reconstruction classification accuracy of the K directions learned in {where}: "
            f"share of fresh pairs {pair}, eps in ±[0.5, 6], for which the jointly trained "
            "reconstructor names the moved direction k (a shift that changes no pixel by an "
            "8-bit step counts as a miss); how distinguishable the directions' effects are, "
            "not whether they are interpretable: not ranked",
            ideal=1.0,
            control=f"rca{suffix}_random",
            tolerance=NOISY,
        ),
        Score(
            f"rca{suffix}_random",
            "none",
            "the same accuracy for K random orthonormal directions (a fresh reconstructor "
            "trained as long, directions fixed): the control",
            primary=False,
            tolerance=NOISY,
        ),
    )


def _baseline_scores(suffix: str, space: str) -> tuple[Score, ...]:
    """RCA of the three baselines, the chance level and the learned arm's shift error."""
    where = "W (w = mapping(z))" if space == "w" else "the latent z"
    return (
        # the baselines are descriptive columns (each is this generator's own latent
        # structure read another way), not ranked across architectures
        Score(
            f"rca{suffix}_coordinate",
            "none",
            f"the same accuracy for K coordinate axes of {where} (baseline)",
            tolerance=NOISY,
        ),
        Score(
            f"rca{suffix}_ganspace",
            "none",
            "the same for GANSpace's top-K principal directions"
            + (" (PCA of w)" if space == "w" else " (PCA of the first hidden layer)")
            + " (baseline)",
            tolerance=NOISY,
        ),
        Score(
            f"rca{suffix}_sefa",
            "none",
            "the same for SeFa's top-K eigenvectors of W^T W, W "
            + ("the style affines' weights" if space == "w" else "the first latent-reading weight")
            + " (baseline)",
            tolerance=NOISY,
        ),
        Score(
            f"rca{suffix}_chance",
            "none",
            "chance level of the accuracy: 1/K",
            primary=False,
            tolerance=EXACT,
        ),
        Score(
            f"eps{suffix}_mae",
            "lower",
            "mean absolute error of the learned reconstructor's estimate of the shift eps "
            "(in units of scale; eps uniform in ±[0.5, 6])",
            primary=False,
            tolerance=VERY_NOISY,
        ),
    )


@register_explainer("directions")
class DirectionsExplainer(DirectionsBase):
    """Unsupervised latent directions (Voynov & Babenko 2020) in z: reconstruction accuracy of
    the learned directions against random, coordinate, GANSpace and SeFa directions."""

    version = "2"
    family = "explainability"
    requires = frozenset({"layers"})
    defaults = dict(BASE_DEFAULTS)
    scores = _rca_scores("", "z")
    figures = ("directions.png",)
    space_kind, artifact, suffix = "z", "directions", ""

    def evaluate(self, ctx: EvalContext) -> Evaluation:
        with frozen(ctx.model):
            run, results, report = self.run_rca(ctx)
            scores = self.rca_scores(run, results)
            report["scores"] = scores
            figures = self.traversal_figures(ctx, run, results["learned"]["per_direction"])
        return Evaluation(scores, reports={self.artifact: report}, figures=figures)

    def rca_scores(self, run: DirectionsRun, results: dict[str, dict]) -> dict[str, float]:
        """The declared scores from each arm's :func:`reconstruction_accuracy`."""
        x = self.suffix
        return {
            f"rca{x}": results["learned"]["accuracy"],
            f"rca{x}_random": results["random"]["accuracy"],
            f"rca{x}_coordinate": results["coordinate"]["accuracy"],
            f"rca{x}_ganspace": results["ganspace"]["accuracy"],
            f"rca{x}_sefa": results["sefa"]["accuracy"],
            f"rca{x}_chance": 1.0 / run.k,
            f"eps{x}_mae": results["learned"]["eps_mae"],
        }


@register_explainer("directions_w")
class DirectionsWExplainer(DirectionsExplainer):
    """The same discovery in StyleGAN's W: shifts on w = mapping(z), truncated as ``generate``
    does; GANSpace = PCA of w, SeFa = eigenvectors of the style affines' weights."""

    version = "2"
    family = "explainability"
    requires = frozenset({"layers", "styles"})
    defaults = dict(BASE_DEFAULTS)
    scores = _rca_scores("_w", "w")
    figures = ("directions-w.png",)
    space_kind, artifact, suffix = "w", "directions-w", "_w"

    def ganspace(
        self, ctx: EvalContext, run: DirectionsRun, g: torch.Generator
    ) -> tuple[torch.Tensor, dict]:
        """GANSpace in W: the principal axes of the w samples themselves."""
        axes, share = pca_axes(run.samples.cpu(), run.k)
        info = {
            "layer": "w",
            "samples": len(run.samples),
            "explained_variance": share.tolist(),
            "method": "PCA of w samples; the principal axes are the directions",
        }
        return complete_directions(axes, run.k, g), info

    def sefa(
        self, ctx: EvalContext, run: DirectionsRun, g: torch.Generator
    ) -> tuple[torch.Tensor, dict]:
        """SeFa in W: the style affines' weights stacked, each row at unit length."""
        layers = ctx.model.generator_ema.synthesis.layer_index()
        weight = torch.cat([layer.affine.weight.detach() for layer, _ in layers.values()])
        dirs, values = sefa_directions(weight, run.k, normalise_rows=True)
        info = {
            "layer": "style affines: " + ", ".join(layers),
            "source": "weight (rows normalised to unit length, as in the authors' code)",
            "rows": weight.shape[0],
            "eigenvalues": values.tolist(),
        }
        return dirs, info
