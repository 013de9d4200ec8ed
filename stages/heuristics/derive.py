"""Derive a per-language threshold table from reference text (``thresholds:`` files).

FineWeb-2 set each filter's threshold per language from the distribution of its
measurement on reference text of that language (Wikipedia and other curated text),
choosing per filter among several rules (tail quantiles, mean and standard deviation,
...) by ablation. This module does the simplest of those rules, a tail quantile: for a
rule that fails *below* its limit the limit is the ``q`` quantile of the measure on the
reference documents, for one that fails *above* it the ``1 - q`` quantile, so about
``q`` of the reference fails each rule. Stop words are the ``stop_words`` words (with a
letter) that occur in the most reference documents.

    .venv/bin/python -m stages.heuristics.derive --reference 'wiki/*.parquet' \\
        --quantile 0.05 --out thresholds.json
    .venv/bin/python -m stages.heuristics.derive --bundled --out thresholds.json

Reference files are Parquet or JSONL with ``text`` and ``language`` columns (``--by``
names another column); ``--bundled`` uses the multilingual text in tests/data (Leipzig
web sentences of 75 languages, 20 to a document, and the UDHR in nine languages written
with few spaces). Measurements are the filters' own (``mode: annotate``, ``tokenizer:
auto``), so the table fits the words the filters see. By default only the rules whose
measure does not depend on how a document is laid out are derived (word lengths, the
share of words with a letter, stop words): line and repetition measures need reference
documents with their real line structure, which sentence collections do not have; ask
for them with ``--params``. The output is a table ``thresholds:`` reads, with the
method, the quantile, the number of reference documents and the reference files'
sha256 under ``_about``.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import sys
import tarfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from pipelines import stage as make_spec
from stages.heuristics.per_language import LANGUAGE

TEXT = "text"
# stage kind -> parameters derived by default (see the module docstring)
DEFAULT_PARAMS = {
    "gopher_quality": ("min_avg_word_length", "max_avg_word_length", "min_alpha_words_ratio"),
}
ALL_PARAMS = {
    "gopher_quality": DEFAULT_PARAMS["gopher_quality"],
    "gopher_repetition": ("max_dup_line_ratio", "max_top_ngram_char_ratio",
                          "max_dup_ngram_char_ratio"),
    "fineweb_quality": ("min_terminal_punct_line_ratio", "max_newline_word_ratio"),
}
REPO = Path(__file__).resolve().parents[2]
MIN_DOCS = 10  # fewer reference documents than this: the language is left out


def derive(docs: dict[str, list[str]], quantile: float = 0.05,
           params: dict[str, tuple[str, ...]] | None = None, stop_words: int = 8,
           digits: int = 3) -> dict[str, Any]:
    """language -> {stage kind -> {parameter: threshold}} from reference documents."""
    params = DEFAULT_PARAMS if params is None else params
    out: dict[str, Any] = {}
    for lang in sorted(docs):
        texts = docs[lang]
        if len(texts) < MIN_DOCS:
            continue
        row: dict[str, Any] = {"_documents": len(texts)}
        for kind, names in params.items():
            st = make_spec(kind, mode="annotate", tokenizer="auto").build()
            st.setup()
            ms = [st.measure({TEXT: t, LANGUAGE: lang, "id": str(i)}, True)
                  for i, t in enumerate(texts)]
            values: dict[str, Any] = {}
            for name in names:
                rules = [r for r in st.rules.rules if r.param == name]
                if not rules:
                    raise ValueError(f"{kind} has no threshold {name!r}")
                r = rules[0]
                q = quantile if r.fails == "below" else 1 - quantile
                if r.per_n:
                    default = getattr(st.params, name)
                    values[name] = {n: _quantile([m[r.measure.format(n=n)] for m in ms], q,
                                                 digits) for n in sorted(default)}
                else:
                    values[name] = _quantile([m[r.measure] for m in ms], q, digits)
            if kind == "gopher_quality" and stop_words:
                values["stop_words"] = frequent_words(st, texts, lang, stop_words)
            row[kind] = {k: v for k, v in values.items() if v is not None}
        out[lang] = row
    return out


def _quantile(values: list, q: float, digits: int) -> float | None:
    xs = np.array([v for v in values if v is not None], float)
    if not len(xs):
        return None
    return round(float(np.quantile(xs, q, method="linear")), digits)


def frequent_words(st: Any, texts: list[str], lang: str, k: int) -> list[str]:
    """The ``k`` words with a letter in the most documents (ties: alphabetical)."""
    from stages.text.words import LETTERS, splitter_for, word_kind

    split = splitter_for("auto")(lang)
    df: Counter[str] = Counter()
    for t in texts:
        df.update({w for w in split(t) if word_kind(w) == LETTERS})
    return [w for w, _ in sorted(df.items(), key=lambda x: (-x[1], x[0]))[:k]]


# ---------------------------------------------------------------- reference text

def read_reference(pattern: str, by: str = LANGUAGE) -> tuple[dict[str, list[str]], list[str]]:
    """language -> texts from Parquet/JSONL files matching ``pattern``, and the files."""
    files = sorted(glob.glob(pattern))
    if not files:
        raise SystemExit(f"derive: no file matches {pattern!r}")
    docs: dict[str, list[str]] = {}
    for f in files:
        if f.endswith(".parquet"):
            import pyarrow.parquet as pq

            t = pq.read_table(f, columns=[TEXT, by]).to_pydict()
            rows = zip(t[TEXT], t[by])
        else:
            rows = ((r[TEXT], r[by]) for r in map(json.loads, Path(f).read_text(
                encoding="utf-8").splitlines()) if r)
        for text, lang in rows:
            if text and lang:
                docs.setdefault(lang, []).append(text)
    return docs, files


def bundled_reference(per_doc: int = 20) -> tuple[dict[str, list[str]], list[str]]:
    """The multilingual text of tests/data: Leipzig sentences and the UDHR excerpts."""
    data = REPO / "tests" / "data"
    tar_path = data / "lid" / "lingua-language-testdata.tar.xz"
    udhr_path = data / "multilingual" / "udhr-9lang.jsonl"
    docs: dict[str, list[str]] = {}
    with tarfile.open(tar_path) as t:
        for m in sorted(t.getmembers(), key=lambda m: m.name):
            if "/sentences/" not in m.name or not m.name.endswith(".txt"):
                continue
            lang = Path(m.name).stem
            lines = t.extractfile(m).read().decode("utf-8").splitlines()
            docs[lang] = ["\n".join(lines[i:i + per_doc]) for i in range(0, len(lines), per_doc)]
    for r in map(json.loads, udhr_path.read_text(encoding="utf-8").splitlines()):
        if r["language"] not in docs:  # km, lo, my, bo: the UDHR, a document per 2 lines
            lines = [x for x in r["text"].splitlines() if x.strip()]
            docs[r["language"]] = ["\n".join(lines[i:i + 2]) for i in range(0, len(lines), 2)]
    return docs, [str(tar_path), str(udhr_path)]


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stages.heuristics.derive",
                                 description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--reference", help="Parquet/JSONL files (a glob) with text and language")
    src.add_argument("--bundled", action="store_true", help="the multilingual text in tests/data")
    ap.add_argument("--by", default=LANGUAGE, help="the language column (default: language)")
    ap.add_argument("--quantile", type=float, default=0.05,
                    help="share of the reference each rule may fail (default 0.05)")
    ap.add_argument("--params", default=None,
                    help="kind:param,... to derive (default: the layout-free ones); 'all' for "
                         + "; ".join(f"{k}: {', '.join(v)}" for k, v in ALL_PARAMS.items()))
    ap.add_argument("--stop-words", type=int, default=8, help="stop words per language (0: none)")
    ap.add_argument("--out", default="-", help="output JSON file (default: stdout)")
    a = ap.parse_args(argv)
    if not 0 < a.quantile < 0.5:
        ap.error("--quantile must be within (0, 0.5)")
    params = None
    if a.params == "all":
        params = ALL_PARAMS
    elif a.params:
        params = {}
        for item in a.params.split(","):
            kind, _, name = item.partition(":")
            params.setdefault(kind, ())
            params[kind] += (name,)
    docs, files = bundled_reference() if a.bundled else read_reference(a.reference, a.by)
    table = {"_about": {"method": f"tail quantile {a.quantile:g} of each measure on the "
                                  "reference (stages/heuristics/derive.py)",
                        "quantile": a.quantile,
                        "reference": {Path(f).name: _sha256(f) for f in files}},
             "languages": derive(docs, a.quantile, params, a.stop_words)}
    text = json.dumps(table, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    if a.out == "-":
        sys.stdout.write(text)
    else:
        Path(a.out).write_text(text, encoding="utf-8")
        print(f"derive: {len(table['languages'])} languages -> {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
