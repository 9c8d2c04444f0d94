"""How long trials take: estimates from recorded trials, for the dry run and the progress ETA.

A trial's cost is the wall time of its record (``finished - started``: everything the runner
waited for, not only the timed loop), finished or n/a (an evaluator that found out while
running that it does not apply also took its time). An estimate comes from the most specific recorded
trials that exist, in this order:

* train: the same architecture part, dataset part, batch size and device type, scaled by
  steps; else the same architecture and dataset by name, scaled by steps; else the same
  architecture on any dataset; else ``FALLBACK_STEP_S`` per step;
* evaluate: the same evaluator part on the same architecture (or reference), dataset and
  device type; else the same evaluator part on that dataset; else the evaluator by name;
  else ``FALLBACK_EVALUATE_S``;
* domain: a recorded domain trial of the dataset, else ``FALLBACK_DOMAIN_S``.

Each kind says what its estimates are looked up by (:mod:`ganbench.run.kinds`: ``cost_keys``,
``steps``, ``fallback_seconds``); this module keeps the records and does the lookups.

The records are the store's and the maintainers' bundles in ``leaderboard/runs/`` (the
committed board's timings, when the store is empty).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganbench.core.errors import GanbenchError
from ganbench.run.bundles import load_records
from ganbench.run.kinds import KINDS
from ganbench.run.trials import Trial


def _wall(rec: dict[str, Any]) -> float | None:
    started, finished = rec.get("started"), rec.get("finished")
    if rec.get("status") not in ("finished", "n/a") or not started or not finished:
        return None
    if finished < started:
        return None
    return float(finished - started)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _estimate(seen: list[tuple[int | None, float]], steps: int | None) -> float | None:
    """The median of recorded wall seconds, or for a trial whose cost scales with ``steps``,
    the median seconds per step times its steps (an untrained control, 0 steps: the median of
    recorded 0-step trials, which only save, draw the grid and time the throughput)."""
    if steps is None:
        return _median([wall for _, wall in seen])
    if steps == 0:
        return _median([wall for s, wall in seen if s == 0])
    rates = [wall / s for s, wall in seen if s > 0]
    return statistics.median(rates) * steps if rates else None


@dataclass
class History:
    """Recorded trial costs, (steps, wall seconds) by each cost key of their kind."""

    seen: dict[tuple, list[tuple[int | None, float]]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def add(self, rec: dict[str, Any]) -> None:
        wall = _wall(rec)
        kind = KINDS.get(rec.get("kind"))
        if wall is None or kind is None:
            return
        config, labels = rec.get("config") or {}, rec.get("labels") or {}
        steps = kind.steps(config)
        for key, _ in kind.cost_keys(config, labels):
            self.seen[key].append((steps, wall))

    def seconds(self, trial: Trial) -> tuple[float, str]:
        """The estimated wall seconds of ``trial`` and what the estimate rests on."""
        if trial.not_applicable:
            return 0.0, "n/a"
        kind = KINDS[trial.kind]
        steps = kind.steps(trial.config)
        for key, how in kind.cost_keys(trial.config, trial.labels):
            found = _estimate(self.seen.get(key, []), steps)
            if found is not None:
                return found, how
        return kind.fallback_seconds(trial.config), "no record"


def history(records: Iterable[dict[str, Any]], bundle_dir: Path | None = None) -> History:
    """Costs from ``records`` (the store's) and the maintainers' bundles in ``bundle_dir``."""
    out = History()
    for rec in records:
        out.add(rec)
    if bundle_dir is not None and Path(bundle_dir).is_dir():
        for path in sorted(Path(bundle_dir).glob("*.json")):
            if path.name.startswith("submitted-"):
                continue
            try:
                records = load_records(path)
            except GanbenchError:
                continue  # the renderer reports unreadable bundles; an estimate does without
            for rec in records.values():
                out.add(rec)
    return out


def duration(seconds: float) -> str:
    """``2h 05m``, ``4m 10s``, ``12s``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


class Eta:
    """The time left in a run: the estimates of the trials not done yet, scaled by how the
    done ones compared with their estimates (a slower machine scales every estimate)."""

    def __init__(self, estimates: dict[str, float]) -> None:
        self.left = dict(estimates)
        self.done_estimated = 0.0
        self.done_actual = 0.0

    def finished(self, key: str, seconds: float) -> None:
        estimate = self.left.pop(key, None)
        if estimate is not None and estimate > 0:
            self.done_estimated += estimate
            self.done_actual += seconds

    def skipped(self, key: str) -> None:
        self.left.pop(key, None)

    def add(self, key: str, estimate: float) -> None:
        self.left[key] = estimate

    @property
    def seconds(self) -> float:
        # rescale once some work is done: a single short trial says little about the machine
        scale = self.done_actual / self.done_estimated if self.done_estimated >= 30 else 1.0
        return sum(self.left.values()) * scale
