"""Ray's (and optionally Slurm's) overhead against the local executor on one config.

    .venv/bin/python benchmarks/bench_executors.py [--config configs/demo.yaml] [--reps 3]
        [--slurm]

Runs the config with the local executor and with Ray (a private local cluster
started once, before timing, as a long-lived cluster would be), alternating,
with the same number of workers, and prints the wall time of each run, the
median of each executor and the overhead against local. The cluster start-up is
reported separately. With ``--slurm`` each rep also submits the run to the Slurm
cluster this machine reaches and waits for it, as ``thresher run --wait`` does: every
task is a job array task, i.e. a new process that loads its models, plus the
scheduler's latency and the finalize job; run it where the Slurm node has as many
CPUs as ``--workers``. Output
bytes of every executor are checked to be identical. The load average is printed
at the start and the end, since the machine may be shared.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(REPO / "configs" / "demo.yaml"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--slurm", action="store_true", help="also run it on Slurm")
    a = ap.parse_args()
    os.chdir(REPO)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    print(f"load average at start: {load()}", flush=True)
    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=a.workers, object_store_memory=100 * 2**20,
             include_dashboard=False, log_to_driver=False)
    start_s = time.perf_counter() - t0
    kinds = ["local", "ray"] + (["slurm"] if a.slurm else [])
    times: dict[str, list[float]] = {k: [] for k in kinds}
    hashes = {}
    # Slurm jobs may run on other nodes: keep the run dirs under the (shared) checkout
    (REPO / "runs").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=REPO / "runs") as tmp:
        for rep in range(a.reps):
            for kind in kinds:
                cfg = load_config(a.config).model_copy(
                    update={"executor": executor(kind, a.workers)})
                cfg = cfg.model_copy(update={"output": cfg.output.model_copy(
                    update={"path": f"{tmp}/{kind}-{rep}"})})
                t = time.perf_counter()
                run = run_pipeline(cfg)
                times[kind].append(time.perf_counter() - t)
                hashes[kind] = shard_hashes(run.root)
                print(f"rep {rep} {kind:5s} {times[kind][-1]:7.2f} s", flush=True)
    ray.shutdown()
    for kind in kinds[1:]:
        assert hashes[kind] == hashes["local"], f"{kind} output differs from local"
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nconfig {a.config}, {a.workers} workers, {a.reps} reps, "
          f"{os.cpu_count()} CPUs; load average at the end: {load()}")
    print("| executor | median wall s | runs | vs local |\n|---|---|---|---|")
    for k in kinds:
        print(f"| {k} | {med[k]:.2f} | {', '.join(f'{x:.2f}' for x in times[k])} | "
              f"{100 * (med[k] - med['local']) / med['local']:+.1f} % |")
    print(f"\nRay overhead: {100 * (med['ray'] - med['local']) / med['local']:+.1f}% "
          f"(ray/local = {med['ray'] / med['local']:.3f}); cluster start, paid once per "
          f"session: {start_s:.1f} s; outputs identical")
    if a.slurm:
        print(f"Slurm overhead: {100 * (med['slurm'] - med['local']) / med['local']:+.1f}% "
              f"(slurm/local = {med['slurm'] / med['local']:.3f}); outputs identical")


if __name__ == "__main__":
    main()
