"""The executor protocol: run some tasks of one phase, return when all are done."""

from __future__ import annotations

from ..errors import TaskError
from ..plan import Phase
from ..rundir import RunDir


class Executor:
    def run_phase(self, run: RunDir, phase: Phase, tasks: list[int]) -> None:
        """Run ``tasks`` of ``phase``; raise TaskError naming the tasks that failed."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the executor started (a Ray cluster, ...)."""


def failure_message(run: RunDir, phase: Phase, failures: dict[int, BaseException]) -> TaskError:
    first, exc = sorted(failures.items())[0]
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    return TaskError(
        f"phase {phase.name}: task {first}{more} failed: {type(exc).__name__}: {exc}; "
        f"log: {run.task_log(phase.name, first)}; finished tasks are kept, "
        "re-run with --resume")
