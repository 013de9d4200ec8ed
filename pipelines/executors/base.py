"""The executor protocol: run (or submit) every undone task of a planned run.

Every executor runs the same entry point, ``pipelines.task.run_task(run_dir, phase,
task)``, and learns nothing but the run directory, the plan and which tasks are left.
Two shapes implement one protocol:

- phase-at-a-time executors (``local``, ``ray``) subclass ``PhaseExecutor`` and run each
  phase's tasks in this process's control loop, one phase after another;
- submit-everything executors (``slurm``) hand the whole remaining plan to a scheduler
  at once, with a last job that finalizes the run, and may return before it ran.

``pipelines.run.launch_pipeline`` drives both the same way: ``check`` before the run
directory is touched, ``execute`` with the undone tasks, ``close`` at the end, and
``finalize_run`` itself unless the executor's own jobs finalize (``finalizes``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from pipelines.errors import TaskError
from pipelines.plan import Phase, Plan
from pipelines.rundir import RunDir


@dataclass
class Launch:
    """What ``execute`` did: ``finished`` when every task ran before it returned;
    ``jobs`` describes what a scheduler was given (one line each), if anything."""

    finished: bool
    jobs: list[str] = field(default_factory=list)


class Executor(ABC):
    #: True when the executor's own jobs run ``finalize_run`` after the last phase
    finalizes: bool = False

    def check(self, run: RunDir) -> None:
        """Refuse to start before ``run`` is created or touched (e.g. an earlier
        submission of the same run is still queued). Default: nothing to check."""
        return None

    @abstractmethod
    def execute(self, run: RunDir, plan: Plan, todo: dict[str, list[int]],
                wait: bool = True) -> Launch:
        """Run every task in ``todo`` (phase name -> task ids), each phase after all
        phases before it. With ``wait`` return only when all have run; raise TaskError
        naming the first failed task. An executor that cannot return earlier ignores
        ``wait=False``."""

    def close(self) -> None:
        """Release what the executor started (a Ray cluster, ...)."""
        return None


class PhaseExecutor(Executor):
    """An executor that runs the plan one phase at a time from this process."""

    def execute(self, run: RunDir, plan: Plan, todo: dict[str, list[int]],
                wait: bool = True) -> Launch:
        for phase in plan.phases:
            tasks = todo.get(phase.name, [])
            if tasks:
                self.run_phase(run, phase, plan.largest_first(phase, tasks))
        return Launch(finished=True)

    @abstractmethod
    def run_phase(self, run: RunDir, phase: Phase, tasks: list[int]) -> None:
        """Run ``tasks`` of ``phase``; raise TaskError naming the tasks that failed."""


def failure_message(run: RunDir, phase: Phase, failures: dict[int, BaseException]) -> TaskError:
    first, exc = sorted(failures.items())[0]
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    return TaskError(
        f"phase {phase.name}: task {first}{more} failed: {type(exc).__name__}: {exc}; "
        f"log: {run.task_log(phase.name, first)}; finished tasks are kept, "
        "re-run with --resume")
