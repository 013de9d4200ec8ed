"""Tokenise-and-shuffle throughput and peak RSS: `thresher export` beside datatrove's
`DocumentTokenizer` + `DocumentTokenizerMerger`, on the same documents and tokenizer.

    .venv/bin/python benchmarks/bench_export.py --docs 200000 --workers 2

Documents: WikiText-2 (bundled) lines joined --doc-lines at a time, cycled to --docs,
written as a finished thresher run (Parquet shards + stats.json). Tokenizer: the demo one
(stages/export/demo_tokenizer.py: byte-level BPE, vocabulary 8,000, WikiText-2). Both tools
write nanotron `.ds` files with EOS and a seeded shuffle (thresher: global, keyed by
document id; datatrove: documents shuffled within each task's file, then its merger draws
the next document from a randomly chosen file). Each tool runs in its own process tree;
peak RSS is sampled from /proc every 0.1 s: the largest single process and the whole tree.

The two tools run ``--repeats`` times (default 3), alternating, the order rotating each
repetition. Their outputs are checked, not just their token counts: the two orders differ
by design, so the check is on the multiset of documents (the token sequence of each
document, cut at the .ds.index boundaries), which must be the same for both tools and
every repetition; thresher's files must also be byte-identical from one repetition to the
next. The script prints every run, then each tool's median and range.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stages.export.demo_tokenizer import build  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "quality"


def lines(name: str) -> list[str]:
    with lzma.open(DATA / name, "rt", encoding="utf-8") as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.strip().startswith("=")]


def make_run(root: Path, n_docs: int, n_shards: int, doc_lines: int = 3,
             max_chars: int | None = None) -> None:
    src = lines("wikitext-2-test.txt.xz") + lines("wikitext-2-valid.txt.xz")
    texts = [" ".join(src[i:i + doc_lines])[:max_chars]
             for i in range(0, len(src) - doc_lines, doc_lines)]
    (root / "data").mkdir(parents=True)
    shards = []
    per = -(-n_docs // n_shards)
    for s in range(n_shards):
        ids = range(s * per, min(n_docs, (s + 1) * per))
        t = pa.table({"id": [f"doc-{i}" for i in ids],
                      "text": [texts[i % len(texts)] for i in ids]})
        rel = f"data/part-{s:05d}-0000.parquet"
        pq.write_table(t, root / rel)
        shards.append({"path": rel, "rows": t.num_rows})
    (root / "stats.json").write_text(json.dumps({"output": {"rows": n_docs,
                                                            "shards": shards}}))


DATATROVE = """
import sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.tokens import DocumentTokenizer, DocumentTokenizerMerger
run, tok, out, w = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
n = len(__import__("glob").glob(run + "/data/*.parquet"))
LocalPipelineExecutor([ParquetReader(run + "/data"),
    DocumentTokenizer(out + "/tok", tokenizer_name_or_path=tok, eos_token="<|endoftext|>",
                      seed=0, shuffle_documents=True)],
    tasks=n, workers=w, logging_dir=out + "/logs1").run()
LocalPipelineExecutor([DocumentTokenizerMerger(out + "/tok", out + "/merged", "merged",
                                               seed=0)],
    tasks=1, workers=1, logging_dir=out + "/logs2").run()
"""


def _tree(root: int) -> list[int]:
    """``root`` and its descendants, from /proc."""
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += [c for c, pp in parent.items() if pp == p]
    return out


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def timed(cmd: list[str]) -> tuple[float, float, float]:
    """Wall seconds, and peak RSS (MiB) of the largest process and of the whole process
    tree of ``cmd``, sampled from /proc every 0.1 s."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    one = tree = 0
    while proc.poll() is None:
        rss = [_rss_kib(p) for p in _tree(proc.pid)]
        one, tree = max(one, max(rss, default=0)), max(tree, sum(rss))
        time.sleep(0.1)
    if proc.returncode:
        raise SystemExit(f"{cmd[0]} exited {proc.returncode}")
    return time.perf_counter() - t, one / 1024, tree / 1024


def documents_digest(ds_files: list[Path]) -> tuple[int, int, str]:
    """(documents, tokens, digest of the sorted per-document digests) of nanotron .ds files:
    the same for any order of the same documents."""
    digests, tokens = [], 0
    for ds in ds_files:
        data = np.fromfile(ds, np.uint16)
        ends = np.fromfile(str(ds) + ".index", np.uint64).astype(np.int64)
        starts = np.concatenate(([0], ends[:-1]))
        raw = data.tobytes()
        digests += [hashlib.blake2b(raw[2 * a:2 * b], digest_size=16).digest()
                    for a, b in zip(starts.tolist(), ends.tolist())]
        tokens += len(data)
    return len(digests), tokens, hashlib.sha256(b"".join(sorted(digests))).hexdigest()


def files_digest(root: Path) -> str:
    """sha256 over the names and bytes of the token files under ``root``."""
    h = hashlib.sha256()
    for f in sorted(root.glob("*.ds*")):
        h.update(f.name.encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=200_000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--doc-lines", type=int, default=3, help="WikiText lines per document")
    ap.add_argument("--max-chars", type=int, help="cut each document to this many characters")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="runs of each tool, alternating")
    ap.add_argument("--work", default=str(REPO / "benchmarks" / ".export-bench"))
    ap.add_argument("--skip-datatrove", action="store_true")
    ap.add_argument("--skip-thresher", action="store_true")
    ap.add_argument("--reuse", action="store_true",
                    help="keep WORK/run and its tokenizer from an earlier call (same options)")
    a = ap.parse_args()
    work = Path(a.work)
    tok = work / "tokenizer.json"
    if not (a.reuse and (work / "run" / "stats.json").exists() and tok.exists()):
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        make_run(work / "run", a.docs, a.shards, a.doc_lines, a.max_chars)
        build(tok)
    tools = {}
    if not a.skip_thresher:
        tools["thresher export (global shuffle)"] = (
            [str(Path(sys.executable).with_name("thresher")), "export", str(work / "run"),
             "--tokenizer", str(tok), "--format", "nanotron", "--shuffle-seed", "0",
             "-w", str(a.workers), "-o", str(work / "thresher")],
            work / "thresher", work / "thresher")
    if not a.skip_datatrove:
        tools["datatrove DocumentTokenizer + Merger"] = (
            [sys.executable, "-c", DATATROVE, str(work / "run"), str(tok),
             str(work / "datatrove"), str(a.workers)],
            work / "datatrove", work / "datatrove" / "merged")
    print(f"{a.docs:,} documents, {a.shards} shards, {a.workers} workers, --doc-lines "
          f"{a.doc_lines}, --max-chars {a.max_chars}, {a.repeats} runs a tool, alternating; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in tools}
    documents: dict[str, tuple[int, int, str]] = {}
    thresher_bytes = None
    names = list(tools)
    for rep in range(a.repeats):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            cmd, out, ds_dir = tools[name]
            shutil.rmtree(out, ignore_errors=True)
            secs, rss, tree = timed(cmd)
            got = documents_digest(sorted(ds_dir.glob("*.ds")))
            if documents.setdefault(name, got) != got:
                raise SystemExit(f"{name}: run {rep + 1} wrote other documents than run 1")
            if name.startswith("thresher"):
                digest = files_digest(out)
                if thresher_bytes not in (None, digest):
                    raise SystemExit(f"{name}: run {rep + 1} wrote other bytes than run 1")
                thresher_bytes = digest
            runs[name].append((secs, rss, tree))
            print(f"  run {rep + 1} {name}: {secs:.1f} s, {got[1]:,} tokens, "
                  f"{got[1] / secs / a.workers:,.0f} tokens/s/core, peak RSS {rss:.0f} MiB "
                  f"(tree {tree:.0f}); load average {os.getloadavg()[0]:.2f}", flush=True)
    if len(set(documents.values())) > 1:
        raise SystemExit(f"DIFFERENT documents: {documents}")
    n_docs, n_tokens, _ = next(iter(documents.values()))
    print(f"same output: {n_docs:,} documents, {n_tokens:,} tokens, the same multiset of "
          "documents for " + " and ".join(names) +
          (f"; thresher's files byte-identical over {a.repeats} runs" if thresher_bytes else ""))
    print(f"{'tool':38} {'median s (range)':>22} {'tok/s/core':>11} {'RSS MiB: max':>12} "
          f"{'tree':>6}")
    med = {}
    for name in names:
        secs = [r[0] for r in runs[name]]
        med[name] = statistics.median(secs)
        print(f"{name:38} {med[name]:8.1f} ({min(secs):.1f}-{max(secs):.1f}) "
              f"{n_tokens / med[name] / a.workers:11,.0f} "
              f"{max(r[1] for r in runs[name]):12.0f} {max(r[2] for r in runs[name]):6.0f}")
    if len(names) == 2:
        print(f"datatrove / thresher, median wall: {med[names[1]] / med[names[0]]:.2f}x")


if __name__ == "__main__":
    main()
