"""Sanity checks of an attribution map: does it change when the model is destroyed
(cascading model randomisation, Adebayo et al. 2018), and how much does it change when the
input barely does (captum's ``sensitivity_max``)?
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

from ._attribution_faithfulness import pixel_maps


def parameterised_layers(model: nn.Module, x: torch.Tensor) -> list[nn.Module]:
    """Leaf modules with parameters (own or under a parametrization), in forward order."""
    order: list[nn.Module] = []

    def has_params(m: nn.Module) -> bool:
        return any(True for _ in m.parameters(recurse=False)) or hasattr(m, "parametrizations")

    # a parametrized layer (spectral norm) counts once: its ParametrizationList is not a layer
    leaves = [
        m for name, m in model.named_modules() if has_params(m) and "parametrizations" not in name
    ]
    hooks = [m.register_forward_hook(lambda m, i, o: order.append(m)) for m in leaves]
    try:
        with torch.no_grad():
            model(x[:2])
    finally:
        for h in hooks:
            h.remove()
    seen: list[nn.Module] = []
    for m in order:
        if all(m is not s for s in seen):
            seen.append(m)
    return seen


def shuffle_parameters(layer: nn.Module, generator: torch.Generator) -> None:
    """Permute the values of every parameter tensor of ``layer`` (its scale stays, its
    learned structure goes)."""
    with torch.no_grad():
        for p in layer.parameters():
            flat = p.detach().flatten()
            order = torch.randperm(flat.numel(), generator=generator).to(flat.device)
            p.copy_(flat[order].view_as(p))


def spearman_per_image(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Spearman correlation (average ranks for ties) of |a_i| and |b_i| for each image i."""
    out = []
    for ai, bi in zip(
        a.abs().flatten(1).cpu().numpy(), b.abs().flatten(1).cpu().numpy(), strict=True
    ):
        if np.ptp(ai) == 0 or np.ptp(bi) == 0:
            out.append(0.0)
        else:
            out.append(float(spearmanr(ai, bi).statistic))
    return np.asarray(out)


def sensitivity_score(
    explain: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    radius: float,
    perturbations: int,
) -> np.ndarray:
    """captum's ``sensitivity_max`` of ``explain`` per image: the largest relative change of
    the map over ``perturbations`` uniform perturbations of L∞ radius ``radius``."""
    from captum.metrics import sensitivity_max

    def explain_one(inputs):  # captum hands the input over, and wants the map back, as 1-tuples
        with torch.enable_grad():
            return (explain(inputs[0] if isinstance(inputs, tuple) else inputs),)

    return (
        sensitivity_max(explain_one, x, perturb_radius=radius, n_perturb_samples=perturbations)
        .detach()
        .cpu()
        .numpy()
    )


def randomisation_rhos(
    model: nn.Module,
    x: torch.Tensor,
    maps: torch.Tensor,
    explain_with: Callable[[nn.Module], torch.Tensor],
    *,
    max_layers: int,
    generator: torch.Generator,
) -> list[float]:
    """Cascading model randomisation: mean Spearman ρ of |maps| per number of shuffled top layers."""
    layers = parameterised_layers(model, x)
    if max_layers:
        layers = layers[-max_layers:]
    randomised = copy.deepcopy(model)
    by_id = dict(zip(map(id, model.modules()), randomised.modules(), strict=True))
    rhos = []
    for layer in reversed(layers):
        shuffle_parameters(by_id[id(layer)], generator)
        rhos.append(float(spearman_per_image(maps, pixel_maps(explain_with(randomised))).mean()))
    return rhos
