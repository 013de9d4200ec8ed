"""Sub-document dedup through the real pipeline: speed, peak RSS, quality, and the
suffix-array reference on the same tokens, in one script.

    .venv/bin/python benchmarks/bench_subdoc.py --docs 100000 --workers 2 [--reference]

Builds ``--docs`` documents of real text: each is 10 sentences drawn from WikiText-2
(../shared/data/quality, else tests/data/quality) with 15 % of their words replaced by
random WikiText words, so that repeats of 50 tokens that were not planted are rare
(the pool has only ~9k sentences, which every document draws from). Then
it plants repeats of known place: 5 % of documents end with one of 20 boilerplate
footers (~60 tokens), 5 % quote a passage of 60-120 words from a recent document, 3 %
end with one of 10 templated three-sentence blocks (~25 tokens, below 50). It runs
one pipeline per stage (``substring_dedup`` 50 tokens keep first, ``sentence_span_dedup``,
``paragraph_dedup``) on the local executor and prints per phase tasks, elapsed s,
summed task s and max worker RSS; for substring_dedup, precision and recall of the
removed characters against the planted footers and passages. ``--reference`` also
builds a suffix array (pydivsufsort) of the whole corpus's word tokens in one process,
checks that keep: none removes exactly the same number of tokens as the stage, and
prints its time and peak RSS. datatrove's sentence dedup beside sentence_span_dedup, at
equal output: bench_subdoc_datatrove.py.
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
WIKITEXT = next(p for p in (REPO.parent / "shared" / "data" / "quality" /
                            "wikitext-2-valid.txt.xz",
                            REPO / "tests" / "data" / "quality" / "wikitext-2-valid.txt.xz")
                if p.exists())

from pipelines import config_from_dict, run_pipeline  # noqa: E402
from stages.dedup import subdoc_core as core  # noqa: E402


def build(root: Path, n_docs: int, n_shards: int, seed: int = 0) -> dict:
    raw = lzma.open(WIKITEXT, "rt").read()
    vocab = raw.split()
    sentences = [s.strip() + " ." for s in raw.replace("\n", " ").split(" . ")
                 if len(s.split()) >= 8 and not s.strip().startswith("=")]
    rng = random.Random(seed)

    def sentence() -> str:  # a real sentence, 15 % of its words replaced
        return " ".join(rng.choice(vocab) if rng.random() < 0.15 else w
                        for w in rng.choice(sentences).split())

    footers = [" ".join(sentence() for _ in range(3)) for _ in range(20)]
    templates = [" ".join(rng.choice(["The", "Our", "This"]) + f" office {j} is open daily ."
                          for j in range(3)) + f" Call {i} for tours ." for i in range(10)]
    seen_footer: set[int] = set()
    seen_template: set[int] = set()
    planted = {"footer_chars": 0, "passage_chars": 0, "template_chars": 0}
    truth = []  # (doc index, start, end) planted copies a keep-first dedup should remove
    writers = [open(root / f"shard-{s:03d}.jsonl", "w") for s in range(n_shards)]
    recent: list[str] = []
    for i in range(n_docs):
        text = " ".join(sentence() for _ in range(10))
        r = rng.random()
        if r < 0.05 and recent:  # a quoted passage from a recent document
            src = rng.choice(recent).split()
            n = rng.randint(60, min(120, len(src)))
            s = rng.randrange(len(src) - n + 1)
            passage = " ".join(src[s:s + n])
            cut = text.find(" . ") + 3
            text = text[:cut] + passage + " " + text[cut:]
            truth.append((i, cut, cut + len(passage)))
            planted["passage_chars"] += len(passage)
        elif r < 0.10:
            f = rng.randrange(len(footers))
            start = len(text) + 1
            text += " " + footers[f]
            if f in seen_footer:
                truth.append((i, start, len(text)))
                planted["footer_chars"] += len(footers[f])
            seen_footer.add(f)
        elif r < 0.13:
            t = rng.randrange(len(templates))
            text += "\n" + templates[t]
            if t in seen_template:
                planted["template_chars"] += len(templates[t])
            seen_template.add(t)
        recent = (recent + [text])[-100:]
        writers[i % n_shards].write(json.dumps({"id": f"d{i:08d}", "text": text}) + "\n")
    for w in writers:
        w.close()
    return {**planted, "truth": truth}


def run_stage(root: Path, stage: dict, workers: int, out: str) -> tuple[dict, float]:
    cfg = config_from_dict({
        "name": "bench-subdoc",
        "input": {"format": "jsonl", "paths": [str(root / "in" / "*.jsonl")], "id_key": "id"},
        "output": {"path": str(root / out)},
        "executor": {"kind": "local", "workers": workers},
        "stages": [stage],
    })
    import threading

    from bench_subdoc_datatrove import tree_rss_mb

    peak = {"sum_mb": 0.0}
    done = threading.Event()

    def probe() -> None:  # the largest sum of RSS over this process and its workers
        while not done.wait(0.25):
            peak["sum_mb"] = max(peak["sum_mb"], sum(tree_rss_mb(os.getpid())[1]))

    th = threading.Thread(target=probe, daemon=True)
    th.start()
    t = time.perf_counter()
    run = run_pipeline(cfg, overwrite=True)
    wall = time.perf_counter() - t
    done.set()
    th.join()
    stats = json.loads(run.stats_json.read_text())
    stats["all_processes_rss_mb"] = peak["sum_mb"]
    return stats, wall


def report(name: str, stats: dict, wall: float, n_docs: int, workers: int) -> None:
    st = stats["stages"][name]
    print(f"\n### {name}: {n_docs:,} documents, {workers} workers, {os.cpu_count()} CPUs; "
          f"end to end {wall:.1f} s ({n_docs / wall:,.0f} docs/s, "
          f"{n_docs / wall / workers:,.0f} docs/s/core)")
    print("| phase | tasks | elapsed s | task s (sum) | max RSS MB |\n|---|---|---|---|---|")
    for ph_name, ph in stats["phases"].items():
        print(f"| {ph_name} | {ph['tasks']} | {ph['elapsed_s']:.1f} | {ph['task_wall_s']:.1f} | "
              f"{ph['max_rss_mb']:,.0f} |")
    peak = max(ph["max_rss_mb"] for ph in stats["phases"].values())
    print(f"peak worker RSS {peak:,.0f} MB; all processes together (sum of RSS, probed "
          f"every 0.25 s) at most {stats['all_processes_rss_mb']:,.0f} MB")
    print(f"chars in {st['chars_in']:,}, out "
          f"{st['chars_out']:,} (-{1 - st['chars_out'] / st['chars_in']:.2%}); dropped "
          f"{st['dropped']}")
    for ph_name, ph in stats["phases"].items():
        if ph.get("metrics"):
            print(f"  {ph_name}: {ph['metrics']}")


def quality(root: Path, out: str, truth: list) -> None:
    """Precision and recall of removed non-space characters vs the planted copies
    (footers and passages; templates are shorter than 50 tokens and not counted)."""
    want: dict[str, list] = {}
    for i, a, b in truth:
        want.setdefault(f"d{i:08d}", []).append((a, b))
    docs = {}
    for p in sorted((root / "in").glob("*.jsonl")):
        for line in open(p):
            d = json.loads(line)
            docs[d["id"]] = d["text"]
    tp = fp = fn = 0
    for p in sorted((root / out / "data").glob("*.parquet")):
        t = pq.read_table(p, columns=["id", "substring_dedup_spans"])
        for i, spans in zip(t.column("id").to_pylist(),
                            t.column("substring_dedup_spans").to_pylist()):
            text = docs[i]
            tr = np.zeros(len(text), bool)
            pr = np.zeros(len(text), bool)
            for a, b in want.get(i, []):
                tr[a:b] = True
            for s in spans:
                pr[s["start"]:s["end"]] = True
            ns = np.frombuffer(text.encode("utf-32-le"), np.uint32) != 32
            tp += int((tr & pr & ns).sum())
            fp += int((~tr & pr & ns).sum())
            fn += int((tr & ~pr & ns).sum())
    print(f"\nplanted footers+passages: precision {tp / max(tp + fp, 1):.4f}, "
          f"recall {tp / max(tp + fn, 1):.4f} (removed non-space chars: {tp + fp:,}, "
          f"planted: {tp + fn:,})")


def reference(root: Path, k: int) -> None:
    """Suffix array of the whole corpus (one process): tokens covered by a repeated span
    of >= k tokens (keep none)."""
    import pydivsufsort

    t0 = time.perf_counter()
    vocab: dict[str, int] = {}
    seq: list[int] = []
    n_docs = 0
    for p in sorted((root / "in").glob("*.jsonl")):
        for line in open(p):
            text = json.loads(line)["text"]
            seq += [vocab.setdefault(text[a:b], len(vocab)) for a, b in core.word_spans(text)]
            seq.append(-1 - n_docs)
            n_docs += 1
    arr = np.array(seq, np.int64)
    sep = arr < 0
    arr[sep] = len(vocab) - 1 - arr[sep]  # unique separators above the vocabulary
    del seq
    t1 = time.perf_counter()
    sa = pydivsufsort.divsufsort(arr)
    lcp = pydivsufsort.kasai(arr, sa)
    t2 = time.perf_counter()
    big = lcp >= k  # big[i]: sa[i] and sa[i+1] share >= k tokens
    in_group = np.zeros(len(sa), bool)
    in_group[:-1] |= big[:-1]
    in_group[1:] |= big[:-1]
    starts = sa[in_group]
    diff = np.zeros(len(arr) + k + 1, np.int64)
    np.add.at(diff, starts, 1)
    np.add.at(diff, starts + k, -1)
    covered = int((np.cumsum(diff)[:len(arr)] > 0).sum())
    t3 = time.perf_counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n### suffix-array reference (pydivsufsort, one process): {len(arr):,} tokens; "
          f"tokenize {t1 - t0:.1f} s, suffix array + LCP {t2 - t1:.1f} s, spans {t3 - t2:.1f} s; "
          f"total {t3 - t0:.1f} s ({n_docs / (t3 - t0):,.0f} docs/s on 1 core); "
          f"peak RSS {rss:,.0f} MB; tokens in repeated spans >= {k}: {covered:,}")
    return covered


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--stages", default="substring,sentence,paragraph")
    ap.add_argument("--reference", action="store_true", help="also the suffix array")
    ap.add_argument("--dir", help="work directory (default: a temporary one)")
    a = ap.parse_args()
    tmp = tempfile.TemporaryDirectory() if not a.dir else None
    root = Path(a.dir or tmp.name)
    (root / "in").mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    planted = build(root / "in", a.docs, a.shards)
    truth = planted.pop("truth")
    print(f"built {a.docs:,} docs in {time.perf_counter() - t:.0f} s; planted {planted}",
          flush=True)
    P = a.partitions
    todo = a.stages.split(",")
    if "substring" in todo:
        stats, wall = run_stage(root, {"stage": "substring_dedup", "min_tokens": 50,
                                       "partitions": P, "action": "annotate"},
                                a.workers, "substring")
        report("substring_dedup", stats, wall, a.docs, a.workers)
        quality(root, "substring", truth)
    if "sentence" in todo:
        stats, wall = run_stage(root, {"stage": "sentence_span_dedup", "partitions": P},
                                a.workers, "sentence")
        report("sentence_span_dedup", stats, wall, a.docs, a.workers)
    if "paragraph" in todo:
        stats, wall = run_stage(root, {"stage": "paragraph_dedup", "partitions": P},
                                a.workers, "paragraph")
        report("paragraph_dedup", stats, wall, a.docs, a.workers)
    if a.reference:
        covered = reference(root, 50)
        stats, wall = run_stage(root, {"stage": "substring_dedup", "min_tokens": 50,
                                       "keep": "none", "partitions": P},
                                a.workers, "substring-none")
        mine = stats["phases"]["substring_dedup.spans"]["metrics"]["tokens_removed"]
        report("substring_dedup", stats, wall, a.docs, a.workers)
        print(f"\nkeep none: stage removed {mine:,} tokens, suffix array {covered:,}: "
              f"{'equal' if mine == covered else 'DIFFERENT'}")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
