"""Slurm executor: the whole remaining plan is submitted at once, as job arrays.

The plan is static (every phase's task count is known before anything runs), so
there is no driver process to keep alive: each phase becomes one job array over
its undone tasks, depending ``afterok`` on every job of the phases before it, and
a last job runs ``thresher finalize RUN`` after the final phase. A failed task
therefore stops everything downstream (``--kill-on-invalid-dep`` cancels it) while
its siblings finish; ``thresher status RUN`` shows what failed and ``--resume``
resubmits only the tasks that are not done.

MaxArraySize bounds the array *index*, not only the count, so a phase whose task ids
go past it is split into several arrays, each with an offset added to
``SLURM_ARRAY_TASK_ID``. ``max_parallel`` becomes the array's ``%`` throttle; the
arrays of one split phase then run one after the other (``afterany``) so the bound
holds for the phase. Each job script is rendered from a template (default
``templates/task.sbatch`` next to this module, shipped as package data) into
``<run>/slurm/`` and Slurm's own output of each array task goes to
``<run>/logs/<phase>/slurm-<job>_<index>.out``, next to the task log.

With ``tasks_per_job: N`` an array job runs N tasks of its phase one after another in
one process (``thresher run-task RUN PHASE 0-4``): a stage's set-up (a model, a
blocklist) is paid once per N tasks and the scheduler sees N times fewer jobs. The
array index is then the group's number, and the script lists each group's tasks.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pipelines.config import SlurmExecutor as SlurmConfig
from pipelines.errors import TaskError, UserError
from pipelines.executors.base import Executor, Launch
from pipelines.executors.slurm_queue import (
    Job,
    SlurmError,
    compress_ranges,
    load_submissions,
    max_array_size,
    queue_states,
    record_submission,
    sbatch,
    scancel,
    spool_dir,
)
from pipelines.plan import Plan
from pipelines.rundir import RunDir

# package data (pyproject.toml), so a wheel install has it too
DEFAULT_TEMPLATE = Path(__file__).resolve().parent / "templates" / "task.sbatch"
POLL_S = 0.5


@dataclass(frozen=True)
class Submission:
    run: RunDir
    jobs: list[Job]

    def describe(self) -> list[str]:
        lines = []
        for j in self.jobs:
            what = "finalize" if j.phase == "finalize" else \
                f"{j.phase}: {len(j.task_ids())} task(s) [{j.tasks}]"
            lines.append(f"job {j.id}: {what}")
        return lines


def split_arrays(tasks: list[int], max_size: int) -> list[tuple[int, list[int]]]:
    """Group sorted task ids into (offset, tasks) so every ``task - offset < max_size``."""
    groups: list[tuple[int, list[int]]] = []
    for t in sorted(tasks):
        if groups and t - groups[-1][0] < max_size:
            groups[-1][1].append(t)
        else:
            groups.append((t, [t]))
    return groups


def group_arrays(tasks: list[int], per_job: int, max_size: int) -> list[list[int]]:
    """Sorted task ids in arrays of at most ``max_size`` jobs of ``per_job`` tasks (array
    index i of an array runs its tasks ``[i * per_job:][:per_job]``)."""
    tasks, step = sorted(tasks), per_job * max_size
    return [tasks[i:i + step] for i in range(0, len(tasks), step)]


class SlurmExecutor(Executor):
    finalizes = True  # the last job runs `thresher finalize RUN`

    def __init__(self, cfg: SlurmConfig, progress: bool = False):
        self.cfg = cfg
        self.progress = progress
        self._template_text: str | None = None  # read by check()
        self._limit = 0

    # -------------------------------------------------------------------- the whole run

    def check(self, run: RunDir) -> None:
        """Before the run directory is touched: the job template and the cluster's
        MaxArraySize are readable, and no job of an earlier submission of this run is
        pending or running (a resumed or overwritten run would race with it); jobs that
        can never run (their dependency failed) are cancelled."""
        self._template_text, self._limit = self._template(), max_array_size()
        self._check_no_live_jobs(run)

    def execute(self, run: RunDir, plan: Plan, todo: dict[str, list[int]],
                wait: bool = True) -> Launch:
        """Submit every task in ``todo`` as job arrays plus the finalize job; with
        ``wait``, poll the queue until none of them can run any more."""
        if self._template_text is None:  # a caller that skipped check()
            self.check(run)
        name = run.load_config().name
        sub = Submission(run, self._submit_plan(run, name, plan, todo, self._template_text,
                                                self._limit))
        if wait:
            self.wait(sub)
        return Launch(finished=wait, jobs=sub.describe())

    def _check_no_live_jobs(self, run: RunDir) -> None:
        jobs = {j.id: j for s in load_submissions(run) for j in s["jobs"]}
        states = {k: s for k, s in queue_states(list(jobs), active_only=True).items()
                  if jobs[k[0]].owns(s)}
        stale = sorted({k[0] for k, s in states.items() if s.blocked})
        live = sorted({k[0] for k, s in states.items() if not s.blocked})
        if live:
            raise UserError(f"{run.root}: job(s) {', '.join(live)} of this run are still "
                            f"pending or running; wait for them (thresher status {run.root}) "
                            "or scancel them first")
        if stale:
            scancel(stale)

    def _submit_plan(self, run: RunDir, name: str, plan: Plan, todo: dict[str, list[int]],
                     template: str, limit: int) -> list[Job]:
        submitted: list[Job] = []
        before: list[str] = []  # every job of the earlier phases: afterok on all of them
        try:
            for phase in plan.phases:
                if not todo[phase.name]:
                    continue
                (spool_dir(run) / "logs" / phase.name).mkdir(parents=True, exist_ok=True)
                this_phase: list[str] = []
                per_job = self.cfg.tasks_per_job
                arrays = split_arrays(todo[phase.name], limit) if per_job == 1 else \
                    [(0, tasks) for tasks in group_arrays(todo[phase.name], per_job, limit)]
                for offset, tasks in arrays:
                    deps = [f"afterok:{':'.join(before)}"] if before else []
                    if this_phase and self.cfg.max_parallel:
                        deps.append(f"afterany:{this_phase[-1]}")  # one throttle per phase
                    job = self._submit_array(run, f"{name}.{phase.name}", phase.name, offset,
                                             tasks, deps, template)
                    submitted.append(job)
                    this_phase.append(job.id)
                before += this_phase
            submitted.append(self._submit_finalize(run, f"{name}.finalize", before, template))
        except BaseException:
            try:  # never leave half a run queued: its dependencies would be wrong
                scancel([j.id for j in submitted])
            except SlurmError:
                pass
            raise
        record_submission(run, submitted)
        return submitted

    def _submit_array(self, run: RunDir, job_name: str, phase: str, offset: int,
                      tasks: list[int], deps: list[str], template: str) -> Job:
        per_job = self.cfg.tasks_per_job
        run_task = (f"exec {self._python()} -m pipelines.cli run-task "
                    f"{shlex.quote(str(run.root))} {shlex.quote(phase)}")
        if per_job == 1:  # the array index is the task id (less the offset)
            spec = compress_ranges([t - offset for t in tasks])
            cmd = f'{run_task} "$((SLURM_ARRAY_TASK_ID + {offset}))"'
        else:  # array index i runs the i-th group of per_job tasks, listed in the script
            groups = [compress_ranges(tasks[i:i + per_job])
                      for i in range(0, len(tasks), per_job)]
            spec = f"0-{len(groups) - 1}"
            cmd = (f"TASKS=({' '.join(groups)})\n"
                   f'{run_task} "${{TASKS[$SLURM_ARRAY_TASK_ID]}}"')
        if self.cfg.max_parallel:
            spec += f"%{self.cfg.max_parallel}"
        out = spool_dir(run) / "logs" / phase / "slurm-%A_%a.out"
        args = [f"--job-name={job_name}", f"--array={spec}", f"--output={out}",
                *self._resources(), *self._deps(deps), *self.cfg.sbatch_args]
        script = self._write_script(run, f"{phase}.{offset:05d}", template, cmd, phase, args)
        job = sbatch(args, script)
        return Job(job, phase, compress_ranges(tasks), offset,
                   str(script.relative_to(spool_dir(run))), job_name, per_job)

    def _submit_finalize(self, run: RunDir, job_name: str, after: list[str],
                         template: str) -> Job:
        cmd = f"exec {self._python()} -m pipelines.cli finalize {shlex.quote(str(run.root))}"
        out = spool_dir(run) / "logs" / "slurm-finalize-%j.out"
        args = [f"--job-name={job_name}", f"--output={out}", *self._resources(cpus=1),
                *self._deps([f"afterok:{':'.join(after)}"]), *self.cfg.sbatch_args]
        script = self._write_script(run, "finalize", template, cmd, "finalize", args)
        job = sbatch(args, script)
        return Job(job, "finalize", script=str(script.relative_to(spool_dir(run))),
                   name=job_name)

    # -------------------------------------------------------------------- sbatch pieces

    def _resources(self, cpus: int | None = None) -> list[str]:
        c = self.cfg
        args = [f"--cpus-per-task={cpus or c.cpus_per_task}", f"--chdir={os.getcwd()}",
                "--kill-on-invalid-dep=yes"]
        for flag, value in (("partition", c.partition), ("account", c.account),
                            ("qos", c.qos), ("time", c.time), ("mem", c.mem)):
            if value:
                args.append(f"--{flag}={value}")
        return args

    @staticmethod
    def _deps(deps: list[str]) -> list[str]:
        return [f"--dependency={','.join(deps)}"] if deps else []

    def _python(self) -> str:
        return shlex.quote(self.cfg.python or sys.executable)

    def _template(self) -> str:
        path = Path(self.cfg.template) if self.cfg.template else DEFAULT_TEMPLATE
        if not path.is_file():
            raise UserError(f"executor.template: job script template {path} does not exist"
                            + ("" if self.cfg.template else
                               " (the thresher installation is incomplete; set "
                               "executor.template to a job script of your own)"))
        text = path.read_text()
        if "{{command}}" not in text:
            raise UserError(f"executor.template: {path} has no {{{{command}}}} placeholder; "
                            "the job would not run thresher")
        unknown = set(re.findall(r"{{(\w+)}}", text)) - {"setup", "command", "run_dir",
                                                         "phase", "python"}
        if unknown:
            raise UserError(f"executor.template: {path}: unknown placeholder(s) "
                            f"{', '.join(sorted(unknown))}; expected setup, command, "
                            "run_dir, phase, python")
        return text

    def _write_script(self, run: RunDir, stem: str, template: str, command: str,
                      phase: str, sbatch_args: list[str]) -> Path:
        """Render the template; a comment after its first line records the sbatch
        command, so the script shows how it was submitted."""
        values = {"setup": "\n".join(self.cfg.setup), "command": command,
                  "run_dir": shlex.quote(str(run.root)), "phase": shlex.quote(phase),
                  "python": self._python()}
        text = re.sub(r"{{(\w+)}}", lambda m: values[m.group(1)], template)
        path = spool_dir(run) / "slurm" / f"{stem}.sh"
        note = "# submitted by thresher: " + shlex.join(["sbatch", *sbatch_args, str(path)])
        first, _, rest = text.partition("\n")
        text = f"{first}\n{note}\n{rest}" if first.startswith("#!") else f"{note}\n{text}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    # -------------------------------------------------------------------- --wait

    def wait(self, sub: Submission) -> None:
        """Poll squeue until no job of ``sub`` can still run; raise TaskError on failure.

        Jobs left waiting on a dependency that failed are cancelled here.
        """
        from pipelines.inspection.status import failure_summary, run_status

        ids = [j.id for j in sub.jobs]
        shown = ""
        try:
            while True:
                states = queue_states(ids, active_only=True)
                if self.progress:
                    line = _progress_line(sub.run)
                    if line != shown:
                        print(f"thresher: {line}", file=sys.stderr, flush=True)
                        shown = line
                if all(s.blocked for s in states.values()):
                    break
                time.sleep(POLL_S)
        except KeyboardInterrupt:
            raise UserError(f"stopped waiting; the Slurm jobs keep running: thresher status "
                            f"{sub.run.root}") from None
        stale = sorted({k[0] for k in states})
        if stale:
            scancel(stale)
        status = run_status(sub.run)
        if status["state"] != "finished":
            raise TaskError(failure_summary(status))


def _progress_line(run: RunDir) -> str:
    plan = run.load_plan()
    return "  ".join(f"{p.name} {len(run.done_tasks(p.name))}/{p.n_tasks}" for p in plan.phases)
