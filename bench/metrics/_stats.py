"""Helpers shared by the two-sample metrics (c2st, mmd)."""

from __future__ import annotations

import torch

from ganbench.evaluator import EvalContext


def paired_samples(ctx: EvalContext, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Equally many real test and generated images: ``n``, or fewer if the test split is smaller."""
    reals = ctx.reals(n, "test")
    fakes = ctx.fakes(len(reals))
    n_used = min(len(reals), len(fakes))  # the real-data reference draws from a finite train split
    return reals[:n_used], fakes[:n_used]
