"""The harness's training loop, the same for every architecture: seeded minibatches, steps
timed in windows, non-finite losses caught, a progress bar and a loss log."""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ganbench.core.errors import GanbenchError, NonFiniteLossError
from ganbench.core.timing import peak_memory_mb, reset_peak_memory, rss_mb, synchronize
from ganbench.run.numerics import compile_networks, numerics


def _batches(images: torch.Tensor, batch_size: int, rng: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless shuffled minibatches (drop last), one permutation per epoch."""
    n = images.shape[0]
    if n < batch_size:
        raise GanbenchError(f"dataset has {n} training images, fewer than batch_size {batch_size}")
    while True:
        order = torch.randperm(n, generator=rng)
        for start in range(0, n - batch_size + 1, batch_size):
            yield images[order[start : start + batch_size]]


def train_model(
    arch,
    images: torch.Tensor,
    steps: int,
    batch_size: int,
    seed: int,
    device: torch.device,
    log_every: int = 25,
    progress: bool = False,
    log_path: Path | None = None,
    precision: str = "fp32",
    compile: str = "none",
) -> dict[str, float]:
    """The harness loop: seeded batches, windowed timing, NaN detection, progress, loss log.

    ``precision`` and ``compile`` are the ``[train]`` switches (see
    :func:`ganbench.run.numerics.numerics` and :func:`ganbench.run.numerics.compile_networks`);
    compilation happens in the first (warm-up) window.

    Steps are timed in windows of ``log_every`` steps with one device sync per window
    (a per-step sync would slow a launch-bound GPU model); the first window is warm-up
    and is excluded from the per-step statistics. Losses are checked for NaN/inf at the
    end of every window, so a diverged run fails within ``log_every`` steps.
    """
    images = images.to(device)
    rng = torch.Generator().manual_seed(seed)
    batches = _batches(images, batch_size, rng)
    arch.to(device).train()
    compile_networks(arch, compile)
    reset_peak_memory(device)
    bar = tqdm(
        total=steps, desc=f"train {arch.name}", disable=not progress, leave=False, unit="step"
    )
    synchronize(device)
    start = time.perf_counter()
    cpu_start = time.process_time()
    window_times, rows, rss = _windows(
        arch, batches, steps, log_every, device, precision, bar, start
    )
    synchronize(device)
    total = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    bar.close()
    if log_path is not None and rows:
        _write_log(log_path, rows)
    timings = _timings(window_times, total, cpu_seconds, steps, batch_size, device, rss)
    final = rows[-1] if rows else {}
    return timings | {f"final_{k}": v for k, v in final.items() if k != "step"}


def _windows(
    arch,
    batches: Iterator[torch.Tensor],
    steps: int,
    log_every: int,
    device: torch.device,
    precision: str,
    bar,
    start: float,
) -> tuple[list[float], list[dict[str, float]], float]:
    """Run ``steps`` training steps from ``start``; at the end of each window of ``log_every``
    steps, one device sync for the window's mean losses. Returns the seconds per step of each
    window, one loss row per window and the peak resident memory in MB (CPU only, else 0)."""
    window_times: list[float] = []
    rows: list[dict[str, float]] = []
    rss = 0.0
    window_start, step = start, 0
    pending: list[dict[str, torch.Tensor]] = []
    with numerics(device, precision):  # autocast and TF32 flags for the whole loop
        while step < steps:
            pending.append(arch.train_step(next(batches)))
            step += 1
            if step % log_every != 0 and step != steps:
                continue
            names = list(pending[0])
            stacked = torch.stack([torch.stack([p[k].float() for k in names]) for p in pending])
            means = stacked.mean(0).tolist()  # one device sync per window
            now = time.perf_counter()
            window_times.append((now - window_start) / len(pending))
            _check_finite(arch.name, names, stacked, step)
            rows.append({"step": step, **dict(zip(names, means, strict=True))})
            bar.update(len(pending))
            bar.set_postfix(
                {k: f"{v:.3f}" for k, v in rows[-1].items() if k != "step"}, refresh=False
            )
            pending.clear()
            rss = max(rss, rss_mb()) if device.type == "cpu" else rss
            window_start = now
    return window_times, rows, rss


def _check_finite(name: str, names: list[str], stacked: torch.Tensor, step: int) -> None:
    """Fail on the first loss of a window that became NaN or infinite."""
    if not torch.isfinite(stacked).all():
        bad = [k for k, col in zip(names, stacked.T, strict=True) if not torch.isfinite(col).all()]
        raise NonFiniteLossError(f"{name}: loss {bad[0]} became non-finite by step {step}")


def _write_log(path: Path, rows: list[dict[str, float]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _timings(
    window_times: list[float],
    total: float,
    cpu_seconds: float,
    steps: int,
    batch_size: int,
    device: torch.device,
    rss: float,
) -> dict[str, float]:
    """A training's timings: wall seconds, peak memory, the CPU share, and the per-step
    statistics of its windows after the first (warm-up) one."""
    steady = window_times[1:] if len(window_times) > 1 else window_times
    timings = {"train_s": total, "steps": float(steps), "peak_mem_mb": peak_memory_mb(device, rss)}
    if device.type == "cpu" and total > 0:
        # the share of its threads' time the loop got: near 1 alone, about 1/2 when another
        # job of as many threads shares the cores (the leaderboard marks timings below 0.75)
        timings["cpu_share"] = cpu_seconds / (total * torch.get_num_threads())
    if steady:
        timings["s_per_step_median"] = float(np.median(steady))
        timings["s_per_step_p90"] = float(np.percentile(steady, 90))
        timings["images_per_s"] = batch_size / timings["s_per_step_median"]
    return timings
