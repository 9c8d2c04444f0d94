"""The discriminator as the attribution explainers see it, and the checks that its maps can be
trusted.

:class:`Logit` wraps D so that captum sees one realness logit per image. The checks find
what makes a per-image attribution of it wrong or undefined: a module called twice in one
forward (captum's DeepLIFT hooks then mix the calls), operations without a DeepLIFT rule
(its attributions then miss completeness), a logit that depends on the rest of the batch,
and minibatch-statistics layers, which are set to groups of one image while an explainer
runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager

import torch
from torch import nn


class Logit(nn.Module):
    """D's realness logit as a module captum can hook: ``(n, C, H, W) -> (n,)``."""

    def __init__(self, discriminator: nn.Module) -> None:
        super().__init__()
        self.discriminator = discriminator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.discriminator(x).reshape(x.shape[0])


# --- checks -------------------------------------------------------------------------
def reused_modules(model: nn.Module, x: torch.Tensor) -> list[str]:
    """Leaf modules called more than once in one forward of ``x`` (captum's DeepLIFT is wrong
    on those: its hooks see the two calls as one)."""
    calls: Counter = Counter()
    hooks = [
        m.register_forward_hook(lambda m, i, o, n=n: calls.update([n]))
        for n, m in model.named_modules()
        if not list(m.children())
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return sorted(n for n, c in calls.items() if c > 1)


def batch_dependence(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> float:
    """Largest change of an image's output between its batch and a batch of its own,
    relative to the outputs' scale (0 for a per-image function)."""
    with torch.no_grad():
        together = f(x)
        alone = torch.cat([f(x[i : i + 1]) for i in range(len(x))])
    return float((together - alone).abs().max() / (together.abs().max() + 1e-6))


@contextmanager
def per_image_groups(model: nn.Module):
    """Minibatch-statistics layers (modules with an int ``group_size``) set to groups of one."""
    saved = [
        (m, m.group_size)
        for m in model.modules()
        if isinstance(getattr(m, "group_size", None), int)
    ]
    try:
        for m, _ in saved:
            m.group_size = 1
        yield [type(m).__name__ for m, _ in saved]
    finally:
        for m, g in saved:
            m.group_size = g


def deeplift_completeness_miss(f: nn.Module, x: torch.Tensor, baseline: torch.Tensor) -> float:
    """How far captum's DeepLIFT attributions miss completeness: the largest |Σa - (f(x) -
    f(b))| over the gap |f(x) - f(b)| (plus 1e-3) among the images. Large where D has
    operations without a DeepLIFT rule."""
    from captum.attr import DeepLift

    _, delta = DeepLift(f).attribute(x, baselines=baseline, return_convergence_delta=True)
    with torch.no_grad():
        gap = (f(x) - f(baseline)).abs()
    return float((delta.detach().abs() / (gap + 1e-3)).max())
