"""What sampling dropped documents costs, against the same work without a sampler.

    .venv/bin/python benchmarks/bench_samples.py [--docs 200000] [--reps 5]

Two hot paths, each timed with and without a sampler, alternating reps:
- the WARC reader over the bundled real WARCs (most records are dropped there:
  requests, metadata, non-HTML), and
- a vectorised filter (`length`, min_words=15, about half dropped) over real
  sentences (tests/data/lid) repeated to --docs documents with distinct ids.
Prints the median of each and the ratio. Samples are checked to be identical
between reps (they depend only on the documents).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pyarrow as pa  # noqa: E402

from pipelines.config import WarcInput  # noqa: E402
from pipelines.io.readers import make_reader  # noqa: E402
from pipelines.samples import TaskSampler  # noqa: E402
from pipelines.stats import RunStats  # noqa: E402
from stages.heuristics.length import LengthFilter, LengthParams  # noqa: E402


def read_warcs(sample: bool) -> tuple[float, list]:
    reader = make_reader(WarcInput(paths=["x"]))
    stats = RunStats(sampler=TaskSampler(0, 20, 2000) if sample else None)
    t0 = time.perf_counter()
    for path in sorted((REPO / "tests" / "data" / "warc").glob("*.warc.gz")):
        for _ in reader.read(path, path.name, stats.stage("read")):
            pass
    dt = time.perf_counter() - t0
    return dt, stats.sampler.to_table().column("id").to_pylist() if sample else []


def filter_batches(table: pa.Table, sample: bool, batch: int = 1000) -> tuple[float, list]:
    stage = LengthFilter(LengthParams(min_words=15), name="length")
    stats = RunStats(sampler=TaskSampler(0, 20, 2000) if sample else None)
    st = stats.stage("length")
    t0 = time.perf_counter()
    for off in range(0, table.num_rows, batch):
        stage.process(table.slice(off, batch), st)
    dt = time.perf_counter() - t0
    return dt, stats.sampler.to_table().column("id").to_pylist() if sample else []


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=200_000)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    lines = (REPO / "tests" / "data" / "lid" / "lingua-sentences-12lang.jsonl").read_text()
    texts = [json.loads(x)["text"] for x in lines.splitlines()]
    texts = (texts * (a.docs // len(texts) + 1))[:a.docs]
    table = pa.table({"id": [f"doc-{i}" for i in range(a.docs)], "text": texts,
                      "url": [None] * a.docs, "source": ["bench"] * a.docs})

    for name, fn in (("warc reader", read_warcs),
                     (f"length filter, {a.docs:,} docs", lambda s: filter_batches(table, s))):
        times: dict[bool, list[float]] = {False: [], True: []}
        seen = None
        fn(True)  # warm-up (imports, page cache)
        for _ in range(a.reps):
            for sample in (False, True):
                dt, ids = fn(sample)
                times[sample].append(dt)
                if sample:
                    assert seen is None or ids == seen, "samples differ between reps"
                    seen = ids
        off, on = statistics.median(times[False]), statistics.median(times[True])
        print(f"{name}: without samples {off:.3f} s, with samples {on:.3f} s "
              f"(x{on / off:.3f}, {len(seen)} sampled)")


if __name__ == "__main__":
    main()
