"""The Ray executor: one Ray task per trial, on a local cluster or one joined with ``--address``.

Tasks only run trials and return their results; the driver alone writes the store. Payload
paths are absolute, so workers on the driver's machine find the store's artifact folders;
workers on other nodes need the store's folder on a shared filesystem at the same path
(see docs/scaling.md). Ray is imported lazily: without it, ``--executor ray`` is one clear error.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ganbench.core.errors import GanbenchError
from ganbench.run.config import RayOptions
from ganbench.run.trials import Trial

INSTALL_HINT = "pip install 'ganbench[ray]'"
POLL_SECONDS = 1.0


def import_ray() -> Any:
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
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
        import torch

        from ganbench.run.execute import run_trial

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
    if payload["device"] == "cuda" and payload["kind"] != "domain":
        opts["num_gpus"] = options.gpus_per_trial
    return opts


def _check_fits(ray: Any, jobs: list[tuple[Trial, dict]], options: RayOptions) -> None:
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
    jobs: list[tuple[Trial, dict]],
    options: RayOptions,
    on_start: Callable[[Trial, int], None],
    max_in_flight: int | None = None,
    timeout: float | None = None,
) -> Iterator[tuple[Trial, dict]]:
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
    run_trial_task, tracker_cls = _remote_parts(ray)
    tracker = tracker_cls.remote()
    threads = max(1, int(options.num_cpus_per_trial))
    queue = list(jobs)
    running: dict[Any, Trial] = {}
    seen: dict[str, int] = {}
    began: dict[str, float] = {}  # trial key -> when its current attempt started

    def sync_starts() -> None:
        for key, count in ray.get(tracker.counts.remote()).items():
            trial = next((t for t in running.values() if t.key == key), None)
            while trial is not None and seen.get(key, 0) < count:
                on_start(trial, os.getpid())
                seen[key] = seen.get(key, 0) + 1
                began[key] = time.monotonic()

    try:
        while queue or running:
            while queue and (max_in_flight is None or len(running) < max_in_flight):
                trial, payload = queue.pop(0)
                ref = run_trial_task.options(**_task_options(payload, options)).remote(
                    trial.key, payload, tracker, threads
                )
                running[ref] = trial
            done, _ = ray.wait(list(running), num_returns=1, timeout=POLL_SECONDS)
            sync_starts()
            for ref in done:
                trial = running.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:  # retries used up, node lost, ...
                    result = _died(exc, seen.get(trial.key, 0), options)
                if not seen.get(trial.key):  # died before it could report its start
                    on_start(trial, os.getpid())
                    seen[trial.key] = 1
                yield trial, result
            for ref, trial in list(running.items()):
                if timeout and time.monotonic() - began.get(trial.key, math.inf) > timeout:
                    ray.cancel(ref, force=True)
                    del running[ref]
                    yield (
                        trial,
                        {
                            "status": "failed",
                            "error": f"timed out after {timeout:g} s (trial_timeout); its task "
                            "was cancelled",
                        },
                    )
    finally:  # interrupted, or done: leave no task of this run behind on the cluster
        try:
            for ref in running:
                ray.cancel(ref, force=True)
            ray.kill(tracker)
        except Exception:  # the session is already shut down
            pass
