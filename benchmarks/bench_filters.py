"""Heuristic filter speed: our chain vs datatrove's equivalent filters, same documents.

    .venv/bin/python benchmarks/bench_filters.py [--reps 3] [--limit N]

Both sides see every document with every filter (no early drop): ours as four
stages in filter mode, each given the whole batch of 256 documents, one after the
other as in a task (so the words of a text are split once per chain; annotate mode
measures more and is timed by bench_annotate.py), datatrove 0.10.1's as a chain per
document (its `split_into_words` cache shares a text's spaCy words between the filters
after the first, as in a datatrove pipeline). Same library versions on both sides: both
run in this venv. Speeds are CPU seconds of one process, i.e. docs/s per core.

Both sides keep caches that outlive a document (our chunk -> words cache, spaCy's
tokenizer cache), so each measurement runs in a fresh process, in two settings:

- cold: empty caches, every document timed (the first pass of a run);
- warm: caches filled by an untimed pass over the even-numbered documents, then the
  odd-numbered ones timed: a cache warmed by other texts of the same kind, never by the
  texts being measured.

Before timing, each side loads its models and runs one short unrelated sentence, so
neither side's model loading is timed. Each rep runs both sides in both settings,
alternating which side goes first; the tables give the median over reps, the spread
(min-max) of each side's rate and of the paired ratio. Decisions and drop reasons are
compared by id on the cold pass (every document), our reasons mapped to datatrove's
names by tests/test_datatrove_parity.py's table.
Documents: tests/data/quality/filter-docs.jsonl.gz (real extracted web text).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DOCS = REPO / "tests" / "data" / "quality" / "filter-docs.jsonl.gz"
OURS = ["gopher_quality", "gopher_repetition", "c4", "fineweb_quality"]
GROUPS = {**{f: [f] for f in OURS}, "Gopher quality + repetition": OURS[:2],
          "whole chain": OURS}
PRIME = "This is one short sentence. It warms nothing but the loaded models."


def load_rows(limit: int) -> list[dict]:
    rows = [json.loads(line) for line in gzip.open(DOCS, "rt", encoding="utf-8")]
    return rows[:limit] if limit else rows


# ----------------------------------------------------------------------------- the two sides

def datatrove_side():
    """(run(rows) -> cpu per filter, reason per filter and document)."""
    from datatrove.data import Document
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    steps = dict(zip(OURS, [GopherQualityFilter(), GopherRepetitionFilter(), C4QualityFilter(),
                            FineWebQualityFilter()]))

    def run(rows: list[dict]):
        cpu = dict.fromkeys(OURS, 0.0)
        reasons: dict[str, list] = {name: [] for name in OURS}
        clock = time.process_time
        for row in rows:
            for name, step in steps.items():
                doc = Document(text=row["text"], id=row["id"])
                t = clock()
                res = step.filter(doc)
                cpu[name] += clock() - t
                reasons[name].append(None if res is True else
                                     res[1] if isinstance(res, tuple) else "dropped")
        return cpu, reasons
    return run


def thresher_side(batch: int):
    import pyarrow as pa

    from pipelines import stage as make_spec
    from pipelines.stage import TaskContext
    from pipelines.stats import StageStats

    stages = []
    for name in OURS:
        st = make_spec(name).build()
        st.setup()
        st.begin_task(TaskContext(Path("."), "main", 0, "bench"))
        stages.append(st)
    seen: dict[str, list] = {name: [] for name in OURS}
    for name, st in zip(OURS, stages):  # the reasons process() decided on, by row
        def capture(table, _orig=st.check_batch, _sink=seen[name]):
            out = _orig(table)
            _sink.extend(out[0])
            return out
        st.check_batch = capture

    def run(rows: list[dict]):
        table = pa.table({"id": [r["id"] for r in rows], "text": [r["text"] for r in rows]})
        cpu = dict.fromkeys(OURS, 0.0)
        for sink in seen.values():
            sink.clear()
        for start in range(0, len(rows), batch):  # batch by batch through the chain
            part = table.slice(start, batch)
            for name, st in zip(OURS, stages):
                t = time.process_time()
                st.process(part, StageStats())
                cpu[name] += time.process_time() - t
        return cpu, {name: [None if r is None else str(r) for r in seen[name]]
                     for name in OURS}
    return run


def measure(side: str, setting: str, limit: int, batch: int) -> dict:
    """One measurement in this (fresh) process."""
    rows = load_rows(limit)
    run = datatrove_side() if side == "datatrove" else thresher_side(batch)
    run([{"id": "prime", "text": PRIME}])  # models loaded, nothing of the documents cached
    if setting == "warm":
        run(rows[0::2])
        rows = rows[1::2]
    cpu, reasons = run(rows)
    return {"cpu": cpu, "n": len(rows), "ids": [r["id"] for r in rows], "reasons": reasons}


def in_fresh_process(side: str, setting: str, a: argparse.Namespace) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", side, setting,
                          "--limit", str(a.limit), "--batch", str(a.batch)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.splitlines()[-1])


# ----------------------------------------------------------------------------- report

def compare_reasons(ours: dict, theirs: dict, ids: list[str]) -> list[str]:
    """One line per filter: same decisions and same reasons, by id; the ids that differ."""
    sys.path.insert(0, str(REPO / "tests"))
    from test_datatrove_parity import KNOWN, REASONS

    lines = []
    for name in OURS:
        decision = [i for i, a, b in zip(ids, ours[name], theirs[name])
                    if (a is None) != (b is None)]
        reason = [i for i, a, b in zip(ids, ours[name], theirs[name])
                  if a is not None and b is not None and REASONS[name].get(a) != b]
        known = KNOWN.get(f"reason {name}", set())
        line = f"{name}: same decision {len(ids) - len(decision):,}/{len(ids):,}"
        if decision:
            line += f" (differ: {', '.join(decision)})"
        line += f"; both drop, other reason: {len(reason)}"
        if reason:
            line += f" ({', '.join(reason)}; the parity test's known list: {sorted(known)})"
        lines.append(line)
    return lines


def spread(xs: list[float], fmt: str = ",.0f") -> str:
    return f"{min(xs):{fmt}}-{max(xs):{fmt}}"


def table(results: dict, setting: str) -> list[str]:
    lines = ["| filter | datatrove docs/s/core | thresher docs/s/core | speed-up (median of "
             "paired reps) | speed-up range |", "|---|---:|---:|---:|---:|"]
    dts, ths = results[("datatrove", setting)], results[("thresher", setting)]
    for label, group in GROUPS.items():
        rate = {k: [r["n"] / sum(r["cpu"][g] for g in group) for r in v]
                for k, v in (("datatrove", dts), ("thresher", ths))}
        ratios = [t / d for t, d in zip(rate["thresher"], rate["datatrove"])]
        lines.append(f"| {label} | {statistics.median(rate['datatrove']):,.0f} "
                     f"({spread(rate['datatrove'])}) | {statistics.median(rate['thresher']):,.0f} "
                     f"({spread(rate['thresher'])}) | {statistics.median(ratios):.1f}x | "
                     f"{spread(ratios, '.1f')}x |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3, help="alternating reps of every measurement")
    ap.add_argument("--limit", type=int, default=0, help="use the first N documents")
    ap.add_argument("--batch", type=int, default=256, help="documents per batch (ours)")
    ap.add_argument("--one", nargs=2, metavar=("SIDE", "SETTING"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(measure(*a.one, a.limit, a.batch)))
        return
    rows = load_rows(a.limit)
    n, chars = len(rows), sum(len(r["text"]) for r in rows)
    load0 = os.getloadavg()
    print(f"{n} documents, {chars / n:,.0f} characters each on average; Python "
          f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs; "
          f"load average at start {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}", flush=True)
    results: dict[tuple[str, str], list[dict]] = {}
    for rep in range(a.reps):
        order = ["thresher", "datatrove"] if rep % 2 == 0 else ["datatrove", "thresher"]
        for setting in ("cold", "warm"):
            for side in order:
                r = in_fresh_process(side, setting, a)
                results.setdefault((side, setting), []).append(r)
                print(f"rep {rep} {setting} {side}: whole chain "
                      f"{r['n'] / sum(r['cpu'].values()):,.0f} docs/s/core; load "
                      f"{os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
    for setting, what in (("cold", f"cold caches, all {n:,} documents timed"),
                          ("warm", f"caches warmed by the {(n + 1) // 2:,} even-numbered "
                                   f"documents, the {n // 2:,} odd-numbered ones timed")):
        print(f"\n{setting}: {what}; median of {a.reps} reps (range)")
        print("\n".join(table(results, setting)))
    # every rep of a side decides the same; compare the first cold pass of each, by id
    for side in ("thresher", "datatrove"):
        first = results[(side, "cold")][0]["reasons"]
        assert all(r["reasons"] == first for r in results[(side, "cold")]), side
    th, dt = results[("thresher", "cold")][0], results[("datatrove", "cold")][0]
    assert th["ids"] == dt["ids"]
    print(f"\ndecisions and drop reasons by id (cold pass, {n:,} documents):")
    print("\n".join(compare_reasons(th["reasons"], dt["reasons"], th["ids"])))
    load1 = os.getloadavg()
    print(f"load average at the end {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")


if __name__ == "__main__":
    main()
