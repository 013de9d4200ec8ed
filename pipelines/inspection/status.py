"""``thresher status RUN``: per phase, how many tasks are done, running, pending, failed.

Done means the task's stats file exists; that is the only truth, whatever ran the
task. For the rest, a run submitted to Slurm is joined with what Slurm says about
the job array task that last ran each task (squeue, else the jobcomp file; no
slurmdbd needed). A failed task is shown with its log, Slurm's output file and the
last error line. ``blocked`` counts jobs that will never run because a job they
depend on failed; ``todo`` counts tasks nothing is queued for (e.g. an interrupted
local run, or jobs Slurm has forgotten).
"""

from __future__ import annotations

from pathlib import Path

from pipelines.rundir import RunDir

COLUMNS = ("done", "running", "pending", "failed", "blocked", "todo")


def run_status(run_dir: str | Path | RunDir) -> dict:
    """The state of every phase of a run (plus ``finalize``), as plain data."""
    from pipelines.executors.slurm_queue import RUNNING, SlurmError, job_states, load_submissions

    run = RunDir.at(run_dir)
    plan = run.load_plan()
    subs = load_submissions(run)
    last_job = {}  # (phase, task) -> the newest job that was to run it
    for sub in subs:
        for job in sub["jobs"]:
            for t in job.task_ids() if job.phase != "finalize" else [None]:
                last_job[(job.phase, t)] = job
    done = {p.name: run.done_tasks(p.name) for p in plan.phases}
    undone = [(p.name, t) for p in plan.phases for t in range(p.n_tasks) if t not in done[p.name]]
    fin_job = last_job.get(("finalize", None))
    wanted = {last_job[k].id for k in undone if k in last_job}
    if fin_job is not None:
        wanted.add(fin_job.id)
    warning = ""
    try:
        states = job_states(sorted(wanted)) if wanted else {}
    except SlurmError as e:  # Slurm down or unreachable: the run dir still tells what is done
        states, warning = {}, f"cannot read the Slurm queue: {e}"
    fin_state = states.get(fin_job.key(None)) if fin_job else None
    # a manifest from an earlier finalize does not count while the newest one has not completed
    finished = run.manifest.exists() and not undone and (
        fin_state is None or not fin_job.owns(fin_state) or fin_state.state == "COMPLETED")

    phases = [{"phase": p.name, "tasks": p.n_tasks, **dict.fromkeys(COLUMNS, 0)}
              for p in plan.phases]
    by_name = {p["phase"]: p for p in phases}
    for p in plan.phases:
        by_name[p.name]["done"] = len(done[p.name])
        by_name[p.name].update(_doc_counts(run, p.name, done[p.name]))
    problems: list[dict] = []
    blocked_jobs: set[str] = set()

    def classify(phase: str, task: int | None) -> str:
        job = last_job.get((phase, task))
        if job is None:
            return "todo"
        # a whole array cancelled before it started is one line without a task index
        st = states.get(job.key(task)) or states.get((job.id, None))
        if st is None or not job.owns(st):
            return "todo"
        if st.blocked:
            blocked_jobs.add(job.id)
            return "blocked"
        if st.active:
            return "running" if st.state in RUNNING else "pending"
        problems.append(_failure(run, phase, task, job, st))
        return "failed"

    for phase, task in undone:
        by_name[phase][classify(phase, task)] += 1
    fin = {"phase": "finalize", "tasks": 1, **dict.fromkeys(COLUMNS, 0)}
    fin["done" if finished else classify("finalize", None)] += 1
    phases.append(fin)

    if finished:
        state = "finished"
    elif any(p["running"] or p["pending"] for p in phases):
        state = "running"  # failures so far are listed all the same
    elif problems or blocked_jobs:
        state = "failed"
    else:
        state = "incomplete"
    return {"run": str(run.root), "state": state, "phases": phases, "failed": problems,
            "blocked_jobs": sorted(blocked_jobs, key=int),
            "submissions": len(subs), "warning": warning}


def _doc_counts(run: RunDir, phase: str, tasks: set[int]) -> dict[str, int]:
    """Documents the finished tasks of a phase read and wrote so far (from their stats
    files, so it works for every executor while the run goes on)."""
    docs_in = docs_out = 0
    for t in sorted(tasks):
        try:
            rec = run.load_task_stats(phase, t)
        except (OSError, ValueError):  # unreadable: the count is only a progress hint
            continue
        first = next(iter((rec.get("stages") or {}).values()), None)
        docs_in += first["docs_in"] if first else 0
        docs_out += sum(s.get("rows", 0) for s in rec.get("shards", []))
    return {"docs_in": docs_in, "docs_out": docs_out}


def _failure(run: RunDir, phase: str, task: int | None, job, st) -> dict:
    slurm_log = job.slurm_log(run, task)
    log = run.task_log(phase, task) if task is not None else None
    error = _last_error(log, slurm_log)
    if st.state == "COMPLETED":  # the job ended well but the task left no stats file
        error = error or "the job completed but the task's stats file is missing"
    return {"phase": phase, "task": task,
            "job": job.id if task is None else f"{job.id}_{job.index(task)}",
            "slurm_state": st.describe(), "error": error,
            "log": str(log) if log is not None and log.exists() else None,
            "slurm_log": str(slurm_log) if slurm_log.exists() else None}


def _last_error(task_log: Path | None, slurm_log: Path) -> str:
    """The line that says what went wrong: the end of the last traceback in the task log,
    else the last line of Slurm's output (a crash before Python ran, a kill, a timeout)."""
    if task_log is not None and task_log.exists():
        lines = [ln for ln in task_log.read_text(errors="replace").splitlines() if ln.strip()]
        # the last record is an ERROR with its traceback when the task raised
        last_record = max((i for i, ln in enumerate(lines) if ln[:4].isdigit()), default=-1)
        if last_record >= 0 and " ERROR " in lines[last_record] and lines[-1] != \
                lines[last_record]:
            return lines[-1].strip()
    if slurm_log.exists():  # skip the job script's banner and log chatter: a kill says nothing
        lines = [ln for ln in slurm_log.read_text(errors="replace").splitlines()
                 if ln.strip() and not ln.startswith(("thresher: job ", "INFO "))]
        if lines:
            return lines[-1].strip()
    return ""


def failure_summary(status: dict) -> str:
    """One paragraph for ``run --wait``: what failed first, where to look, what next."""
    run = status["run"]
    if status["failed"]:
        f = status["failed"][0]
        where = "finalize" if f["task"] is None else f"phase {f['phase']}: task {f['task']}"
        more = f" (and {len(status['failed']) - 1} more)" if len(status["failed"]) > 1 else ""
        msg = (f"{where}{more} failed: {f['slurm_state']}"
               + (f": {f['error']}" if f["error"] else "")
               + f"; log: {f['log'] or f['slurm_log'] or '(none written)'}")
    else:
        msg = f"{run}: run did not finish (state {status['state']})"
    if status["blocked_jobs"]:
        msg += f"; dependent job(s) {', '.join(status['blocked_jobs'])} will not run"
    return msg + f"; finished tasks are kept: see thresher status {run}, then re-run with --resume"


def print_status(status: dict, console) -> None:
    from rich.table import Table

    def say(text: str) -> None:  # plain text, never wrapped: paths stay copyable
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    t = Table(title=f"{status['run']}: {status['state']}")
    t.add_column("phase", no_wrap=True)
    docs = ("docs_in", "docs_out")  # of the finished tasks
    for col in ("tasks", *COLUMNS, "docs in", "docs out"):
        t.add_column(col, justify="right")
    for p in status["phases"]:
        t.add_row(p["phase"], *(f"{p[c]:,}" if p.get(c) else "-"
                                for c in ("tasks", *COLUMNS, *docs)))
    console.print(t)
    if status["warning"]:
        say(f"warning: {status['warning']}")
    for f in status["failed"]:
        name = "finalize" if f["task"] is None else f"{f['phase']}/{f['task']}"
        say(f"failed: {name} (job {f['job']}, {f['slurm_state']})"
            + (f": {f['error']}" if f["error"] else ""))
        for key in ("log", "slurm_log"):
            if f[key]:
                say(f"  {key.replace('_', ' ')}: {f[key]}")
    if status["blocked_jobs"]:
        say(f"job(s) {', '.join(status['blocked_jobs'])} will never run: a job they depend on "
            "failed (DependencyNeverSatisfied)")
    hint = {"failed": "fix the cause, then: thresher run CONFIG --resume",
            "incomplete": "nothing is queued: thresher run CONFIG --resume finishes it"}
    if status["state"] in hint:
        say(hint[status["state"]])
