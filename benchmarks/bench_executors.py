"""Ray's overhead against the local executor on the same config, side by side.

    .venv/bin/python benchmarks/bench_executors.py [--config configs/demo.yaml] [--reps 3]

Runs the config with the local executor and with Ray (a private local cluster
started once, before timing, as a long-lived cluster would be), alternating,
with the same number of workers, and prints the wall time of each run, the
median of each executor and Ray's overhead. The cluster start-up is reported
separately. Output bytes are checked to be identical.
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
from pipelines.config import LocalExecutor, RayExecutor  # noqa: E402


def shard_hashes(run: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((run / "data").glob("*"))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(REPO / "configs" / "demo.yaml"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    os.chdir(REPO)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=a.workers, object_store_memory=100 * 2**20,
             include_dashboard=False, log_to_driver=False)
    start_s = time.perf_counter() - t0
    times: dict[str, list[float]] = {"local": [], "ray": []}
    hashes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(a.reps):
            for kind in ("local", "ray"):
                ex = LocalExecutor(workers=a.workers) if kind == "local" else \
                    RayExecutor(workers=a.workers)
                cfg = load_config(a.config).model_copy(update={"executor": ex})
                cfg = cfg.model_copy(update={"output": cfg.output.model_copy(
                    update={"path": f"{tmp}/{kind}-{rep}"})})
                t = time.perf_counter()
                run = run_pipeline(cfg)
                times[kind].append(time.perf_counter() - t)
                hashes[kind] = shard_hashes(run.root)
                print(f"rep {rep} {kind:5s} {times[kind][-1]:7.2f} s", flush=True)
    ray.shutdown()
    assert hashes["local"] == hashes["ray"], "Ray output differs from local"
    loc, ry = statistics.median(times["local"]), statistics.median(times["ray"])
    print(f"\nconfig {a.config}, {a.workers} workers, {a.reps} reps, "
          f"{os.cpu_count()} CPUs")
    print("| executor | median wall s | runs |\n|---|---|---|")
    print(f"| local | {loc:.2f} | {', '.join(f'{x:.2f}' for x in times['local'])} |")
    print(f"| ray | {ry:.2f} | {', '.join(f'{x:.2f}' for x in times['ray'])} |")
    print(f"\nRay overhead: {100 * (ry - loc) / loc:+.1f}% (ray/local = {ry / loc:.3f}); "
          f"cluster start, paid once per session: {start_s:.1f} s; outputs identical")


if __name__ == "__main__":
    main()
