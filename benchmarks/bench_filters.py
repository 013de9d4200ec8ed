"""Heuristic filter speed: our chain vs datatrove's equivalent filters, same documents.

    .venv/bin/python benchmarks/bench_filters.py [--limit N] [--repeat 2]

Both sides see every document with every filter (no early drop): ours as four
stages in filter mode, each given the whole batch of 256 documents, one after the
other as in a task (so the words of a text are split once per chain; annotate mode
measures more and is timed by bench_annotate.py), datatrove's as a chain
per document (so its cached spaCy words are shared by the filters after the
first, as in a datatrove pipeline). Speeds are CPU seconds of this single process, i.e. docs/s
per core; each side starts cold (datatrove loads spaCy, our word cache is empty).
Documents: tests/data/quality/filter-docs.jsonl.gz (real extracted web text).
Decisions are compared too, as a sanity check (tests/test_datatrove_parity.py is
the real check).
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import sys
import time
from pathlib import Path

import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines import stage as make_spec  # noqa: E402
from pipelines.stage import TaskContext  # noqa: E402
from pipelines.stats import StageStats  # noqa: E402

DOCS = REPO / "tests" / "data" / "quality" / "filter-docs.jsonl.gz"
OURS = ["gopher_quality", "gopher_repetition", "c4", "fineweb_quality"]


def run_datatrove(rows: list[dict]) -> tuple[dict[str, float], dict[str, list]]:
    from datatrove.data import Document
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    steps = dict(zip(OURS, [GopherQualityFilter(), GopherRepetitionFilter(), C4QualityFilter(),
                            FineWebQualityFilter()]))
    cpu = dict.fromkeys(OURS, 0.0)
    kept: dict[str, list] = {name: [] for name in OURS}
    clock = time.process_time
    for row in rows:
        for name, step in steps.items():
            doc = Document(text=row["text"], id=row["id"])
            t = clock()
            res = step.filter(doc)
            cpu[name] += clock() - t
            kept[name].append(res is True)
    return cpu, kept


def run_ours(rows: list[dict], batch: int) -> tuple[dict[str, float], dict[str, list]]:
    table = pa.table({"id": [r["id"] for r in rows], "text": [r["text"] for r in rows]})
    stages = []
    for name in OURS:
        st = make_spec(name).build()
        st.setup()
        st.begin_task(TaskContext(Path("."), "main", 0, "bench"))
        stages.append(st)
    cpu = dict.fromkeys(OURS, 0.0)
    kept: dict[str, list] = {name: [] for name in OURS}
    for start in range(0, len(rows), batch):  # batch by batch through the chain, as a task
        part = table.slice(start, batch)
        for name, st in zip(OURS, stages):
            t = time.process_time()
            out = st.process(part, StageStats())
            cpu[name] += time.process_time() - t
            ids = set(out.column("id").to_pylist())
            kept[name] += [i in ids for i in part.column("id").to_pylist()]
    return cpu, kept


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=0, help="use the first N documents")
    ap.add_argument("--batch", type=int, default=256, help="documents per batch (ours)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="passes per side; later passes run with warm caches")
    args = ap.parse_args()
    rows = [json.loads(line) for line in gzip.open(DOCS, "rt", encoding="utf-8")]
    rows = rows[: args.limit] if args.limit else rows
    n, chars = len(rows), sum(len(r["text"]) for r in rows)
    print(f"{n} documents, {chars / n:,.0f} characters each on average; "
          f"Python {platform.python_version()}, {platform.machine()}")
    for rep in range(args.repeat):
        wall = time.perf_counter()
        theirs, dt_kept = run_datatrove(rows)
        dt_wall = time.perf_counter() - wall
        wall = time.perf_counter()
        ours, our_kept = run_ours(rows, args.batch)
        our_wall = time.perf_counter() - wall
        label = "cold" if rep == 0 else "warm"
        print(f"\npass {rep + 1} ({label} caches); wall: datatrove {dt_wall:.1f} s, "
              f"ours {our_wall:.1f} s")
        print("| filter | datatrove docs/s/core | thresher docs/s/core | speed-up | "
              "same decision |")
        print("|---|---:|---:|---:|---:|")
        groups = [[f] for f in OURS] + [OURS[:2], OURS]
        for group in groups:
            label = " + ".join(group) if len(group) > 1 else group[0]
            if group == OURS:
                label = "whole chain"
            elif group == OURS[:2]:
                label = "gopher quality + repetition"
            t_dt, t_us = sum(theirs[g] for g in group), sum(ours[g] for g in group)
            same = (sum(a == b for g in group for a, b in zip(dt_kept[g], our_kept[g]))
                    / (n * len(group)))
            print(f"| {label} | {n / t_dt:,.0f} | {n / t_us:,.0f} | {t_dt / t_us:.1f}x | "
                  f"{same:.2%} |")


if __name__ == "__main__":
    main()
