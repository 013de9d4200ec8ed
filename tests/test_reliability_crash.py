"""Crash safety: runs killed at every point of their progress, full disks, read-only outputs.

``test_sigkill_in_every_phase_then_resume`` starts the real CLI on a small real pipeline
(WARC -> extract -> exact_dedup (three phases: collect, step, apply) -> length; 4 inputs,
10 tasks, tiny shards so a task writes several files), watches its run directory and
SIGKILLs it at a chosen point of its progress (start-up; k tasks into the collect, step
or apply phase; finalize), the whole process group or one process of the pool, sometimes
kills the resume too, checks that each kill landed before the run finished, then resumes
to the end and compares with an uninterrupted run: the same shard bytes, the same
per-stage counts, every document once. CI runs a fixed cover of 12 kill points; draw
any number of seeded random ones with

    THRESHER_KILL_TRIALS=200 .venv/bin/python -m pytest -q -k every_phase \
        tests/test_reliability_crash.py

(``THRESHER_KILL_SEED`` picks another sequence of kill points).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from conftest import REPO, WARC_DIR, shard_hashes, thresher

TRIALS = int(os.environ.get("THRESHER_KILL_TRIALS", "0"))
TRIALS_SET = TRIALS > 0  # else the fixed cover of kill points CI runs
SEED = int(os.environ.get("THRESHER_KILL_SEED", "20240611"))
INPUTS = [str(WARC_DIR / n) for n in ("resiliparse-cc-main-2020-34-warcfile.warc.gz",
                                      "dolma-wget-2024-sample-0000.warc.gz",
                                      "dolma-wget-2024-sample-0001.warc.gz",
                                      "cc-main-2024-22-whirlwind.warc.gz")]


def pipeline(tmp: Path, out: Path, workers: int = 1, inputs: list[str] = INPUTS,
             stages: list | None = None) -> Path:
    cfg = {"name": "crash", "input": {"format": "warc", "paths": inputs},
           "output": {"path": str(out), "rows_per_file": 7, "rows_per_row_group": 3},
           "executor": {"kind": "local", "workers": workers},
           "stages": stages if stages is not None else [
               {"stage": "extract", "fast": True},
               {"stage": "exact_dedup", "partitions": 2},
               {"stage": "length", "min_chars": 200}]}
    path = tmp / f"pipeline-{workers}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def start(cfg: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", str(cfg), "--quiet",
                             *args], cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), children first."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            parent[int(d)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = sorted(c for c, pp in parent.items() if pp == p)
        out += kids
        todo += kids
    return out


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def outcome(run: Path) -> dict:
    stats = json.loads((run / "stats.json").read_text())
    table = pq.read_table(run / "data")
    ids = table.column("id").to_pylist()
    return {"hashes": shard_hashes(run),
            "stages": {name: {k: st[k] for k in ("docs_in", "docs_out", "dropped", "errors",
                                                 "chars_out")}
                       for name, st in stats["stages"].items()},
            "ids": sorted(ids), "unique": len(ids) == len(set(ids)),
            "rows": stats["output"]["rows"]}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[dict, list[tuple[str, int]]]:
    """The uninterrupted run, and its phases with their task counts (the kill points)."""
    tmp = tmp_path_factory.mktemp("ref")
    thresher("run", str(pipeline(tmp, tmp / "run")), "--quiet")
    ref = outcome(tmp / "run")
    assert ref["unique"] and ref["rows"] > 10 and len(ref["hashes"]) > 4
    phases = [(p["name"], p["n_tasks"]) for p in
              json.loads((tmp / "run" / "plan.json").read_text())["phases"]]
    assert [k for _, k in phases] == [4, 2, 4]  # collect, the dedup step, apply
    return ref, phases


# A kill point: ("startup", 0) as soon as the run directory holds its plan; (i, k) once
# every task of the phases before phase i and k tasks of phase i are done (so with two
# workers, mid-task in phase i); ("finalize", 0) once the merged stats.json is written
# and before the manifest. The victim is the whole process group, or with two workers
# one process of the pool (the run then fails the phase, and a resume finishes it).
KillPoint = tuple  # (where, k, workers, victim[, (where, k) of a second kill, in the resume])


def kill_points(phases: list[tuple[str, int]]) -> list[KillPoint]:
    """The fixed cover CI runs: every kind of point at least once, 12 trials."""
    return [("startup", 0, 1, "group"),
            (0, 0, 2, "group"), (0, 1, 2, "worker"), (0, 2, 1, "group"),
            (1, 0, 2, "worker"), (1, 0, 1, "group"), (1, 1, 2, "group", (2, 2)),
            (2, 0, 2, "group"), (2, 1, 2, "worker"), (2, 3, 1, "group"),
            ("finalize", 0, 2, "group"), ("finalize", 0, 1, "group")]


def random_points(phases: list[tuple[str, int]], n: int) -> list[KillPoint]:
    rng = random.Random(SEED)
    out = []
    for _ in range(n):
        where = rng.choice(["startup", "finalize", *range(len(phases))])
        k = rng.randrange(phases[where][1]) if isinstance(where, int) else 0
        workers = rng.choice([1, 2])
        victim = "worker" if workers == 2 and isinstance(where, int) and \
            rng.random() < 0.3 else "group"
        point = (where, k, workers, victim)
        if isinstance(where, int) and where < len(phases) - 1 and rng.random() < 0.2:
            later = rng.randrange(where + 1, len(phases))
            point += ((later, rng.randrange(phases[later][1])),)  # kill the resume too
        out.append(point)
    return out


def _reached(run: Path, where, k: int, phases: list[tuple[str, int]]) -> bool:
    if where == "startup":
        return (run / "plan.json").exists()
    if where == "finalize":
        return (run / "stats.json").exists()

    def done(name: str) -> int:
        d = run / "stats" / name
        return len(list(d.glob("task-*.json"))) if d.is_dir() else 0

    return all(done(n) == t for n, t in phases[:where]) and done(phases[where][0]) >= k


def _busy_workers(pid: int, logs: Path) -> list[int]:
    """The pool workers running a task of the phase whose task logs are in ``logs``: they
    hold that log open (an idle worker, or one of the previous phase's pool still
    shutting down, would die without failing anything)."""
    busy = []
    for k in descendants(pid):
        try:
            fds = os.listdir(f"/proc/{k}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{k}/fd/{fd}").startswith(str(logs) + "/"):
                    busy.append(k)
                    break
            except OSError:
                continue
    return busy


def kill_at(proc: subprocess.Popen, run: Path, phases, where, k: int, victim: str,
            point) -> None:
    """Wait for the kill point, SIGKILL the victim, and check that the kill landed."""
    try:
        while proc.poll() is None and not _reached(run, where, k, phases):
            time.sleep(0.002)
        assert proc.poll() is None, f"{point}: the run ended before the kill point"
        busy = []
        if victim == "worker":  # a worker of this phase, once it is running a task
            logs = run / "logs" / phases[where][0]
            deadline = time.monotonic() + 30
            name, n_tasks = phases[where]
            while not busy and proc.poll() is None and time.monotonic() < deadline:
                busy = _busy_workers(proc.pid, logs)
                if not busy and _reached(run, where, n_tasks, phases):
                    break  # the phase's last task ended first: kill the whole run below
            assert proc.poll() is None, f"{point}: the run ended before a worker was seen"
        if busy:
            os.kill(busy[0], signal.SIGKILL)
        else:  # no task of the phase left to run (its last ones are done): the whole run
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=300)
    finally:
        try:  # whatever is left (the pool after a worker kill fails the phase)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=60)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert not (run / "manifest.json").exists(), f"{point}: the kill landed after the end"
    assert proc.returncode != 0, point
    assert "Traceback" not in err, (point, err[-2000:])


def test_the_ci_kill_points_cover_every_phase_and_finalize(reference):
    _, phases = reference
    points = kill_points(phases)
    assert {p[0] for p in points} == {"startup", "finalize", *range(len(phases))}
    assert {p[3] for p in points} == {"group", "worker"} and len(points) >= 10
    assert any(len(p) > 4 for p in points)  # a resume killed too


@pytest.mark.parametrize("trial", range(TRIALS) if TRIALS_SET else range(12))
def test_sigkill_in_every_phase_then_resume(reference, tmp_path: Path, trial: int):
    """Kill the run at a point of its own progress (start-up, mid-collect, mid-step,
    mid-apply, finalize; the whole run or one pool process), check that the kill landed
    before the run finished, resume, and compare with the uninterrupted run: the same
    shard bytes, the same counts, every document once, no temporary left."""
    ref, phases = reference
    points = random_points(phases, TRIALS) if TRIALS_SET else kill_points(phases)
    point = points[trial]
    where, k, workers, victim = point[:4]
    run = tmp_path / "run"
    cfg = pipeline(tmp_path, run, workers=workers)
    kill_at(start(cfg), run, phases, where, k, victim, point)
    if len(point) > 4:  # the resume is killed too, later in the run
        kill_at(start(cfg, "--resume"), run, phases, *point[4], "group", point)
    done = thresher("run", str(cfg), "--resume", "--quiet", check=False)
    assert done.returncode == 0, (point, done.stderr)
    assert outcome(run) == ref, point
    assert not list(run.rglob(".*.tmp-*")), point
    thresher("verify", str(run / "manifest.json"), str(run))


# ----------------------------------------------------------------------------- full disk

@pytest.fixture
def tmpfs(tmp_path: Path):
    """Mount a tmpfs of a given size (root only, which CI has); unmounted at the end."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = []

    def mount(size: str) -> Path:
        mnt = tmp_path / f"mnt{len(mounted)}"
        mnt.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
        mounted.append(mnt)
        return mnt

    yield mount
    for mnt in mounted:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _error_line(stderr: str) -> str:
    lines = [x for x in stderr.splitlines() if x.startswith("thresher: error:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_full_disk_fails_the_task_clearly_and_resume_finishes(tmp_path: Path, tmpfs):
    """The AUT crawl's HTML (860 KB of shards) does not fit in 512 KiB: its task fails
    with one line naming the place; nothing of it is marked done; with room again,
    --resume gives the same bytes as a run that never lacked space."""
    inputs = [str(WARC_DIR / "aut-ia-2008-example.warc.gz"),
              str(WARC_DIR / "cc-main-2024-22-whirlwind.warc.gz")]
    ref = tmp_path / "ref"
    thresher("run", str(pipeline(tmp_path, ref, inputs=inputs, stages=[])), "--quiet")

    mnt = tmpfs("512k")
    run = mnt / "run"
    cfg = pipeline(tmp_path, run, inputs=inputs, stages=[])
    proc = thresher("run", str(cfg), check=False)
    assert proc.returncode == 2
    line = _error_line(proc.stderr)
    assert "phase main: task 0 failed: OutputError: cannot " in line
    assert "No space left on device" in line and str(run / "data") in line
    assert not (run / "stats" / "main" / "task-00000.json").exists()
    assert not list((run / "data").glob("part-00000-*"))
    assert not list(run.rglob(".*.tmp-*"))

    subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
    thresher("run", str(cfg), "--resume", "--quiet")
    assert shard_hashes(run) == shard_hashes(ref)


# ----------------------------------------------------------------------------- read-only

@pytest.fixture
def read_only_dir(tmp_path: Path):
    """A directory on a read-only bind mount (root ignores file permissions, not this)."""
    if os.geteuid() != 0:
        pytest.skip("bind mounts need root")
    d = tmp_path / "ro"
    d.mkdir()
    ok = subprocess.run(["mount", "--bind", str(d), str(d)], capture_output=True).returncode == 0
    if not ok or subprocess.run(["mount", "-o", "remount,bind,ro", str(d)],
                                capture_output=True).returncode != 0:
        subprocess.run(["umount", str(d)], capture_output=True)
        pytest.skip("cannot make a read-only bind mount here")
    yield d
    subprocess.run(["umount", "-l", str(d)], check=False)


def test_read_only_output_is_one_line(tmp_path: Path, read_only_dir: Path):
    cfg = pipeline(tmp_path, read_only_dir / "run", inputs=INPUTS[-1:], stages=[])
    proc = thresher("run", str(cfg), check=False)
    assert proc.returncode == 2
    assert _error_line(proc.stderr) == \
        f"thresher: error: {read_only_dir / 'run'}: Read-only file system"


def test_output_dir_turned_read_only_mid_run(tmp_path: Path):
    """A run whose data/ became unusable (here: a file where the directory should be)
    fails its tasks with one line, marks none done, and resumes once it is fixed."""
    run = tmp_path / "run"
    cfg = pipeline(tmp_path, run, inputs=INPUTS[:2], stages=[])
    thresher("run", str(cfg), "--quiet")
    ref = shard_hashes(run)
    for p in (run / "stats" / "main").iterdir():
        p.unlink()
    for p in (run / "data").iterdir():
        p.unlink()
    (run / "data").rmdir()
    (run / "data").write_text("not a directory")
    proc = thresher("run", str(cfg), "--resume", check=False)
    assert proc.returncode == 2
    line = _error_line(proc.stderr)
    assert "task 0 (and 1 more) failed: OutputError: cannot create the output directory" in line
    assert not list((run / "stats" / "main").iterdir())
    (run / "data").unlink()
    thresher("run", str(cfg), "--resume", "--quiet")
    assert shard_hashes(run) == ref


def test_descendants_finds_the_child_processes():
    """The helper the kill test picks its victims with."""
    proc = subprocess.Popen([sys.executable, "-c",
                             "import subprocess,sys,time;"
                             "p=subprocess.Popen([sys.executable,'-c','import time;"
                             "time.sleep(30)']);time.sleep(30)"], start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while not descendants(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        (kid,) = descendants(proc.pid)
        assert b"time.sleep(30)" in Path(f"/proc/{kid}/cmdline").read_bytes()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
