"""The driver: expands a matrix, skips what is finished, runs the rest, and alone writes the store."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from ganbench.core.errors import ConfigError
from ganbench.run.config import EXECUTORS, MatrixConfig
from ganbench.run.estimate import Eta, History, duration, history
from ganbench.run.execute import CHECKPOINT, check_precision, resolve_device, run_trial
from ganbench.run.store import DONE, Store, TrialRecord, pid_alive
from ganbench.run.trials import Trial, domain_weights_of, expand


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


def describe(trial: Trial) -> str:
    lab = trial.labels
    parts = [lab.get("architecture") or "", lab.get("dataset", ""), f"seed {lab.get('seed')}"]
    if lab.get("reference") not in (None, "trained"):
        parts.insert(1, f"({lab['reference']})")
    if trial.kind == "evaluate":
        parts.append(lab["evaluator"])
    return f"{trial.kind} " + " ".join(p for p in parts if p)


def _payload(
    trial: Trial,
    store: Store,
    device: str,
    progress: bool,
    train_configs: dict[str, dict],
    plugins: list[str] | None,
) -> dict:
    payload: dict[str, Any] = {
        "plugins": [str(p) for p in plugins or []],
        "kind": trial.kind,
        "config": trial.config,
        "device": device,
        "progress": progress,
        "artifact_dir": str(store.artifact_dir(trial.key)),
    }
    if trial.depends_on:
        payload["train_config"] = train_configs[trial.depends_on]
        payload["train_artifacts"] = str(store.artifact_dir(trial.depends_on))
    if trial.extra.get("evaluator_params") is not None:
        payload["evaluator_params"] = trial.extra["evaluator_params"]
    if trial.extra.get("domain_dir"):  # a pinned network, shipped with the package
        payload["domain_artifacts"] = trial.extra["domain_dir"]
    elif trial.extra.get("domain"):  # trained by a domain trial of this store
        payload["domain_artifacts"] = str(store.artifact_dir(trial.extra["domain"]))
    return payload


def plan(cfg: MatrixConfig, store: Store, device_type: str) -> list[Trial]:
    """The matrix's trials, evaluations keyed by the domain weights the store knows of."""
    return expand(cfg, device_type, domain_weights_of(store.records(kind="domain")))


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


WAIT_POLL_S = 2.0  # how often a run looks whether another run has finished a prerequisite


def _die_with_parent(driver_pid: int) -> None:
    """Linux: the kernel kills this worker when the driver dies (even by kill -9), so no orphan
    keeps a trial marked running by a live pid after the driver is gone."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != driver_pid:  # the driver died while this worker was still importing
        os._exit(1)


def _pool_worker(conn, threads: int, driver_pid: int) -> None:
    """A warm worker: imports torch once, then runs the trials the driver sends, one at a time,
    until it is sent ``None`` (or the driver is gone)."""
    _die_with_parent(driver_pid)
    import torch

    # several workers share the cores: oversubscribed OpenMP threads slow everything down many-fold
    torch.set_num_threads(threads)
    while True:
        try:
            payload = conn.recv()
        except (EOFError, OSError):
            return
        if payload is None:
            return
        conn.send(run_trial(payload))


@dataclass
class _Busy:
    trial: Trial
    since: float


class WorkerPool:
    """``size`` warm worker processes, started when first needed, that run one trial each at a
    time, so a run pays the import of torch once per worker, not once per trial.

    A trial runs in a child process, never in the driver: a worker that dies (a segfault, an
    ``os._exit``, the OOM killer) fails its trial only and is replaced; a trial that runs past
    ``timeout`` seconds is killed with its worker and recorded failed. Workers die with the
    driver (``PR_SET_PDEATHSIG``), even when it is killed with ``kill -9``."""

    def __init__(self, size: int, threads: int, timeout: float | None = None) -> None:
        self.size = max(1, size)
        self.threads = max(1, threads)
        self.timeout = timeout or None
        self._ctx = mp.get_context("spawn")
        self._idle: list[tuple[Any, Any]] = []  # (process, connection)
        self._busy: dict[Any, tuple[Any, Any, _Busy]] = {}  # connection -> (process, conn, job)
        self.started = 0  # worker processes started, replacements included

    def _spawn(self) -> tuple[Any, Any]:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=_pool_worker, args=(child, self.threads, os.getpid()), daemon=True
        )
        proc.start()
        child.close()
        self.started += 1
        return proc, parent

    def _retire(self, proc, conn) -> None:
        if proc.is_alive():
            proc.kill()
        proc.join(timeout=30)
        conn.close()

    def run(
        self,
        jobs: list[tuple[Trial, dict]],
        on_start: Callable[[Trial, int], None],
        claim: Callable[[Trial], bool] = lambda trial: True,
    ) -> Iterator[tuple[Trial, dict]]:
        """Run ``jobs`` (trial, payload), ``size`` at a time; yields (trial, result) as each ends.
        ``claim(trial)`` is asked just before a trial is sent to a worker; a trial it refuses
        is not run (another run on the store has it)."""
        queue = list(jobs)
        while queue or self._busy:
            while queue and len(self._busy) < self.size:
                trial, payload = queue.pop(0)
                if not claim(trial):
                    continue
                proc, conn = self._idle.pop() if self._idle else self._spawn()
                conn.send(payload)
                on_start(trial, proc.pid)
                self._busy[conn] = (proc, conn, _Busy(trial, time.monotonic()))
            watched = [c for c in self._busy] + [p.sentinel for p, _, _ in self._busy.values()]
            ready = set(mp.connection.wait(watched, timeout=1.0))
            for conn, (proc, _, job) in list(self._busy.items()):
                result = None
                if conn in ready or proc.sentinel in ready:
                    try:
                        result = conn.recv() if conn.poll() else None
                    except (EOFError, OSError):
                        result = None
                    if result is None:
                        proc.join(timeout=30)
                        result = {
                            "status": "failed",
                            "error": f"worker process died (exit code {proc.exitcode})",
                        }
                        self._retire(proc, conn)
                    else:
                        self._idle.append((proc, conn))
                elif self.timeout and time.monotonic() - job.since > self.timeout:
                    self._retire(proc, conn)
                    result = {
                        "status": "failed",
                        "error": f"timed out after {self.timeout:g} s (trial_timeout); its "
                        "worker was killed",
                    }
                if result is not None:
                    del self._busy[conn]
                    yield job.trial, result

    def close(self) -> None:
        """Stop every worker (idle ones are told to exit; busy ones, after an interrupt, killed)."""
        for proc, conn in self._idle:
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            proc.join(timeout=10)
            self._retire(proc, conn)
        for proc, conn, _ in self._busy.values():
            self._retire(proc, conn)
        self._idle, self._busy = [], {}


def lost_checkpoints(store: Store, trials: list[Trial]) -> list[Trial]:
    """Finished train trials whose checkpoint file is gone (a store carried to another machine
    without its checkpoints) while an evaluation of it is still to run: they train again
    (same key, same config), so the evaluations have weights to read."""
    waiting = set()
    for t in trials:
        if t.kind == "evaluate" and t.depends_on:
            record = None if t.provisional else store.get(t.key)
            if record is None or record.status not in DONE:
                waiting.add(t.depends_on)
    out = []
    for t in trials:
        if t.kind != "train" or t.key not in waiting:
            continue
        record = store.get(t.key)
        if record is not None and record.status == "finished":
            if not (store.artifact_dir(t.key) / CHECKPOINT).exists():
                out.append(t)
    return out


def run_matrix(
    cfg: MatrixConfig,
    store: Store,
    device: str = "auto",
    workers: int | None = None,
    quiet: bool = False,
    log: Callable[[str], None] = print,
    plugins: list[str] | None = None,
    executor: str = "local",
    address: str | None = None,
    costs: History | None = None,
    in_process: bool = False,
    trial_timeout: float | None = None,
) -> RunSummary:
    """Run every trial of ``cfg`` that the store does not hold as finished or n/a.

    ``executor="ray"`` runs each trial as a Ray task, on the cluster at ``address`` or on a
    local one (started when there is work, stopped at the end); there ``workers``, when given,
    caps the trials in flight. See :mod:`ganbench.run.ray_executor`. The progress line shows the
    trials done and left and the time left, estimated from ``costs`` (default: the store's
    own records), see :mod:`ganbench.run.estimate`.

    Locally every trial runs in a child process of a :class:`WorkerPool` of ``workers`` warm
    processes, so a crash fails that trial only; ``trial_timeout`` (default: the config's)
    kills a trial that runs longer. ``in_process=True`` runs the trials one after another in
    this process instead (for debugging, and for tests that register architectures in
    memory): no isolation, no time limit."""
    from tqdm.auto import tqdm

    if executor not in EXECUTORS:
        raise ConfigError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if executor == "ray":
        from ganbench.run import ray_executor

        ray_executor.import_ray()  # without Ray, fail before touching the store
    timeout = cfg.trial_timeout if trial_timeout is None else trial_timeout
    if timeout and timeout < 0:
        raise ConfigError(f"trial_timeout must be a positive number of seconds, got {timeout}")
    if in_process and timeout:
        raise ConfigError(
            "a trial_timeout needs the trials in child processes: drop --in-process or the timeout"
        )
    start = time.perf_counter()
    dev = resolve_device(cfg.device if device == "auto" else device)
    check_precision(dev, cfg.train["precision"])  # before the store is touched
    trials = plan(cfg, store, dev.type)
    summary = RunSummary(total=len(trials))
    train_configs = {t.key: t.config for t in trials if t.kind == "train"}
    # status and error of every prerequisite (domain and train trials), for their dependants
    prereq_status: dict[str, str] = {}
    prereq_errors: dict[str, str] = {}
    # trials another live run on this store holds: skipped here; their dependants wait for them
    elsewhere: set[str] = set()

    def pending(candidates: list[Trial]) -> list[Trial]:
        """Those of ``candidates`` still to run; rows are added to the store for them (not for
        provisional keys, which the evaluate phase replaces)."""
        out = []
        for trial in candidates:
            if trial.provisional:
                out.append(trial)
                continue
            store.ensure(trial.key, trial.kind, trial.config, trial.labels)
            record = store.get(trial.key)
            if record.status in DONE:
                summary.skipped += 1
                if trial.kind != "evaluate":
                    prereq_status[trial.key] = record.status
            elif store.held_elsewhere(record):
                log(f"skipping {describe(trial)}: running in process {record.pid}")
                summary.skipped += 1
                elsewhere.add(trial.key)
            else:
                out.append(trial)
        return out

    for trial in lost_checkpoints(store, trials):
        log(f"training {describe(trial)} again: its checkpoint is missing and evaluations need it")
        store.reopen(trial.key)
    todo = pending(trials)
    costs = costs or history(r.as_dict() for r in store.records())
    eta = Eta({t.key: costs.seconds(t)[0] for t in todo})
    started: dict[str, float] = {}

    bar = tqdm(
        total=len(todo),
        desc=f"matrix {cfg.name}",
        disable=quiet,
        unit="trial",
        bar_format="{desc}: {n_fmt}/{total_fmt} trials done {bar} {elapsed} elapsed{postfix}",
    )
    progress = not quiet

    n_workers = workers or cfg.workers
    # trials at once: the time left shrinks with them (Ray's slots are the cluster's to decide)
    parallel = max(1, n_workers) if executor == "local" else 1

    def show(now: str = "") -> None:
        # trials still to run; those not applicable by capability are recorded n/a at no cost
        left = sum(1 for t in todo if t.key in eta.left and not t.not_applicable)
        text = f"{left} to run, about {duration(eta.seconds / parallel)} to go"
        bar.set_postfix_str(f"{text} · {now}" if now else text, refresh=True)

    begun: set[str] = set()
    workers_of_this_run: set[int] = set()

    def claim(trial: Trial) -> bool:
        """Take the trial just before it runs (atomic in the store): another run on the same
        store may have finished it or be running it since this run planned."""
        outcome = store.claim(trial.key, workers_of_this_run)
        if outcome == "claimed":
            return True
        summary.skipped += 1
        if outcome == "held":
            elsewhere.add(trial.key)
            bar.write(f"skipping {describe(trial)}: another run on this store holds it")
        elif trial.kind != "evaluate":
            prereq_status[trial.key] = store.get(trial.key).status
        eta.skipped(trial.key)
        bar.update(1)
        show()
        return False

    def begin(trial: Trial, pid: int | None = None) -> None:
        if trial.key in begun:  # Ray started it again after its worker died: a new attempt
            store.mark_running(trial.key, pid)
        elif pid is not None:
            store.set_pid(trial.key, pid)
            workers_of_this_run.add(pid)
        begun.add(trial.key)
        started[trial.key] = time.perf_counter()
        show(describe(trial))

    def wait_for_others(phase_trials: list[Trial]) -> None:
        """Prerequisites another run is producing: wait until it ends them (or dies)."""
        keys = {
            k
            for t in phase_trials
            for k in (t.depends_on, t.extra.get("domain"))
            if k in elsewhere and k not in prereq_status
        }
        while keys:
            show(f"waiting for {len(keys)} trial(s) another run on this store is producing")
            for key in list(keys):
                rec = store.get(key)
                if rec is not None and rec.status in ("finished", "failed", "n/a"):
                    prereq_status[key] = rec.status
                    prereq_errors[key] = rec.error or rec.status
                elif rec is None or not store.held_elsewhere(rec):
                    prereq_status[key] = "abandoned"
                    prereq_errors[key] = "the run that held it stopped before it ended; rerun"
                else:
                    continue
                keys.discard(key)
            if keys:
                time.sleep(WAIT_POLL_S)

    def record(trial: Trial, result: dict) -> None:
        status = result["status"]
        store.complete(
            trial.key,
            status,
            result.get("scores"),
            result.get("timings"),
            result.get("env"),
            result.get("error"),
            result.get("outputs"),
        )
        if trial.kind != "evaluate":
            prereq_status[trial.key] = status
            prereq_errors[trial.key] = result.get("error") or status
        if status == "finished":
            summary.finished += 1
        elif status == "n/a":
            summary.not_applicable += 1
        else:
            summary.failed.append((trial, result.get("error") or "unknown error"))
            bar.write(f"FAILED {describe(trial)}: {result.get('error')}")
        if trial.key in started:
            eta.finished(trial.key, time.perf_counter() - started.pop(trial.key))
        else:
            eta.skipped(trial.key)
        bar.update(1)
        show()

    def blocked(trial: Trial) -> dict | None:
        if trial.not_applicable:
            return {"status": "n/a", "error": trial.not_applicable}
        for what, key in (
            ("train", trial.depends_on),
            ("domain network", trial.extra.get("domain")),
        ):
            if key and prereq_status.get(key) != "finished":
                cause = prereq_errors.get(key) or "it did not finish"
                if prereq_status.get(key) == "abandoned":
                    return {"status": "failed", "error": f"its {what} trial {key[:12]}: {cause}"}
                return {"status": "failed", "error": f"its {what} trial {key[:12]} failed: {cause}"}
        return None

    cluster = ExitStack()  # the Ray session or the worker pool, entered when first needed
    cluster_up = False
    pool: WorkerPool | None = None
    with cluster:
        for phase in ("domain", "train", "evaluate"):
            wait_for_others([t for t in todo if t.kind == phase])
            if phase == "evaluate" and any(t.provisional for t in todo):
                # the domain networks now exist: key their evaluations by the weights' sha256
                waiting = {t.extra["domain"] for t in todo if t.provisional}
                fresh = [
                    t
                    for t in plan(cfg, store, dev.type)
                    if t.kind == "evaluate" and t.extra.get("domain") in waiting
                ]
                for t in todo:
                    if t.provisional:
                        eta.skipped(t.key)
                todo = [t for t in todo if not t.provisional] + pending(fresh)
                for t in todo:
                    if t.kind == "evaluate" and t.key not in eta.left:
                        eta.add(t.key, costs.seconds(t)[0])
                bar.total = bar.n + sum(t.kind == "evaluate" for t in todo)
                show()
            ready = []
            wait_for_others([t for t in todo if t.kind == phase])  # re-planned ones' too
            for trial in (t for t in todo if t.kind == phase):
                early = blocked(trial)
                if early is not None:
                    store.mark_running(trial.key)  # stamped, but not timed: no work was done
                    record(trial, early)
                else:
                    ready.append(trial)
            if executor == "ray":
                ready = [t for t in ready if claim(t)]
            if executor == "ray" and ready:
                if not cluster_up:
                    cluster.enter_context(ray_executor.ray_cluster(address, cfg.ray, quiet))
                    cluster_up = True
                jobs = [
                    (t, _payload(t, store, dev.type, False, train_configs, plugins)) for t in ready
                ]
                for trial, result in ray_executor.run_in_ray(
                    jobs, cfg.ray, begin, workers, timeout
                ):
                    record(trial, result)
            elif in_process:
                for trial in ready:
                    if not claim(trial):
                        continue
                    begin(trial)
                    record(
                        trial,
                        run_trial(
                            _payload(trial, store, dev.type, progress, train_configs, plugins)
                        ),
                    )
            elif ready:
                if pool is None:
                    threads = max(1, (os.cpu_count() or 1) // max(1, n_workers))
                    pool = WorkerPool(n_workers, threads, timeout)
                    cluster.callback(pool.close)
                jobs = [
                    (t, _payload(t, store, dev.type, False, train_configs, plugins)) for t in ready
                ]
                for trial, result in pool.run(jobs, begin, claim):
                    record(trial, result)
    bar.close()
    summary.seconds = time.perf_counter() - start
    return summary
