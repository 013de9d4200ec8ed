"""Slurm ``tasks_per_job``: a stage's set-up paid once per group of tasks instead of per task.

    bash slurm/slurm-up.sh          # the one-node Slurm the tests use
    .venv/bin/python benchmarks/bench_tasks_per_job.py [--per-job 3] [--repeats 3]

The chain reads the 6 bundled WARCs (extract, langid, gopher_quality) after a
``url_filter`` whose blocklist is 2,000,000 generated domains: its set-up builds a Python
set of them (about 200 MB), as FineWeb's 124 MB UT1 lists do at
scale (docs/scale.md). On Slurm each array job is a new process, so with
``tasks_per_job: 1`` every task pays that set-up; with ``--per-job N`` a job runs N
tasks in one process and pays it once. The two settings alternate, ``--repeats`` times
each, each run submitted with ``--wait``. Printed per run: the whole command's wall time
(submission to finalize), how many processes ran the main phase's tasks, and the tasks'
own CPU (``cpu_s`` of their records, which leaves out the set-up); then the median wall
times and their ratio. Both settings must write the same shards.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
WARCS = REPO / "tests" / "data" / "warc"


def config(work: Path, per_job: int, blocklist: Path) -> Path:
    cfg = {"name": f"tpj{per_job}",
           "input": {"format": "warc", "paths": [str(WARCS / "*.warc.gz")]},
           "output": {"path": str(work / f"run-{per_job}")},
           "executor": {"kind": "slurm", "tasks_per_job": per_job},
           "stages": [{"stage": "url_filter", "blocklist_file": str(blocklist)},
                      {"stage": "extract"}, {"stage": "langid", "languages": ["en"]},
                      {"stage": "gopher_quality"}]}
    path = work / f"tpj{per_job}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def shard_digest(run: Path) -> str:
    h = hashlib.sha256()
    for p in sorted((run / "data").glob("*.parquet")):
        h.update(p.name.encode() + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()[:16]


def one_run(work: Path, per_job: int, blocklist: Path) -> dict:
    path = config(work, per_job, blocklist)
    run = work / f"run-{per_job}"
    shutil.rmtree(run, ignore_errors=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipelines.cli", "run", str(path), "--wait",
                    "--quiet"], cwd=REPO, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    recs = [json.loads(p.read_text()) for p in (run / "stats" / "main").glob("task-*.json")]
    return {"wall_s": wall, "tasks_cpu_s": sum(r["cpu_s"] for r in recs),
            "processes": len({r["pid"] for r in recs}), "shards": shard_digest(run)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-job", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-tpj-"))
    blocklist = work / "blocklist.txt"
    blocklist.write_text("".join(f"d{i:07d}.example.org\n" for i in range(2_000_000)))
    print(f"load average {open('/proc/loadavg').read().split()[0]}; work in {work}")
    results: dict[int, list[dict]] = {1: [], a.per_job: []}
    for rep in range(a.repeats):
        for n in (1, a.per_job) if rep % 2 == 0 else (a.per_job, 1):
            r = one_run(work, n, blocklist)
            results[n].append(r)
            print(f"tasks_per_job {n}: {r['wall_s']:.2f} s wall, {r['processes']} processes "
                  f"for the main phase, tasks' cpu {r['tasks_cpu_s']:.2f} s, shards "
                  f"{r['shards']}", flush=True)
    digests = {r["shards"] for rs in results.values() for r in rs}
    assert len(digests) == 1, f"the settings wrote different shards: {digests}"
    one, many = (statistics.median(r["wall_s"] for r in results[n]) for n in (1, a.per_job))
    print(f"median wall: tasks_per_job 1 {one:.2f} s, tasks_per_job {a.per_job} "
          f"{many:.2f} s: {one / many:.2f}x; same shards ({digests.pop()})")
    print(f"load average {open('/proc/loadavg').read().split()[0]}")


if __name__ == "__main__":
    main()
