"""MinHash near-duplicate detection: thresher's core against datatrove's MinHash, side by side.

    .venv/bin/python benchmarks/bench_minhash.py [--docs 10000] [--seed 0] [--keep DIR]

Both run on the same generated near-duplicate set (neardup_set.py, written once as
JSONL) with the same parameters (word 5-grams, 14 bands x 8 rows, seed 1), each in
its own process on one core, so time per phase and peak RSS are their own:

- thresher: the core functions end to end in one process, streaming like the
  stage (read JSONL 1,000 documents at a time -> signatures -> band rows; band rows
  partitioned in 16 -> star edges per partition; connected components; re-read the
  JSONL and write the kept documents);
- datatrove 0.10.1: its four MinHash steps with LocalPipelineExecutor, one worker
  (JsonlReader -> MinhashDedupSignature; MinhashDedupBuckets, 14 tasks;
  MinhashDedupCluster; JsonlReader -> MinhashDedupFilter -> JsonlWriter), run with
  the interpreter of benchmarks/.venv-datatrove (requirements-datatrove.txt: its
  default xxhash hashing and orjson reader) if that exists, else with this one
  (SHA-1 hashing and a json reader, as xxhash and orjson are not installed here).

Both are scored against the exact Jaccard of every pair (neardup_truth.py).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PEER_PYTHON = HERE / ".venv-datatrove" / "bin" / "python"
N_GRAMS, BANDS, ROWS, SEED = 5, 14, 8, 1


def _peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss it excludes the parent's image,
    which Linux carries over a fork + exec)."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Phases:
    """Wall and CPU seconds per named phase, in order."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def __call__(self, name: str):
        phases = self

        class _Timer:
            def __enter__(self):
                self.t, self.c = time.perf_counter(), time.process_time()

            def __exit__(self, *exc):
                phases.wall[name] = time.perf_counter() - self.t
                phases.cpu[name] = time.process_time() - self.c

        return _Timer()


# ---------------------------------------------------------------- workers (subprocesses)
def run_thresher(docs_path: Path, work: Path) -> dict:
    sys.path.insert(0, str(REPO))
    import numpy as np

    from stages import minhash_core as core

    spec = core.MinHashSpec(unit="word", n=N_GRAMS, bands=BANDS, rows=ROWS, seed=SEED)
    t = Phases()

    def batches(size: int = 1000):  # streamed, like the stage: one batch in memory
        with open(docs_path, encoding="utf-8") as f:
            batch: list[dict] = []
            for line in f:
                batch.append(json.loads(line))
                if len(batch) == size:
                    yield batch
                    batch = []
            if batch:
                yield batch

    with t("signatures"):  # read + signatures + band rows, batch by batch
        rows, n = [], 0
        for batch in batches():
            sigs = core.signatures([r["text"] for r in batch], spec)
            rows.append(core.band_rows(sigs, np.arange(n, n + len(batch), dtype=np.uint64), spec))
            n += len(batch)
        band, key, doc = (np.concatenate(x) for x in zip(*rows))
    with t("buckets"):
        part = core.bucket_partition(key, 16)
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(17))
        edges = np.concatenate([core.candidate_edges(band[s], key[s], doc[s]) for s in
                                (order[bounds[p]:bounds[p + 1]] for p in range(16))])
    with t("cluster"):
        nodes, comp = core.connected_components(edges)
        labels = np.arange(n, dtype=np.int64)
        labels[nodes.astype(np.int64)] = comp.astype(np.int64)
        removed = labels != np.arange(n)
    with t("filter"):  # re-read, write the kept documents
        with open(work / "kept.jsonl", "w", encoding="utf-8") as f:
            i = 0
            for batch in batches():
                for r in batch:
                    if not removed[i]:
                        f.write(json.dumps(r, ensure_ascii=False) + "\n")
                    i += 1
    return {"wall": t.wall, "cpu": t.cpu, "peak_rss_mb": _peak_rss_mb(),
            "labels": labels.tolist(), "removed": removed.tolist(), "edges": len(edges)}


def run_datatrove(docs_path: Path, work: Path) -> dict:
    import struct

    from datatrove.data import Document
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashing import HashConfig

    try:
        import xxhash  # noqa: F401

        hash_fc = "xxhash"
    except ImportError:
        hash_fc = "sha1"
    try:
        import orjson  # noqa: F401
        from datatrove.pipeline.readers import JsonlReader

        def reader():
            return JsonlReader(str(docs_path.parent), glob_pattern=docs_path.name)
    except ImportError:
        def reader():
            def read(data, rank: int = 0, world_size: int = 1):
                for line in open(docs_path, encoding="utf-8"):
                    r = json.loads(line)
                    yield Document(text=r["text"], id=r["id"], metadata={})
            return read

    config = MinhashConfig(n_grams=N_GRAMS, num_buckets=BANDS, hashes_per_bucket=ROWS, seed=SEED,
                           hash_config=HashConfig(precision=64, hash_fc=hash_fc))
    logs = work / "logs"
    steps = {
        "signatures": ([reader(), MinhashDedupSignature(str(work / "sigs"), config=config,
                                                        language="en")], 1),
        "buckets": ([MinhashDedupBuckets(str(work / "sigs"), str(work / "buckets"),
                                         config=config)], BANDS),
        "cluster": ([MinhashDedupCluster(str(work / "buckets"), str(work / "remove"),
                                         config=config, save_cluster_id=True)], 1),
        "filter": ([reader(), MinhashDedupFilter(str(work / "remove")),
                    JsonlWriter(str(work / "kept"), compression=None)], 1),
    }
    t = Phases()
    for name, (pipeline, tasks) in steps.items():
        with t(name):
            LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=1,
                                  logging_dir=str(logs / name)).run()
    n = sum(1 for _ in open(docs_path, encoding="utf-8"))
    labels = list(range(n))
    clusters = (work / "remove" / "000000.clusters")
    if clusters.exists():
        raw = clusters.read_bytes()
        for doc, cid in struct.iter_unpack("<2I", raw):
            labels[doc] = n + cid
    removed = [False] * n
    rm = work / "remove" / "000000.remove"
    if rm.exists():
        for (doc,) in struct.iter_unpack("<I", rm.read_bytes()):
            removed[doc] = True
    return {"wall": t.wall, "cpu": t.cpu, "peak_rss_mb": _peak_rss_mb(), "labels": labels,
            "removed": removed, "hash": hash_fc, "python": sys.executable}


# ---------------------------------------------------------------- driver
def _run_worker(python: str, which: str, docs: Path, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    out = work / "result.json"
    log = open(work / "worker.log", "w")
    proc = subprocess.run([python, __file__, "--worker", which, "--input", str(docs),
                           "--work", str(work)], stdout=log, stderr=subprocess.STDOUT,
                          cwd=REPO, env={**os.environ, "PYTHONHASHSEED": "0"})
    if proc.returncode != 0:
        raise SystemExit(f"{which} worker failed ({proc.returncode}); see {work / 'worker.log'}:\n"
                         + (work / "worker.log").read_text()[-3000:])
    return json.loads(out.read_text())


def _table(rows: list[tuple[str, str, str, str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":"
                                   for i, w in enumerate(widths)) + "|")
    return "\n".join(lines)


def report(truth, rows: list[dict], ours: dict, peer: dict) -> str:
    """The side-by-side table (markdown) and both score sets (JSON)."""
    import numpy as np
    from neardup_truth import evaluate

    n = len(rows)
    scores = {k: evaluate(truth, np.array(r["labels"]), np.array(r["removed"]))
              for k, r in (("thresher", ours), ("datatrove", peer))}
    # pairs whose texts carry no fullwidth or zero-width noise (datatrove does not fold them)
    width = np.array([bool({"fullwidth", "zero_width"} & set(r["noise"])) for r in rows])
    plain = (truth.jaccard >= 0.85) & ~width[truth.a] & ~width[truth.b]
    for k, r in (("thresher", ours), ("datatrove", peer)):
        lab = np.array(r["labels"])
        scores[k]["recall[0.85-1] no width noise"] = float(
            np.mean(lab[truth.a[plain]] == lab[truth.b[plain]]))
    table = [("", "thresher", "datatrove", "datatrove / thresher")]
    labels = {"signatures": "signatures, incl. reading (s)", "buckets": "buckets (s)",
              "cluster": "cluster (s)", "filter": "filter, incl. reading and writing (s)"}
    for phase, label in labels.items():
        o, p = ours["wall"][phase], peer["wall"][phase]
        table.append((label, f"{o:.2f}", f"{p:.2f}", f"{p / o:.0f}x" if o else ""))
    tot_o, tot_p = sum(ours["wall"].values()), sum(peer["wall"].values())
    cpu_o, cpu_p = sum(ours["cpu"].values()), sum(peer["cpu"].values())
    sig_o, sig_p = ours["cpu"]["signatures"], peer["cpu"]["signatures"]
    table += [("end to end (s)", f"{tot_o:.2f}", f"{tot_p:.2f}", f"{tot_p / tot_o:.1f}x"),
              ("end to end, CPU (s)", f"{cpu_o:.2f}", f"{cpu_p:.2f}", f"{cpu_p / cpu_o:.1f}x"),
              ("signatures, CPU (s)", f"{sig_o:.2f}", f"{sig_p:.2f}", f"{sig_p / sig_o:.0f}x"),
              ("docs/s end to end", f"{n / tot_o:,.0f}", f"{n / tot_p:,.0f}", ""),
              ("peak RSS (MB)", f"{ours['peak_rss_mb']:.0f}", f"{peer['peak_rss_mb']:.0f}", "")]
    so, sp = scores["thresher"], scores["datatrove"]
    for key, label in (("recall[0.85-1]", "pair recall, J >= 0.85"),
                       ("recall[0.85-1] no width noise", "  same, no fullwidth/zero-width noise"),
                       ("recall[0.7-0.85]", "pair recall, 0.7 <= J < 0.85"),
                       ("recall[0.5-0.7]", "pair recall, 0.5 <= J < 0.7"),
                       ("pair_precision", "pair precision (true clusters: J >= 0.7)"),
                       ("pair_recall", "pair recall (true clusters: J >= 0.7)"),
                       ("bcubed_precision", "B-cubed precision"),
                       ("bcubed_recall", "B-cubed recall"),
                       ("groups_collapsed", "groups at J >= 0.85 left with one survivor"),
                       ("false_removal", "removed, no match >= 0.5")):
        table.append((label, f"{so[key]:.4f}", f"{sp[key]:.4f}", ""))
    table.append(("documents removed", f"{so['removed']:,}", f"{sp['removed']:,}", ""))
    return _table(table) + "\n\n" + json.dumps({"thresher": so, "datatrove": sp}, indent=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--datatrove-python", default=str(PEER_PYTHON) if PEER_PYTHON.exists()
                    else sys.executable)
    ap.add_argument("--keep", type=Path, help="keep the set and outputs in this directory")
    ap.add_argument("--reuse-peer", action="store_true",
                    help="with --keep: reuse the datatrove result already there (same set)")
    ap.add_argument("--worker", choices=["thresher", "datatrove"], help=argparse.SUPPRESS)
    ap.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        result = (run_thresher if a.worker == "thresher" else run_datatrove)(a.input, a.work)
        (a.work / "result.json").write_text(json.dumps(result))
        return

    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(HERE))
    from neardup_set import generate
    from neardup_truth import exact_pairs

    from stages.minhash_core import MinHashSpec

    tmp = None if a.keep else tempfile.TemporaryDirectory(prefix="bench-minhash-")
    root = a.keep or Path(tmp.name)
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = generate(a.docs, a.seed)
    texts = [r["text"] for r in rows]
    docs = root / "docs.jsonl"
    with open(docs, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({"id": r["id"], "text": r["text"]}, ensure_ascii=False) + "\n")
    t1 = time.perf_counter()
    truth = exact_pairs(texts, MinHashSpec(n=N_GRAMS, bands=BANDS, rows=ROWS, seed=SEED))
    t2 = time.perf_counter()
    chars = sum(map(len, texts))
    print(f"set: {len(texts):,} documents, {chars / len(texts):,.0f} characters on average, "
          f"built in {t1 - t0:.1f} s; exact truth in {t2 - t1:.1f} s: "
          f"{json.dumps(truth.summary())}", flush=True)

    ours = _run_worker(sys.executable, "thresher", docs, root / "thresher")
    print(f"thresher: {sum(ours['wall'].values()):.1f} s", flush=True)
    if a.reuse_peer and (root / "datatrove" / "result.json").exists():
        peer = json.loads((root / "datatrove" / "result.json").read_text())
    else:
        peer = _run_worker(a.datatrove_python, "datatrove", docs, root / "datatrove")
    print(f"datatrove ({peer['hash']} hashing, {peer['python']}): "
          f"{sum(peer['wall'].values()):.1f} s", flush=True)

    print()
    print(report(truth, rows, ours, peer))
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
