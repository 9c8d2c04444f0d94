"""The local executors: a pool of warm worker processes (the default), or the driver's own
process (``--in-process``). Peers of :mod:`ganbench.run.ray_executor`, behind the interface
of :mod:`ganbench.run.executor`."""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from ganbench.run.execute import run_trial
from ganbench.run.executor import Claim, Job, OnStart, Result
from ganbench.run.trials import Trial


def _die_with_parent(driver_pid: int) -> None:
    """Linux: the kernel kills this worker when the driver dies (even by kill -9), so no orphan
    keeps a trial marked running by a live pid after the driver is gone."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != driver_pid:  # the driver died while this worker was still importing
        os._exit(1)


def _pool_worker(conn, threads: int, driver_pid: int) -> None:
    """A warm worker: imports torch once, then runs the trials the driver sends, one at a time,
    until it is sent ``None`` (or the driver is gone)."""
    _die_with_parent(driver_pid)
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


def worker_threads(workers: int) -> int:
    """Torch threads per worker: the machine's cores shared out among ``workers``."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


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

    shows_progress = False

    def __init__(self, size: int, threads: int, timeout: float | None = None) -> None:
        self.size = max(1, size)
        self.parallel = self.size
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
        self, jobs: list[Job], on_start: OnStart, claim: Claim = lambda trial: True
    ) -> Iterator[Result]:
        """Run ``jobs`` (trial, payload), ``size`` at a time; yields (trial, result) as each ends.
        ``claim(trial)`` is asked just before a trial is sent to a worker; a trial it refuses
        is not run (another run on the store has it)."""
        queue = list(jobs)
        while queue or self._busy:
            self._dispatch(queue, on_start, claim)
            yield from self._ended()

    def _dispatch(self, queue: list[Job], on_start: OnStart, claim: Claim) -> None:
        """Send queued jobs to idle (or new) workers until ``size`` are busy."""
        while queue and len(self._busy) < self.size:
            trial, payload = queue.pop(0)
            if not claim(trial):
                continue
            proc, conn = self._idle.pop() if self._idle else self._spawn()
            conn.send(payload)
            on_start(trial, proc.pid)
            self._busy[conn] = (proc, conn, _Busy(trial, time.monotonic()))

    def _ended(self) -> Iterator[Result]:
        """Wait up to a second for busy workers; yields the trials that ended: answered, their
        worker died, or past the timeout (its worker killed)."""
        watched = [c for c in self._busy] + [p.sentinel for p, _, _ in self._busy.values()]
        ready = set(mp.connection.wait(watched, timeout=1.0))
        for conn, (proc, _, job) in list(self._busy.items()):
            if conn in ready or proc.sentinel in ready:
                result = self._answer(proc, conn)
            elif self.timeout and time.monotonic() - job.since > self.timeout:
                self._retire(proc, conn)
                result = {
                    "status": "failed",
                    "error": f"timed out after {self.timeout:g} s (trial_timeout); its "
                    "worker was killed",
                }
            else:
                continue
            del self._busy[conn]
            yield job.trial, result

    def _answer(self, proc, conn) -> dict[str, Any]:
        """What a worker sent back; a worker that died instead fails its trial and is retired,
        one that answered waits for the next trial."""
        try:
            result = conn.recv() if conn.poll() else None
        except (EOFError, OSError):
            result = None
        if result is None:
            proc.join(timeout=30)
            died = {"status": "failed", "error": f"worker process died (exit code {proc.exitcode})"}
            self._retire(proc, conn)
            return died
        self._idle.append((proc, conn))
        return result

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

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InProcess:
    """The trials one after another in the driver's own process (``--in-process``), for
    debugging and for tests that register architectures in memory: no isolation, no time
    limit. ``parallel`` is the matrix's workers, as the pool's would be: the time left is
    shown as the pool would run."""

    shows_progress = True

    def __init__(self, parallel: int) -> None:
        self.parallel = max(1, parallel)

    def run(self, jobs: list[Job], on_start: OnStart, claim: Claim) -> Iterator[Result]:
        for trial, payload in jobs:
            if claim(trial):
                on_start(trial, None)
                yield trial, run_trial(payload)

    def __enter__(self) -> InProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        pass
