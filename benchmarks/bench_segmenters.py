"""What each word segmenter of ``tokenizer: auto`` costs, in documents per second per core.

    .venv/bin/python benchmarks/bench_segmenters.py [--docs 40] [--lines 25] [--repeat 3]

Documents are real text: Leipzig web sentences (tests/data/lid/lingua-language-testdata
.tar.xz; zh, ja, ko, th, vi, and en/de for the default splitter), ``--lines``
sentences a document, and for Khmer, Lao, Burmese and Tibetan the UDHR
(tests/data/multilingual/udhr-9lang.jsonl) cut into documents of ``--lines`` lines.
Each segmenter is loaded first (its load time is printed apart: it is paid once per
process), then splits every document; the figure is the lowest CPU time of
``--repeat`` passes in this one process. Each segmenter's own caches are cleared
between passes where it has one (the default splitter's chunk cache is cleared, so
it is measured cold, like the others).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stages.text import segmenters as seg  # noqa: E402
from stages.text import words_en  # noqa: E402
from stages.text.words import DEFAULT_TOKENIZER, get_tokenizer  # noqa: E402

DATA = REPO / "tests" / "data"
LEIPZIG = ("zh", "ja", "ko", "th", "vi", "en", "de")
UDHR = ("km", "lo", "my", "bo")


def documents(lang: str, n_docs: int, lines: int) -> list[str]:
    if lang in UDHR:
        rows = (json.loads(x) for x in (DATA / "multilingual" / "udhr-9lang.jsonl")
                .read_text(encoding="utf-8").splitlines())
        text = next(r["text"] for r in rows if r["language"] == lang).splitlines()
        docs = ["\n".join(text[i:i + lines]) for i in range(0, len(text), lines)]
        return (docs * n_docs)[:n_docs]
    with tarfile.open(DATA / "lid" / "lingua-language-testdata.tar.xz") as t:
        f = t.extractfile(f"language-testdata/sentences/{lang}.txt")
        sents = f.read().decode("utf-8").splitlines()
    return ["\n".join(sents[i * lines:(i + 1) * lines]) for i in range(n_docs)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=40)
    ap.add_argument("--lines", type=int, default=25)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    print(f"# {platform.python_implementation()} {platform.python_version()}, "
          f"{a.docs} documents of {a.lines} lines a language, best of {a.repeat}")
    print("| language | segmenter | load (s) | chars/doc | words/doc | docs/s/core |")
    print("|---|---|---|---|---|---|")
    for lang in (*LEIPZIG, *UDHR):
        name = seg.segmenter_name(lang)
        docs = documents(lang, a.docs, a.lines)
        t0 = time.process_time()
        split = seg.load(name) if name else get_tokenizer(DEFAULT_TOKENIZER, memoize=False)
        load = time.process_time() - t0
        best = float("inf")
        n_words = 0
        for _ in range(a.repeat):
            words_en._CACHE.clear()
            t0 = time.process_time()
            n_words = sum(len(split(d)) for d in docs)
            best = min(best, time.process_time() - t0)
        chars = sum(map(len, docs)) / len(docs)
        print(f"| {lang} | {name or DEFAULT_TOKENIZER} | {load:.2f} | {chars:,.0f} | "
              f"{n_words / len(docs):,.0f} | {len(docs) / best:,.0f} |")


if __name__ == "__main__":
    main()
