"""Where latent directions live and the direction sets the directions explainers compare.

:class:`LatentSpace` samples latents and renders them (Z, or StyleGAN's W); :func:`frozen`
holds the generator fixed while directions are trained through it. The learned directions
come from a deformator (:class:`OrthoDeformator`, :class:`LinearDeformator`); the baselines
are random orthonormal directions, coordinate axes, GANSpace's principal directions and
SeFa's eigenvectors. :mod:`ganbench.explainers.directions` describes each in full.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn


# --- where directions live ---------------------------------------------------------------
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


# --- the learned directions --------------------------------------------------------------
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
    """The deformator the ``deformator`` parameter names: ``"ortho"`` or ``"linear"``."""
    if kind == "ortho":
        return OrthoDeformator(d, k, generator)
    if kind == "linear":
        return LinearDeformator(d, k, generator)
    raise ValueError(f"directions: deformator must be 'ortho' or 'linear', got {kind!r}")


# --- the baselines -----------------------------------------------------------------------
def random_orthonormal(d: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """k random orthonormal directions (d, k): Q of the QR of a Gaussian d x k matrix."""
    q, r = torch.linalg.qr(torch.randn(d, k, generator=generator, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r)).where(torch.diagonal(r) != 0, 1.0)).float()


def coordinate_axes(d: int, k: int, generator: torch.Generator) -> tuple[torch.Tensor, list[int]]:
    """k coordinate axes (d, k): all of them in order when k = d, else a random subset (sorted)."""
    axes = list(range(d)) if k >= d else sorted(torch.randperm(d, generator=generator)[:k].tolist())
    return torch.eye(d)[:, axes], axes


def complete_directions(a: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
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
