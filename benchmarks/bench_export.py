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
"""

from __future__ import annotations

import argparse
import json
import lzma
import shutil
import subprocess
import sys
import time
from pathlib import Path

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=200_000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--doc-lines", type=int, default=3, help="WikiText lines per document")
    ap.add_argument("--max-chars", type=int, help="cut each document to this many characters")
    ap.add_argument("--workers", type=int, default=2)
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
    rows = []
    thresher = [str(Path(sys.executable).with_name("thresher")), "export", str(work / "run"),
                "--tokenizer", str(tok), "--format", "nanotron", "--shuffle-seed", "0",
                "-w", str(a.workers), "-o", str(work / "thresher")]
    if not a.skip_thresher:
        shutil.rmtree(work / "thresher", ignore_errors=True)
        secs, rss, tree = timed(thresher)
        tokens = json.loads((work / "thresher" / "export.json").read_text())["tokens"]
        rows.append(("thresher export (global shuffle)", secs, rss, tree, tokens))
    if not a.skip_datatrove:
        shutil.rmtree(work / "datatrove", ignore_errors=True)
        secs, rss, tree = timed([sys.executable, "-c", DATATROVE, str(work / "run"), str(tok),
                           str(work / "datatrove"), str(a.workers)])
        dt_tokens = sum(f.stat().st_size for f in (work / "datatrove" / "merged").glob(
            "*.ds")) // 2
        rows.append(("datatrove DocumentTokenizer + Merger", secs, rss, tree, dt_tokens))
    print(f"{a.docs:,} documents, {a.shards} shards, {a.workers} workers, --doc-lines "
          f"{a.doc_lines}, --max-chars {a.max_chars}")
    print(f"{'tool':38} {'s':>7} {'tokens':>12} {'tok/s/core':>11} {'RSS MiB: max':>12} "
          f"{'tree':>6}")
    for name, s, r, tr, t in rows:
        print(f"{name:38} {s:7.1f} {t:12,} {t / s / a.workers:11,.0f} {r:12.0f} {tr:6.0f}")


if __name__ == "__main__":
    main()
