"""The driver: plans a matrix, skips what is finished, runs the rest phase by phase (domain
networks, training, evaluation: the kinds of :mod:`ganbench.run.kinds` in order) on an
executor, and alone writes the store (through :class:`ganbench.run.ledger.Ledger`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ganbench.core.errors import ConfigError
from ganbench.run.config import EXECUTORS, MatrixConfig
from ganbench.run.estimate import History, history
from ganbench.run.execute import trial_payload
from ganbench.run.executor import Executor
from ganbench.run.kinds import KINDS
from ganbench.run.layout import CHECKPOINT
from ganbench.run.ledger import Ledger, RunSummary
from ganbench.run.local_executor import InProcess, WorkerPool, worker_threads
from ganbench.run.numerics import check_precision, resolve_device
from ganbench.run.ray_executor import RayExecutor, import_ray
from ganbench.run.store import DONE, Store
from ganbench.run.trials import Trial, describe, domain_weights_of, expand


def plan(cfg: MatrixConfig, store: Store, device_type: str) -> list[Trial]:
    """The matrix's trials, evaluations keyed by the domain weights the store knows of."""
    return expand(cfg, device_type, domain_weights_of(store.records(kind="domain")))


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
    memory): no isolation, no time limit.

    The phases: check the options, plan (trials, rows in the store, the progress line), then
    each kind in turn (:func:`_phase`), then the summary."""
    timeout = _checked_timeout(cfg, executor, in_process, trial_timeout)
    start = time.perf_counter()
    dev = resolve_device(cfg.device if device == "auto" else device)
    check_precision(dev, cfg.train["precision"])  # before the store is touched
    trials = plan(cfg, store, dev.type)
    backend = _executor(cfg, executor, in_process, workers, timeout, address, quiet)
    ledger = _ledger(store, trials, log, costs, cfg.name, quiet, backend.parallel)
    configs = {t.key: t.config for t in trials}
    progress = backend.shows_progress and not quiet

    def job(trial: Trial) -> dict[str, Any]:
        return trial_payload(trial, store.artifacts, dev.type, progress, configs, plugins)

    with backend:
        for kind in KINDS:
            _phase(kind, ledger, backend, job, lambda: plan(cfg, store, dev.type))
    return ledger.close(start)


def _checked_timeout(
    cfg: MatrixConfig, executor: str, in_process: bool, trial_timeout: float | None
) -> float | None:
    """The trial time limit to run with (``trial_timeout``, else the config's), after a
    one-line error for options that cannot go together."""
    if executor not in EXECUTORS:
        raise ConfigError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if executor == "ray":
        import_ray()  # without Ray, fail before touching the store
    timeout = cfg.trial_timeout if trial_timeout is None else trial_timeout
    if timeout and timeout < 0:
        raise ConfigError(f"trial_timeout must be a positive number of seconds, got {timeout}")
    if in_process and timeout:
        raise ConfigError(
            "a trial_timeout needs the trials in child processes: drop --in-process or the timeout"
        )
    return timeout


def _executor(
    cfg: MatrixConfig,
    executor: str,
    in_process: bool,
    workers: int | None,
    timeout: float | None,
    address: str | None,
    quiet: bool,
) -> Executor:
    """Where the trials run: Ray tasks (at most ``workers`` in flight, when given), the
    driver's own process, or a pool of ``workers`` (default: the config's) warm processes."""
    n_workers = workers or cfg.workers
    if executor == "ray":
        return RayExecutor(address, cfg.ray, quiet, workers, timeout)
    if in_process:
        return InProcess(n_workers)
    return WorkerPool(n_workers, worker_threads(n_workers), timeout)


def _ledger(
    store: Store,
    trials: list[Trial],
    log: Callable[[str], None],
    costs: History | None,
    name: str,
    quiet: bool,
    parallel: int,
) -> Ledger:
    """The run's ledger over ``trials``: lost checkpoints reopened, a row in the store for
    each trial, the finished ones and those another run holds set aside, the progress line
    opened with estimates from ``costs`` (default: the store's records)."""
    ledger = Ledger(store, log, len(trials))
    for trial in lost_checkpoints(store, trials):
        log(f"training {describe(trial)} again: its checkpoint is missing and evaluations need it")
        store.reopen(trial.key)
    todo = ledger.pending(trials)
    costs = costs or history(r.as_dict() for r in store.records())
    ledger.start(todo, costs, name, quiet, parallel)
    return ledger


def _phase(
    kind: str,
    ledger: Ledger,
    backend: Executor,
    job: Callable[[Trial], dict[str, Any]],
    replan: Callable[[], list[Trial]],
) -> None:
    """Run the ``kind`` trials: wait for the prerequisites another run is producing, re-key
    provisional evaluations now that their domain networks exist, record those that cannot
    run (n/a, or a prerequisite that failed) and hand the rest to the executor."""
    ledger.wait_for_others(kind)
    if any(t.provisional for t in ledger.of_kind(kind)):
        waiting = {t.extra["domain"] for t in ledger.todo if t.provisional}
        ledger.rekey(
            kind, [t for t in replan() if t.kind == kind and t.extra.get("domain") in waiting]
        )
    ledger.wait_for_others(kind)  # the re-planned ones' too
    ready = []
    for trial in ledger.of_kind(kind):
        early = ledger.blocked(trial)
        if early is None:
            ready.append(trial)
        else:
            ledger.settle(trial, early)
    for trial, result in backend.run([(t, job(t)) for t in ready], ledger.begin, ledger.claim):
        ledger.record(trial, result)
