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
which R names k. The same protocol, with a fresh reconstructor trained for the same number
of steps and A held fixed, scores four baselines:

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
* ``directions_factors`` (datasets with factors: shapes) — **factor alignment**, beyond the
  paper. A is trained exactly as ``directions`` trains it (same streams: with the same
  parameters and seed it is the same A). For ``n_align`` fresh z and each direction k the
  images at z - a*scale*A_k and z + a*scale*A_k (a = ``align_shift``, 3) are read by the
  domain network's factor heads: the effect E[k, f] is, for a categorical factor, the
  share of latents whose predicted class differs, for a regression the mean |difference|
  divided by the factor's std over the real test split. The same for the K random
  orthonormal directions of the ``random`` baseline gives E_rand. Each learned direction's
  factor is argmax_f E[k, f] / mean_k E_rand[k, f]. ``factor_gap`` (MIG-style): per factor,
  p = E[:, f] / sum_k E[k, f], the largest p minus the second largest, averaged over the
  factors (1: each factor moved by one direction only; 0: spread evenly);
  ``factor_gap_random`` the same for the random directions.

Artifacts: ``directions.json`` / ``directions-w.json`` / ``directions-factors.json`` (K, d,
scale, steps, every RCA and eps error, per-direction accuracies, the learned A, the layers
GANSpace and SeFa read; for factors the effect matrices, ratios and assignment) and the
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
the learned arm only (~30 ms a step there) and adds 2 x 2 x K x ``n_align`` images read by
the domain network.
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

from ganbench.evaluator import EvalContext, Evaluator
from ganbench.plots import traversal_figure
from ganbench.registry import register_explainer
from ganbench.scores import EXACT, NOISY, VERY_NOISY, Score

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
    Returns accuracy, per-direction accuracy (None for a direction never drawn) and the mean
    absolute error of the eps estimate."""
    k = directions.shape[1]
    z = space.sample(n, generator)
    target = (torch.randperm(n, generator=generator) % k).to(space.device)
    eps = sample_shifts(n, generator, shift_scale, min_shift).to(space.device)
    a = directions.to(space.device)
    hits, errors = [], []
    for i in range(0, n, batch_size):
        sl = slice(i, i + batch_size)
        x0 = space.render(z[sl])
        x1 = space.render(z[sl] + (eps[sl] * scale)[:, None] * a.t()[target[sl]])
        logits, eps_hat = reconstructor(x0, x1)
        hits.append((logits.argmax(1) == target[sl]).float().cpu())
        errors.append((eps_hat - eps[sl]).abs().cpu())
    hit, err, t = torch.cat(hits), torch.cat(errors), target.cpu()
    per = [float(hit[t == j].mean()) if bool((t == j).any()) else None for j in range(k)]
    return {"accuracy": float(hit.mean()), "per_direction": per, "eps_mae": float(err.mean())}


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
) -> float:
    """RCA of fixed ``directions`` (d, K) of a model's latent: a fresh reconstructor trained
    ``steps`` steps, then scored on ``eval_samples`` fresh samples (all seeded by ``seed``)."""
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
    return out["accuracy"]


# --- factor alignment --------------------------------------------------------------------
@torch.no_grad()
def factor_effects(
    space: LatentSpace,
    directions: torch.Tensor,
    z: torch.Tensor,
    step: float,
    readout,
    stds: dict[str, float],
    batch_size: int = 256,
) -> tuple[torch.Tensor, list[str]]:
    """E (K, F): for each direction k and factor head f of ``readout`` (``heads_spec``,
    ``predict``), how much moving z from -step*A_k to +step*A_k changes the read factor:
    the share of changed classes (categorical) or the mean |change| / stds[f] (regression)."""
    heads = list(readout.heads_spec)
    a = directions.to(space.device)
    out = torch.zeros(a.shape[1], len(heads))
    for k in range(a.shape[1]):
        lo = space.render_batched(z - step * a[:, k], batch_size)
        hi = space.render_batched(z + step * a[:, k], batch_size)
        p_lo, p_hi = readout.predict(lo), readout.predict(hi)
        for f, h in enumerate(heads):
            u, v = p_lo[h.name].cpu(), p_hi[h.name].cpu()
            if h.levels > 0:
                out[k, f] = (u != v).float().mean()
            else:
                out[k, f] = (u.float() - v.float()).abs().mean() / stds.get(h.name, 1.0)
    return out, [h.name for h in heads]


def factor_gap(effects: torch.Tensor) -> float:
    """MIG-style: per factor (column), p = E[:, f] / sum E[:, f]; the largest p minus the
    second largest (0 for a factor no direction moves), averaged over the factors."""
    gaps = []
    for col in effects.double().t():
        total = float(col.sum())
        if total <= 0:
            gaps.append(0.0)
            continue
        p = (col / total).sort(descending=True).values
        gaps.append(float(p[0] - (p[1] if len(p) > 1 else 0.0)))
    return sum(gaps) / max(len(gaps), 1)


def assign_factors(effects: torch.Tensor, random_effects: torch.Tensor) -> list[int | None]:
    """Each direction's factor: argmax_f E[k, f] / mean_k E_rand[k, f] (None if E[k] is 0)."""
    base = random_effects.mean(0).clamp_min(1e-6)
    ratio = effects / base
    return [
        int(r.argmax()) if float(e.max()) > 0 else None for r, e in zip(ratio, effects, strict=True)
    ]


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
        Score(
            f"rca{suffix}",
            "higher",
            f"reconstruction classification accuracy of the K directions learned in {where}: "
            f"share of fresh pairs {pair}, eps in ±[0.5, 6], for which the jointly trained "
            "reconstructor names the moved direction k",
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

    version = "1"
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

    version = "1"
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


@register_explainer("directions_factors")
class DirectionFactorsExplainer(_DirectionsBase):
    """Which ground-truth factor each learned latent direction moves (read by the domain
    network's factor heads), and how exclusively: a MIG-style gap against random directions."""

    version = "1"
    family = "explainability"
    requires = frozenset({"layers"})
    requires_dataset = frozenset({"domain", "factors"})
    defaults = dict(BASE_DEFAULTS) | {"n_align": 128, "align_shift": 3.0}
    scores = (
        Score(
            "factor_gap",
            "higher",
            "per ground-truth factor, the share of the learned directions' total effect on it "
            "(read by the domain network, moving z by ±3 scale along each) carried by the "
            "strongest direction minus the second strongest, averaged over factors (MIG-style)",
            ideal=1.0,
            control="factor_gap_random",
        ),
        Score(
            "factor_gap_random",
            "none",
            "the same gap for K random orthonormal directions",
            primary=False,
        ),
    )
    artifact = "directions-factors"

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        self.check_params()
        p = self.params
        if p["n_align"] < 1 or p["align_shift"] <= 0:
            raise ValueError("directions_factors: needs n_align >= 1 and align_shift > 0")
        with frozen(ctx.model):
            s = self.setup(ctx)
            # the same random directions as the ``random`` arm of ``directions``
            random_dirs = random_orthonormal(s["d"], s["k"], ctx.rng(S_BASELINES))
            recs, log = self.train(ctx, s, {"learned": s["deformator"]})
            with torch.no_grad():
                learned = s["deformator"]().detach()
            s["learned"] = learned
            result = self.score_arm(ctx, s, learned, recs["learned"])
            net = ctx.domain_network()
            stds = self.factor_stds(ctx, net)
            z = s["space"].sample(p["n_align"], ctx.rng(S_ALIGN))
            step = p["align_shift"] * s["scale"]
            bs = p["eval_batch_size"]
            effects, names = factor_effects(s["space"], learned, z, step, net, stds, bs)
            random_effects, _ = factor_effects(s["space"], random_dirs, z, step, net, stds, bs)
            assigned = assign_factors(effects, random_effects)
            scores = {
                "factor_gap": factor_gap(effects),
                "factor_gap_random": factor_gap(random_effects),
            }
            base = random_effects.mean(0).clamp_min(1e-6)
            report = self.report_head(s) | {
                "rca": result["accuracy"],
                "eps_mae": result["eps_mae"],
                "per_direction_accuracy": result["per_direction"],
                "factors": names,
                "factor_std": stds,
                "n_align": p["n_align"],
                "align_shift": p["align_shift"],
                "effect_rule": "categorical: share of changed predictions; regression: mean "
                "|change| / the factor's std over the real test split",
                "effects": effects.tolist(),
                "random_effects": random_effects.tolist(),
                "ratio_to_random": (effects / base).tolist(),
                "direction_factor": [None if f is None else names[f] for f in assigned],
                "training_log": log,
                "learned_directions": learned.cpu().tolist(),
                "scores": scores,
            }
            self.write(ctx, report)
            labels = {k: names[f] for k, f in enumerate(assigned) if f is not None}
            self.figure(ctx, s, result["per_direction"], labels)
        return scores

    @staticmethod
    def factor_stds(ctx: EvalContext, net) -> dict[str, float]:
        """Each regression factor's std over the real test split (1 where unknown or 0)."""
        names = list(ctx.dataset.spec.factors)
        factors = ctx.dataset.split("test").extras.get("factors")
        out = {}
        for h in net.heads_spec:
            if h.levels > 0:
                continue
            std = 1.0
            if factors is not None and h.name in names:
                std = float(factors[:, names.index(h.name)].float().std())
            out[h.name] = std if math.isfinite(std) and std > 0 else 1.0
        return out
