"""Tokenise-and-shuffle throughput and peak RSS: `thresher export` beside datatrove's
`DocumentTokenizer` + `DocumentTokenizerMerger`, on the same documents and tokenizer.

    .venv/bin/python benchmarks/bench_export.py --docs 200000 --workers 2

Documents: WikiText-2 (bundled) lines joined three at a time, cycled to --docs, written as
a finished thresher run (Parquet shards + stats.json). Tokenizer: a byte-level BPE
(vocabulary 8,000) trained here on WikiText-2 valid. Both tools write nanotron `.ds`
files with EOS and a seeded shuffle (thresher: global, keyed by document id; datatrove:
within each task's file, then the merger interleaves files). Each tool runs in its own
process; peak RSS is the largest resident set of any one of its processes
(RUSAGE_CHILDREN).
"""

from __future__ import annotations

import argparse
import json
import lzma
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "quality"


def lines(name: str) -> list[str]:
    with lzma.open(DATA / name, "rt", encoding="utf-8") as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.strip().startswith("=")]


def make_run(root: Path, n_docs: int, n_shards: int) -> None:
    src = lines("wikitext-2-train.txt.xz") if (DATA / "wikitext-2-train.txt.xz").exists() \
        else lines("wikitext-2-test.txt.xz") + lines("wikitext-2-valid.txt.xz")
    texts = [" ".join(src[i:i + 3]) for i in range(0, len(src) - 3, 3)]
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


def train_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(lines("wikitext-2-valid.txt.xz"), trainers.BpeTrainer(
        vocab_size=8000, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(str(path))


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


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of the largest process of ``cmd``, run in a fresh
    wrapper so that earlier runs do not count."""
    wrapper = ("import resource,subprocess,sys,time;t=time.perf_counter();"
               "subprocess.run(sys.argv[1:],check=True,stdout=subprocess.DEVNULL);"
               "print(time.perf_counter()-t,"
               "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024)")
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=200_000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work", default=str(REPO / "benchmarks" / ".export-bench"))
    ap.add_argument("--skip-datatrove", action="store_true")
    a = ap.parse_args()
    work = Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    make_run(work / "run", a.docs, a.shards)
    tok = work / "tokenizer.json"
    train_tokenizer(tok)
    thresher = [str(Path(sys.executable).with_name("thresher")), "export", str(work / "run"),
                "--tokenizer", str(tok), "--format", "nanotron", "--shuffle-seed", "0",
                "-w", str(a.workers), "-o", str(work / "thresher")]
    secs, rss = timed(thresher)
    tokens = json.loads((work / "thresher" / "export.json").read_text())["tokens"]
    rows = [("thresher export (global shuffle)", secs, rss, tokens)]
    if not a.skip_datatrove:
        secs, rss = timed([sys.executable, "-c", DATATROVE, str(work / "run"), str(tok),
                           str(work / "datatrove"), str(a.workers)])
        dt_tokens = sum(f.stat().st_size for f in (work / "datatrove" / "merged").glob(
            "*.ds")) // 2
        rows.append(("datatrove DocumentTokenizer + Merger", secs, rss, dt_tokens))
    print(f"{a.docs:,} documents, {a.shards} shards, {a.workers} workers")
    print(f"{'tool':40} {'s':>8} {'tokens':>12} {'tok/s/core':>12} {'peak RSS MiB':>13}")
    for name, s, r, t in rows:
        print(f"{name:40} {s:8.1f} {t:12,} {t / s / a.workers:12,.0f} {r:13.0f}")


if __name__ == "__main__":
    main()
