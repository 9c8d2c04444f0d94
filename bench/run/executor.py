"""The one interface the runner hands its ready trials to; its peers are the local executors
(:mod:`ganbench.run.local_executor`: a pool of worker processes, or the driver's own process)
and Ray (:mod:`ganbench.run.ray_executor`). An executor only runs trials and yields their
results; the runner alone writes the store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Protocol

from ganbench.run.trials import Trial

Job = tuple[Trial, dict[str, Any]]  # a trial and its payload (execute.trial_payload)
Result = tuple[Trial, dict[str, Any]]  # a trial and what execute.run_trial returned for it
OnStart = Callable[[Trial, int | None], None]  # called as a trial starts, with its process id
Claim = Callable[[Trial], bool]  # takes a trial in the store; False: another run has it


class Executor(Protocol):
    """Runs jobs and yields each trial's result as it ends. A context manager: what it
    started (worker processes, a Ray session) is stopped on leaving it."""

    parallel: int  # trials it runs at once, for the time left (Ray's slots: 1, the cluster's)
    shows_progress: bool  # a trial's own progress bar reaches the terminal (the driver's process)

    def run(self, jobs: list[Job], on_start: OnStart, claim: Claim) -> Iterator[Result]:
        """Run ``jobs``, each claimed first (one ``claim`` refuses is not run); yields
        (trial, result) as each ends, a failure included."""
        ...

    def __enter__(self) -> Executor: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
