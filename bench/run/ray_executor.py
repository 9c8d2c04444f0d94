"""The Ray executor: one Ray task per trial, on a local cluster or one joined with ``--address``.

Tasks only run trials and return their results; the driver alone writes the store. Payload
paths are absolute, so workers on the driver's machine find the store's artifact folders;
workers on other nodes need the store's folder on a shared filesystem at the same path
(see docs/scaling.md). Ray is imported lazily: without it, ``--executor ray`` is one clear error.
A peer of :mod:`ganbench.run.local_executor`, behind the interface of :mod:`ganbench.run.executor`.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch

from ganbench.core.errors import GanbenchError
from ganbench.run.config import RayOptions
from ganbench.run.execute import run_trial
from ganbench.run.executor import Claim, Job, OnStart, Result
from ganbench.run.kinds import KINDS
from ganbench.run.trials import Trial

INSTALL_HINT = "pip install 'ganbench[ray]'"
POLL_SECONDS = 1.0


def import_ray() -> Any:
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray  # an optional extra, imported only when Ray runs the trials
    except ImportError:
        raise GanbenchError(
            f"executor 'ray' needs Ray, which is not installed: {INSTALL_HINT}"
        ) from None
    return ray


@contextmanager
def ray_cluster(address: str | None, options: RayOptions, quiet: bool = False) -> Iterator[Any]:
    """Connect to the cluster at ``address`` (or ``$RAY_ADDRESS``), else start a local one of
    ``options.num_cpus`` CPUs (default: the machine's). A Ray session that was already up is
    used as it is; only a connection made here is shut down (a cluster joined stays up)."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    common = {"log_to_driver": not quiet, "logging_level": logging.WARNING}
    try:
        if address:
            ray.init(address=address, **common)
        else:
            ray.init(
                num_cpus=options.num_cpus or os.cpu_count() or 1, include_dashboard=False, **common
            )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GanbenchError(f"could not start or join {where}: {first}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _remote_parts(ray: Any) -> tuple[Any, Any]:
    """The remote trial function and the attempt-tracker actor class (defined once Ray is in)."""

    @ray.remote
    def run_trial_task(key: str, payload: dict, tracker: Any, threads: int) -> dict:
        ray.get(tracker.begin.remote(key))  # counted before the work, so a retry shows up
        # several tasks share a node's cores: oversubscribed OpenMP threads slow everything down
        torch.set_num_threads(threads)
        return run_trial(payload)

    @ray.remote(num_cpus=0)
    class AttemptTracker:
        """How many times each trial's task has started (Ray retries a task whose worker died)."""

        def __init__(self) -> None:
            self.starts: dict[str, int] = {}

        def begin(self, key: str) -> int:
            self.starts[key] = self.starts.get(key, 0) + 1
            return self.starts[key]

        def counts(self) -> dict[str, int]:
            return dict(self.starts)

    return run_trial_task, AttemptTracker


def _task_options(payload: dict, options: RayOptions) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "num_cpus": options.num_cpus_per_trial,
        "max_retries": options.max_retries,  # retries on worker death, not on a trial's error
        "retry_exceptions": False,
    }
    # domain networks always train on the CPU (see run_trial)
    if payload["device"] == "cuda" and not KINDS[payload["kind"]].on_cpu:
        opts["num_gpus"] = options.gpus_per_trial
    return opts


def _check_fits(ray: Any, jobs: list[Job], options: RayOptions) -> None:
    """Fail at once, not hang, when no node of the cluster could ever run a task."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    need_gpu = any(_task_options(p, options).get("num_gpus") for _, p in jobs)
    fits = [
        n
        for n in nodes
        if n.get("CPU", 0) >= options.num_cpus_per_trial
        and (not need_gpu or n.get("GPU", 0) >= options.gpus_per_trial)
    ]
    if not fits:
        need = f"{options.num_cpus_per_trial} CPU" + (
            f" and {options.gpus_per_trial} GPU" if need_gpu else ""
        )
        have = ", ".join(f"{n.get('CPU', 0):g} CPU/{n.get('GPU', 0):g} GPU" for n in nodes)
        raise GanbenchError(
            f"no node of the Ray cluster has the {need} a trial asks for (nodes: {have or 'none'}); "
            "lower [ray] num_cpus_per_trial / gpus_per_trial, or use --device cpu"
        )


def _died(exc: Exception, attempts: int, options: RayOptions) -> dict:
    lines = str(exc).strip().splitlines()
    detail = lines[0] if lines else ""
    return {
        "status": "failed",
        "error": f"ray worker died ({type(exc).__name__}) on attempt {max(attempts, 1)} of "
        f"{options.max_retries + 1} ([ray] max_retries = {options.max_retries}): {detail}",
    }


def run_in_ray(
    jobs: list[Job],
    options: RayOptions,
    on_start: OnStart,
    max_in_flight: int | None = None,
    timeout: float | None = None,
) -> Iterator[Result]:
    """One Ray task per trial; yields (trial, result) as tasks finish, like the local executor.

    ``on_start`` is called in the driver each time a trial's task starts on a worker (a retry
    after a worker died calls it again), with the driver's pid: the trial is held while the
    driver that owns its task lives. A trial whose worker died on every attempt comes back as
    a failed result. ``max_in_flight`` caps the tasks submitted at once (default: no cap; Ray
    schedules them on the cluster's free resources). A task that runs past ``timeout`` seconds
    from its start is cancelled (its worker killed) and comes back failed."""
    if not jobs:
        return
    ray = import_ray()
    _check_fits(ray, jobs, options)
    tasks = _Tasks(ray, options, on_start)
    queue = list(jobs)
    try:
        while queue or tasks.running:
            while queue and (max_in_flight is None or len(tasks.running) < max_in_flight):
                tasks.submit(*queue.pop(0))
            yield from tasks.ended()
            yield from tasks.timed_out(timeout)
    finally:  # interrupted, or done: leave no task of this run behind on the cluster
        tasks.cancel_all()


class _Tasks:
    """The Ray tasks of one :func:`run_in_ray`: those running, and how often each trial's task
    has started (an attempt tracker actor counts starts on the workers)."""

    def __init__(self, ray: Any, options: RayOptions, on_start: OnStart) -> None:
        self.ray, self.options, self.on_start = ray, options, on_start
        self.remote_trial, tracker_cls = _remote_parts(ray)
        self.tracker = tracker_cls.remote()
        self.threads = max(1, int(options.num_cpus_per_trial))
        self.running: dict[Any, Trial] = {}
        self.seen: dict[str, int] = {}  # trial key -> starts reported to on_start
        self.began: dict[str, float] = {}  # trial key -> when its current attempt started

    def submit(self, trial: Trial, payload: dict) -> None:
        ref = self.remote_trial.options(**_task_options(payload, self.options)).remote(
            trial.key, payload, self.tracker, self.threads
        )
        self.running[ref] = trial

    def _sync_starts(self) -> None:
        """Report to ``on_start`` the attempts that started on the workers since last asked."""
        for key, count in self.ray.get(self.tracker.counts.remote()).items():
            trial = next((t for t in self.running.values() if t.key == key), None)
            while trial is not None and self.seen.get(key, 0) < count:
                self.on_start(trial, os.getpid())
                self.seen[key] = self.seen.get(key, 0) + 1
                self.began[key] = time.monotonic()

    def ended(self) -> Iterator[Result]:
        """Wait up to :data:`POLL_SECONDS` for a task to end; yields the trials that did."""
        done, _ = self.ray.wait(list(self.running), num_returns=1, timeout=POLL_SECONDS)
        self._sync_starts()
        for ref in done:
            trial = self.running.pop(ref)
            try:
                result = self.ray.get(ref)
            except self.ray.exceptions.RayError as exc:  # retries used up, node lost, ...
                result = _died(exc, self.seen.get(trial.key, 0), self.options)
            if not self.seen.get(trial.key):  # died before it could report its start
                self.on_start(trial, os.getpid())
                self.seen[trial.key] = 1
            yield trial, result

    def timed_out(self, timeout: float | None) -> Iterator[Result]:
        """Cancel the tasks running past ``timeout`` seconds; yields their trials, failed."""
        for ref, trial in list(self.running.items()):
            if timeout and time.monotonic() - self.began.get(trial.key, math.inf) > timeout:
                self.ray.cancel(ref, force=True)
                del self.running[ref]
                yield (
                    trial,
                    {
                        "status": "failed",
                        "error": f"timed out after {timeout:g} s (trial_timeout); its task "
                        "was cancelled",
                    },
                )

    def cancel_all(self) -> None:
        try:
            for ref in self.running:
                self.ray.cancel(ref, force=True)
            self.ray.kill(self.tracker)
        except Exception:  # the session is already shut down
            pass


class RayExecutor:
    """Trials as Ray tasks (:func:`run_in_ray`), on the cluster at ``address`` or a local one,
    joined or started when the first trial is ready and left when the executor is."""

    parallel = 1  # trials at once are the cluster's to decide
    shows_progress = False

    def __init__(
        self,
        address: str | None,
        options: RayOptions,
        quiet: bool,
        max_in_flight: int | None,
        timeout: float | None,
    ) -> None:
        self.address, self.options, self.quiet = address, options, quiet
        self.max_in_flight, self.timeout = max_in_flight, timeout
        self._cluster = ExitStack()
        self._up = False

    def run(self, jobs: list[Job], on_start: OnStart, claim: Claim) -> Iterator[Result]:
        """Claims every job before the first is submitted (Ray starts them when it will)."""
        claimed = [(trial, payload) for trial, payload in jobs if claim(trial)]
        if not claimed:
            return
        if not self._up:
            self._cluster.enter_context(ray_cluster(self.address, self.options, self.quiet))
            self._up = True
        yield from run_in_ray(claimed, self.options, on_start, self.max_in_flight, self.timeout)

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self._cluster.close()
