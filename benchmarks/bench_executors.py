"""Ray's (and optionally Slurm's) overhead against the local executor on one config.

    .venv/bin/python benchmarks/bench_executors.py [--config configs/demo.yaml] [--reps 3]
        [--slurm]

Both executors are measured in two states, each with the same number of workers:

- cold: every run is a new Python process that has imported thresher and nothing else,
  as `thresher run` is. For Ray, that process first starts a private local cluster
  (untimed; its start-up is reported apart, and added back in one more row: what a run
  with ``address: local`` pays), so the run's Ray workers are new processes that import
  the stages and load the models, as the local executor's forkserver and pool workers
  do. (Ray starts its idle worker processes with the cluster, so their interpreter and
  Ray imports fall in the untimed start; the local forkserver's imports are timed.)
- warm: one process, one private Ray cluster, one untimed run of each executor first;
  then every timed run reuses what earlier runs left: Ray's workers (stages imported,
  models loaded) and the local executor's forkserver (engine and stages imported; the
  pool's workers are forked per phase and load the models again, which is how the local
  executor works).

Each rep runs both executors in both states, alternating which goes first; the script
prints every run, the median and range per executor and state, the median and range
of the paired ratio, and checks that every run wrote the same output bytes. With
``--slurm`` each rep also submits the run to the Slurm cluster this machine reaches and
waits for it, as ``thresher run --wait`` does (every task is a job array task, a new
process that loads its models: Slurm has no warm state); run it where the Slurm node has
as many CPUs as ``--workers``. The load average is printed at the start, after each
run and at the end, since the machine may be shared. Every Ray cluster is started by
this script with ``ray.init(address="local")`` in its own temporary directory and
stopped with ``ray.shutdown()``, as tests/conftest.py's ``ray_cluster`` does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines import load_config, run_pipeline  # noqa: E402
from pipelines.config import LocalExecutor, RayExecutor, SlurmExecutor  # noqa: E402


def shard_hashes(run: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((run / "data").glob("*"))}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def executor(kind: str, workers: int):
    if kind == "local":
        return LocalExecutor(workers=workers)
    if kind == "ray":
        return RayExecutor(workers=workers)
    # no %throttle: the node's CPUs bound the tasks at once (2 here, as 2 local workers);
    # with one, the arrays of a phase split at a small MaxArraySize run one after another
    return SlurmExecutor()


def timed_run(config: str, kind: str, workers: int, out: str) -> tuple[float, dict]:
    cfg = load_config(config).model_copy(update={"executor": executor(kind, workers)})
    cfg = cfg.model_copy(update={"output": cfg.output.model_copy(update={"path": out})})
    t = time.perf_counter()
    run = run_pipeline(cfg)
    return time.perf_counter() - t, shard_hashes(run.root)


class RayCluster:
    """A private local Ray cluster in a short temporary directory (Ray's socket paths
    must stay under 108 bytes), started and stopped by this process only."""

    def __init__(self, workers: int):
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        import ray

        self.ray, self.temp = ray, tempfile.mkdtemp(prefix="rb", dir="/tmp")
        t = time.perf_counter()
        ray.init(address="local", num_cpus=workers, object_store_memory=100 * 2**20,
                 include_dashboard=False, log_to_driver=False, _temp_dir=self.temp)
        self.start_s = time.perf_counter() - t

    def stop(self) -> None:
        self.ray.shutdown()
        shutil.rmtree(self.temp, ignore_errors=True)


def one_cold_run(kind: str, a: argparse.Namespace) -> None:
    """In a fresh process: (Ray: start a cluster, untimed) one timed run; JSON on stdout."""
    cluster = RayCluster(a.workers) if kind == "ray" else None
    try:
        wall, hashes = timed_run(a.config, kind, a.workers, a.out)
    finally:
        if cluster:
            cluster.stop()
    print(json.dumps({"wall": wall, "hashes": hashes,
                      "start_s": cluster.start_s if cluster else None}))


def cold(kind: str, a: argparse.Namespace, out: str) -> tuple[float, dict, float | None]:
    res = subprocess.run([sys.executable, __file__, "--one", kind, "--out", out,
                          "--config", a.config, "--workers", str(a.workers)],
                         check=True, capture_output=True, text=True, cwd=REPO)
    r = json.loads(res.stdout.splitlines()[-1])
    return r["wall"], r["hashes"], r["start_s"]


def summary(times: dict[str, list[float]], state: str) -> list[str]:
    lines = [f"\n{state}: | executor | median wall s | range | runs | vs local (median of "
             "paired ratios) | range |", "|---|---:|---:|---|---:|---:|"]
    for k, xs in times.items():
        ratios = [x / y for x, y in zip(xs, times["local"])]
        lines.append(f"| {k} | {statistics.median(xs):.2f} | {min(xs):.2f}-{max(xs):.2f} | "
                     f"{', '.join(f'{x:.2f}' for x in xs)} | "
                     f"{100 * (statistics.median(ratios) - 1):+.1f} % | "
                     f"{100 * (min(ratios) - 1):+.1f} to {100 * (max(ratios) - 1):+.1f} % |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(REPO / "configs" / "demo.yaml"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--slurm", action="store_true", help="also run it on Slurm (cold only)")
    ap.add_argument("--one", choices=["local", "ray", "slurm"], help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    os.chdir(REPO)
    if a.one:
        one_cold_run(a.one, a)
        return
    print(f"load average at start: {load()}", flush=True)
    cold_kinds = ["local", "ray"] + (["slurm"] if a.slurm else [])
    times = {"cold": {k: [] for k in cold_kinds}, "warm": {k: [] for k in ("local", "ray")}}
    starts: list[float] = []
    with_start: list[float] = []  # cold Ray with its cluster's start: `address: local`
    hashes: dict[str, dict] = {}
    # Slurm jobs may run on other nodes: keep the run dirs under the (shared) checkout
    (REPO / "runs").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=REPO / "runs") as tmp:
        cluster = RayCluster(a.workers)  # the warm state's cluster, alive between its runs
        try:
            for kind in ("local", "ray"):  # untimed: what the warm state reuses
                _, hashes[f"warm-up {kind}"] = timed_run(a.config, kind, a.workers,
                                                         f"{tmp}/warmup-{kind}")
            for rep in range(a.reps):
                flip = rep % 2 == 1
                for state in ("cold", "warm"):
                    kinds = list(times[state])
                    for kind in (kinds[::-1] if flip else kinds):
                        out = f"{tmp}/{state}-{kind}-{rep}"
                        if state == "warm":
                            wall, h = timed_run(a.config, kind, a.workers, out)
                        else:
                            wall, h, start_s = cold(kind, a, out)
                            if start_s is not None:
                                starts.append(start_s)
                                with_start.append(wall + start_s)
                        times[state][kind].append(wall)
                        hashes[out] = h
                        print(f"rep {rep} {state} {kind:5s} {wall:7.2f} s  (load {load()})",
                              flush=True)
        finally:
            cluster.stop()
    reference = hashes["warm-up local"]
    differ = [k for k, h in hashes.items() if h != reference]
    assert not differ, f"output differs from local's: {differ}"
    print(f"\nconfig {a.config}, {a.workers} workers, {a.reps} reps, {os.cpu_count()} CPUs; "
          f"load average at the end: {load()}")
    times["cold"]["ray, cluster start included"] = with_start
    for state in ("cold", "warm"):
        print("\n".join(summary(times[state], state)))
    print(f"\nRay cluster start (not in the runs above; paid once per session, or per run by "
          f"`address: local`): median {statistics.median(starts):.2f} s "
          f"({min(starts):.2f}-{max(starts):.2f}) over {len(starts)} starts; outputs of all "
          f"{len(hashes)} runs byte-identical ({len(reference)} shards)")


if __name__ == "__main__":
    main()
