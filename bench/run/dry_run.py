"""What ``ganbench run`` would do, trial by trial, with estimated seconds: a plan read from the
matrix and the store, which it never touches (``ganbench run --dry-run``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ganbench.run.config import MatrixConfig
from ganbench.run.estimate import History
from ganbench.run.processes import pid_alive
from ganbench.run.store import Store, TrialRecord
from ganbench.run.trials import Trial, domain_weights_of, expand


@dataclass
class Planned:
    """One line of a dry run."""

    trial: Trial
    status: str  # "done" | "to run" | "n/a" | "running elsewhere"
    seconds: float  # estimated wall seconds (0 unless to run)
    basis: str  # what the estimate rests on

    def as_json(self) -> dict[str, Any]:
        lab = self.trial.labels
        return {
            "key": self.trial.key,
            "kind": self.trial.kind,
            "architecture": lab.get("architecture"),
            "reference": lab.get("reference"),
            "dataset": lab.get("dataset"),
            "seed": lab.get("seed"),
            "evaluator": lab.get("evaluator"),
            "steps": lab.get("steps"),  # a partial training's (``checkpoints``)
            "status": self.status,
            "estimated_s": round(self.seconds, 1),
            "estimate_from": self.basis,
            "provisional_key": self.trial.provisional,
        }


def _status(trial: Trial, record: TrialRecord | None) -> str:
    if record is not None and record.status == "finished":
        return "done"
    if (record is not None and record.status == "n/a") or trial.not_applicable:
        return "n/a"
    if record is not None and record.status == "running" and record.pid and pid_alive(record.pid):
        return "running elsewhere"
    return "to run"


def dry_run(
    cfg: MatrixConfig, store: Store | None, device_type: str, costs: History
) -> list[Planned]:
    """What ``run`` would do, trial by trial, with estimated seconds; touches nothing."""
    records = {}
    if store is not None:
        records = {r.key: r for r in store.records()}
    domain = domain_weights_of(r for r in records.values() if r.kind == "domain")
    out = []
    for trial in expand(cfg, device_type, domain):
        status = _status(trial, records.get(trial.key))
        seconds, basis = costs.seconds(trial) if status == "to run" else (0.0, "")
        out.append(Planned(trial, status, seconds, basis))
    return out


def dry_run_totals(planned: list[Planned], workers: int) -> dict[str, Any]:
    """Counts by status, the summed trial seconds and the wall time with ``workers`` at once."""
    counts = {s: sum(p.status == s for p in planned) for s in ("done", "to run", "n/a")}
    seconds = sum(p.seconds for p in planned)
    return {
        "trials": len(planned),
        **{k.replace(" ", "_"): v for k, v in counts.items()},
        "running_elsewhere": sum(p.status == "running elsewhere" for p in planned),
        "estimated_trial_s": round(seconds, 1),
        "workers": workers,
        "estimated_wall_s": round(seconds / max(1, workers), 1),
        "estimates_without_record": sum(p.basis == "no record" for p in planned),
    }
