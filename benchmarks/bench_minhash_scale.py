"""minhash_dedup through the real pipeline at scale: wall time and peak RSS per phase.

    .venv/bin/python benchmarks/bench_minhash_scale.py --docs 1000000 --workers 2

Builds a corpus of ``--docs`` documents, each 10 sentences drawn at random from
the ~9k sentences of real WikiText-2 text in ../shared/data/quality (two such
documents share a sentence now and then, far below the Jaccard threshold), 5 % of
them near-duplicate variants of a recent document (3 words replaced), as
``--shards`` JSONL.zst files. Then it runs a pipeline with just ``minhash_dedup``
(FineWeb defaults: 5-word shingles, 14 x 8) on the local executor and prints, per
phase, tasks, elapsed seconds, summed task seconds and the largest worker RSS, plus
the near-duplicates found versus planted.
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import zstandard

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
WIKITEXT = REPO.parent / "shared" / "data" / "quality" / "wikitext-2-valid.txt.xz"

from pipelines import config_from_dict, run_pipeline  # noqa: E402


def build(root: Path, n_docs: int, n_shards: int, seed: int = 0) -> int:
    raw = lzma.open(WIKITEXT, "rt").read()
    words = raw.split()
    sentences = [s.strip() + " ." for s in raw.replace("\n", " ").split(" . ")
                 if len(s.split()) >= 8]
    rng = random.Random(seed)
    planted = 0
    writers = [zstandard.ZstdCompressor(level=3).stream_writer(
        open(root / f"shard-{s:03d}.jsonl.zst", "wb")) for s in range(n_shards)]
    recent: list[str] = []
    for i in range(n_docs):
        if recent and rng.random() < 0.05:  # a near-duplicate of a recent document
            toks = rng.choice(recent).split()
            for _ in range(3):
                toks[rng.randrange(len(toks))] = rng.choice(words)
            text = " ".join(toks)
            planted += 1
        else:
            text = " ".join(rng.choice(sentences) for _ in range(10))
            recent = (recent + [text])[-100:]
        writers[i % n_shards].write((json.dumps({"id": f"d{i:08d}", "text": text}) + "\n")
                                    .encode())
    for w in writers:
        w.close()
    return planted


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--dir", help="work directory (default: a temporary one)")
    a = ap.parse_args()
    tmp = tempfile.TemporaryDirectory() if not a.dir else None
    root = Path(a.dir or tmp.name)
    (root / "in").mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    planted = build(root / "in", a.docs, a.shards)
    print(f"built {a.docs:,} docs ({planted:,} planted near-duplicates) in "
          f"{time.perf_counter() - t:.0f} s", flush=True)
    cfg = config_from_dict({
        "name": "minhash-scale",
        "input": {"format": "jsonl", "paths": [str(root / "in" / "*.jsonl.zst")]},
        "output": {"path": str(root / "run")},
        "executor": {"kind": "local", "workers": a.workers},
        "stages": [{"stage": "minhash_dedup", "partitions": a.partitions}],
    })
    t = time.perf_counter()
    run = run_pipeline(cfg, overwrite=True)
    wall = time.perf_counter() - t
    stats = json.loads(run.stats_json.read_text())
    print(f"\n{a.docs:,} documents, {a.shards} shards, {a.workers} workers, "
          f"{os.cpu_count()} CPUs; end to end {wall:.0f} s ({a.docs / wall:,.0f} docs/s)")
    print("| phase | tasks | elapsed s | task s (sum) | max RSS MB |\n|---|---|---|---|---|")
    for name, ph in stats["phases"].items():
        print(f"| {name} | {ph['tasks']} | {ph['elapsed_s']:.1f} | {ph['task_wall_s']:.1f} | "
              f"{ph['max_rss_mb']:,.0f} |")
    m = stats["phases"]["minhash_dedup.cluster"]["metrics"]
    print(f"\nremoved {m['near_duplicates']:,} near-duplicates in {m['clusters']:,} clusters "
          f"(planted {planted:,})")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
