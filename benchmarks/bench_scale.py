"""Figures of docs/scale.md: per-stage throughput of a finished run, the per-process
set-up cost of its chain, where Ray ran its tasks, and the Common Crawl extrapolation.

    .venv/bin/python benchmarks/bench_scale.py funnel RUN            # per stage and per phase
    .venv/bin/python benchmarks/bench_scale.py setup RUN             # stages' set-up (models)
    .venv/bin/python benchmarks/bench_scale.py ray-nodes RUN RAY_LOGS  # node of every task
    .venv/bin/python benchmarks/bench_scale.py cc RUN [--pages 3e9 --warcs 90000 --tb 100]
    .venv/bin/python benchmarks/bench_scale.py plan-error PLAN.json RUN  # estimate vs real

Everything is read from the run directory (stats.json and stats/<phase>/task-*.json);
`cc` prints each step of its arithmetic so the doc can show it.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import re
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def records(run: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for f in sorted(glob.glob(str(run / "stats" / "*" / "task-*.json"))):
        r = json.loads(Path(f).read_text())
        out[r["phase"]].append(r)
    return out


def dir_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.exists() else 0


def funnel(run: Path) -> dict:
    st = json.loads((run / "stats.json").read_text())
    stages = []
    for name, s in st["stages"].items():
        if name == "write":
            continue
        cpu = s.get("cpu_s") or 0.0
        stages.append({"stage": name, "docs_in": s["docs_in"], "docs_out": s["docs_out"],
                       "cpu_s": round(cpu, 3), "wall_s": round(s.get("wall_s") or 0.0, 3),
                       "docs_per_cpu_s": round(s["docs_in"] / cpu, 1) if cpu else None,
                       "ms_per_doc": round(1000 * cpu / s["docs_in"], 3) if s["docs_in"] else None})
    phases = []
    for ph, rs in records(run).items():
        phases.append({"phase": ph, "tasks": len(rs),
                       "cpu_s": round(sum(r["cpu_s"] for r in rs), 3),
                       "wall_s": round(sum(r["wall_s"] for r in rs), 3),
                       "max_rss_mb": max(r.get("max_rss_mb") or 0 for r in rs),
                       "processes": len({r["pid"] for r in rs})})
    order = list(st["phases"])
    phases.sort(key=lambda p: order.index(p["phase"]) if p["phase"] in order else 99)
    return {"stages": stages, "phases": phases,
            "phase_metrics": {k: v.get("metrics", {}) for k, v in st["phases"].items()}}


def setup(run: Path) -> list[dict]:
    """Build and set up each stage of the run's chain in this process, as a worker does
    once (pipelines/task.py `_load`): CPU seconds and peak-RSS growth of each."""
    from pipelines.rundir import RunDir

    cfg = RunDir.at(run).load_config()
    out = []
    for spec in cfg.stages:
        r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        c0, t0 = time.process_time(), time.perf_counter()
        st = spec.build()
        st.setup()
        out.append({"stage": spec.name, "cpu_s": round(time.process_time() - c0, 3),
                    "wall_s": round(time.perf_counter() - t0, 3),
                    "peak_rss_growth_mb": round(
                        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - r0, 1)})
    out.append({"stage": "(process peak RSS after all)", "cpu_s": None, "wall_s": None,
                "peak_rss_growth_mb": round(
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)})
    return out


def ray_nodes(run: Path, logs: Path) -> dict:
    """Which Ray node ran each task: a task record's pid -> the core worker log of that
    pid (its node_id) -> the raylet log that set that node id (raylet.out: the head)."""
    node_name = {}
    for f in logs.glob("raylet*.out"):
        m = re.search(r"Setting node ID node_id=(\w+)", f.read_text(errors="replace"))
        if m:
            node_name[m.group(1)] = "head" if f.name == "raylet.out" else f.stem
    pid_node = {}
    for f in logs.glob("python-core-worker-*_*.log"):
        m = re.search(r"node_id=(\w+)", f.read_text(errors="replace"))
        if m:
            pid_node[int(f.stem.rsplit("_", 1)[1])] = node_name.get(m.group(1), m.group(1))
    out: dict = defaultdict(lambda: defaultdict(list))
    for ph, rs in records(run).items():
        for r in rs:
            out[ph][pid_node.get(r["pid"], "?")].append(r["task"])
    return {ph: {n: sorted(t) for n, t in d.items()} for ph, d in out.items()}


def cc(run: Path, pages: float, warcs: int, tb: float, cores: int, block: int,
       setup_s: float) -> list[str]:
    """The extrapolation to one Common Crawl dump, step by step, from one run."""
    f = funnel(run)
    st = {s["stage"]: s for s in f["stages"]}
    ph = {p["phase"]: p for p in f["phases"]}
    html = st["read"]["docs_out"]  # HTML responses the chain saw (pages)
    plan = json.loads((run / "plan.json").read_text())
    comp_bytes = sum(i.get("length") or i.get("size") or 0 for i in plan.get("inputs", []))
    L = []
    p = L.append
    main = ph["main"]["cpu_s"]
    glob_cpu = sum(v["cpu_s"] for k, v in ph.items() if k != "main")
    p(f"measured: {html} HTML pages, {comp_bytes:,} compressed input bytes, main-phase CPU "
      f"{main:.2f} s, other phases {glob_cpu:.2f} s")
    per_page = main / html
    per_byte = main / comp_bytes if comp_bytes else float("nan")
    p(f"CPU per page = {main:.2f} / {html} = {1000 * per_page:.2f} ms")
    p(f"CPU per compressed byte = {main:.2f} / {comp_bytes:,} = {1e6 * per_byte:.3f} us")
    a = pages * per_page / 3600
    b = tb * 1e12 * per_byte / 3600
    p(f"dump by pages: {pages:.3g} x {per_page:.5f} s / 3600 = {a:,.0f} CPU-h")
    p(f"dump by bytes: {tb:g}e12 x {per_byte:.4g} s / 3600 = {b:,.0f} CPU-h")
    s_slurm = warcs * setup_s / 3600
    p(f"set-up per process {setup_s:.1f} s: a pool pays it once per worker; one process per "
      f"task (Slurm) pays {warcs:,} x {setup_s:.1f} / 3600 = {s_slurm:,.0f} CPU-h")
    for x in (a, b):
        p(f"nodes x hours at {cores} cores: {x:,.0f} / {cores} = {x / cores:,.0f} node-hours "
          f"(e.g. 100 nodes: {x / cores / 100:.1f} h)")
    # survivors and storage
    out_docs = st["pii"]["docs_out"] if "pii" in st else st[list(st)[-1]]["docs_out"]
    kept_share = out_docs / html
    mh_in = st["minhash_dedup"]["docs_in"]
    mh_share = mh_in / html
    band_rows = f["phase_metrics"].get("minhash_dedup.buckets", {}).get("band_rows", 0)
    work = run / "work" / "minhash_dedup"
    buckets_b, members_b = dir_bytes(work / "buckets"), dir_bytes(work / "members")
    phases_b, data_b = dir_bytes(run / "phases"), dir_bytes(run / "data")
    p(f"share reaching minhash = {mh_in} / {html} = {mh_share:.3f}; kept = {out_docs} / {html} "
      f"= {kept_share:.3f}")
    p(f"band rows per minhash doc = {band_rows} / {mh_in} = {band_rows / mh_in:.1f}; "
      f"bucket files {buckets_b:,} B = {buckets_b / band_rows:.1f} B per band row; "
      f"members {members_b:,} B = {members_b / mh_in:.0f} B per doc")
    n_mh = pages * mh_share
    p(f"minhash docs in the dump = {pages:.3g} x {mh_share:.3f} = {n_mh:.3g}; band rows "
      f"{n_mh * band_rows / mh_in:.3g}; work/ = {n_mh:.3g} x "
      f"{(buckets_b + members_b) / mh_in:.0f} B = "
      f"{n_mh * (buckets_b + members_b) / mh_in / 1e12:.2f} TB")
    if phases_b:
        p(f"phases/main (intermediate shards, kept until apply; after it only with "
          f"keep_intermediate) = {phases_b:,} B / {mh_in} docs = {phases_b / mh_in:.0f} B per doc "
          f"-> {n_mh * phases_b / mh_in / 1e12:.2f} TB")
    p(f"output data/ = {data_b:,} B / {out_docs} docs = {data_b / out_docs:.0f} B per doc -> "
      f"{pages:.3g} x {kept_share:.3f} x {data_b / out_docs:.0f} B = "
      f"{pages * kept_share * data_b / out_docs / 1e12:.2f} TB")
    per_warc = tb * 1e12 / warcs
    gets = math.ceil(per_warc / block)
    p(f"GETs: {tb:g}e12 / {warcs:,} = {per_warc / 1e9:.2f} GB per WARC; / {block:,} B blocks = "
      f"{gets} ranged GETs per WARC; x {warcs:,} = {gets * warcs:,} (+ {warcs:,} size/list "
      f"calls at planning)")
    return L


def plan_error(plan_json: Path, run: Path) -> dict:
    """A `thresher plan --json` estimate against the real run of the same config: CPU
    summed over every task record, the largest task's peak RSS, per phase and in all."""
    est = json.loads(plan_json.read_text())
    recs = records(run)
    out = {"phases": []}
    for p in est["phases"]:
        rs = recs.get(p["name"], [])
        cpu = sum(r["cpu_s"] for r in rs)
        rss = max((r.get("max_rss_mb") or 0 for r in rs), default=0)
        out["phases"].append({"phase": p["name"], "cpu_est": round(p["cpu_hours"] * 3600, 2),
                              "cpu_real": round(cpu, 2),
                              "rss_est": round(p["peak_rss_mb"], 1), "rss_real": rss})
    cpu = sum(r["cpu_s"] for rs in recs.values() for r in rs)
    rss = max((r.get("max_rss_mb") or 0) for rs in recs.values() for r in rs)
    out.update(cpu_est=round(est["cpu_hours"] * 3600, 2), cpu_real=round(cpu, 2),
               cpu_err=f"{est['cpu_hours'] * 3600 / cpu - 1:+.1%}",
               rss_est=round(est["peak_rss_mb"], 1), rss_real=rss,
               rss_err=f"{est['peak_rss_mb'] / rss - 1:+.1%}", sample=est.get("sample"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for c in ("funnel", "setup"):
        sub.add_parser(c).add_argument("run", type=Path)
    r = sub.add_parser("ray-nodes")
    r.add_argument("run", type=Path)
    r.add_argument("logs", type=Path, help="the Ray session's logs/ directory")
    c = sub.add_parser("cc")
    c.add_argument("run", type=Path)
    c.add_argument("--pages", type=float, default=3e9)
    c.add_argument("--warcs", type=int, default=90_000)
    c.add_argument("--tb", type=float, default=100.0)
    c.add_argument("--cores", type=int, default=64)
    c.add_argument("--setup-s", type=float, default=0.0, help="per-process set-up CPU s")
    e = sub.add_parser("plan-error")
    e.add_argument("plan_json", type=Path, help="the output of thresher plan --json")
    e.add_argument("run", type=Path, help="the real run of the same config")
    a = ap.parse_args()
    if a.cmd == "funnel":
        print(json.dumps(funnel(a.run), indent=1))
    elif a.cmd == "setup":
        print(json.dumps(setup(a.run), indent=1))
    elif a.cmd == "plan-error":
        print(json.dumps(plan_error(a.plan_json, a.run)))
    elif a.cmd == "ray-nodes":
        print(json.dumps(ray_nodes(a.run, a.logs), indent=1))
    else:
        from pipelines.io.storage import DEFAULT_BLOCK_SIZE

        print("\n".join(cc(a.run, a.pages, a.warcs, a.tb, a.cores, DEFAULT_BLOCK_SIZE,
                           a.setup_s)))


if __name__ == "__main__":
    main()
