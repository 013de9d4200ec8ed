"""MinHash near-duplicate detection: thresher's stage and core against datatrove's MinHash.

    .venv/bin/python benchmarks/bench_minhash.py [--docs 20000] [--repeats 3] [--seed 0]
        [--keep DIR]

All four run on the same generated near-duplicate set (neardup_set.py, written once as
JSONL) with the same parameters (word 5-grams, 14 bands x 8 rows, seed 1), each in
its own process on one core, so time per phase and peak RSS are their own (the ratio
columns are datatrove's time over each thresher system's):

- thresher core: the core functions end to end in one process, streaming like the
  stage (read JSONL 1,000 documents at a time -> signatures -> band rows; band rows
  partitioned in 16 -> star edges per partition; connected components; re-read the
  JSONL and write the kept documents);
- thresher stage: the real ``minhash_dedup`` stage in a pipeline run, local executor,
  one worker (so one process, tasks inline): JSONL in, Parquet out, with its
  intermediate Parquet shards, partitioned side files, clusters table and stats; its
  phases are main (read, signatures, intermediate shards), buckets (16 tasks),
  cluster, apply (re-read the intermediate shards, write the kept ones);
- datatrove 0.10.1: its four MinHash steps with LocalPipelineExecutor, one worker
  (JsonlReader -> MinhashDedupSignature; MinhashDedupBuckets, 14 tasks;
  MinhashDedupCluster; JsonlReader -> MinhashDedupFilter -> JsonlWriter), run with
  the interpreter of benchmarks/.venv-datatrove (requirements-datatrove.txt: its
  default xxhash hashing and orjson reader) if that exists, else with this one
  (SHA-1 hashing and a json reader, as xxhash and orjson are not installed here);
- datatrove tuned: the same steps with a whitespace ``WordTokenizer`` given to the
  signature step in place of its default (spaCy's English tokenizer for ``en``): the
  strongest fair setup of the peer, since its API takes any word tokenizer and its
  recall is measured in the same run (issue #23).
- floor (``--systems ... floor``, not run by default): the imports a thresher run needs
  and the compiled kernel's signatures of every document read from the JSONL, nothing
  else (``run_floor``): a lower bound of any thresher run, printed against a tenth of
  the tuned peer's whole process of the same repetition.

Each system runs ``--repeats`` times (3 by default), the systems alternating and their
order rotating every repetition; every repetition of a system must give the same clusters
and removals. The table shows each system's median run (by end-to-end wall time), and a
line per system gives every run's time, the median and the spread, end to end and for the
whole process; the "whole process" runs from the launch of the system's process to the end
of its run: interpreter start-up and imports included, the reading back of its results for
scoring not. Whole-process ratios are printed as the ratio of the medians and, less exposed
to a machine whose speed drifts during the benchmark, repetition by repetition with their
median. All are scored against the exact Jaccard of every pair (neardup_truth.py);
recall is also given without the pairs carrying fullwidth or zero-width noise, which only
thresher folds.
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

    from stages.dedup import minhash_core as core

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
    return {"wall": t.wall, "cpu": t.cpu, "peak_rss_mb": _peak_rss_mb(), "run_end": time.time(),
            "labels": labels.tolist(), "removed": removed.tolist(), "edges": len(edges)}


def run_stage(docs_path: Path, work: Path) -> dict:
    sys.path.insert(0, str(REPO))
    import pyarrow.parquet as pq

    from pipelines import config_from_dict, run_pipeline
    from pipelines.allocator import tune_allocator

    tune_allocator()  # as the thresher command does (the API leaves the caller's alone)

    cfg = config_from_dict({
        "name": "bench-minhash",
        "input": {"format": "jsonl", "paths": [str(docs_path)], "id_key": "id"},
        "output": {"path": str(work / "run")},
        "executor": {"kind": "local", "workers": 1},
        "stages": [{"stage": "minhash_dedup", "unit": "word", "n": N_GRAMS, "bands": BANDS,
                    "rows": ROWS, "seed": SEED, "partitions": 16}],
    })
    run = run_pipeline(cfg, overwrite=True)
    run_end = time.time()  # what follows only reads the results back for scoring
    names = {"main": "signatures", "minhash_dedup.buckets": "buckets",
             "minhash_dedup.cluster": "cluster", "apply-minhash_dedup": "filter"}
    wall = {v: 0.0 for v in names.values()}
    cpu = dict(wall)
    for stats in sorted((run.root / "stats").glob("*/task-*.json")):
        rec = json.loads(stats.read_text())
        wall[names[rec["phase"]]] += rec["wall_s"]
        cpu[names[rec["phase"]]] += rec["cpu_s"]
    ids = [json.loads(line)["id"] for line in open(docs_path, encoding="utf-8")]
    index = {d: i for i, d in enumerate(ids)}
    labels = list(range(len(ids)))
    for r in pq.read_table(run.root / "work" / "minhash_dedup" / "clusters.parquet",
                           columns=["id", "cluster_id"]).to_pylist():
        labels[index[r["id"]]] = index[r["cluster_id"]]
    removed = [True] * len(ids)
    for p in run.data.glob("*.parquet"):
        for d in pq.read_table(p, columns=["id"]).column("id").to_pylist():
            removed[index[d]] = False
    return {"wall": wall, "cpu": cpu, "peak_rss_mb": _peak_rss_mb(), "labels": labels,
            "removed": removed, "run_end": run_end}


def run_datatrove(docs_path: Path, work: Path, tuned: bool = False) -> dict:
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
    signature = MinhashDedupSignature(str(work / "sigs"), config=config, language="en")
    if tuned:
        signature.word_tokenizer = _whitespace_tokenizer()
    steps = {
        "signatures": ([reader(), signature], 1),
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
    run_end = time.time()  # what follows only reads the results back for scoring
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
            "removed": removed, "hash": hash_fc, "python": sys.executable, "run_end": run_end}


def _whitespace_tokenizer():
    """A datatrove ``WordTokenizer`` that splits on whitespace (written here: datatrove
    ships none), for the tuned peer."""
    import re

    from datatrove.utils.word_tokenizers import WordTokenizer

    class Whitespace(WordTokenizer):
        def word_tokenize(self, text: str) -> list[str]:
            return text.split()

        def sent_tokenize(self, text: str) -> list[str]:
            return [text]

        def span_tokenize(self, text: str) -> list[tuple[int, int]]:
            return [m.span() for m in re.finditer(r"\S+", text)]

    return Whitespace("en")


def run_floor(docs_path: Path, work: Path) -> dict:
    """Less than any thresher MinHash run can cost: the libraries a run imports (numpy,
    pyarrow with parquet, pydantic, yaml), the kernel's module (which imports the
    ``pipelines`` package and its config models, as every run does to validate its
    config) and the compiled kernel's signatures of every document read from the JSONL;
    nothing else: no config, band rows, buckets, clusters, output, stats or run
    directory. A peer whose whole process is under 10x this cannot be beaten 10x by a
    thresher run (issue #20's goal at 2,000 documents)."""
    sys.path.insert(0, str(REPO))
    import numpy  # noqa: F401
    import pyarrow  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import pydantic  # noqa: F401
    import yaml  # noqa: F401

    from stages.dedup import minhash_core as core
    from stages.dedup import minhash_native as native

    assert native.available(), "the compiled kernel is not built (make install)"
    spec = core.MinHashSpec(unit="word", n=N_GRAMS, bands=BANDS, rows=ROWS, seed=SEED)
    t = Phases()
    with t("signatures"):
        with open(docs_path, encoding="utf-8") as f:
            texts = [json.loads(line)["text"] for line in f]
        sigs = core.signatures(texts, spec)
    return {"wall": t.wall, "cpu": t.cpu, "peak_rss_mb": _peak_rss_mb(), "run_end": time.time(),
            "labels": None, "removed": None, "signatures": int(sigs.shape[0])}


WORKERS = {"thresher": run_thresher, "stage": run_stage, "datatrove": run_datatrove,
           "datatrove-tuned": lambda docs, work: run_datatrove(docs, work, tuned=True),
           "floor": run_floor}


# ---------------------------------------------------------------- driver
def _run_worker(python: str, which: str, docs: Path, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    out = work / "result.json"
    log = open(work / "worker.log", "w")
    launched = time.time()
    proc = subprocess.run([python, __file__, "--worker", which, "--input", str(docs),
                           "--work", str(work)], stdout=log, stderr=subprocess.STDOUT,
                          cwd=REPO, env={**os.environ, "PYTHONHASHSEED": "0"})
    if proc.returncode != 0:
        raise SystemExit(f"{which} worker failed ({proc.returncode}); see {work / 'worker.log'}:\n"
                         + (work / "worker.log").read_text()[-3000:])
    result = json.loads(out.read_text())
    # from the launch to the end of the run: interpreter start-up and imports too, not the
    # reading back of the results for scoring (same clock, time.time, in both processes)
    result["process_wall"] = result["run_end"] - launched
    return result


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":"
                                   for i, w in enumerate(widths)) + "|")
    return "\n".join(lines)


def report(truth, rows: list[dict], systems: dict[str, dict]) -> str:
    """The side-by-side table (markdown) and every score set (JSON); the ratio columns
    are each datatrove system's time over the thresher stage's (what a user runs)."""
    import numpy as np
    from neardup_truth import evaluate

    n = len(rows)
    names = list(systems)
    peers = [k for k in names if k.startswith("datatrove")]
    ours = names[0]  # the stage
    scores = {k: evaluate(truth, np.array(r["labels"]), np.array(r["removed"]))
              for k, r in systems.items()}
    # pairs whose texts carry no fullwidth or zero-width noise (datatrove does not fold them)
    width = np.array([bool({"fullwidth", "zero_width"} & set(r["noise"])) for r in rows])
    plain = (truth.jaccard >= 0.85) & ~width[truth.a] & ~width[truth.b]
    for k, r in systems.items():
        lab = np.array(r["labels"])
        scores[k]["recall[0.85-1] no width noise"] = float(
            np.mean(lab[truth.a[plain]] == lab[truth.b[plain]]))

    def line(label: str, values: list[str], ratios: list[str] | None = None) -> tuple:
        return (label, *values, *(ratios or [""] * len(peers)))

    def ratios(get, fmt: str) -> list[str]:
        return [format(get(systems[k]) / get(systems[ours]), fmt) + "x"
                if get(systems[ours]) else "" for k in peers]

    table = [("", *names, *(f"{k} / {ours}" for k in peers))]
    labels = {"signatures": "signatures, incl. reading (s)", "buckets": "buckets (s)",
              "cluster": "cluster (s)", "filter": "filter, incl. reading and writing (s)"}
    for phase, label in labels.items():
        table.append(line(label, [f"{systems[k]['wall'][phase]:.2f}" for k in names],
                          ratios(lambda r, ph=phase: r["wall"][ph], ".0f")))

    def total(r):
        return sum(r["wall"].values())

    def cpu(r):
        return sum(r["cpu"].values())

    table += [
        line("end to end (s)", [f"{total(systems[k]):.2f}" for k in names],
             ratios(total, ".1f")),
        line("whole process, start-up included (s)",
             [f"{systems[k]['process_wall']:.2f}" for k in names],
             ratios(lambda r: r["process_wall"], ".1f")),
        line("end to end, CPU (s)", [f"{cpu(systems[k]):.2f}" for k in names],
             ratios(cpu, ".1f")),
        line("signatures, CPU (s)", [f"{systems[k]['cpu']['signatures']:.2f}" for k in names],
             ratios(lambda r: r["cpu"]["signatures"], ".0f")),
        line("docs/s end to end", [f"{n / total(systems[k]):,.0f}" for k in names]),
        line("peak RSS (MB)", [f"{systems[k]['peak_rss_mb']:.0f}" for k in names])]
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
        table.append(line(label, [f"{scores[k][key]:.4f}" for k in names]))
    table.append(line("documents removed", [f"{scores[k]['removed']:,}" for k in names]))
    return _table(table) + "\n\n" + json.dumps(scores, indent=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--datatrove-python", default=str(PEER_PYTHON) if PEER_PYTHON.exists()
                    else sys.executable)
    ap.add_argument("--keep", type=Path, help="keep the set and outputs in this directory")
    ap.add_argument("--repeats", type=int, default=3,
                    help="runs of each system, alternating (default 3)")
    ap.add_argument("--systems", nargs="+", choices=list(WORKERS),
                    help="workers to run (default all but the floor; `stage datatrove-tuned` "
                         "leaves out the 3-minute default peer; `floor` adds run_floor's "
                         "lower bound); the stage is always run, first")
    ap.add_argument("--worker", choices=list(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        result = WORKERS[a.worker](a.input, a.work)
        (a.work / "result.json").write_text(json.dumps(result))
        return

    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(HERE))
    from neardup_set import generate
    from neardup_truth import exact_pairs

    from stages.dedup.minhash_core import MinHashSpec

    tmp = None if a.keep else tempfile.TemporaryDirectory(prefix="bench-minhash-")
    root = a.keep or Path(tmp.name)
    root.mkdir(parents=True, exist_ok=True)
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
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

    pythons = {"thresher stage": (sys.executable, "stage"),
               "thresher core": (sys.executable, "thresher"),
               "datatrove": (a.datatrove_python, "datatrove"),
               "datatrove tuned": (a.datatrove_python, "datatrove-tuned"),
               "floor": (sys.executable, "floor")}
    systems = a.systems if a.systems is not None else [w for w in WORKERS if w != "floor"]
    pythons = {k: v for k, v in pythons.items() if v[1] in {"stage", *systems}}
    runs: dict[str, list[dict]] = {k: [] for k in pythons}
    order = list(pythons)
    for rep in range(a.repeats):
        for name in order[rep % len(order):] + order[:rep % len(order)]:
            python, which = pythons[name]
            r = _run_worker(python, which, docs, root / f"{which}-{rep}")
            first = runs[name][0] if runs[name] else r
            assert (r["labels"], r["removed"]) == (first["labels"], first["removed"]), \
                f"{name}: repetition {rep} gave other clusters than the first"
            assert which != "floor" or r["signatures"] == len(rows), r
            runs[name].append(r)
            print(f"rep {rep} {name}: {sum(r['wall'].values()):.2f} s"
                  + (f" ({r['hash']} hashing, {r['python']})" if "hash" in r else ""),
                  flush=True)

    def total(r: dict) -> float:
        return sum(r["wall"].values())

    median = {k: sorted(v, key=total)[len(v) // 2] for k, v in runs.items()}
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    whole = {k: sorted(r["process_wall"] for r in v) for k, v in runs.items()}
    for k, v in runs.items():
        ts = [total(r) for r in v]
        print(f"{k}: end to end {', '.join(f'{t:.2f}' for t in ts)} s; median "
              f"{total(median[k]):.2f} s, spread {min(ts):.2f}-{max(ts):.2f}; whole process "
              f"{', '.join(format(r['process_wall'], '.2f') for r in v)} s; median "
              f"{whole[k][len(v) // 2]:.2f} s, spread {whole[k][0]:.2f}-{whole[k][-1]:.2f}")
    ours = next(iter(runs))
    for k in list(runs)[1:]:
        print(f"whole process, median {k} / median {ours}: "
              f"{whole[k][len(whole[k]) // 2] / whole[ours][len(whole[ours]) // 2]:.2f}x")
    # runs of one repetition are minutes apart at most, so their ratio is less exposed to a
    # machine that slows down or speeds up over the benchmark than the ratio of medians
    for k in list(runs)[1:]:
        paired = [p["process_wall"] / o["process_wall"] for p, o in zip(runs[k], runs[ours])]
        print(f"whole process, {k} / {ours} repetition by repetition: "
              f"{', '.join(f'{r:.2f}' for r in paired)}x; median "
              f"{sorted(paired)[len(paired) // 2]:.2f}x")
    if "floor" in runs and "datatrove tuned" in runs:  # the lower bound against 10x
        budget = [p["process_wall"] / 10 for p in runs["datatrove tuned"]]
        floor = [f["process_wall"] for f in runs["floor"]]
        head = [p / f for p, f in zip(budget, floor)]
        print(f"floor (imports and signatures alone): whole process "
              f"{', '.join(f'{f:.2f}' for f in floor)} s; a tenth of the tuned peer's whole "
              f"process in the same repetition {', '.join(f'{b:.2f}' for b in budget)} s: "
              f"what is left for everything else "
              f"{', '.join(f'{b - f:+.2f}' for b, f in zip(budget, floor))} s; the tuned peer "
              f"is {', '.join(f'{10 * h:.1f}' for h in head)}x the floor (median "
              f"{10 * sorted(head)[len(head) // 2]:.1f}x)")
    print()
    print(report(truth, rows, {k: v for k, v in median.items() if k != "floor"}))
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
