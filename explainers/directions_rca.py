"""Reconstruction classification accuracy (RCA, Voynov & Babenko 2020) of direction sets.

A reconstructor sees an image and the same latent's image shifted along one of K directions
and must name the direction and the shift. :func:`train_arms` trains one reconstructor per
set of directions ("arm"), all in lockstep on the same shifts; :func:`reconstruction_accuracy`
scores one on fresh shifts; :func:`train_reconstructor` does both for fixed directions.
:mod:`ganbench.explainers.directions` describes the protocol in full.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .directions_latent import LatentSpace, frozen, latent_scale


# --- the reconstructor -------------------------------------------------------------------
def sample_shifts(
    n: int, generator: torch.Generator, shift_scale: float = 6.0, min_shift: float = 0.5
) -> torch.Tensor:
    """eps ~ U(-shift_scale, shift_scale), |eps| raised to at least ``min_shift`` (sign kept,
    0 counts as positive), shape (n,)."""
    eps = (torch.rand(n, generator=generator) * 2 - 1) * shift_scale
    sign = torch.where(eps < 0, -1.0, 1.0)
    return torch.where(eps.abs() < min_shift, sign * min_shift, eps)


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


# --- training ----------------------------------------------------------------------------
def _seeded(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` with the global RNG seeded from ``seed`` and restored afterwards: the
    module's initial weights depend on the seed alone."""
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
    arms = {n: a if isinstance(a, nn.Module) else a.to(space.device) for n, a in arms.items()}
    recs = {
        n: _seeded(init_seed + i, lambda: Reconstructor(channels, k, width)).to(space.device)
        for i, n in enumerate(arms)
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
        total, losses, correct = _step_losses(
            space, arms, recs, z, target, eps, scale, shift_weight
        )
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


def _step_losses(
    space: LatentSpace,
    arms: dict[str, torch.Tensor | nn.Module],
    recs: dict[str, Reconstructor],
    z: torch.Tensor,
    target: torch.Tensor,
    eps: torch.Tensor,
    scale: float,
    shift_weight: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """One training step's loss summed over the arms, and each arm's loss and accuracy.

    Every arm sees the same latents z, moved along its direction ``target`` by ``eps``
    (in units of ``scale``); the generator runs with gradients only for a trainable arm."""
    with torch.no_grad():
        x0 = space.render(z)
    total = torch.zeros((), device=space.device)
    losses, correct = {}, {}
    for name, arm in arms.items():
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
    return total, losses, correct


# --- scoring -----------------------------------------------------------------------------
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
