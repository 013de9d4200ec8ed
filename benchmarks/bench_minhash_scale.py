"""minhash_dedup through the real pipeline at scale: wall time and peak RSS per phase.

    .venv/bin/python benchmarks/bench_minhash_scale.py --docs 1000000 --workers 2

Builds a corpus of ``--docs`` documents, each 10 sentences drawn at random from
the ~9k sentences of real WikiText-2 text bundled in tests/data/quality (two such
documents share a sentence now and then, far below the Jaccard threshold), 5 % of
them near-duplicate variants of a recent document (3 words replaced), as
``--shards`` JSONL.zst files. Then it runs a pipeline with just ``minhash_dedup``
(FineWeb defaults: 5-word shingles, 14 x 8) on the local executor and prints, per
phase, tasks, elapsed seconds, summed task seconds and the largest worker RSS. The
removed documents are then matched against the planted ones id for id (``keep:
first`` keeps the smallest id, and every planted copy has a larger id than the
original it copies, so a perfect dedup removes exactly the planted set): precision
and recall by id, the ids that differ, and for each kind of difference the exact
Jaccard that explains it: a planted copy LSH missed (its Jaccard to its original, and
the misses the S-curve (1 - J^rows)^bands expects over all planted pairs), or an
original removed with documents it shares long sentences with (its highest Jaccard
to a member of its cluster other than its own copies). The script reports these; it
does not fail on them, since LSH is probabilistic by design.

Sharded clustering (``cluster_memory``, stages/dedup/minhash_sharded.py)::

    .venv/bin/python benchmarks/bench_minhash_scale.py --docs 1000000 --shards 16 \
        --workers 2 --cluster-memory 1MB --compare

``--cluster-memory`` runs the stage with that budget (an edge list above it is clustered
in rounds of ``--partitions`` tasks); ``--compare`` also runs the single-task clustering
on the same corpus and checks that both give the same clusters table and byte-identical
output shards. ``--dir`` with ``--reuse`` keeps a built corpus for the next call.
"""

from __future__ import annotations

import argparse
import hashlib
import io
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
WIKITEXT = REPO / "tests" / "data" / "quality" / "wikitext-2-valid.txt.xz"

from pipelines import config_from_dict, run_pipeline  # noqa: E402


def doc_id(i: int) -> str:
    return f"d{i:08d}"


def build(root: Path, n_docs: int, n_shards: int, seed: int = 0) -> dict[str, str]:
    """Write the corpus; return the planted near-duplicates, id -> id of the original."""
    raw = lzma.open(WIKITEXT, "rt").read()
    words = raw.split()
    sentences = [s.strip() + " ." for s in raw.replace("\n", " ").split(" . ")
                 if len(s.split()) >= 8]
    rng = random.Random(seed)
    planted: dict[str, str] = {}
    writers = [zstandard.ZstdCompressor(level=3).stream_writer(
        open(root / f"shard-{s:03d}.jsonl.zst", "wb")) for s in range(n_shards)]
    recent: list[tuple[str, str]] = []  # (id, text) of the last 100 originals
    for i in range(n_docs):
        if recent and rng.random() < 0.05:  # a near-duplicate of a recent document
            source, original = rng.choice(recent)
            toks = original.split()
            for _ in range(3):
                toks[rng.randrange(len(toks))] = rng.choice(words)
            text = " ".join(toks)
            planted[doc_id(i)] = source
        else:
            text = " ".join(rng.choice(sentences) for _ in range(10))
            recent = (recent + [(doc_id(i), text)])[-100:]
        writers[i % n_shards].write((json.dumps({"id": doc_id(i), "text": text}) + "\n")
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
    ap.add_argument("--reuse", action="store_true",
                    help="keep the corpus already built in --dir (same --docs, --shards)")
    ap.add_argument("--cluster-memory", help="minhash_dedup cluster_memory (e.g. 1GB, 1MB)")
    ap.add_argument("--cluster-rounds", type=int, help="minhash_dedup cluster_rounds")
    ap.add_argument("--compare", action="store_true",
                    help="also run the single-task clustering and compare (needs "
                         "--cluster-memory)")
    a = ap.parse_args()
    tmp = tempfile.TemporaryDirectory() if not a.dir else None
    root = Path(a.dir or tmp.name)
    (root / "in").mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    marker = root / "in" / "planted.json"
    old = json.loads(marker.read_text()) if a.reuse and marker.exists() else {}
    if isinstance(old.get("planted"), dict):  # ids (an older marker held only a count)
        planted = old["planted"]
    else:
        planted = build(root / "in", a.docs, a.shards)
        marker.write_text(json.dumps({"planted": planted}))
        print(f"built {a.docs:,} docs ({len(planted):,} planted near-duplicates) in "
              f"{time.perf_counter() - t:.0f} s", flush=True)
    params: dict = {"partitions": a.partitions}
    if a.cluster_memory:
        params["cluster_memory"] = a.cluster_memory
    if a.cluster_rounds:
        params["cluster_rounds"] = a.cluster_rounds
    runs = [("run", params)]
    if a.compare:
        runs.append(("run-single", {"partitions": a.partitions}))
    for out, p in runs:
        measure(root, out, p, a)
        match = match_planted(root / out, a.docs, planted)
        print(report_match(match), flush=True)
        if match["missed"] or match["extra"]:
            print(explain(root, out, planted, match), flush=True)
    if a.compare:
        same = compare(root / "run", root / "run-single")
        print(f"\nsharded vs single-task clustering: {same}")
    if tmp:
        tmp.cleanup()


def measure(root: Path, out: str, params: dict, a: argparse.Namespace) -> None:
    cfg = config_from_dict({
        "name": "minhash-scale",
        "input": {"format": "jsonl", "paths": [str(root / "in" / "*.jsonl.zst")]},
        "output": {"path": str(root / out)},
        "executor": {"kind": "local", "workers": a.workers},
        "stages": [{"stage": "minhash_dedup", **params}],
    })
    load = os.getloadavg()[0]
    t = time.perf_counter()
    run = run_pipeline(cfg, overwrite=True)
    wall = time.perf_counter() - t
    stats = json.loads(run.stats_json.read_text())
    print(f"\n{out}: minhash_dedup {params}; {a.docs:,} documents, {a.shards} shards, "
          f"{a.workers} workers, {os.cpu_count()} CPUs; end to end {wall:.0f} s "
          f"({a.docs / wall:,.0f} docs/s); load average {load:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after")
    print("| phase | tasks | elapsed s | task s (sum) | max RSS MB |\n|---|---|---|---|---|")
    for name, ph in stats["phases"].items():
        print(f"| {name} | {ph['tasks']} | {ph['elapsed_s']:.1f} | {ph['task_wall_s']:.1f} | "
              f"{ph['max_rss_mb']:,.0f} |")
    cl = {k: v for k, v in stats["phases"].items()
          if k.startswith("minhash_dedup.") and not k.endswith(".buckets")}
    print(f"clustering (the {len(cl)} phases between buckets and apply): elapsed "
          f"{sum(v['elapsed_s'] for v in cl.values()):.1f} s summed over phases, "
          f"{sum(v['task_wall_s'] for v in cl.values()):.1f} task-s, largest task RSS "
          f"{max(v['max_rss_mb'] for v in cl.values()):,.0f} MB; all phases' elapsed "
          f"{sum(v['elapsed_s'] for v in stats['phases'].values()):.0f} s of {wall:.0f} s "
          "end to end (the rest: start-up, planning, per-phase overhead, finalize)")
    for name, ph in stats["phases"].items():
        if ph.get("metrics") and not name.endswith(("buckets",)):
            print(f"{name}: {ph['metrics']}")
    m = stats["phases"]["minhash_dedup.cluster"]["metrics"]
    print(f"removed {m['near_duplicates']:,} near-duplicates in {m['clusters']:,} clusters",
          flush=True)


def match_planted(run: Path, n_docs: int, planted: dict[str, str]) -> dict:
    """The removed ids (every input id the run's output lacks) against the planted ids."""
    import pyarrow.parquet as pq

    kept: set[str] = set()
    for shard in sorted((run / "data").glob("*.parquet")):
        kept.update(pq.read_table(shard, columns=["id"]).column("id").to_pylist())
    removed = {doc_id(i) for i in range(n_docs)} - kept
    want = set(planted)
    hit = removed & want
    return {"removed": len(removed), "planted": len(want), "matched": len(hit),
            "precision": len(hit) / len(removed) if removed else 1.0,
            "recall": len(hit) / len(want) if want else 1.0,
            "missed": sorted(want - removed), "extra": sorted(removed - want)}


def report_match(m: dict, show: int = 20) -> str:
    lines = [f"removed vs planted, id for id: {m['matched']:,} of {m['removed']:,} removed "
             f"were planted, {m['matched']:,} of {m['planted']:,} planted were removed; "
             f"precision {m['precision']:.6f}, recall {m['recall']:.6f} by id"]
    for what in ("missed", "extra"):
        if m[what]:
            more = f" (first {show})" if len(m[what]) > show else ""
            lines.append(f"{what} ({len(m[what]):,}){more}: {', '.join(m[what][:show])}")
    return "\n".join(lines)


def explain(root: Path, out: str, planted: dict[str, str], m: dict) -> str:
    """The exact Jaccard (the stage's own shingles) behind each id that differs."""
    import numpy as np
    import pyarrow.parquet as pq

    from stages.dedup.minhash_core import MinHashSpec, shingle_sets

    spec = MinHashSpec()
    clusters = pq.read_table(root / out / "work" / "minhash_dedup" / "clusters.parquet",
                             columns=["cluster_id", "id"]).to_pydict()
    cluster_of = dict(zip(clusters["id"], clusters["cluster_id"]))
    extra_clusters = {cluster_of[e] for e in m["extra"]}
    members: dict[str, list[str]] = {}
    for i, c in zip(clusters["id"], clusters["cluster_id"]):
        if c in extra_clusters:
            members.setdefault(c, []).append(i)
    want = set(planted) | set(planted.values()) | {i for v in members.values() for i in v}
    texts: dict[str, str] = {}
    dctx = zstandard.ZstdDecompressor()
    for shard in sorted((root / "in").glob("*.jsonl.zst")):
        with dctx.stream_reader(open(shard, "rb")) as fh:
            for line in io.TextIOWrapper(fh, encoding="utf-8"):
                doc = json.loads(line)
                if doc["id"] in want:
                    texts[doc["id"]] = doc["text"]

    def jaccard(pairs: list[tuple[str, str]]) -> np.ndarray:
        sh, counts = shingle_sets([texts[x] for pair in pairs for x in pair], spec)
        sets = np.split(sh, np.cumsum(counts)[:-1])
        out = np.empty(len(pairs))
        for k in range(len(pairs)):
            a, b = sets[2 * k], sets[2 * k + 1]
            inter = len(np.intersect1d(a, b, assume_unique=True))
            out[k] = inter / (len(a) + len(b) - inter)
        return out

    lines = []
    if m["missed"]:
        j_all = jaccard(list(planted.items()))
        expected = float(np.sum((1 - j_all ** spec.rows) ** spec.bands))
        j = jaccard([(x, planted[x]) for x in m["missed"]])
        lines.append(f"missed: {len(m['missed']):,} planted copies in no cluster, exact Jaccard "
                     f"to their original {j.min():.3f}-{j.max():.3f} (median "
                     f"{np.median(j):.3f}); all {len(planted):,} planted pairs: Jaccard "
                     f"{j_all.min():.3f}-{j_all.max():.3f}, and LSH {spec.bands}x{spec.rows} "
                     f"misses a pair of Jaccard J with probability (1 - J^{spec.rows})^"
                     f"{spec.bands}, which expects {expected:.0f} misses over them")
    if m["extra"]:
        best = []
        for e in m["extra"]:
            others = [x for x in members[cluster_of[e]] if x != e and planted.get(x) != e]
            best.append(jaccard([(e, x) for x in others]).max())
        b = np.array(best)
        lines.append(f"extra: {len(m['extra']):,} originals removed, in "
                     f"{len(extra_clusters):,} clusters; each one's highest exact Jaccard to "
                     f"another member of its cluster {b.min():.3f}-{b.max():.3f} (median "
                     f"{np.median(b):.3f}; its own planted copies left out): documents "
                     "sharing long sentences, which LSH links now and then (false positives "
                     "of the S-curve, joined into clusters by connected components)")
    return "\n".join(lines)


def compare(a: Path, b: Path) -> str:
    """Whether two runs wrote the same shard bytes and the same clusters table."""
    def shards(run: Path) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted((run / "data").glob("*.parquet"))}

    import pyarrow.parquet as pq

    ca, cb = (pq.read_table(r / "work" / "minhash_dedup" / "clusters.parquet") for r in (a, b))
    sa, sb = shards(a), shards(b)
    if sa != sb or not ca.equals(cb):
        raise SystemExit(f"DIFFERENT: shards equal {sa == sb}, clusters equal {ca.equals(cb)}")
    return (f"identical ({len(sa)} output shards byte for byte, clusters tables equal: "
            f"{ca.num_rows:,} rows)")


if __name__ == "__main__":
    main()
