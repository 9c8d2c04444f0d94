"""Filter maps' pieces: the filters a pruning zeroes (near-dead, least active, random), the
forward hooks that record, sum and zero a layer's filters, and the Fréchet distance between
two sets of features (the rules are in :mod:`ganbench.explainers.filter_maps`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Sequence

import numpy as np
import torch

# a forward hook and the module it is registered on
Hooks = Sequence[tuple[torch.nn.Module, Callable]]


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a (N, D) and b (M, D)."""
    x, y = a.double().cpu().numpy(), b.double().cpu().numpy()
    mu = x.mean(0) - y.mean(0)
    s1 = np.atleast_2d(np.cov(x, rowvar=False))
    s2 = np.atleast_2d(np.cov(y, rowvar=False))
    w, v = np.linalg.eigh(s1)
    root = (v * np.sqrt(w.clip(min=0))) @ v.T  # s1^(1/2)
    cross = np.linalg.eigvalsh(root @ s2 @ root).clip(min=0)  # eig(s1^½ s2 s1^½)
    value = float(mu @ mu + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(cross).sum())
    return max(value, 0.0)


def dead_filters(mean_activation: torch.Tensor, threshold: float) -> torch.Tensor:
    """Bool (C,): filters whose mean |activation| is at most ``threshold`` x the layer's median."""
    return mean_activation <= threshold * mean_activation.median()


def least_active(means: dict[str, torch.Tensor], fraction: float) -> dict[str, torch.Tensor]:
    """Per layer, bool (C,): its ``fraction`` least active filters (at least one)."""
    out = {}
    for name, m in means.items():
        k = max(1, round(fraction * len(m)))
        mask = torch.zeros(len(m), dtype=torch.bool)
        mask[m.argsort(stable=True)[:k]] = True
        out[name] = mask
    return out


def random_live(
    dead: dict[str, torch.Tensor], names: list[str], generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """Per layer of ``names``, as many random filters as it has dead ones, live ones first."""
    out = {}
    for name in names:
        d = dead[name]
        k = int(d.sum())
        order = torch.randperm(len(d), generator=generator)
        order = torch.cat([order[~d[order]], order[d[order]]])  # live ones first
        mask = torch.zeros_like(d)
        mask[order[:k]] = True
        out[name] = mask
    return out


def random_like(
    masks: dict[str, torch.Tensor], generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """Per layer, as many random filters as ``masks`` selects, chosen among all its filters."""
    out = {}
    for name, like in masks.items():
        mask = torch.zeros_like(like)
        mask[torch.randperm(len(mask), generator=generator)[: int(like.sum())]] = True
        out[name] = mask
    return out


@contextlib.contextmanager
def hooked(hooks: Hooks):
    """Each hook registered as a forward hook of its module; removed on exit."""
    handles = [m.register_forward_hook(hook) for m, hook in hooks]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def record_first(outputs: dict, name: str, module, inputs, output) -> None:
    """Forward hook: the layer's first output under ``outputs[name]``."""
    outputs.setdefault(name, output)


def keep_only(keep: torch.Tensor, module, inputs, output) -> torch.Tensor:
    """Forward hook: the layer's output with the filters where ``keep`` (C,) is 0 zeroed."""
    return output * keep.to(output)[None, :, None, None]


class ActivitySums:
    """Forward hooks adding up each layer's |activation| over the generated images."""

    def __init__(self, modules: dict[str, torch.nn.Module]) -> None:
        self.modules = modules
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = dict.fromkeys(modules, 0)

    def hooks(self) -> Hooks:
        return [(m, functools.partial(self.add, name)) for name, m in self.modules.items()]

    def add(self, name: str, module, inputs, output) -> None:
        a = output.detach().abs().sum(0).double().cpu()
        self.sums[name] = self.sums[name] + a if name in self.sums else a
        self.counts[name] += output.shape[0]

    def maps(self) -> dict[str, torch.Tensor]:
        """Per layer, the mean |activation| map (C, h, w) over the images seen."""
        return {name: (self.sums[name] / self.counts[name]).float() for name in self.modules}
