"""datatrove's C4-style sentence dedup on bench_subdoc.py's input, run in datatrove's venv.

    benchmarks/.venv-datatrove/bin/python benchmarks/bench_subdoc_datatrove.py DIR WORKERS SHARDS

Reads DIR/in/*.jsonl, runs datatrove's three steps with its local executor
(signatures and filter: one task per file; finding duplicates: one task, as its
examples run it), 3-sentence spans, min_doc_words and min_num_sentences 0 so that,
like thresher's sentence_span_dedup, it only cuts sentences; prints one JSON line:
seconds per step, documents and characters out, peak RSS of the largest process.
"""

from __future__ import annotations

import gzip
import json
import resource
import sys
import time
from pathlib import Path

from datatrove.executor.local import LocalPipelineExecutor
from datatrove.pipeline.dedup.sentence_dedup import (
    SentDedupConfig,
    SentenceDedupFilter,
    SentenceDedupSignature,
    SentenceFindDedups,
)
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter


def main() -> None:
    root, workers, shards = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    base = root / "datatrove"
    cfg = SentDedupConfig(n_sentences=3, min_doc_words=0, min_num_sentences=0)

    def reader():
        return JsonlReader(str(root / "in"), glob_pattern="*.jsonl", id_key="id")

    steps = {
        "signatures": ([reader(), SentenceDedupSignature(str(base / "sigs"), config=cfg)],
                       shards, workers),
        "find": ([SentenceFindDedups(str(base / "sigs"), str(base / "dups"), config=cfg)], 1, 1),
        "filter": ([reader(), SentenceDedupFilter(str(base / "dups"), config=cfg),
                    JsonlWriter(str(base / "out"))], shards, workers),
    }
    times = {}
    for name, (pipeline, tasks, w) in steps.items():
        t = time.perf_counter()
        LocalPipelineExecutor(pipeline, tasks=tasks, workers=w, logging_dir=str(base / name),
                              skip_completed=False).run()
        times[name] = round(time.perf_counter() - t, 2)
    docs = chars = 0
    for p in sorted((base / "out").glob("*.jsonl.gz")):
        with gzip.open(p, "rt") as fh:
            for line in fh:
                docs += 1
                chars += len(json.loads(line)["text"])
    rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    print(json.dumps({"times": times, "docs": docs, "chars_out": chars, "max_rss_mb": rss}))


if __name__ == "__main__":
    main()
