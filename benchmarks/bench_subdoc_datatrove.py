"""thresher's sentence_span_dedup vs datatrove's sentence dedup (SentenceDedupSignature /
SentenceFindDedups / SentenceDedupFilter) at equal output, on bench_subdoc.py's input.

    .venv/bin/python benchmarks/bench_subdoc_datatrove.py --docs 100000 --repeats 3

Builds the input once (bench_subdoc.build: WikiText sentences, planted footers, quotes and
templates; ``--shards`` JSONL files, document i in file i % shards at line i // shards,
id ``d<i>``), then runs the two sides alternately (thresher first in odd repeats,
datatrove first in even ones), each in a fresh process, ``--repeats`` times, and prints
per side the median and range of the pipeline time, the process wall time, the peak RSS
of the largest process (VmHWM of every process below the child, probed every 0.25 s, or
the child's getrusage, whichever is larger) and the largest sum of RSS over all of them.

Equal output. datatrove is configured, through its documented options, to decide what
thresher decides:
- sentences: its English default splits with spaCy's sentencizer; here its steps get a
  word tokenizer object (datatrove's ``WordTokenizer`` interface: ``sent_tokenize`` /
  ``span_tokenize``) that cuts sentences by thresher's rule
  (``stages/dedup/subdoc_core.sentence_spans``, docs/subdoc_dedup.md), so both sides see
  the same sentences; this is also datatrove's fastest setup (no spaCy);
- comparison: ``TextNormConfig`` with only whitespace normalisation on (its default
  also lowercases, drops punctuation and digits), as thresher compares sentences;
- which copy is kept: datatrove keeps the first by (line within its file, file), thresher
  by (document id, position); the ids make the two orders the same;
- ``min_doc_words=0`` and ``min_num_sentences=0``: like thresher, it only cuts sentences;
- speed options that leave the text unchanged: ``finder_workers`` = workers (the find
  step split by hash range, one task per worker), ``--workers`` processes for the other
  steps, output JSONL without compression.
After every run the script checks, document by document, that both sides removed the
same non-space characters and left the same text up to whitespace (the joining rules
differ: thresher keeps the separator before a removed run of sentences, datatrove the
one after it), and that repeats of a side give identical output; it prints every kind
of mismatch with the first few document ids.

``--floor`` adds a third child to the rotation (in datatrove's venv, for orjson): on the
same worker count it only reads the input and splits the sentences (the rule text by
text, and thresher's Arrow batch path; once more writing the documents back as JSONL),
nothing hashed, found or written otherwise; datatrove's median over that floor bounds the
ratio any implementation of the rule could reach on this input.

``--datatrove-splitter spacy`` leaves datatrove's English default splitter (spaCy's
sentencizer, the slow part of its default configuration) and runs thresher with
``splitter: spacy_compat`` (the same cuts, stages/text/sentences.py): equal output with
datatrove's default sentences. ``--datatrove-norm default`` also leaves datatrove's
default normalisation (lowercase, no punctuation or digits): its default configuration,
not equal output, for reference.
The same file is the child process of each side (``--side thresher|datatrove``, the
latter in datatrove's venv benchmarks/.venv-datatrove, which ``make bench`` builds).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DT_PYTHON = HERE / ".venv-datatrove" / "bin" / "python"


class RuleSentences:
    """thresher's sentence rule behind datatrove's word-tokenizer interface (duck-typed, so
    this module imports in both venvs; forkserver children import it by name)."""

    def __init__(self):
        self._spans = None

    def _split(self, text: str) -> list[tuple[int, int]]:
        if self._spans is None:
            sys.path.insert(0, str(REPO))
            from stages.dedup.subdoc_core import sentence_spans

            self._spans = sentence_spans
        return self._spans(text)

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self._spans = None

    def sent_tokenize(self, text: str) -> list[str]:
        return [text[a:b] for a, b in self._split(text)]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return self._split(text)

    def word_tokenize(self, text: str) -> list[str]:  # unused: min_doc_words is 0
        return text.split()


def peak_rss_mb() -> float:
    return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024


# ----------------------------------------------------------------------------- children

def side_thresher(a: argparse.Namespace) -> dict:
    sys.path.insert(0, str(REPO))
    from pipelines import config_from_dict, run_pipeline

    root = Path(a.dir)
    cfg = config_from_dict({
        "name": "bench-subdoc-dt",
        "input": {"format": "jsonl", "paths": [str(root / "in" / "*.jsonl")], "id_key": "id"},
        "output": {"path": str(root / a.out)},
        "executor": {"kind": "local", "workers": a.workers},
        "stages": [{"stage": "sentence_span_dedup", "sentences": 3,
                    "partitions": a.partitions,
                    "splitter": "spacy_compat" if a.datatrove_splitter == "spacy" else "rule"}],
    })
    t = time.perf_counter()
    run = run_pipeline(cfg, overwrite=True)
    seconds = time.perf_counter() - t
    st = json.loads(run.stats_json.read_text())
    return {"seconds": round(seconds, 2), "max_rss_mb": peak_rss_mb(),
            "worker_rss_mb": max(p["max_rss_mb"] for p in st["phases"].values()),
            "phases": {k: round(v["elapsed_s"], 2) for k, v in st["phases"].items()}}


def _datatrove_steps(a: argparse.Namespace, rule_splitter: bool) -> dict[str, tuple]:
    """datatrove's sentence dedup as both the comparison and the breakdown run it: name ->
    (pipeline, tasks) of its three steps. 3-sentence spans, no minimum document size;
    sentences compared by whitespace only (thresher's comparison) unless
    ``--datatrove-norm default``; ``rule_splitter``: thresher's rule as its splitter."""
    from datatrove.pipeline.dedup.sentence_dedup import (
        SentDedupConfig,
        SentenceDedupFilter,
        SentenceDedupSignature,
        SentenceFindDedups,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.text import TextNormConfig

    root = Path(a.dir)
    base = root / a.out
    if a.datatrove_norm == "default":  # datatrove's normalisation (not equal output)
        cfg = SentDedupConfig(n_sentences=3, min_doc_words=0, min_num_sentences=0)
    else:
        cfg = SentDedupConfig(n_sentences=3, min_doc_words=0, min_num_sentences=0,
                              norm_config=TextNormConfig(
                                  lowercase=False, norm_whitespace=True,
                                  remove_punctuation=False, norm_unicode_diacritics=False,
                                  norm_numbers=False))

    def reader():
        return JsonlReader(str(root / "in"), glob_pattern="*.jsonl", id_key="id")

    sig = SentenceDedupSignature(str(base / "sigs"), finder_workers=a.workers, config=cfg)
    filt = SentenceDedupFilter(str(base / "dups"), config=cfg)
    if rule_splitter:
        from bench_subdoc_datatrove import RuleSentences as Rule  # importable by name

        sig.tokenizer, filt.tokenizer = Rule(), Rule()
    return {
        "signatures": ([reader(), sig], a.shards),
        "find": ([SentenceFindDedups(str(base / "sigs"), str(base / "dups"), config=cfg)],
                 a.workers),
        "filter": ([reader(), filt, JsonlWriter(str(base / "out"), compression=None)],
                   a.shards),
    }


def side_datatrove(a: argparse.Namespace) -> dict:
    from datatrove.executor.local import LocalPipelineExecutor

    base = Path(a.dir) / a.out
    steps = _datatrove_steps(a, a.datatrove_splitter == "thresher")
    times = {}
    t0 = time.perf_counter()
    for name, (pipeline, tasks) in steps.items():
        t = time.perf_counter()
        LocalPipelineExecutor(pipeline, tasks=tasks, workers=a.workers,
                              logging_dir=str(base / name),
                              skip_completed=False).run()
        times[name] = round(time.perf_counter() - t, 2)
    return {"seconds": round(time.perf_counter() - t0, 2), "max_rss_mb": peak_rss_mb(),
            "phases": times}


def _floor_file(job: tuple[str, str]) -> tuple[int, float]:
    """One input file: read it (orjson, one object a line), then split every text by the
    rule: ``rule`` text by text (the splitter datatrove is given), ``batch`` by Arrow 256
    texts at a time (thresher's collect), ``none`` not at all; ``batch_write`` also writes
    the documents out again (JSONL, uncompressed: the cheapest output). Returns (sentences
    found, CPU seconds); modules are imported before the clock starts."""
    path, split = job
    sys.path.insert(0, str(REPO))
    import orjson
    import pyarrow as pa

    from stages.dedup.subdoc_core import sentence_spans, sentence_strings

    cpu = time.process_time()
    with open(path, "rb") as fh:
        texts = [orjson.loads(line)["text"] for line in fh]
    n = 0
    if split == "rule":
        n = sum(len(sentence_spans(t)) for t in texts)
    elif split.startswith("batch"):
        n = sum(len(sentence_strings(pa.array(texts[i:i + 256], pa.string()))[1])
                for i in range(0, len(texts), 256))
    if split == "batch_write":
        with open(f"{path}.floor-out", "wb") as fh:
            fh.writelines(orjson.dumps({"text": t}) + b"\n" for t in texts)
    return n, time.process_time() - cpu


def side_floor(a: argparse.Namespace) -> dict:
    """What any implementation must at least do on this input, on ``--workers`` processes:
    read the JSONL (no output written, nothing hashed), and split the sentences. Wall time
    of each map over the input files, the pool started before the clock."""
    import multiprocessing

    files = [str(p) for p in sorted((Path(a.dir) / "in").glob("*.jsonl"))]
    out, sentences = {}, {}
    sys.path.insert(0, str(REPO))
    import pyarrow  # noqa: F401  (imported once, before the workers fork)

    import stages.dedup.subdoc_core  # noqa: F401

    with multiprocessing.get_context("fork").Pool(a.workers) as pool:
        pool.map(abs, range(a.workers))  # the workers are up
        for split in ("none", "rule", "batch", "batch_write"):
            t = time.perf_counter()
            res = pool.map(_floor_file, [(f, split) for f in files], chunksize=1)
            out[f"read_split_{split}"] = round(time.perf_counter() - t, 2)
            out[f"read_split_{split}_cpu"] = round(sum(c for _, c in res), 2)
            sentences[split] = sum(n for n, _ in res)
    for f in files:
        Path(f"{f}.floor-out").unlink(missing_ok=True)
    assert sentences["rule"] == sentences["batch"] == sentences["batch_write"], sentences
    return {"seconds": out["read_split_rule"], "max_rss_mb": peak_rss_mb(), "phases": out,
            "sentences": sentences["rule"]}


def _cpu_meter(acc: dict, obj, name: str, label: str) -> None:
    """Wrap ``obj.name`` so the CPU seconds spent in it add up under ``label``."""
    import functools

    f = getattr(obj, name)

    @functools.wraps(f)
    def timed(*args, **kwargs):
        t = time.process_time()
        try:
            return f(*args, **kwargs)
        finally:
            acc[label] = acc.get(label, 0.0) + time.process_time() - t

    setattr(obj, name, timed)


def side_thresher_breakdown(a: argparse.Namespace) -> dict:
    """thresher's run in this one process (workers: 1), CPU seconds per part."""
    sys.path.insert(0, str(REPO))
    import pyarrow.parquet as pq

    from pipelines import config_from_dict, run_pipeline
    from stages.dedup import subdoc
    from stages.dedup import subdoc_core as core

    acc: dict[str, float] = {}
    for obj, name, label in (
            (core, "sentence_strings", "collect: split + normalise sentences (Arrow)"),
            (core, "string_hashes", "collect: hash sentences (BLAKE2b)"),
            (core, "window_hashes", "collect: window hashes"),
            (subdoc.SubdocDedup, "_spill", "collect: partition + write window files"),
            (subdoc.SubdocDedup, "collect", "collect: all"),
            (subdoc.SubdocDedup, "end_collect", "collect: end (members file)"),
            (subdoc.SubdocDedup, "_find", "find step"),
            (subdoc.SubdocDedup, "_spans", "spans step"),
            (subdoc.SubdocDedup, "apply", "apply: the stage (changed documents)"),
            (pq.ParquetWriter, "write_table", "Parquet writes (documents, window files)")):
        _cpu_meter(acc, obj, name, label)
    root = Path(a.dir)
    cfg = config_from_dict({
        "name": "bench-subdoc-breakdown",
        "input": {"format": "jsonl", "paths": [str(root / "in" / "*.jsonl")], "id_key": "id"},
        "output": {"path": str(root / a.out)}, "executor": {"kind": "local", "workers": 1},
        "stages": [{"stage": "sentence_span_dedup", "sentences": 3,
                    "partitions": a.partitions}]})
    cpu, t = time.process_time(), time.perf_counter()
    run = run_pipeline(cfg, overwrite=True)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - t
    st = json.loads(run.stats_json.read_text())["stages"]
    acc.update({"stats: read (JSONL)": st["read"]["cpu_s"],
                "stats: write (output Parquet)": st["write"]["cpu_s"]})
    return {"run_wall_s": round(wall, 2), "run_cpu_s": round(cpu, 2),
            "max_rss_mb": peak_rss_mb(),
            "parts": {k: round(v, 2) for k, v in sorted(acc.items())}}


def side_datatrove_breakdown(a: argparse.Namespace) -> dict:
    """datatrove's three steps in this one process (workers=1, thresher's rule as its
    splitter), CPU seconds per step and part. Metering ~1M simplify_text calls costs some
    CPU itself (two clock reads a call)."""
    import datatrove.pipeline.dedup.sentence_dedup as sd
    from bench_subdoc_datatrove import RuleSentences as Rule
    from datatrove.executor.local import LocalPipelineExecutor

    acc: dict[str, float] = {}
    for obj, name, label in (
            (Rule, "_split", "signatures+filter: split sentences (the rule, per text)"),
            (sd, "simplify_text", "signatures: normalise sentences (simplify_text)"),
            (sd.SentenceDedupSignature, "get_hashes", "signatures: get_hashes (split, "
                                                      "normalise, xxhash)"),
            (sd.SentenceDedupSignature, "save_hashes", "signatures: sort + write"),
            (sd.SentenceDedupFilter, "remove_dup_sentences", "filter: cut (changed docs)")):
        _cpu_meter(acc, obj, name, label)
    base = Path(a.dir) / a.out
    steps = _datatrove_steps(a, rule_splitter=True)
    cpu0, t = time.process_time(), time.perf_counter()
    for name, (pipeline, tasks) in steps.items():
        cpu = time.process_time()
        LocalPipelineExecutor(pipeline, tasks=tasks, workers=1, logging_dir=str(base / name),
                              skip_completed=False).run()
        acc[f"step {name}: all"] = time.process_time() - cpu
    return {"run_wall_s": round(time.perf_counter() - t, 2),
            "run_cpu_s": round(time.process_time() - cpu0, 2), "max_rss_mb": peak_rss_mb(),
            "parts": {k: round(v, 2) for k, v in sorted(acc.items())}}


# ----------------------------------------------------------------------------- driver

def fingerprint(texts) -> tuple[dict, dict]:
    """id -> (non-space characters, 8-byte hash of the text with whitespace collapsed)."""
    nonspace, digest = {}, {}
    for i, t in texts:
        parts = t.split()
        nonspace[i] = sum(map(len, parts))
        digest[i] = hashlib.blake2b(" ".join(parts).encode(), digest_size=8).digest()
    return nonspace, digest


def read_input(root: Path):
    for p in sorted((root / "in").glob("*.jsonl")):
        with open(p) as fh:
            for line in fh:
                d = json.loads(line)
                yield d["id"], d["text"]


def read_thresher(out: Path):
    import pyarrow.parquet as pq

    for p in sorted((out / "data").glob("*.parquet")):
        t = pq.read_table(p, columns=["id", "text"])
        yield from zip(t.column("id").to_pylist(), t.column("text").to_pylist())


def read_datatrove(out: Path):
    for p in sorted((out / "out").glob("*.jsonl*")):
        with open(p) as fh:
            for line in fh:
                d = json.loads(line)
                yield d["id"], d["text"]


def compare(inp: tuple[dict, dict], a: tuple[dict, dict], b: tuple[dict, dict],
            names=("thresher", "datatrove"), show: int = 5) -> dict:
    """Per document: non-space characters removed by each side, text up to whitespace."""
    in_ns, _ = inp
    (a_ns, a_h), (b_ns, b_h) = a, b
    only = sorted(set(a_ns) ^ set(b_ns))
    removed_diff, text_diff = [], []
    for i in sorted(set(a_ns) & set(b_ns)):
        if a_ns[i] != b_ns[i]:
            removed_diff.append(i)
        elif a_h[i] != b_h[i]:
            text_diff.append(i)
    res = {"docs_compared": len(set(a_ns) & set(b_ns)), "in_one_side_only": len(only),
           "removed_nonspace_differs": len(removed_diff),
           "text_differs_beyond_whitespace": len(text_diff),
           "removed_nonspace": {names[0]: sum(in_ns[i] - v for i, v in a_ns.items()),
                                names[1]: sum(in_ns[i] - v for i, v in b_ns.items())},
           "docs_changed": {names[0]: sum(in_ns[i] != v for i, v in a_ns.items()),
                            names[1]: sum(in_ns[i] != v for i, v in b_ns.items())}}
    for label, ids in (("in one side only", only), ("removed differs", removed_diff),
                       ("text differs", text_diff)):
        for i in ids[:show]:
            print(f"  MISMATCH {label}: {i}: removed non-space {names[0]} "
                  f"{in_ns[i] - a_ns[i] if i in a_ns else 'dropped'}, {names[1]} "
                  f"{in_ns[i] - b_ns[i] if i in b_ns else 'dropped'}")
    return res


def child(side: str, a: argparse.Namespace, out: str) -> dict:
    py = sys.executable if side.startswith("thresher") else str(DT_PYTHON)  # floor: orjson
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(REPO)])}
    cmd = [py, str(HERE / "bench_subdoc_datatrove.py"), "--side", side, "--dir", a.dir,
           "--out", out, "--workers", str(a.workers), "--shards", str(a.shards),
           "--partitions", str(a.partitions), "--datatrove-splitter", a.datatrove_splitter,
           "--datatrove-norm", a.datatrove_norm]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    with open(Path(a.dir) / f"{side}.stdout", "w+") as so, \
            open(Path(a.dir) / f"{side}.stderr", "w+") as se:
        p = subprocess.Popen(cmd, env=env, stdout=so, stderr=se)
        largest = tree = 0.0
        while p.poll() is None:  # the same probe for both sides: every process below
            hwm, rss = tree_rss_mb(p.pid)
            largest, tree = max(largest, max(hwm, default=0)), max(tree, sum(rss))
            time.sleep(0.25)
        wall = time.perf_counter() - t
        reap_orphans()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        so.seek(0)
        se.seek(0)
        out, err = so.read(), se.read()
    if p.returncode:
        sys.stderr.write(err[-4000:])
        raise SystemExit(f"{side} failed ({p.returncode})")
    r = json.loads(out.strip().splitlines()[-1])
    # largest process: the peak (VmHWM) of each process seen by the probe, or the child's
    # own getrusage (itself and the children it reaped), whichever is larger
    r.update(process_s=round(wall, 2),
             cpu_s=round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
                         2),
             largest_process_mb=round(max(largest, r.pop("max_rss_mb"),
                                          r.pop("worker_rss_mb", 0))),
             all_processes_mb=round(tree))
    return r


def become_subreaper() -> bool:
    """Make the processes a child leaves behind (a forkserver outliving it) this process's
    children when orphaned, so that reaping them counts their CPU in RUSAGE_CHILDREN: a run's
    CPU seconds are then those of every process it started (Linux PR_SET_CHILD_SUBREAPER)."""
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def reap_orphans(timeout: float = 60) -> None:
    """Wait for every remaining descendant (reparented here) to exit."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.05)


def tree_rss_mb(root: int) -> tuple[list[float], list[float]]:
    """Peak (VmHWM) and current (VmRSS) resident MB of ``root`` and every process below it
    (from /proc)."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    pids, todo = {root}, [root]
    while todo:
        x = todo.pop()
        for c, pp in parent.items():
            if pp == x and c not in pids:
                pids.add(c)
                todo.append(c)
    hwm, rss = [], []
    for pid in pids:
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmHWM:"):
                    hwm.append(int(line.split()[1]) / 1024)
                elif line.startswith("VmRSS:"):
                    rss.append(int(line.split()[1]) / 1024)
        except OSError:
            pass
    return hwm, rss


def summary(xs: list[float]) -> str:
    return (f"median {statistics.median(xs):.1f} (min {min(xs):.1f}, max {max(xs):.1f}, "
            f"n={len(xs)})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--partitions", type=int, default=16, help="thresher's find tasks")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", help="work directory (default: a temporary one)")
    ap.add_argument("--datatrove-splitter", choices=["thresher", "spacy"], default="thresher",
                    help="thresher: both sides cut sentences by thresher's rule; spacy: "
                         "datatrove keeps its English default (spaCy's sentencizer) and "
                         "thresher runs splitter: spacy_compat")
    ap.add_argument("--datatrove-norm", choices=["whitespace", "default"],
                    default="whitespace", help="datatrove's TextNormConfig: whitespace only "
                    "(as thresher compares sentences) or its default (not equal output)")
    ap.add_argument("--floor", action="store_true",
                    help="also time, in each repeat, reading the input and splitting its "
                         "sentences (the rule per text, and by Arrow per batch) with nothing "
                         "else: the least any implementation does (datatrove's venv: orjson)")
    ap.add_argument("--breakdown", action="store_true",
                    help="instead of the comparison: each side once in one process "
                         "(workers 1), its CPU seconds per part (reading, splitting, "
                         "hashing, find, apply, writing)")
    ap.add_argument("--side", choices=["thresher", "datatrove", "floor", "thresher-breakdown",
                                       "datatrove-breakdown"],
                    help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.side:  # a child: run one side, print one JSON line
        fn = {"thresher": side_thresher, "datatrove": side_datatrove, "floor": side_floor,
              "thresher-breakdown": side_thresher_breakdown,
              "datatrove-breakdown": side_datatrove_breakdown}[a.side]
        print(json.dumps(fn(a)))
        return
    if not DT_PYTHON.exists():
        raise SystemExit("no benchmarks/.venv-datatrove: `make bench` builds it")
    if not become_subreaper():
        print("warning: no PR_SET_CHILD_SUBREAPER: CPU seconds may miss orphaned processes")
    import tempfile

    sys.path.insert(0, str(HERE))
    from bench_subdoc import build

    tmp = tempfile.TemporaryDirectory() if not a.dir else None
    a.dir = a.dir or tmp.name
    root = Path(a.dir)
    (root / "in").mkdir(parents=True, exist_ok=True)
    for p in (root / "in").glob("*.jsonl"):
        p.unlink()
    t = time.perf_counter()
    build(root / "in", a.docs, a.shards)
    print(f"built {a.docs:,} documents in {a.shards} files ({time.perf_counter() - t:.0f} s); "
          f"{os.cpu_count()} CPUs; load {os.getloadavg()}", flush=True)
    if a.breakdown:
        for side in ("thresher-breakdown", "datatrove-breakdown"):
            res = child(side, a, f"{side}-out")
            print(f"{side} (load after {os.getloadavg()[0]:.1f}): the run {res['run_wall_s']} s "
                  f"wall, {res['run_cpu_s']} s CPU; the process {res['process_s']} s wall, "
                  f"{res['cpu_s']} s CPU (with start-up); CPU s by part:")
            for k, v in res["parts"].items():
                print(f"  {k:60s} {v:7.2f}")
        return
    inp = fingerprint(read_input(root))
    chars_in = sum(len(t) for _, t in read_input(root))
    runs: dict[str, list[dict]] = {"thresher": [], "datatrove": []}
    first: dict[str, tuple] = {}
    for r in range(a.repeats):
        order = ["thresher", "floor", "datatrove"] if a.floor else ["thresher", "datatrove"]
        for side in order if r % 2 == 0 else order[::-1]:
            out = f"{side}-out"
            res = child(side, a, out)
            res["load"] = os.getloadavg()[0]
            if side == "floor":
                runs.setdefault(side, []).append(res)
                print(f"repeat {r + 1} {side}: {json.dumps(res)}", flush=True)
                continue
            reader = read_thresher if side == "thresher" else read_datatrove
            fp = fingerprint(reader(root / out))
            res["chars_out"] = sum(len(t) for _, t in reader(root / out))
            if side in first:
                res["same_as_first_repeat"] = fp == first[side]
            else:
                first[side] = fp
            runs[side].append(res)
            print(f"repeat {r + 1} {side}: {json.dumps(res)}", flush=True)
    print("\nper document, thresher vs datatrove:")
    cmp = compare(inp, first["thresher"], first["datatrove"])
    print(json.dumps(cmp))
    print(f"\n{a.docs:,} documents, {a.workers} workers, {a.shards} input files, "
          f"sentences: {a.datatrove_splitter}, datatrove normalisation: {a.datatrove_norm}; "
          f"characters in {chars_in:,}")
    med = {}
    for side, rs in runs.items():
        if side == "floor":
            continue
        secs = [x["seconds"] for x in rs]
        med[side] = statistics.median(secs)
        print(f"{side}: pipeline s {summary(secs)}; process s "
              f"{summary([x['process_s'] for x in rs])}; CPU s (all processes) "
              f"{summary([x['cpu_s'] for x in rs])}; largest process RSS MB "
              f"{summary([x['largest_process_mb'] for x in rs])}; all processes RSS MB "
              f"{summary([x['all_processes_mb'] for x in rs])}; chars out {rs[0]['chars_out']:,}; "
              f"identical across repeats: "
              f"{all(x.get('same_as_first_repeat', True) for x in rs)}")
        print("  steps (median s): " + ", ".join(
            f"{k} {statistics.median(x['phases'][k] for x in rs):.1f}" for k in rs[0]["phases"]))
    for name, x in ((k, [r["phases"][k] for r in runs.get("floor", [])])
                    for k in ("read_split_none", "read_split_rule", "read_split_batch",
                              "read_split_batch_write")):
        if x:
            print(f"floor {name}: s {summary(x)}; datatrove median / this median: "
                  f"{med['datatrove'] / statistics.median(x):.2f}x")
    equal = (cmp["in_one_side_only"] == cmp["removed_nonspace_differs"]
             == cmp["text_differs_beyond_whitespace"] == 0)
    cpu = {k: statistics.median(x["cpu_s"] for x in runs[k]) for k in ("thresher", "datatrove")}
    print(f"datatrove / thresher (median CPU s of all processes): "
          f"{cpu['datatrove'] / cpu['thresher']:.2f}x")
    print(f"datatrove / thresher (median pipeline s): {med['datatrove'] / med['thresher']:.2f}x; "
          f"equal output: {equal}; load after: {os.getloadavg()}")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
