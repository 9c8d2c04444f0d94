"""What one run knows of its trials as it goes: which are still to run, which finished, failed
or are held by another run on the store, the progress line with the time left. The runner's
phases ask it; it alone writes the trials' rows and outcomes into the store (executors return
results, they never write)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from ganbench.run.estimate import Eta, History, duration
from ganbench.run.kinds import KINDS
from ganbench.run.store import DONE, Store
from ganbench.run.trials import Trial, describe

WAIT_POLL_S = 2.0  # how often a run looks whether another run has finished a prerequisite
BAR_FORMAT = "{desc}: {n_fmt}/{total_fmt} trials done {bar} {elapsed} elapsed{postfix}"


@dataclass
class RunSummary:
    total: int = 0
    skipped: int = 0
    finished: int = 0
    failed: list[tuple[Trial, str]] = field(default_factory=list)
    not_applicable: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        return (
            f"{self.total} trials: {self.skipped} already done, {self.finished} ran, "
            f"{self.not_applicable} n/a, {len(self.failed)} failed ({self.seconds:.1f} s)"
        )


class Ledger:
    """The state of one run over ``store``. ``status`` and ``errors`` hold the outcome of every
    prerequisite (domain and train trials) for their dependants; ``elsewhere`` the trials
    another live run on the store holds (skipped here; their dependants wait for them).
    :meth:`start` takes the trials to run (``todo``) and opens the progress line."""

    def __init__(self, store: Store, log: Callable[[str], None], total: int) -> None:
        self.store = store
        self.log = log
        self.summary = RunSummary(total=total)
        self.status: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self.elsewhere: set[str] = set()
        self.todo: list[Trial] = []
        self.started: dict[str, float] = {}  # trial key -> when its current attempt began
        self.begun: set[str] = set()
        self.workers: set[int] = set()  # pids of this run's own workers

    def pending(self, candidates: list[Trial]) -> list[Trial]:
        """Those of ``candidates`` still to run; rows are added to the store for them (not for
        provisional keys, which the evaluate phase replaces)."""
        out = []
        for trial in candidates:
            if trial.provisional:
                out.append(trial)
                continue
            self.store.ensure(trial.key, trial.kind, trial.config, trial.labels)
            record = self.store.get(trial.key)
            if record.status in DONE:
                self.summary.skipped += 1
                if KINDS[trial.kind].prerequisite:
                    self.status[trial.key] = record.status
            elif self.store.held_elsewhere(record):
                self.log(f"skipping {describe(trial)}: running in process {record.pid}")
                self.summary.skipped += 1
                self.elsewhere.add(trial.key)
            else:
                out.append(trial)
        return out

    def start(
        self, todo: list[Trial], costs: History, name: str, quiet: bool, parallel: int
    ) -> None:
        """Take ``todo`` as the trials to run and open the progress line: ``parallel`` trials
        at once shorten the time left, estimated from ``costs``."""
        self.todo = todo
        self.costs = costs
        self.eta = Eta({t.key: costs.seconds(t)[0] for t in todo})
        self.bar = tqdm(
            total=len(todo),
            desc=f"matrix {name}",
            disable=quiet,
            unit="trial",
            bar_format=BAR_FORMAT,
        )
        self.parallel = parallel

    def show(self, now: str = "") -> None:
        """The progress line's end: the trials left, the time left and ``now`` (what began)."""
        # trials still to run; those not applicable by capability are recorded n/a at no cost
        left = sum(1 for t in self.todo if t.key in self.eta.left and not t.not_applicable)
        text = f"{left} to run, about {duration(self.eta.seconds / self.parallel)} to go"
        self.bar.set_postfix_str(f"{text} · {now}" if now else text, refresh=True)

    def of_kind(self, kind: str) -> list[Trial]:
        return [t for t in self.todo if t.kind == kind]

    def rekey(self, kind: str, fresh: list[Trial]) -> None:
        """Put ``fresh`` (the ``kind`` trials re-planned now that their domain networks exist)
        in place of the provisional ones, in the store and in the time left."""
        for t in self.todo:
            if t.provisional:
                self.eta.skipped(t.key)
        self.todo = [t for t in self.todo if not t.provisional] + self.pending(fresh)
        for t in self.of_kind(kind):
            if t.key not in self.eta.left:
                self.eta.add(t.key, self.costs.seconds(t)[0])
        self.bar.total = self.bar.n + len(self.of_kind(kind))
        self.show()

    def claim(self, trial: Trial) -> bool:
        """Take the trial just before it runs (atomic in the store): another run on the same
        store may have finished it or be running it since this run planned."""
        outcome = self.store.claim(trial.key, self.workers)
        if outcome == "claimed":
            return True
        self.summary.skipped += 1
        if outcome == "held":
            self.elsewhere.add(trial.key)
            self.bar.write(f"skipping {describe(trial)}: another run on this store holds it")
        elif KINDS[trial.kind].prerequisite:
            self.status[trial.key] = self.store.get(trial.key).status
        self.eta.skipped(trial.key)
        self.bar.update(1)
        self.show()
        return False

    def begin(self, trial: Trial, pid: int | None = None) -> None:
        """A trial started, in process ``pid`` (None: in the driver)."""
        if trial.key in self.begun:  # Ray started it again after its worker died: a new attempt
            self.store.mark_running(trial.key, pid)
        elif pid is not None:
            self.store.set_pid(trial.key, pid)
            self.workers.add(pid)
        self.begun.add(trial.key)
        self.started[trial.key] = time.perf_counter()
        self.show(describe(trial))

    def wait_for_others(self, kind: str) -> None:
        """Prerequisites of the ``kind`` trials that another run is producing: wait until it
        ends them (or dies)."""
        keys = {
            k
            for t in self.of_kind(kind)
            for k in (t.depends_on, t.extra.get("domain"))
            if k in self.elsewhere and k not in self.status
        }
        while keys:
            self.show(f"waiting for {len(keys)} trial(s) another run on this store is producing")
            for key in list(keys):
                rec = self.store.get(key)
                if rec is not None and rec.status in ("finished", "failed", "n/a"):
                    self.status[key] = rec.status
                    self.errors[key] = rec.error or rec.status
                elif rec is None or not self.store.held_elsewhere(rec):
                    self.status[key] = "abandoned"
                    self.errors[key] = "the run that held it stopped before it ended; rerun"
                else:
                    continue
                keys.discard(key)
            if keys:
                time.sleep(WAIT_POLL_S)

    def blocked(self, trial: Trial) -> dict | None:
        """The outcome of a trial that cannot run (n/a by capability, or a prerequisite that
        did not finish); None when it can."""
        if trial.not_applicable:
            return {"status": "n/a", "error": trial.not_applicable}
        for what, key in (
            ("train", trial.depends_on),
            ("domain network", trial.extra.get("domain")),
        ):
            if key and self.status.get(key) != "finished":
                cause = self.errors.get(key) or "it did not finish"
                if self.status.get(key) == "abandoned":
                    return {"status": "failed", "error": f"its {what} trial {key[:12]}: {cause}"}
                return {"status": "failed", "error": f"its {what} trial {key[:12]} failed: {cause}"}
        return None

    def settle(self, trial: Trial, outcome: dict) -> None:
        """Record a trial that cannot run: stamped running, but not timed (no work was done)."""
        self.store.mark_running(trial.key)
        self.record(trial, outcome)

    def record(self, trial: Trial, result: dict) -> None:
        """Write a trial's outcome into the store and count it."""
        status = result["status"]
        self.store.complete(
            trial.key,
            status,
            result.get("scores"),
            result.get("timings"),
            result.get("env"),
            result.get("error"),
            result.get("outputs"),
        )
        if KINDS[trial.kind].prerequisite:
            self.status[trial.key] = status
            self.errors[trial.key] = result.get("error") or status
        if status == "finished":
            self.summary.finished += 1
        elif status == "n/a":
            self.summary.not_applicable += 1
        else:
            self.summary.failed.append((trial, result.get("error") or "unknown error"))
            self.bar.write(f"FAILED {describe(trial)}: {result.get('error')}")
        if trial.key in self.started:
            self.eta.finished(trial.key, time.perf_counter() - self.started.pop(trial.key))
        else:
            self.eta.skipped(trial.key)
        self.bar.update(1)
        self.show()

    def close(self, start: float) -> RunSummary:
        """Close the progress line; the summary, timed from ``start``."""
        self.bar.close()
        self.summary.seconds = time.perf_counter() - start
        return self.summary
