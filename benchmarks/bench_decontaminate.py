"""Precision and recall of the `decontaminate` stage on planted evaluation items.

    .venv/bin/python benchmarks/bench_decontaminate.py [--n 13 8] [--min-overlaps 1]

The set (tests/data/decontam/make_decontam_set.py): 80 WikiText-2 passages (SQuAD-like)
and 80 LAMBADA-style cloze items from US inaugural addresses are the evaluation sets; 320
real web documents carry, each at most one, an item planted verbatim, as a 20-30 word
window, lightly edited, or paraphrased (one word in five changed), a paragraph of the same
Wikipedia article that is not an item (hard negative), or nothing.

The stage's own code runs (index step, then apply in ``annotate`` mode on the whole
corpus); a document counts as flagged when it reaches at least one item. Positives are
verbatim, partial and light; paraphrased documents are shown on their own line (13-gram
matching is not meant to find them); the item found must also be the planted one.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.global_stage import GlobalContext  # noqa: E402
from pipelines.stats import StageStats  # noqa: E402
from stages.decontamination.decontaminate import Decontaminate  # noqa: E402

SET = ROOT / "tests" / "data" / "decontam"
POSITIVE = ("verbatim", "partial", "light")


def run(docs: list[dict], n: int, min_overlaps: int) -> dict:
    params = Decontaminate.Params(
        eval_sets=[{"name": "wiki", "path": str(SET / "wiki-passages.jsonl"),
                    "fields": ["context"], "id_field": "id"},
                   {"name": "cloze", "path": str(SET / "inaugural-cloze.jsonl"),
                    "fields": ["context", "target"], "id_field": "id"}],
        n=n, min_overlaps=min_overlaps, action="annotate")
    st = Decontaminate(params, name="decontaminate")
    st.setup()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        metrics = st.run_step("index", GlobalContext(Path(tmp), 0, 1, 1))
        t_index = time.perf_counter() - t0
        st.begin_apply(GlobalContext(Path(tmp), 0, 1, 1))
        table = pa.table({"id": [d["id"] for d in docs], "text": [d["text"] for d in docs]})
        t0 = time.perf_counter()
        out = st.apply(table, np.arange(len(docs), dtype=np.uint64), StageStats())
        t_apply = time.perf_counter() - t0
    items = out.column("decontaminate_items").to_pylist()
    by_cat: Counter = Counter()
    flagged: Counter = Counter()
    right_item = 0
    for d, hit in zip(docs, items):
        by_cat[d["category"]] += 1
        if hit:
            flagged[d["category"]] += 1
            if d["item_id"] and f"{d['eval_set']}/{d['item_id']}" in hit:
                right_item += 1
    tp = sum(flagged[c] for c in POSITIVE)
    fp = sum(flagged[c] for c in ("clean", "same_article"))
    pos = sum(by_cat[c] for c in POSITIVE)
    return {"n": n, "min_overlaps": min_overlaps, "tp": tp, "fp": fp, "positives": pos,
            "precision": tp / (tp + fp) if tp + fp else 1.0, "recall": tp / pos,
            "right_item": right_item, "by_cat": by_cat, "flagged": flagged,
            "index_entries": metrics["index_entries"], "index_bytes": metrics["index_bytes"],
            "t_index": t_index, "t_apply": t_apply,
            "chars": sum(len(d["text"]) for d in docs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[13, 8])
    ap.add_argument("--min-overlaps", type=int, default=1)
    ap.add_argument("--passes", type=int, default=0,
                    help="also stream every document (135 of 320 contaminated) through one "
                         "apply task this many times and report peak RSS against the "
                         "first pass and the matches written")
    args = ap.parse_args()
    with gzip.open(SET / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        docs = [json.loads(line) for line in f]
    cats = Counter(d["category"] for d in docs)
    shown = ", ".join(f"{k} {v}" for k, v in sorted(cats.items()))
    print(f"corpus: {len(docs)} documents ({shown})")
    for n in args.n:
        r = run(docs, n, args.min_overlaps)
        print(f"\n== n={n}, min_overlaps={args.min_overlaps}: index {r['index_entries']:,} "
              f"entries, {r['index_bytes']:,} bytes on disk, built in {r['t_index']:.2f} s; "
              f"apply {r['t_apply']:.2f} s for {r['chars']:,} characters")
        print(f"precision {r['precision']:.3f} ({r['tp']}/{r['tp'] + r['fp']})   recall "
              f"{r['recall']:.3f} ({r['tp']}/{r['positives']})   planted item among those "
              f"found: {r['right_item']}/{sum(r['flagged'][c] for c in (*POSITIVE, 'paraphrase'))}")
        print("flagged by category: " + ", ".join(
            f"{c} {r['flagged'][c]}/{r['by_cat'][c]}" for c in
            ("verbatim", "partial", "light", "paraphrase", "same_article", "clean")))
    if args.passes:
        memory(docs, args.passes)


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def memory(docs: list[dict], passes: int) -> None:
    """Peak RSS of one apply task over a growing stream: flat means bounded by the index.
    Every document is streamed, the contaminated ones too, so the stage also writes
    matches all along (a file per batch that has any)."""
    from stages.decontamination.decontaminate import read_matches

    params = Decontaminate.Params(eval_sets=[
        {"name": "wiki", "path": str(SET / "wiki-passages.jsonl"), "fields": ["context"]},
        {"name": "cloze", "path": str(SET / "inaugural-cloze.jsonl"),
         "fields": ["context", "target"]}], action="annotate")
    st = Decontaminate(params, name="decontaminate")
    st.setup()
    with tempfile.TemporaryDirectory() as tmp:
        st.run_step("index", GlobalContext(Path(tmp), 0, 1, 1))
        st.begin_apply(GlobalContext(Path(tmp), 0, 1, 1))
        chars = 0
        t0 = time.perf_counter()
        for k in range(passes):
            table = pa.table({"id": [f"{d['id']}-{k}" for d in docs],
                              "text": [d["text"] for d in docs]})
            st.apply(table, np.arange(len(docs), dtype=np.uint64), StageStats())
            chars += sum(len(d["text"]) for d in docs)
            if k == 0:
                first = _rss_mb()
        dt = time.perf_counter() - t0
        last = _rss_mb()
        matches = read_matches(Path(tmp), 1)
    n_docs = len({m for m in matches.column("doc_id").to_pylist()})
    print(f"\n== memory: {passes} passes of {len(docs)} documents ({chars / 1e6:.1f} M "
          f"characters) through one apply task in {dt:.1f} s: {matches.num_rows:,} matches "
          f"of {n_docs:,} documents written; peak RSS {first:.0f} MB after the first pass, "
          f"{last:.0f} MB after the last")


if __name__ == "__main__":
    main()
