"""Helpers shared by the two-sample metrics (c2st, mmd)."""

from __future__ import annotations

import torch

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
