"""Talking to Slurm: sbatch, squeue, scancel, scontrol, the jobcomp file, and jobs.json.

Works without slurmdbd. A job's state comes from ``squeue -t all`` (finished jobs
stay listed for MinJobAge seconds) and, once squeue has forgotten a job, from the
``jobcomp/filetxt`` file when the cluster writes one. ``sacct`` is never used:
without accounting it prints a notice and lists nothing, which would read as
"no jobs". What thresher submitted is recorded in ``<run>/slurm/jobs.json``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pipelines.errors import UserError
from pipelines.io.files import write_json_atomic
from pipelines.rundir import RunDir

# States in which a job may still run (everything else is final).
ACTIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED",
          "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SIGNALING", "STAGE_OUT",
          "RESIZING", "STOPPED", "SPECIAL_EXIT"}
RUNNING = {"RUNNING", "CONFIGURING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING"}
NEVER = "DependencyNeverSatisfied"  # the reason of a job whose afterok can no longer hold


class SlurmError(UserError):
    """A Slurm command failed or is missing; the message names the command."""


def slurm_cmd(args: list[str], timeout: float = 60) -> str:
    try:
        p = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise SlurmError(f"{args[0]}: command not found; the slurm executor needs the Slurm "
                         "client tools (sbatch, squeue, scancel, scontrol) on PATH") from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{args[0]} did not answer within {timeout:.0f} s") from None
    if p.returncode != 0:
        err = (p.stderr.strip() or p.stdout.strip() or "no output").splitlines()[-1]
        raise SlurmError(f"{args[0]} failed (exit {p.returncode}): {err}")
    return p.stdout


_CONFIG: dict[str, str] = {}


def cluster_config() -> dict[str, str]:
    """``scontrol show config`` as a dict (read once per process)."""
    if not _CONFIG:
        for line in slurm_cmd(["scontrol", "show", "config"]).splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() and " " not in key.strip():
                _CONFIG[key.strip()] = value.strip()
    return _CONFIG


def max_array_size() -> int:
    """MaxArraySize: array *indices* must be below it (Slurm's default is 1001)."""
    value = cluster_config().get("MaxArraySize", "1001")
    return int(value) if value.isdigit() and int(value) > 0 else 1001


def sbatch(args: list[str], script: Path) -> str:
    """Submit; return the job id (``--parsable`` prints ``id`` or ``id;cluster``)."""
    out = slurm_cmd(["sbatch", "--parsable", *args, str(script)])
    job = out.strip().split(";")[0]
    if not job.isdigit():
        raise SlurmError(f"sbatch printed {out.strip()!r}, not a job id")
    return job


def scancel(job_ids: list[str]) -> None:
    if job_ids:
        slurm_cmd(["scancel", *job_ids])


# ----------------------------------------------------------------------------- job states

@dataclass(frozen=True)
class JobState:
    state: str  # PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, ...
    reason: str = ""
    exit: str = ""  # "exit 3", "signal 9" or "" (success or unknown)
    name: str = ""  # the job name, to tell our job from one that reuses its id

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def blocked(self) -> bool:
        """Will never run: a job it depends on (afterok) failed."""
        return self.reason == NEVER and self.state in ("PENDING", "CANCELLED")

    def describe(self) -> str:
        extra = ", ".join(x for x in (self.exit, "" if self.reason in ("", "None")
                                      else self.reason) if x)
        return f"{self.state} ({extra})" if extra else self.state


# key: (job id, array index); the index is None for a job that is not an array
Key = tuple[str, "int | None"]


def _exit(raw: str) -> str:
    """squeue's exit_code is a wait status: exit code << 8 | signal."""
    if not raw.isdigit() or raw == "0":
        return ""
    v = int(raw)
    return f"signal {v & 0x7F}" if v & 0x7F else f"exit {v >> 8}"


def queue_states(job_ids: list[str], active_only: bool = False) -> dict[Key, JobState]:
    """State of every array task (one line each, ``-r``) of the given jobs, from squeue."""
    if not job_ids:
        return {}
    fmt = "ArrayJobID:|,ArrayTaskID:|,State:|,exit_code:|,Name:|,Reason:"
    states = ",".join(sorted(ACTIVE)) if active_only else "all"
    try:
        out = slurm_cmd(["squeue", "-h", "-r", "-t", states, "-j", ",".join(job_ids),
                         "-O", fmt])
    except SlurmError as e:
        if "Invalid job id" in str(e):  # squeue has forgotten all of them (MinJobAge)
            return {}
        raise
    res: dict[Key, JobState] = {}
    for line in out.splitlines():
        parts = line.split("|", 5)
        if len(parts) != 6:
            continue
        job, idx, state, code, name, reason = (p.strip() for p in parts)
        state = state.split()[0] if state else "UNKNOWN"  # "CANCELLED by 0" -> CANCELLED
        res[(job, int(idx) if idx.isdigit() else None)] = JobState(state, reason, _exit(code),
                                                                     name)
    return res


def jobcomp_states(job_ids: set[str]) -> dict[Key, JobState]:
    """Final states from the jobcomp/filetxt file, for jobs squeue no longer lists."""
    try:
        cfg = cluster_config()
    except SlurmError:
        return {}
    path = Path(cfg.get("JobCompLoc", ""))
    if cfg.get("JobCompType") != "jobcomp/filetxt" or not path.is_file():
        return {}
    res: dict[Key, JobState] = {}
    with open(path, errors="replace") as f:
        for line in f:
            kv = dict(item.split("=", 1) for item in line.split() if "=" in item)
            job = kv.get("ArrayJobId") or kv.get("JobId", "")
            if job not in job_ids:
                continue
            idx = kv.get("ArrayTaskId", "")
            code, _, sig = kv.get("ExitCode", "0:0").partition(":")
            exit_ = f"signal {sig}" if sig not in ("", "0") else (
                f"exit {code}" if code not in ("", "0") else "")
            res[(job, int(idx) if idx.isdigit() else None)] = JobState(
                kv.get("JobState", "UNKNOWN"), "", exit_, kv.get("Name", ""))
    return res


def job_states(job_ids: list[str]) -> dict[Key, JobState]:
    """squeue first, the jobcomp file for what squeue has forgotten."""
    res = queue_states(job_ids)
    missing = {j for j in job_ids if not any(k[0] == j for k in res)}
    if missing:
        for k, v in jobcomp_states(missing).items():
            res.setdefault(k, v)
    return res


# ----------------------------------------------------------------------------- jobs.json

@dataclass(frozen=True)
class Job:
    """One sbatch submission: an array over some tasks of a phase, or the finalize job."""

    id: str
    phase: str  # a phase of the plan, or "finalize"
    tasks: str = ""  # task ids as ranges, "0-4,7"; "" for finalize
    offset: int = 0  # task id = array index + offset (MaxArraySize bounds the index)
    script: str = ""  # the rendered job script, relative to spool_dir (the run dir when local)
    name: str = ""  # --job-name; a state under another name is not this job's (ids restart
    #                 at 1 when a test cluster's state is wiped)
    per_job: int = 1  # tasks_per_job: array index i runs tasks[i * per_job:][:per_job]

    def task_ids(self) -> list[int]:
        return expand_ranges(self.tasks)

    def index(self, task: int) -> int:
        """The array index whose job runs ``task``."""
        if self.per_job == 1:
            return task - self.offset
        return self._positions[task] // self.per_job

    @functools.cached_property
    def _positions(self) -> dict[int, int]:  # once per job: status asks for every task
        return {t: i for i, t in enumerate(self.task_ids())}

    def key(self, task: int | None) -> Key:
        return (self.id, None if task is None else self.index(task))

    def owns(self, state: JobState) -> bool:
        return not (self.name and state.name) or self.name == state.name

    def slurm_log(self, run: RunDir, task: int | None) -> Path:
        if task is None:
            return spool_dir(run) / "logs" / f"slurm-finalize-{self.id}.out"
        return spool_dir(run) / "logs" / self.phase / f"slurm-{self.id}_{self.index(task)}.out"


def spool_dir(run: RunDir) -> Path:
    """Where job scripts and Slurm's own output files go. Slurm writes those with plain
    file I/O, so for a run directory in object storage they go to a local directory:
    ``$THRESHER_SLURM_SPOOL`` or ``<tmp>/thresher-slurm/<hash of the run URL>`` (on a
    cluster of several nodes, point ``THRESHER_SLURM_SPOOL`` at a directory all nodes
    see). Everything thresher itself writes (shards, stats, logs) stays in the run."""
    if not run.is_remote:
        return run.root
    tag = hashlib.sha1(str(run.root).encode()).hexdigest()[:16]
    base = os.environ.get("THRESHER_SLURM_SPOOL") or os.path.join(tempfile.gettempdir(),
                                                                   "thresher-slurm")
    return Path(base) / tag


def jobs_file(run: RunDir) -> Path:
    return run.root / "slurm" / "jobs.json"


def load_submissions(run: RunDir) -> list[dict]:
    """Every submission of this run, oldest first: {"time": ..., "jobs": [Job, ...]}."""
    path = jobs_file(run)
    if not path.exists():
        return []
    subs = json.loads(path.read_text())["submissions"]
    return [{**s, "jobs": [Job(**j) for j in s["jobs"]]} for s in subs]


def record_submission(run: RunDir, jobs: list[Job]) -> None:
    subs = [{**s, "jobs": [asdict(j) for j in s["jobs"]]} for s in load_submissions(run)]
    subs.append({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "jobs": [asdict(j) for j in jobs]})
    write_json_atomic(jobs_file(run), {"submissions": subs})


def compress_ranges(ids: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> "0-2,5,7-8" (the form --array takes)."""
    out: list[str] = []
    ids = sorted(set(ids))
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        out.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ",".join(out)


def expand_ranges(spec: str) -> list[int]:
    out: list[int] = []
    for part in filter(None, spec.split(",")):
        a, _, b = part.partition("-")
        out += range(int(a), int(b or a) + 1)
    return out
