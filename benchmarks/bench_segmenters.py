"""What each word segmenter of ``tokenizer: auto`` costs, in documents per second per core.

    .venv/bin/python benchmarks/bench_segmenters.py [--docs 40] [--lines 25] [--repeat 3]
    .venv/bin/python benchmarks/bench_segmenters.py --parity RUN_DIR

Documents are real text: Leipzig web sentences (tests/data/lid/lingua-language-testdata
.tar.xz; zh, ja, ko, th, vi, and en/de for the default splitter), ``--lines``
sentences a document, and for Khmer, Lao, Burmese and Tibetan the UDHR
(tests/data/multilingual/udhr-9lang.jsonl) cut into documents of ``--lines`` lines.
Each segmenter is loaded first (its load time is printed apart: it is paid once per
process), then splits every document; the figure is the lowest CPU time of
``--repeat`` passes in this one process. Each segmenter's own caches are cleared
between passes where it has one (the default splitter's chunk cache is cleared, so
it is measured cold, like the others).

``--parity RUN_DIR`` compares word lists instead: for each language of the run's
documents (a run of extract and langid, e.g. on the bundled multilingual WARCs), the
distinct texts joined, this language's segmenter against datatrove's word tokenizer for
it (zh: spaCy's ChineseTokenizer on jieba, what datatrove's zh config means to load);
agreement is the share of tokens in the longest common alignment (difflib).
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
LEIPZIG = ("zh", "ja", "ko", "th", "vi", "en", "de", "nl", "fr")
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


def datatrove_words(lang: str):
    if lang == "zh":
        import spacy

        nlp = spacy.blank("zh", config={"nlp": {"tokenizer": {
            "@tokenizers": "spacy.zh.ChineseTokenizer", "segmenter": "jieba"}}})
        return lambda text: [t.text.strip() for t in nlp(text) if t.text.strip()]
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    return load_word_tokenizer(lang).word_tokenize


def parity(run_dir: Path) -> None:
    from difflib import SequenceMatcher

    import pyarrow.parquet as pq

    from stages.text.words import splitter_for

    texts: dict[str, list[str]] = {}
    for p in sorted((run_dir / "data").glob("*.parquet")):
        for r in pq.read_table(p, columns=["text", "language"]).to_pylist():
            if r["language"] and r["text"] not in texts.setdefault(r["language"], []):
                texts[r["language"]].append(r["text"])
    ours_for = splitter_for("auto", memoize=False)
    print("| language | pages | segmenter | tokens (thresher vs datatrove) | agreement |")
    print("|---|---|---|---|---|")
    for lang in sorted(texts, key=lambda x: (-len(texts[x]), x)):
        text = "\n".join(texts[lang])
        try:
            theirs = datatrove_words(lang)(text)
        except Exception as e:  # noqa: BLE001 - report, do not stop
            print(f"| {lang} | {len(texts[lang])} | - | - | datatrove: {type(e).__name__} |")
            continue
        ours = ours_for(lang)(text)
        sm = SequenceMatcher(None, ours, theirs, autojunk=False)
        agree = sum(b.size for b in sm.get_matching_blocks()) / max(len(ours), len(theirs), 1)
        name = seg.segmenter_name(lang) or DEFAULT_TOKENIZER
        print(f"| {lang} | {len(texts[lang])} | {name} | {len(ours):,} vs {len(theirs):,} | "
              f"{agree:.4f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=40)
    ap.add_argument("--lines", type=int, default=25)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--parity", type=Path, metavar="RUN_DIR",
                    help="compare word lists with datatrove's on a run's documents")
    a = ap.parse_args()
    if a.parity:
        parity(a.parity)
        return
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
