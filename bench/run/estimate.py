"""How long trials take: estimates from recorded trials, for the dry run and the progress ETA.

A trial's cost is the wall time of its record (``finished - started``: everything the runner
waited for, not only the timed loop), finished or n/a (an evaluator that found out while
running that it does not apply also took its time). An estimate comes from the most specific recorded
trials that exist, in this order:

* train: the same architecture part, dataset part, batch size and device type, scaled by
  steps; else the same architecture and dataset by name, scaled by steps; else the same
  architecture on any dataset; else :data:`FALLBACK_STEP_S` per step;
* evaluate: the same evaluator part on the same architecture (or reference), dataset and
  device type; else the same evaluator part on that dataset; else the evaluator by name;
  else :data:`FALLBACK_EVALUATE_S`;
* domain: a recorded domain trial of the dataset, else :data:`FALLBACK_DOMAIN_S`.

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
from ganbench.run.keys import canonical_json
from ganbench.run.trials import Trial

FALLBACK_STEP_S = 0.1
FALLBACK_EVALUATE_S = 5.0
FALLBACK_DOMAIN_S = 30.0


def _wall(rec: dict[str, Any]) -> float | None:
    started, finished = rec.get("started"), rec.get("finished")
    if rec.get("status") not in ("finished", "n/a") or not started or not finished:
        return None
    if finished < started:
        return None
    return float(finished - started)


def _part(part: dict[str, Any] | None) -> str:
    """A component part without its version, as an index key (a bump keeps its timings)."""
    part = part or {}
    return canonical_json({"name": part.get("name"), "params": part.get("params", {})})


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


@dataclass
class History:
    """Recorded trial costs, indexed for the lookups above."""

    train: dict[tuple, list[tuple[int, float]]] = field(default_factory=lambda: defaultdict(list))
    evaluate: dict[tuple, list[float]] = field(default_factory=lambda: defaultdict(list))
    domain: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, rec: dict[str, Any]) -> None:
        wall = _wall(rec)
        config = rec.get("config") or {}
        if wall is None:
            return
        if rec.get("kind") == "domain":
            self.domain[(config.get("dataset") or {}).get("name")].append(wall)
        elif rec.get("kind") == "train":
            arch, data = config.get("architecture") or {}, config.get("dataset") or {}
            steps = int((config.get("budget") or {}).get("steps", 0))
            batch = (config.get("budget") or {}).get("batch_size")
            device = config.get("device")
            for key in (
                ("exact", _part(arch), _part(data), batch, device),
                ("names", arch.get("name"), data.get("name"), device),
                ("arch", arch.get("name")),
            ):
                self.train[key].append((steps, wall))
        elif rec.get("kind") == "evaluate":
            ev = config.get("evaluator") or {}
            labels = rec.get("labels") or {}
            who = (labels.get("architecture"), labels.get("reference"))
            dataset, device = labels.get("dataset"), config.get("device")
            for key in (
                ("exact", _part(ev), who, dataset, device),
                ("dataset", _part(ev), dataset, device),
                ("name", ev.get("name")),
            ):
                self.evaluate[key].append(wall)

    def train_seconds(self, trial: Trial) -> tuple[float, str]:
        config = trial.config
        arch, data = config["architecture"], config["dataset"]
        steps = int(config["budget"]["steps"])
        batch, device = config["budget"]["batch_size"], config["device"]
        for key, how in (
            (("exact", _part(arch), _part(data), batch, device), "same config"),
            (("names", arch["name"], data["name"], device), "same architecture and dataset"),
            (("arch", arch["name"]), "same architecture"),
        ):
            seen = self.train.get(key)
            if not seen:
                continue
            if steps == 0:  # an untrained control: save, sample grid, throughput
                zero = [w for s, w in seen if s == 0]
                if zero:
                    return statistics.median(zero), how
                continue
            rates = [w / s for s, w in seen if s > 0]
            if rates:
                return statistics.median(rates) * steps, how
        return FALLBACK_STEP_S * max(steps, 10), "no record"

    def evaluate_seconds(self, trial: Trial) -> tuple[float, str]:
        config, labels = trial.config, trial.labels
        ev = config["evaluator"]
        who = (labels.get("architecture"), labels.get("reference"))
        dataset, device = labels.get("dataset"), config["device"]
        for key, how in (
            (("exact", _part(ev), who, dataset, device), "same evaluation"),
            (("dataset", _part(ev), dataset, device), "same evaluator on the dataset"),
            (("name", ev["name"]), "same evaluator"),
        ):
            found = _median(self.evaluate.get(key, []))
            if found is not None:
                return found, how
        return FALLBACK_EVALUATE_S, "no record"

    def seconds(self, trial: Trial) -> tuple[float, str]:
        """The estimated wall seconds of ``trial`` and what the estimate rests on."""
        if trial.not_applicable:
            return 0.0, "n/a"
        if trial.kind == "train":
            return self.train_seconds(trial)
        if trial.kind == "evaluate":
            return self.evaluate_seconds(trial)
        found = _median(self.domain.get(trial.labels.get("dataset"), []))
        return (found, "same dataset") if found is not None else (FALLBACK_DOMAIN_S, "no record")


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
