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
* ``directions_factors`` (datasets with factors and a domain network: shapes) —
  **recovery of the ground-truth factors**, beyond the paper. A is trained exactly as
  ``directions`` trains it (same streams: with the same parameters and seed it is the same
  A); the four baselines are built as there (no reconstructors: recovery needs none).
  ``n_align`` fresh latents are rendered and the domain network's factor heads read each
  factor on the images (categorical: the class, as a one-hot vector; regression: the
  value). A direction's movement is each latent's coordinate along it, (z - mean z) . A_k;
  cut into B = min(``bins``, sqrt(n_align)) equal-frequency bins, it explains a share of
  factor f: the between-bin sum of squares less what B - 1 bins explain by chance
  (SS_B - (B - 1) SS_W / (N - B), at least 0), over N times the larger of f's variance
  on the generated images and its variance as the same network reads it on ``n_align``
  real test images (Gini impurity for a categorical factor). R[k, f] is thus a
  chance-corrected R^2 (0 for a direction the images do not depend on, about cos^2 to a
  planted factor direction for a mixture, near 1 for the factor's own direction) that a
  generator varying the factor less than the data cannot fill. ``recovery`` = the mean
  over factors of max_k R[k, f] (control ``recovery_random``; ``recovery_coordinate``,
  ``_ganspace``, ``_sefa`` for the baselines); ``sap`` (Kumar et al. 2018, with R as the
  per-code score) = the mean over factors of the best minus the second best R[k, f]
  (1: each factor carried by one direction alone), for every arm. The JSON adds per arm the
  directions, R, the best direction per factor, DCI disentanglement and completeness
  (Eastwood & Williams 2018, R as the importance matrix) and MIG (Chen et al. 2018: plug-in
  mutual information of binned coordinates and binned factors, over H(f); scale-free, so
  it does not see a factor the generator hardly varies). Each learned direction is
  labelled with the factor it explains most where its share beats every random
  direction's share of that factor.

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
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ganbench.core.evaluator import EvalContext, Evaluator
from ganbench.core.plots import traversal_figure
from ganbench.core.registry import register_explainer
from ganbench.core.scores import EXACT, NOISY, VERY_NOISY, Score

ARMS = ("learned", "random", "coordinate", "ganspace", "sefa")
# ctx.rng streams (other explainers use 10-11, 40, 50-51)
S_DEFORMATOR, S_TRAIN, S_BASELINES, S_SAMPLES, S_EVAL, S_INIT, S_FIGURE, S_ALIGN = range(60, 68)


# --- pieces ------------------------------------------------------------------------------
def sample_shifts(
    n: int, generator: torch.Generator, shift_scale: float = 6.0, min_shift: float = 0.5
) -> torch.Tensor:
    """eps ~ U(-shift_scale, shift_scale), |eps| raised to at least ``min_shift`` (sign kept,
    0 counts as positive), shape (n,)."""
    eps = (torch.rand(n, generator=generator) * 2 - 1) * shift_scale
    sign = torch.where(eps < 0, -1.0, 1.0)
    return torch.where(eps.abs() < min_shift, sign * min_shift, eps)


class OrthoDeformator(nn.Module):
    """A = the first k columns of exp(S - S^T): orthonormal for any S; S ~ N(0, 1) (d, d)."""

    def __init__(self, d: int, k: int, generator: torch.Generator) -> None:
        super().__init__()
        self.k = k
        self.log_half = nn.Parameter(torch.randn(d, d, generator=generator))

    def forward(self) -> torch.Tensor:
        s = self.log_half
        return torch.linalg.matrix_exp(s - s.t())[:, : self.k]


class LinearDeformator(nn.Module):
    """A free d x k matrix (initialised N(0, 1)) whose columns are used at unit length."""

    def __init__(self, d: int, k: int, generator: torch.Generator) -> None:
        super().__init__()
        self.matrix = nn.Parameter(torch.randn(d, k, generator=generator))

    def forward(self) -> torch.Tensor:
        return self.matrix / self.matrix.norm(dim=0, keepdim=True).clamp_min(1e-8)


def make_deformator(kind: str, d: int, k: int, generator: torch.Generator) -> nn.Module:
    if kind == "ortho":
        return OrthoDeformator(d, k, generator)
    if kind == "linear":
        return LinearDeformator(d, k, generator)
    raise ValueError(f"directions: deformator must be 'ortho' or 'linear', got {kind!r}")


class Reconstructor(nn.Module):
    """(x, x_shifted) concatenated on channels -> (logits over k directions, eps estimate)."""

    def __init__(self, channels: int, k: int, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = 2 * channels
        for out in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(c, out, 3, 2, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
            c = out
        self.trunk = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.hidden = nn.Sequential(nn.Linear(16 * width, 8 * width), nn.ReLU())
        self.logits = nn.Linear(8 * width, k)
        self.shift = nn.Linear(8 * width, 1)

    def forward(self, x: torch.Tensor, shifted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.hidden(self.trunk(torch.cat([x, shifted], dim=1)))
        return self.logits(h), self.shift(h)[:, 0]


def random_orthonormal(d: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """k random orthonormal directions (d, k): Q of the QR of a Gaussian d x k matrix."""
    q, r = torch.linalg.qr(torch.randn(d, k, generator=generator, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r)).where(torch.diagonal(r) != 0, 1.0)).float()


def coordinate_axes(d: int, k: int, generator: torch.Generator) -> tuple[torch.Tensor, list[int]]:
    """k coordinate axes (d, k): all of them in order when k = d, else a random subset (sorted)."""
    axes = list(range(d)) if k >= d else sorted(torch.randperm(d, generator=generator)[:k].tolist())
    return torch.eye(d)[:, axes], axes


def _complete(a: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Columns of ``a`` (d, m <= k), topped up to k with random unit directions orthogonal
    to them (where a decomposition yields fewer than k)."""
    d, m = a.shape
    if m >= k:
        return a[:, :k]
    extra = torch.randn(d, k - m, generator=generator, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.cat([a.double(), extra], dim=1))
    return torch.cat([a, q[:, m:k].float()], dim=1)


def pca_axes(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The top-k principal axes (D, k') of samples x (N, D), k' = min(k, N - 1, D), and the
    share of the variance each explains."""
    x = x.double()
    x = x - x.mean(0)
    n, dim = x.shape
    k = min(k, max(n - 1, 1), dim)
    if n < dim:  # the eigenvectors of the smaller Gram matrix x x^T give the same axes
        var, u = torch.linalg.eigh(x @ x.t())
        order = var.argsort(descending=True, stable=True)[:k]
        var_k = var[order].clamp_min(0)
        axes = x.t() @ u[:, order] / var_k.sqrt().clamp_min(1e-30)
        total = var.clamp_min(0).sum()
    else:
        var, v = torch.linalg.eigh(x.t() @ x)
        order = var.argsort(descending=True, stable=True)[:k]
        var_k, axes = var[order].clamp_min(0), v[:, order]
        total = var.clamp_min(0).sum()
    return axes.float(), (var_k / total.clamp_min(1e-30)).float()


def ganspace_directions(features: torch.Tensor, z: torch.Tensor, k: int) -> torch.Tensor:
    """GANSpace for a latent feeding a layer: PCA of the layer's features (N, D) of latents z
    (N, d), then the least-squares regression of centred z on the top-k PCA coordinates;
    each regressed direction (a row of the coefficients) normalised, as columns (d, k')."""
    f = features.double().flatten(1)
    axes, _ = pca_axes(f, k)
    coords = (f - f.mean(0)) @ axes.double()  # (N, k')
    zc = z.double() - z.double().mean(0)
    coef = torch.linalg.lstsq(coords, zc).solution  # (k', d): z ~ coords @ coef
    return (coef / coef.norm(dim=1, keepdim=True).clamp_min(1e-30)).t().float()


def sefa_directions(
    weight: torch.Tensor, k: int, normalise_rows: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """SeFa: the top-k eigenvectors (d, k) of W^T W for W (out, d), and their eigenvalues.
    ``normalise_rows``: each row of W at unit length first (the authors' StyleGAN code)."""
    w = weight.detach().double().cpu()
    if normalise_rows:
        w = w / w.norm(dim=1, keepdim=True).clamp_min(1e-30)
    values, vectors = torch.linalg.eigh(w.t() @ w)  # ascending
    order = values.argsort(descending=True, stable=True)[:k]
    return vectors[:, order].float(), values[order].float()


def latent_weight(model, d: int) -> tuple[str, torch.Tensor] | None:
    """The generator's first weight that reads the latent, as (out, d), with its module name;
    None when the generator has no such module (see the module doc)."""
    net = getattr(model, "generator_ema", None)
    if not isinstance(net, nn.Module):
        net = getattr(model, "generator", None)
    if not isinstance(net, nn.Module):
        return None
    for name, module in net.named_modules():
        if isinstance(module, nn.ConvTranspose2d):
            w = module.weight
            if w.shape[0] == d:  # (in = d, out, kh, kw) -> (out * kh * kw, d)
                return name, w.detach().permute(1, 2, 3, 0).reshape(-1, d)
            continue
        if isinstance(module, nn.Conv2d):
            continue
        w = getattr(module, "weight", None)
        if isinstance(w, torch.Tensor) and w.dim() == 2 and w.shape[1] >= d:
            return name, w.detach()[:, :d]
    return None


@contextlib.contextmanager
def frozen(model):
    """The model's networks in eval mode with requires_grad off; restored on exit."""
    nets = model.networks().values() if callable(getattr(model, "networks", None)) else []
    nets = [n for n in nets if isinstance(n, nn.Module)]
    if not nets:
        nets = [
            getattr(model, a)
            for a in ("generator", "generator_ema")
            if isinstance(getattr(model, a, None), nn.Module)
        ]
    modes = [(m, m.training) for net in nets for m in net.modules()]
    flags = [(p, p.requires_grad) for net in nets for p in net.parameters()]
    for net in nets:
        net.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode
        for p, flag in flags:
            p.requires_grad_(flag)


class LatentSpace:
    """Where directions live: ``sample(n, g)`` latents, ``render(latent)`` images in [-1, 1].

    ``"z"``: the architecture's input latent and ``generate``; ``"w"`` (capability
    ``styles``): w = mapping(z), images generate_from_w(truncate(w, psi)).
    """

    def __init__(self, model, kind: str = "z", device: torch.device | str = "cpu") -> None:
        self.model, self.kind, self.device = model, kind, torch.device(device)
        if kind == "w":
            params = getattr(model, "params", {}) or {}
            self.psi = float(params.get("truncation_psi", 1.0))
            self.dim = int(model.w_avg.shape[-1])
        elif kind == "z":
            self.dim = int(model.latent_dim)
        else:
            raise ValueError(f"latent space must be 'z' or 'w', got {kind!r}")

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        z = self.model.sample_latent(n, generator=generator).to(self.device)
        return self.model.mapping(z) if self.kind == "w" else z

    def render(self, latent: torch.Tensor) -> torch.Tensor:
        if self.kind == "w":
            w = self.model.truncate(latent, self.psi)
            return self.model.generate_from_w(w).clamp(-1, 1)
        return self.model.generate(latent).clamp(-1, 1)

    @torch.no_grad()
    def render_batched(self, latent: torch.Tensor, batch_size: int) -> torch.Tensor:
        return torch.cat(
            [self.render(latent[i : i + batch_size]) for i in range(0, len(latent), batch_size)]
        )


def latent_scale(samples: torch.Tensor) -> float:
    """sqrt of the mean per-coordinate variance of latent samples (N, d)."""
    return float(samples.double().var(dim=0).mean().sqrt())


def first_hidden_layer(model, z: torch.Tensor) -> tuple[str, nn.Module] | None:
    """The first entry of ``generator_layers()`` whose output (for a batch z) is a 4-D or
    2-D tensor with one row per latent that is not the generated image itself."""
    layers = model.generator_layers()
    outputs: dict[str, Any] = {}

    def record(name):
        def hook(module, inputs, output):
            outputs.setdefault(name, output)

        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in layers.items()]
    try:
        with torch.no_grad():
            x = model.generate(z)
    finally:
        for h in handles:
            h.remove()
    for name, module in layers.items():
        out = outputs.get(name)
        if not isinstance(out, torch.Tensor) or out.dim() not in (2, 4) or len(out) != len(z):
            continue
        if out.shape == x.shape and torch.allclose(out.clamp(-1, 1), x.clamp(-1, 1), atol=1e-5):
            continue
        return name, module
    return None


def layer_outputs(
    model, module: nn.Module, z: torch.Tensor, batch_size: int, grad: bool = False
) -> torch.Tensor:
    """``module``'s output for the latents z, flattened per latent (N, D)."""
    parts: list[torch.Tensor] = []

    def hook(m, inputs, output):
        parts.append(output.flatten(1) if grad else output.detach().flatten(1))

    handle = module.register_forward_hook(hook)
    try:
        with torch.enable_grad() if grad else torch.no_grad():
            for i in range(0, len(z), batch_size):
                model.generate(z[i : i + batch_size])
    finally:
        handle.remove()
    return torch.cat(parts)


def jacobian_weight(model, module: nn.Module, d: int, device) -> torch.Tensor:
    """The Jacobian (D, d) of ``module``'s flattened output at z = 0."""

    def f(z):
        return layer_outputs(model, module, z[None], 1, grad=True)[0]

    return torch.autograd.functional.jacobian(f, torch.zeros(d, device=device)).detach()


# --- training and evaluating reconstructors ----------------------------------------------
def _seeded(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def train_arms(
    space: LatentSpace,
    arms: dict[str, torch.Tensor | nn.Module],
    *,
    k: int,
    scale: float,
    steps: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    init_seed: int,
    channels: int,
    shift_scale: float = 6.0,
    min_shift: float = 0.5,
    shift_weight: float = 0.25,
    width: int = 16,
) -> tuple[dict[str, Reconstructor], list[dict[str, float]]]:
    """Train one fresh reconstructor per arm, in lockstep on the same (z, k, eps) and G(z).

    An arm is either fixed directions (d, k) or a deformator module (trained with its
    reconstructor; gradients flow through the frozen generator). Arm i's reconstructor is
    initialised from ``init_seed + i``. Returns the reconstructors (eval mode) and a
    loss log (every ~10% of the steps).
    """
    names = list(arms)
    arms = {n: a if isinstance(a, nn.Module) else a.to(space.device) for n, a in arms.items()}
    recs = {
        n: _seeded(init_seed + i, lambda: Reconstructor(channels, k, width)).to(space.device)
        for i, n in enumerate(names)
    }
    params: list[nn.Parameter] = [p for r in recs.values() for p in r.parameters()]
    params += [p for a in arms.values() if isinstance(a, nn.Module) for p in a.parameters()]
    opt = torch.optim.Adam(params, lr=lr)
    log: list[dict[str, float]] = []
    every = max(1, steps // 10)
    for r in recs.values():
        r.train()
    for step in range(steps):
        z = space.sample(batch_size, generator)
        target = torch.randint(0, k, (batch_size,), generator=generator).to(space.device)
        eps = sample_shifts(batch_size, generator, shift_scale, min_shift).to(space.device)
        with torch.no_grad():
            x0 = space.render(z)
        total = torch.zeros((), device=space.device)
        losses, correct = {}, {}
        for name in names:
            arm = arms[name]
            trainable = isinstance(arm, nn.Module)
            a = arm() if trainable else arm
            shift = (eps * scale)[:, None] * a.t()[target]
            with contextlib.nullcontext() if trainable else torch.no_grad():
                x1 = space.render(z + shift)
            logits, eps_hat = recs[name](x0, x1)
            loss = F.cross_entropy(logits, target) + shift_weight * (eps_hat - eps).abs().mean()
            total = total + loss
            losses[name] = loss.detach()
            correct[name] = (logits.detach().argmax(1) == target).float().mean()
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        if step % every == 0 or step == steps - 1:
            log.append(
                {"step": step}
                | {f"loss_{n}": float(v) for n, v in losses.items()}
                | {f"train_accuracy_{n}": float(v) for n, v in correct.items()}
            )
    for r in recs.values():
        r.eval()
    return recs, log


# A shift whose image differs from the unshifted one by less than one step of an 8-bit image
# ([-1, 1] in 255 steps) at every pixel cannot be seen: RCA counts it as a miss, whatever the
# reconstructor says (else a direction the decoder ignores is "recognised" by its null effect).
VISIBLE = 2.0 / 255.0


@torch.no_grad()
def reconstruction_accuracy(
    space: LatentSpace,
    directions: torch.Tensor,
    reconstructor: Reconstructor,
    *,
    n: int,
    scale: float,
    generator: torch.Generator,
    batch_size: int = 256,
    shift_scale: float = 6.0,
    min_shift: float = 0.5,
) -> dict[str, Any]:
    """RCA on n fresh (z, k, eps): k balanced over the directions (n // K or one more each).
    A pair whose shifted image changes no pixel by ``VISIBLE`` or more is a miss. Returns
    accuracy, per-direction accuracy (None for a direction never drawn), the share of
    invisible shifts (overall and per direction) and the mean absolute error of the eps
    estimate."""
    k = directions.shape[1]
    z = space.sample(n, generator)
    target = (torch.randperm(n, generator=generator) % k).to(space.device)
    eps = sample_shifts(n, generator, shift_scale, min_shift).to(space.device)
    a = directions.to(space.device)
    hits, errors, seen = [], [], []
    for i in range(0, n, batch_size):
        sl = slice(i, i + batch_size)
        x0 = space.render(z[sl])
        x1 = space.render(z[sl] + (eps[sl] * scale)[:, None] * a.t()[target[sl]])
        logits, eps_hat = reconstructor(x0, x1)
        visible = (x1 - x0).abs().flatten(1).amax(1) >= VISIBLE
        seen.append(visible.cpu())
        hits.append(((logits.argmax(1) == target[sl]) & visible).float().cpu())
        errors.append((eps_hat - eps[sl]).abs().cpu())
    hit, err, t = torch.cat(hits), torch.cat(errors), target.cpu()
    invisible = (~torch.cat(seen)).float()
    per = [float(hit[t == j].mean()) if bool((t == j).any()) else None for j in range(k)]
    per_invisible = [
        float(invisible[t == j].mean()) if bool((t == j).any()) else None for j in range(k)
    ]
    return {
        "accuracy": float(hit.mean()),
        "per_direction": per,
        "invisible": float(invisible.mean()),
        "per_direction_invisible": per_invisible,
        "eps_mae": float(err.mean()),
    }


def train_reconstructor(
    model,
    directions: torch.Tensor,
    *,
    steps: int = 400,
    batch_size: int = 32,
    lr: float = 1e-4,
    eval_samples: int = 512,
    seed: int = 0,
    space: str = "z",
    width: int = 16,
    scale: float | None = None,
    details: bool = False,
) -> float | dict[str, Any]:
    """RCA of fixed ``directions`` (d, K) of a model's latent: a fresh reconstructor trained
    ``steps`` steps, then scored on ``eval_samples`` fresh samples (all seeded by ``seed``).
    ``details``: the whole result of :func:`reconstruction_accuracy`, not only the accuracy."""
    g = torch.Generator().manual_seed(seed)
    latent = LatentSpace(model, space)
    with frozen(model):
        if scale is None:
            scale = latent_scale(latent.sample(1024, g))
        channels = latent.render(latent.sample(1, g)).shape[1]
        recs, _ = train_arms(
            latent,
            {"fixed": directions},
            k=directions.shape[1],
            scale=scale,
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            generator=g,
            init_seed=seed,
            channels=channels,
            width=width,
        )
        out = reconstruction_accuracy(
            latent, directions, recs["fixed"], n=eval_samples, scale=scale, generator=g
        )
    return out if details else out["accuracy"]


# --- recovery of known factors -----------------------------------------------------------
def factor_targets(pred: dict[str, torch.Tensor], heads) -> list[torch.Tensor]:
    """Each factor read by a head as an (N, m) float64 target: the value (m = 1) for a
    regression, the one-hot class (m = levels) for a categorical factor. The total variance
    of a one-hot target (mean squared distance from its mean) is the Gini impurity."""
    out = []
    for h in heads:
        v = pred[h.name].detach().cpu()
        if h.levels > 0:
            out.append(F.one_hot(v.long().clamp(0, h.levels - 1), h.levels).double())
        else:
            out.append(v.double().reshape(-1, 1))
    return out


def total_variance(target: torch.Tensor) -> float:
    """Mean squared distance of the rows of an (N, m) target from their mean."""
    return float(((target - target.mean(0)) ** 2).sum(1).mean()) if len(target) else 0.0


def effective_bins(n: int, bins: int) -> int:
    """Bins for n samples: at most ``bins`` and at most sqrt(n) (at least 2)."""
    return max(2, min(bins, math.isqrt(max(n, 4))))


def rank_bins(coords: torch.Tensor, bins: int) -> torch.Tensor:
    """Equal-frequency bins (N, K) in [0, bins) of each column of ``coords`` (N, K), by rank
    (ties split by sample order): every bin holds N // bins or one more sample."""
    n = coords.shape[0]
    order = coords.argsort(dim=0, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(0, order, torch.arange(n).view(-1, 1).expand_as(order).contiguous())
    return ranks * bins // n


def explained_shares(
    coords: torch.Tensor,
    targets: list[torch.Tensor],
    reference_variance: list[float],
    bins: int = 16,
) -> torch.Tensor:
    """R (K, F): how much of factor f, as read on the images of N latents, movement along
    direction k explains. Direction k's coordinate (N,) is cut into equal-frequency bins; the
    between-bin sum of squares of target f, less what B - 1 bins explain by chance
    (epsilon-squared: SS_B - (B - 1) * SS_W / (N - B), at least 0), per sample, divided by
    the larger of the factor's variance on the generated images and ``reference_variance[f]``
    (its variance as the same reader sees it on real images). So R is an R^2 against the
    mean of the bin, chance-corrected (about 0 for a coordinate the images do not depend
    on), that a generator which varies a factor less than the data does cannot fill."""
    n, k = coords.shape
    b = effective_bins(n, bins)
    if n <= b:
        return torch.zeros(k, len(targets))
    idx = (rank_bins(coords, b) + b * torch.arange(k).view(1, -1)).flatten()  # sample-major
    counts = torch.zeros(k * b, dtype=torch.float64).index_add_(
        0, idx, torch.ones(n * k, dtype=torch.float64)
    )
    out = torch.zeros(k, len(targets), dtype=torch.float64)
    for f, (t, ref) in enumerate(zip(targets, reference_variance, strict=True)):
        tc = t - t.mean(0)
        ss_t = float((tc**2).sum())
        denominator = max(ss_t / n, ref)
        if ss_t <= 0 or denominator <= 0:
            continue
        sums = torch.zeros(k * b, t.shape[1], dtype=torch.float64)
        sums.index_add_(0, idx, tc.repeat_interleave(k, dim=0))
        ss_b = ((sums**2).sum(1) / counts.clamp_min(1)).view(k, b).sum(1)  # (K,)
        ms_w = (ss_t - ss_b).clamp_min(0) / (n - b)
        explained = (ss_b - (b - 1) * ms_w).clamp_min(0) / n
        out[:, f] = (explained / denominator).clamp(0, 1)
    return out.float()


def recovery_summary(shares: torch.Tensor, names: list[str]) -> dict[str, Any]:
    """From R (K, F): ``recovery``, the mean over factors of the best single direction's
    share; ``sap``, the mean over factors of the best minus the second best (the SAP score of
    Kumar et al. 2018, with R in place of its per-code R^2 or accuracy); per factor the best
    share and direction; and DCI's disentanglement and completeness (Eastwood & Williams
    2018) with R as the importance matrix."""
    r = shares.double()
    k, nf = r.shape
    top = r.sort(dim=0, descending=True).values
    best = top[0] if k else torch.zeros(nf, dtype=torch.float64)
    second = top[1] if k > 1 else torch.zeros(nf, dtype=torch.float64)
    return {
        "recovery": float(best.mean()) if nf else 0.0,
        "sap": float((best - second).mean()) if nf else 0.0,
        "best_share": dict(zip(names, best.tolist(), strict=True)),
        "best_direction": dict(zip(names, r.argmax(0).tolist(), strict=True)),
        **dci(r),
    }


def _entropy_complement(p: torch.Tensor, base: int) -> torch.Tensor:
    """1 - H(p) / log(base) for rows of probabilities p (rows summing to 0 give 0)."""
    if base < 2:
        return torch.ones(p.shape[0], dtype=torch.float64)
    logp = torch.where(p > 0, p.log(), torch.zeros_like(p))
    return 1 + (p * logp).sum(1) / math.log(base)


def dci(importance: torch.Tensor) -> dict[str, float]:
    """DCI disentanglement and completeness (Eastwood & Williams 2018) of an importance
    matrix (K codes x F factors): per code 1 - the entropy (base F) of its importance over
    the factors, weighted by its share of the total importance; per factor 1 - the entropy
    (base K) of its importance over the codes, averaged. 0 and 0 when nothing is important."""
    r = importance.double().clamp_min(0)
    total = float(r.sum())
    if total <= 0:
        return {"dci_disentanglement": 0.0, "dci_completeness": 0.0}
    rows, cols = r.sum(1), r.sum(0)
    d_k = _entropy_complement(r / rows.clamp_min(1e-30)[:, None], r.shape[1])
    c_f = _entropy_complement((r / cols.clamp_min(1e-30)).t(), r.shape[0])
    weight = rows / total
    c_weight = (cols > 0).double()
    return {
        "dci_disentanglement": float((weight * d_k).sum()),
        "dci_completeness": float((c_f * c_weight).sum() / c_weight.sum().clamp_min(1)),
    }


def mutual_information_gap(
    coords: torch.Tensor, pred: dict[str, torch.Tensor], heads, bins: int = 16
) -> dict[str, Any]:
    """MIG (Chen et al. 2018) of direction coordinates (N, K) against the factors read on the
    images: per factor, I(c_k; f) of the binned coordinate (equal-frequency bins) and the
    factor (its class, or a regression's value in equal-frequency bins), plug-in estimates;
    the largest minus the second largest, divided by H(f); averaged over factors (a factor
    with H(f) = 0 counts 0). Scale-free: it does not see how far a factor varies."""
    n, k = coords.shape
    b = effective_bins(n, bins)
    cb = rank_bins(coords, b)
    gaps = {}
    for h in heads:
        v = pred[h.name].detach().cpu()
        if h.levels > 0:
            fb, levels = v.long().clamp(0, h.levels - 1), h.levels
        else:
            fb, levels = rank_bins(v.double().view(-1, 1), b)[:, 0], b
        pf = torch.bincount(fb, minlength=levels).double() / n
        h_f = float(-(pf[pf > 0] * pf[pf > 0].log()).sum())
        if h_f <= 1e-12 or k == 0:
            gaps[h.name] = 0.0
            continue
        joint = torch.zeros(k, b * levels, dtype=torch.float64)
        joint.scatter_add_(
            1, (cb * levels + fb.view(-1, 1)).t(), torch.ones(k, n, dtype=torch.float64)
        )
        joint = joint.view(k, b, levels) / n
        pc = joint.sum(2, keepdim=True)
        ratio = joint / (pc * pf.view(1, 1, -1)).clamp_min(1e-30)
        mi = torch.where(joint > 0, joint * ratio.clamp_min(1e-30).log(), 0).sum((1, 2))
        top = mi.sort(descending=True).values
        gaps[h.name] = float((top[0] - (top[1] if k > 1 else 0.0)) / h_f)
    return {"mig": sum(gaps.values()) / max(len(gaps), 1), "mig_per_factor": gaps}


def direction_coordinates(latents: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Each latent's coordinate along each direction (N, K): (latent - mean) . A_k."""
    x = latents.double().cpu()
    return (x - x.mean(0)) @ directions.double().cpu()


def factor_recovery(
    latents: torch.Tensor,
    pred: dict[str, torch.Tensor],
    heads,
    arms: dict[str, torch.Tensor],
    reference_variance: list[float],
    bins: int = 16,
) -> dict[str, dict[str, Any]]:
    """For each arm's directions (d, K): R (K, F) (:func:`explained_shares`), its summary
    (recovery, SAP, DCI) and MIG, all on the same latents (N, d) and their read factors."""
    names = [h.name for h in heads]
    targets = factor_targets(pred, heads)
    out = {}
    for arm, a in arms.items():
        coords = direction_coordinates(latents, a)
        shares = explained_shares(coords, targets, reference_variance, bins)
        out[arm] = {"shares": shares, **recovery_summary(shares, names)}
        out[arm] |= mutual_information_gap(coords, pred, heads, bins)
    return out


# --- the explainers ----------------------------------------------------------------------
BASE_DEFAULTS: dict[str, Any] = {
    "directions": 0,  # K; 0: as many as the latent has dimensions
    "deformator": "ortho",
    "steps": 2000,
    "batch_size": 32,
    "lr": 1e-4,
    "shift_scale": 6.0,
    "min_shift": 0.5,
    "shift_weight": 0.25,
    "reconstructor_width": 16,
    "eval_samples": 512,
    "pca_samples": 1024,
    "eval_batch_size": 256,
    "top_k": 8,
    "figure": True,
}


class _DirectionsBase(Evaluator):
    """What the three direction explainers share: the setup, the training and the figure."""

    space_kind = "z"
    artifact = "directions"
    defaults = BASE_DEFAULTS

    def check_params(self) -> None:
        p = self.params
        if p["steps"] < 1 or p["batch_size"] < 2 or p["eval_samples"] < 1:
            raise ValueError(f"{self.name}: needs steps >= 1, batch_size >= 2, eval_samples >= 1")
        if p["directions"] < 0 or not 0 < p["min_shift"] <= p["shift_scale"]:
            raise ValueError(f"{self.name}: needs directions >= 0 and 0 < min_shift <= shift_scale")
        if p["pca_samples"] < 2:
            raise ValueError(f"{self.name}: pca_samples must be >= 2")

    def setup(self, ctx: EvalContext) -> dict[str, Any]:
        """Latent space, K, scale, samples, image channels, the learned deformator."""
        p = self.params
        space = LatentSpace(ctx.model, self.space_kind, ctx.device)
        d = space.dim
        k = d if p["directions"] == 0 else min(p["directions"], d)
        samples = space.sample(p["pca_samples"], ctx.rng(S_SAMPLES))
        scale = latent_scale(samples)
        channels = space.render(samples[:1]).shape[1]
        deformator = make_deformator(p["deformator"], d, k, ctx.rng(S_DEFORMATOR)).to(ctx.device)
        init_seed = int(torch.randint(0, 2**31, (1,), generator=ctx.rng(S_INIT)))
        return {
            "space": space,
            "d": d,
            "k": k,
            "scale": scale,
            "samples": samples,
            "channels": channels,
            "deformator": deformator,
            "init_seed": init_seed,
        }

    def train(self, ctx: EvalContext, s: dict[str, Any], arms: dict) -> tuple[dict, list]:
        p = self.params
        return train_arms(
            s["space"],
            arms,
            k=s["k"],
            scale=s["scale"],
            steps=p["steps"],
            batch_size=p["batch_size"],
            lr=p["lr"],
            generator=ctx.rng(S_TRAIN),
            init_seed=s["init_seed"],
            channels=s["channels"],
            shift_scale=p["shift_scale"],
            min_shift=p["min_shift"],
            shift_weight=p["shift_weight"],
            width=p["reconstructor_width"],
        )

    def score_arm(self, ctx: EvalContext, s: dict[str, Any], a: torch.Tensor, rec) -> dict:
        p = self.params
        return reconstruction_accuracy(
            s["space"],
            a,
            rec,
            n=p["eval_samples"],
            scale=s["scale"],
            generator=ctx.rng(S_EVAL),  # the same samples for every arm
            batch_size=p["eval_batch_size"],
            shift_scale=p["shift_scale"],
            min_shift=p["min_shift"],
        )

    def baselines(self, ctx: EvalContext, s: dict[str, Any]) -> tuple[dict, dict]:
        """The four baseline direction sets (d, K) and what the JSON says about them."""
        d, k = s["d"], s["k"]
        g = ctx.rng(S_BASELINES)
        random_dirs = random_orthonormal(d, k, g)
        axes, chosen = coordinate_axes(d, k, g)
        gan, gan_info = self.ganspace(ctx, s, g)
        sefa, sefa_info = self.sefa(ctx, s, g)
        dirs = {"random": random_dirs, "coordinate": axes, "ganspace": gan, "sefa": sefa}
        info = {"coordinate": {"axes": chosen}, "ganspace": gan_info, "sefa": sefa_info}
        return dirs, info

    def ganspace(self, ctx, s, g) -> tuple[torch.Tensor, dict]:
        model, z, k = ctx.model, s["samples"], s["k"]
        found = first_hidden_layer(model, z[:2])
        if found is None:
            raise ValueError(f"{self.name}: no generator layer has a 4-D or 2-D hidden output")
        name, module = found
        feats = layer_outputs(model, module, z, self.params["eval_batch_size"]).cpu()
        dirs = ganspace_directions(feats, z.cpu(), k)
        _, share = pca_axes(feats, k)
        info = {
            "layer": name,
            "features": feats.shape[1],
            "samples": len(z),
            "explained_variance": share.tolist(),
            "method": "PCA of the layer's activations; directions regressed from z",
        }
        if dirs.shape[1] < k:
            info["topped_up"] = k - dirs.shape[1]
        return _complete(dirs, k, g), info

    def sefa(self, ctx, s, g) -> tuple[torch.Tensor, dict]:
        d, k, model = s["d"], s["k"], ctx.model
        found = latent_weight(model, d)
        if found is not None:
            name, weight = found
            info = {"layer": name, "source": "weight", "rows": weight.shape[0]}
        else:
            layer = first_hidden_layer(model, s["samples"][:2])
            if layer is None:
                raise ValueError(f"{self.name}: no layer for SeFa's Jacobian fallback")
            name, module = layer
            weight = jacobian_weight(model, module, d, ctx.device)
            info = {
                "layer": name,
                "source": "jacobian at z = 0 (no generator module reads the latent by a weight)",
                "rows": weight.shape[0],
            }
        dirs, values = sefa_directions(weight, k)
        info["eigenvalues"] = values.tolist()
        return dirs, info

    def run_rca(self, ctx: EvalContext) -> tuple[dict[str, Any], dict[str, Any]]:
        """Train and score the learned directions and the four baselines."""
        self.check_params()
        s = self.setup(ctx)
        base, info = self.baselines(ctx, s)
        recs, log = self.train(ctx, s, {"learned": s["deformator"], **base})
        with torch.no_grad():
            learned = s["deformator"]().detach()
        dirs = {"learned": learned, **base}
        results = {arm: self.score_arm(ctx, s, dirs[arm], recs[arm]) for arm in ARMS}
        report = self.report_head(s) | {
            "rca": {arm: r["accuracy"] for arm, r in results.items()},
            "eps_mae": {arm: r["eps_mae"] for arm, r in results.items()},
            "per_direction_accuracy": {arm: r["per_direction"] for arm, r in results.items()},
            "invisible_shifts": {arm: r["invisible"] for arm, r in results.items()},
            "per_direction_invisible": {
                arm: r["per_direction_invisible"] for arm, r in results.items()
            },
            "baselines": info,
            "training_log": log,
            "learned_directions": learned.cpu().tolist(),
        }
        s["learned"] = learned
        s["results"] = results
        return s, report

    def report_head(self, s: dict[str, Any]) -> dict[str, Any]:
        p = self.params
        return {
            "space": self.space_kind,
            "K": s["k"],
            "d": s["d"],
            "scale": s["scale"],
            "scale_rule": "sqrt(mean per-coordinate variance) of pca_samples sampled latents",
            "steps": p["steps"],
            "batch_size": p["batch_size"],
            "lr": p["lr"],
            "deformator": p["deformator"],
            "eval_samples": p["eval_samples"],
            "shift": {"scale": p["shift_scale"], "min": p["min_shift"]},
        }

    def write(self, ctx: EvalContext, report: dict) -> None:
        ctx.artifact_dir.mkdir(parents=True, exist_ok=True)
        (ctx.artifact_dir / f"{self.artifact}.json").write_text(json.dumps(report, indent=1))

    @torch.no_grad()
    def figure(
        self,
        ctx: EvalContext,
        s: dict[str, Any],
        per_direction: list[float | None],
        labels: dict[int, str] | None = None,
    ) -> None:
        p = self.params
        top = p["top_k"]
        if not p["figure"] or top <= 0:
            return
        acc = torch.tensor([-1.0 if a is None else a for a in per_direction])
        order = acc.argsort(descending=True, stable=True)[:top].tolist()
        values = torch.linspace(-p["shift_scale"], p["shift_scale"], 7)
        space, a = s["space"], s["learned"].to(ctx.device)
        base = space.sample(1, ctx.rng(S_FIGURE))
        rows, row_labels = [], []
        for k in order:
            latents = base + (values.to(ctx.device) * s["scale"])[:, None] * a[:, k]
            rows.append(space.render_batched(latents, len(values)).cpu())
            text = f"dir {k}\nacc {float(acc[k]):.2f}" if acc[k] >= 0 else f"dir {k}"
            if labels and k in labels:
                text += f"\n{labels[k]}"
            row_labels.append(text)
        space_name = "W" if self.space_kind == "w" else "z"
        traversal_figure(
            rows,
            [f"eps={float(v):+.0f}" for v in values],
            row_labels,
            f"learned directions in {space_name} (K={s['k']}), most recognisable first "
            f"(acc: per-direction RCA); column: {space_name} + eps * {s['scale']:.2f} * A_k",
            ctx.artifact_dir / f"{self.artifact}.png",
        )


def _rca_scores(suffix: str, space: str) -> tuple[Score, ...]:
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
class DirectionsExplainer(_DirectionsBase):
    """Unsupervised latent directions (Voynov & Babenko 2020) in z: reconstruction accuracy of
    the learned directions against random, coordinate, GANSpace and SeFa directions."""

    version = "2"
    family = "explainability"
    requires = frozenset({"layers"})
    defaults = dict(BASE_DEFAULTS)
    scores = _rca_scores("", "z")
    space_kind, artifact, suffix = "z", "directions", ""

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        with frozen(ctx.model):
            s, report = self.run_rca(ctx)
            x = self.suffix
            r = s["results"]
            scores = {
                f"rca{x}": r["learned"]["accuracy"],
                f"rca{x}_random": r["random"]["accuracy"],
                f"rca{x}_coordinate": r["coordinate"]["accuracy"],
                f"rca{x}_ganspace": r["ganspace"]["accuracy"],
                f"rca{x}_sefa": r["sefa"]["accuracy"],
                f"rca{x}_chance": 1.0 / s["k"],
                f"eps{x}_mae": r["learned"]["eps_mae"],
            }
            report["scores"] = scores
            self.write(ctx, report)
            self.figure(ctx, s, r["learned"]["per_direction"])
        return scores


@register_explainer("directions_w")
class DirectionsWExplainer(DirectionsExplainer):
    """The same discovery in StyleGAN's W: shifts on w = mapping(z), truncated as ``generate``
    does; GANSpace = PCA of w, SeFa = eigenvectors of the style affines' weights."""

    version = "2"
    family = "explainability"
    requires = frozenset({"layers", "styles"})
    defaults = dict(BASE_DEFAULTS)
    scores = _rca_scores("_w", "w")
    space_kind, artifact, suffix = "w", "directions-w", "_w"

    def ganspace(self, ctx, s, g) -> tuple[torch.Tensor, dict]:
        axes, share = pca_axes(s["samples"].cpu(), s["k"])
        info = {
            "layer": "w",
            "samples": len(s["samples"]),
            "explained_variance": share.tolist(),
            "method": "PCA of w samples; the principal axes are the directions",
        }
        return _complete(axes, s["k"], g), info

    def sefa(self, ctx, s, g) -> tuple[torch.Tensor, dict]:
        layers = ctx.model.generator_ema.synthesis.layer_index()
        weight = torch.cat([layer.affine.weight.detach() for layer, _ in layers.values()])
        dirs, values = sefa_directions(weight, s["k"], normalise_rows=True)
        info = {
            "layer": "style affines: " + ", ".join(layers),
            "source": "weight (rows normalised to unit length, as in the authors' code)",
            "rows": weight.shape[0],
            "eigenvalues": values.tolist(),
        }
        return dirs, info


def _recovery_scores() -> tuple[Score, ...]:
    read = (
        "(factors read by the domain network on the images of n_align sampled latents; a "
        "direction's movement is each latent's coordinate along it)"
    )
    return (
        Score(
            "recovery",
            "higher",
            "how well single learned directions recover the ground-truth factors: per factor, "
            "the largest share of its variance that movement along one direction explains "
            "(binned R^2, chance-corrected, of the larger of its generated and real variance) "
            + read
            + ", averaged over factors",
            ideal=1.0,
            control="recovery_random",
            tolerance=NOISY,
        ),
        Score(
            "recovery_random",
            "none",
            "the same for K random orthonormal directions: the control",
            primary=False,
            tolerance=NOISY,
        ),
        Score(
            "recovery_coordinate",
            "none",
            "the same for K coordinate axes of z (baseline)",
            tolerance=NOISY,
        ),
        Score(
            "recovery_ganspace",
            "none",
            "the same for GANSpace's top-K directions (baseline)",
            tolerance=NOISY,
        ),
        Score(
            "recovery_sefa",
            "none",
            "the same for SeFa's top-K directions (baseline)",
            tolerance=NOISY,
        ),
        Score(
            "sap",
            "higher",
            "disentanglement of the learned directions: per factor, the best direction's "
            "share (as in recovery) minus the second best's, averaged over factors (the SAP "
            "score of Kumar et al. 2018): 1 when each factor is carried by one direction alone",
            ideal=1.0,
            control="sap_random",
            tolerance=NOISY,
        ),
        Score(
            "sap_random",
            "none",
            "the same for K random orthonormal directions: the control",
            primary=False,
            tolerance=NOISY,
        ),
        Score(
            "sap_coordinate",
            "none",
            "the same for K coordinate axes (baseline)",
            primary=False,
            tolerance=NOISY,
        ),
        Score(
            "sap_ganspace",
            "none",
            "the same for GANSpace's directions (baseline)",
            primary=False,
            tolerance=NOISY,
        ),
        Score(
            "sap_sefa",
            "none",
            "the same for SeFa's directions (baseline)",
            primary=False,
            tolerance=NOISY,
        ),
    )


@register_explainer("directions_factors")
class DirectionFactorsExplainer(_DirectionsBase):
    """How well latent directions recover the ground-truth factors, read on generated images
    by the domain network's factor heads: the learned directions against random (the
    control), coordinate, GANSpace and SeFa directions."""

    version = "2"
    family = "explainability"
    requires = frozenset({"layers"})
    requires_dataset = frozenset({"domain", "factors"})
    defaults = dict(BASE_DEFAULTS) | {"n_align": 2048, "bins": 16}
    scores = _recovery_scores()
    artifact = "directions-factors"

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        self.check_params()
        p = self.params
        if p["n_align"] < 8 or p["bins"] < 2:
            raise ValueError("directions_factors: needs n_align >= 8 and bins >= 2")
        with frozen(ctx.model):
            s = self.setup(ctx)
            base, info = self.baselines(ctx, s)
            recs, log = self.train(ctx, s, {"learned": s["deformator"]})
            with torch.no_grad():
                learned = s["deformator"]().detach()
            s["learned"] = learned
            result = self.score_arm(ctx, s, learned, recs["learned"])
            net = ctx.domain_network()
            heads = list(net.heads_spec)
            names = [h.name for h in heads]
            z = s["space"].sample(p["n_align"], ctx.rng(S_ALIGN))
            pred = net.predict(s["space"].render_batched(z, p["eval_batch_size"]))
            real = net.predict(ctx.reals(p["n_align"]))
            ref = [total_variance(t) for t in factor_targets(real, heads)]
            dirs = {"learned": learned, **base}
            rec = factor_recovery(z, pred, heads, dirs, ref, p["bins"])
            scores = {}
            for arm in ARMS:
                x = "" if arm == "learned" else f"_{arm}"
                scores[f"recovery{x}"] = rec[arm]["recovery"]
                scores[f"sap{x}"] = rec[arm]["sap"]
            labels = self.labels(rec, names)
            generated = factor_targets(pred, heads)
            report = self.report_head(s) | {
                "rca": result["accuracy"],
                "rca_invisible": result["invisible"],
                "eps_mae": result["eps_mae"],
                "per_direction_accuracy": result["per_direction"],
                "factors": names,
                "n_align": p["n_align"],
                "bins": effective_bins(p["n_align"], p["bins"]),
                "factor_variance": {
                    "generated": dict(zip(names, map(total_variance, generated), strict=True)),
                    "real": dict(zip(names, ref, strict=True)),
                    "rule": "regression: variance of the read value; categorical: Gini "
                    "impurity of the read class",
                },
                "share_rule": "R[k][f]: chance-corrected binned R^2 of factor f on the "
                "coordinate along direction k, over max(generated, real) variance of f",
                "arms": {
                    arm: {
                        "directions": dirs[arm].cpu().tolist(),
                        "shares": r["shares"].tolist(),
                        **{key: v for key, v in r.items() if key != "shares"},
                    }
                    for arm, r in rec.items()
                },
                "baselines": info,
                "direction_factor": [labels.get(k) for k in range(s["k"])],
                "training_log": log,
                "learned_directions": learned.cpu().tolist(),
                "scores": scores,
            }
            self.write(ctx, report)
            self.figure(ctx, s, result["per_direction"], labels)
        return scores

    @staticmethod
    def labels(rec: dict[str, dict[str, Any]], names: list[str]) -> dict[int, str]:
        """Each learned direction's factor: the one it explains most, if its share there beats
        every random direction's share of that factor (else none)."""
        shares, rand = rec["learned"]["shares"], rec["random"]["shares"]
        floor = rand.max(0).values if len(rand) else torch.zeros(len(names))
        out = {}
        for k, row in enumerate(shares):
            f = int(row.argmax())
            if float(row[f]) > float(floor[f]):
                out[k] = f"{names[f]} {float(row[f]):.2f}"
        return out
