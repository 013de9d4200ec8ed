"""Derive a per-language threshold table from reference text: ``thresher thresholds``.

FineWeb-2 set each filter's threshold per language from the distribution of its
measurement on reference datasets of that language (Wikipedia and other curated text),
choosing per filter among several rules by ablation. This module does one of them, a
tail quantile: for a rule that fails *below* its limit the limit is the ``q`` quantile
of the measure on the reference documents, for one that fails *above* it the ``1 - q``
quantile, so about ``q`` of the reference fails each rule. Stop words are the
``stop_words`` words (with a letter) that occur in the most reference documents.
``langid.min_score`` follows FineWeb-2's own formula, max(0.3, min(0.9, median - std))
of the LID scores of the documents the model gives the language (``lid_min_score``).

    thresher thresholds --reference 'wiki/*.parquet' --by language --quantile 0.05 \
        -o thresholds.json
    thresher thresholds --bundled -o thresholds.json
    .venv/bin/python -m stages.heuristics.derive ...   (the same options)

Reference files (a glob, local or a URL read through pipelines/io/storage.py) are
Parquet or JSONL(.gz/.zst) with ``text`` and ``language`` columns (``--by`` names
another column), or plain text, one language a file named by it (``de.txt``);
``--bundled`` uses the multilingual text in tests/data (Leipzig web sentences of 75
languages, 20 to a document, and the UDHR in the languages Leipzig lacks).
Measurements are the filters' own (``mode: annotate``, ``tokenizer: auto``), so the
table fits the words the filters see. By default only the rules whose measure does not
depend on how a document is laid out are derived (the LID score, word lengths, the
share of words with a letter, stop words): line and repetition measures need reference
documents with their real line structure, which sentence collections do not have; ask
for them with ``--params``. The output is a table ``thresholds:`` reads, with the
method, the quantile, the number of reference documents and the reference files'
sha256 under ``_about``. The options are in thresholds_cli.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tarfile
from collections import Counter
from pathlib import Path
from typing import Any

from pipelines import stage as make_spec
from pipelines.errors import UserError
from pipelines.lazy import lazy_module
from stages.heuristics.per_language import LANGUAGE
from stages.heuristics.thresholds_cli import ALL_PARAMS, DEFAULT_PARAMS, add_arguments

np = lazy_module("numpy")

TEXT = "text"

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
            if kind == "langid":
                score = lid_min_score(texts, lang, digits)
                if score is not None:
                    row[kind] = {"min_score": score}
                continue
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


_LID: list = []  # the langid stage, set up once per process


def lid_min_score(texts: list[str], lang: str, digits: int = 3) -> float | None:
    """FineWeb-2's language-score threshold for ``lang``: max(0.3, min(0.9, median - std))
    of the scores of the documents the LID model gives ``lang`` (here the bundled lid.176,
    as the langid stage runs it); None when fewer than MIN_DOCS are given ``lang``."""
    import pyarrow as pa

    if not _LID:
        st = make_spec("langid").build()
        st.setup()
        _LID.append(st)
    _, cols = _LID[0].check_batch(pa.table({TEXT: texts}))
    xs = np.array([s for la, s in zip(cols[LANGUAGE], cols["language_score"]) if la == lang],
                  float)
    if len(xs) < MIN_DOCS:
        return None
    return round(float(max(0.3, min(0.9, np.median(xs) - np.std(xs)))), digits)


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

TEXT_SUFFIXES = (".txt", ".txt.gz", ".txt.zst", ".txt.zstd")


def reference_files(pattern: str) -> list[str]:
    """The files matching ``pattern`` (a local path or a URL glob), sorted."""
    from pipelines.io import storage

    try:
        files = [f for f, info in storage.default_storage().glob_info(pattern)
                 if info["type"] == "file"]
    except OSError as e:
        raise UserError(f"thresholds: cannot list {pattern}: {e}") from None
    if not files:
        raise UserError(f"thresholds: no file matches {pattern!r}")
    return files


def _read_bytes(f: str) -> bytes:
    from pipelines.io.storage import open_read

    try:
        with open_read(f) as fh:
            return fh.read()
    except OSError as e:
        raise UserError(f"thresholds: cannot read {f}: {e}") from None


def _decompress(data: bytes, name: str) -> bytes:
    import io

    from pipelines.io.compression import decompressing

    if name.endswith((".gz", ".zst", ".zstd")):
        return decompressing(io.BytesIO(data), name).read()
    return data


def text_language(name: str) -> str:
    """The language of a plain-text reference file: its name up to the first dot
    (``de.txt``, ``zh.txt.gz``: the Leipzig layout)."""
    return name.rsplit("/", 1)[-1].split(".", 1)[0]


def read_reference(pattern: str, by: str = LANGUAGE, lines_per_doc: int | None = None,
                   ) -> tuple[dict[str, list[str]], dict[str, str]]:
    """language -> texts from the files matching ``pattern``, and {file: sha256}.

    Parquet and JSONL(.gz/.zst) files give a document per row, with ``text`` and the
    column ``by``; a plain-text file (``.txt``, ``.txt.gz``, ...) is one language (its
    name up to the first dot), a document per blank-line-separated block, or per
    ``lines_per_doc`` lines. Local paths and URLs (s3://, https://, ...) are read
    through the storage layer (pipelines/io/storage.py).
    """
    docs: dict[str, list[str]] = {}
    hashes: dict[str, str] = {}
    for f in reference_files(pattern):
        raw = _read_bytes(f)
        hashes[f] = hashlib.sha256(raw).hexdigest()
        name = f.rsplit("/", 1)[-1]
        if name.endswith(".parquet"):
            import pyarrow as pa
            import pyarrow.parquet as pq

            try:
                t = pq.read_table(pa.BufferReader(raw), columns=[TEXT, by]).to_pydict()
            except (KeyError, pa.ArrowInvalid) as e:
                raise UserError(f"thresholds: {f} needs columns {TEXT!r} and {by!r}: "
                                f"{str(e).splitlines()[0]}") from None
            rows = list(zip(t[TEXT], t[by]))
        elif name.endswith(TEXT_SUFFIXES):
            text = _decompress(raw, name).decode("utf-8")
            rows = [(d, text_language(name)) for d in _text_documents(text, lines_per_doc)]
        else:
            rows = []
            for i, line in enumerate(_decompress(raw, name).decode("utf-8").splitlines()):
                if not line.strip():
                    continue
                try:
                    r = json.loads(line)
                except ValueError:
                    raise UserError(f"thresholds: {f}:{i + 1}: not JSON (reference files "
                                    "are Parquet, JSONL or .txt)") from None
                rows.append((r.get(TEXT), r.get(by)))
        for text, lang in rows:
            if text and lang:
                docs.setdefault(str(lang), []).append(text)
    return docs, hashes


def _text_documents(text: str, lines_per_doc: int | None) -> list[str]:
    if lines_per_doc:
        lines = [x for x in text.splitlines() if x.strip()]
        return ["\n".join(lines[i:i + lines_per_doc])
                for i in range(0, len(lines), lines_per_doc)]
    return [b.strip("\n") for b in text.replace("\r\n", "\n").split("\n\n") if b.strip()]


def bundled_reference(per_doc: int = 20) -> tuple[dict[str, list[str]], dict[str, str]]:
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
    return docs, {str(f): _sha256(str(f)) for f in (tar_path, udhr_path)}


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run(a: argparse.Namespace) -> int:
    if not 0 < a.quantile < 0.5:
        raise UserError("thresholds: --quantile must be within (0, 0.5)")
    params = None
    if a.params == "all":
        params = ALL_PARAMS
    elif a.params:
        params = {}
        for item in a.params.split(","):
            kind, _, name = item.partition(":")
            if kind not in ALL_PARAMS or name not in ALL_PARAMS[kind]:
                raise UserError(f"thresholds: --params {item!r}: derivable are "
                                + "; ".join(f"{k}:{p}" for k, v in ALL_PARAMS.items()
                                            for p in v))
            params.setdefault(kind, ())
            params[kind] += (name,)
    if a.bundled:
        docs, files = bundled_reference()
    else:
        docs, files = read_reference(a.reference, a.by, a.lines_per_doc)
    table = {"_about": {"method": f"tail quantile {a.quantile:g} of each measure on the "
                                  "reference (stages/heuristics/derive.py)",
                        "quantile": a.quantile,
                        "reference": {(f if "://" in f else Path(f).name): h
                                      for f, h in files.items()}},
             "languages": derive(docs, a.quantile, params, a.stop_words)}
    text = json.dumps(table, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    if a.out == "-":
        sys.stdout.write(text)
    else:
        from pipelines.io.storage import atomic_write

        with atomic_write(a.out, "wb") as fh:
            fh.write(text.encode("utf-8"))
        skipped = sorted(set(docs) - set(table["languages"]))
        print(f"thresholds: {len(table['languages'])} languages -> {a.out}"
              + (f" ({len(skipped)} with fewer than {MIN_DOCS} reference documents left "
                 f"out: {', '.join(skipped[:10])}{' ...' if len(skipped) > 10 else ''})"
                 if skipped else ""), file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stages.heuristics.derive",
                                 description=__doc__.splitlines()[0])
    add_arguments(ap)
    try:
        return run(ap.parse_args(argv))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
