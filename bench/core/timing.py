"""Timing and peak memory of a block of work, the same way for the harness and for evaluators
that time their own inner step (an attribution method's seconds per image)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def rss_mb() -> float:
    """This process's resident set (MiB), NaN where /proc cannot be read."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return float("nan")


def peak_memory_mb(device: torch.device, sampled_rss: float = 0.0) -> float:
    """CUDA: peak allocated since the last reset. CPU: the largest resident set sampled."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return max(sampled_rss, rss_mb())


@contextmanager
def timed(device: torch.device) -> Iterator[dict[str, float]]:
    """Wall seconds of the block (CUDA work finished on both ends) and its peak memory: the
    dict yielded holds ``seconds`` and ``peak_mem_mb`` once the block has run."""
    reset_peak_memory(device)
    synchronize(device)
    out: dict[str, float] = {}
    start = time.perf_counter()
    yield out
    synchronize(device)
    out["seconds"] = time.perf_counter() - start
    out["peak_mem_mb"] = peak_memory_mb(device)
