"""What `mode: annotate` costs over `mode: filter`, and what materialize's decision costs.

    .venv/bin/python benchmarks/bench_annotate.py [--limit N] [--repeat 3]

Each heuristic filter runs alone over every document of
tests/data/quality/filter-docs.jsonl.gz (real extracted web text), in batches of 256
as in a task: in filter mode (rules stop at the first that fires, costly
measurements are skipped or bounded), in annotate mode (every measurement is made
and written as a column), and then ``decide_from_columns`` on the annotated batches
(what ``thresher materialize`` does per stage instead of measuring). The word cache
is warmed first, so both modes split words at the same (warm) cost; each number is
the lowest CPU time of ``--repeat`` passes of this single process (docs/s per core).
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
from stages.text.words_en import split_words  # noqa: E402

DOCS = REPO / "tests" / "data" / "quality" / "filter-docs.jsonl.gz"
FILTERS = ["gopher_quality", "gopher_repetition", "c4", "fineweb_quality"]


def build(name: str, mode: str):
    st = make_spec(name, mode=mode).build()
    st.setup()
    st.begin_task(TaskContext(Path("."), "main", 0, "bench"))
    return st


def timed(fn) -> tuple[float, object]:
    t = time.process_time()
    out = fn()
    return time.process_time() - t, out


def run(st, batches: list[pa.Table]) -> list[pa.Table]:
    return [st.process(b, StageStats()) for b in batches]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=0, help="use the first N documents")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rows = [json.loads(line) for line in gzip.open(DOCS, "rt", encoding="utf-8")]
    rows = rows[: args.limit] if args.limit else rows
    table = pa.table({"id": [r["id"] for r in rows], "text": [r["text"] for r in rows]})
    batches = [table.slice(i, args.batch) for i in range(0, len(rows), args.batch)]
    n = len(rows)
    for r in rows:  # warm the chunk cache: both modes then split words at the same cost
        split_words(r["text"])
    print(f"{n} documents, {sum(len(r['text']) for r in rows) / n:,.0f} characters each on "
          f"average; Python {platform.python_version()}, {platform.machine()}; best of "
          f"{args.repeat} passes")
    print("| filter | filter mode docs/s | annotate mode docs/s | annotate cost | "
          "measurement columns | bytes/doc (Parquet, zstd) | decide_from_columns docs/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in FILTERS:
        best = {"filter": float("inf"), "annotate": float("inf"), "decide": float("inf")}
        annotated: list[pa.Table] = []
        for _ in range(args.repeat):
            for mode in ("filter", "annotate"):
                st = build(name, mode)
                cpu, out = timed(lambda st=st: run(st, batches))
                best[mode] = min(best[mode], cpu)
                if mode == "annotate":
                    annotated = out  # type: ignore[assignment]
            st = build(name, "filter")
            cpu, _ = timed(lambda st=st, a=annotated: [st.decide_from_columns(b) for b in a])
            best["decide"] = min(best["decide"], cpu)
        columns = list(build(name, "annotate").measure_columns())
        size = _parquet_bytes(pa.concat_tables(annotated).select(columns))
        print(f"| {name} | {n / best['filter']:,.0f} | {n / best['annotate']:,.0f} | "
              f"{best['annotate'] / best['filter']:.2f}x | {len(columns)} | {size / n:.1f} | "
              f"{n / best['decide']:,.0f} |")


def _parquet_bytes(table: pa.Table) -> int:
    import io

    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.tell()


if __name__ == "__main__":
    main()
