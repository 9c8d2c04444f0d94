"""Helpers shared by the two-sample metrics (c2st, mmd, the neighbour metrics)."""

from __future__ import annotations

import torch
from scipy.stats import binomtest

from ganbench.core.evaluator import EvalContext


def paired_samples(ctx: EvalContext, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Equally many real test and generated images: ``n``, or fewer if the test split is smaller."""
    reals = ctx.reals(n, "test")
    fakes = ctx.fakes(len(reals))
    n_used = min(len(reals), len(fakes))  # the real-data reference draws from a finite train split
    return reals[:n_used], fakes[:n_used]


def paired_features(ctx: EvalContext, space: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The features (``ctx.features``, extracted once per trial set) of the same samples as
    :func:`paired_samples`: up to ``n`` real test images and as many generated ones."""
    real = ctx.features(space, "test", n)
    fake = ctx.features(space, "fake", len(real))
    n_used = min(len(real), len(fake))
    return real[:n_used], fake[:n_used]


def chance_test(correct: int, total: int) -> tuple[float, float, float]:
    """The exact binomial test of a classifier's held-out accuracy against chance (1/2): the
    one-sided p-value and the 95% Clopper-Pearson interval (low, high) of the accuracy."""
    # The interval must come from a two-sided test: proportion_ci follows the test's alternative.
    ci = binomtest(correct, total).proportion_ci(confidence_level=0.95, method="exact")
    p_value = binomtest(correct, total, p=0.5, alternative="greater").pvalue
    return float(p_value), float(ci.low), float(ci.high)
