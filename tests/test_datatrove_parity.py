"""Our Gopher, C4 and FineWeb filters decide like datatrove's on 1,000 real documents.

The documents are tests/data/quality/filter-docs.jsonl.gz (real pages extracted with
trafilatura, gold article texts, whole-page texts with their boilerplate, Common
Crawl text; see tests/data/make_quality_docs.py), a fixed 1,000 of them chosen by
hash of id. datatrove 0.10.1 runs with its defaults (spaCy's blank English tokenizer);
its results are cached in the temp directory (see ``datatrove_results``).
Disagreements are printed (run with -s to see them even when the test passes).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import DATA

from pipelines import stage as make_spec
from pipelines.stage import TaskContext
from pipelines.stats import StageStats

pytest.importorskip("datatrove")
pytest.importorskip("spacy")

N_DOCS = 1000
MIN_AGREEMENT = 0.99

# our reason -> datatrove's, for the report (decisions are what must agree)
REASONS = {
    "gopher_quality": {
        "too_few_words": "gopher_short_doc", "too_many_words": "gopher_long_doc",
        "avg_word_too_short": "gopher_below_avg_threshold",
        "avg_word_too_long": "gopher_above_avg_threshold",
        "too_many_hashes": "gopher_too_many_hashes",
        "too_many_ellipses": "gopher_too_many_ellipsis",
        "too_many_bullet_lines": "gopher_too_many_bullets",
        "too_many_ellipsis_lines": "gopher_too_many_end_ellipsis",
        "too_few_alpha_words": "gopher_below_alpha_threshold",
        "too_few_stop_words": "gopher_enough_stop_words"},
    "gopher_repetition": {
        "dup_para_ratio": "dup_para_frac", "dup_para_char_ratio": "dup_para_char_frac",
        "dup_line_ratio": "dup_line_frac", "dup_line_char_ratio": "dup_line_char_frac",
        **{f"top_{n}gram_ratio": f"top_{n}_gram" for n in (2, 3, 4)},
        **{f"dup_{n}gram_ratio": f"duplicated_{n}_n_grams" for n in range(5, 11)},
        "empty": "empty"},
    "c4": {"too_few_sentences": "too_few_sentences", "lorem_ipsum": "lorem_ipsum",
           "curly_bracket": "curly_bracket"},
    "fineweb_quality": {
        "few_terminal_punct_lines": "line_punct_ratio", "too_many_short_lines": "short_line_ratio",
        "too_many_dup_line_chars": "char_dup_ratio", "too_many_newlines": "list_ratio",
        "empty": "empty"},
}


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    rows = [json.loads(line) for line in gzip.open(DATA / "quality" / "filter-docs.jsonl.gz",
                                                   "rt", encoding="utf-8")]
    rows.sort(key=lambda r: hashlib.sha1(r["id"].encode()).hexdigest())
    assert len(rows) >= N_DOCS
    return rows[:N_DOCS]


@pytest.fixture(scope="module")
def datatrove_results(docs) -> dict[str, list]:
    """Per filter: [None if kept else datatrove's reason, text after the filter].

    datatrove takes ~35 CPU seconds here, so its results are kept in the system's temp
    directory, keyed by the documents file, N_DOCS and the datatrove and spaCy versions.
    """
    from importlib.metadata import version

    key = hashlib.sha256((DATA / "quality" / "filter-docs.jsonl.gz").read_bytes())
    key.update(f"{N_DOCS} {version('datatrove')} {version('spacy')} v1".encode())
    cache = Path(tempfile.gettempdir()) / f"thresher-parity-{key.hexdigest()[:16]}.json"
    if cache.exists():
        return json.loads(cache.read_text(encoding="utf-8"))
    results = _run_datatrove(docs)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(results), encoding="utf-8")
    tmp.replace(cache)
    return results


def _run_datatrove(docs: list[dict]) -> dict[str, list]:
    from datatrove.data import Document
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    steps = {"gopher_quality": GopherQualityFilter(), "gopher_repetition": GopherRepetitionFilter(),
             "c4": C4QualityFilter(), "fineweb_quality": FineWebQualityFilter()}
    out: dict[str, list] = {name: [] for name in steps}
    for row in docs:  # one document through all four: datatrove caches its spaCy words per text
        for name, step in steps.items():
            doc = Document(text=row["text"], id=row["id"])
            res = step.filter(doc)
            reason = None if res is True else (res[1] if isinstance(res, tuple) else "dropped")
            out[name].append([reason, doc.text])
    return out


def _ours(name: str, docs: list[dict]) -> tuple[list, list]:
    st = make_spec(name, mode="annotate").build()
    st.setup()
    st.begin_task(TaskContext(Path("."), "main", 0, "parity"))
    table = pa.table({"id": [d["id"] for d in docs], "text": [d["text"] for d in docs]})
    out = st.process(table, StageStats())
    return out.column(f"{name}_reason").to_pylist(), out.column("text").to_pylist()


@pytest.mark.parametrize("name", list(REASONS))
def test_same_decisions_as_datatrove(name, docs, datatrove_results):
    ours, _ = _ours(name, docs)
    theirs = [r for r, _ in datatrove_results[name]]
    differ = [(d["id"], a, b) for d, a, b in zip(docs, ours, theirs) if (a is None) != (b is None)]
    other_reason = [(d["id"], a, b) for d, a, b in zip(docs, ours, theirs)
                    if a and b and REASONS[name].get(a) != b]
    agreement = 1 - len(differ) / len(docs)
    dropped = sum(r is not None for r in ours)
    print(f"\n{name}: {len(docs)} documents, we drop {dropped}, datatrove drops "
          f"{sum(r is not None for r in theirs)}; same decision on {agreement:.2%}")
    for doc_id, a, b in differ:
        print(f"  DISAGREE {doc_id}: ours={a} datatrove={b}")
    for doc_id, a, b in other_reason:
        print(f"  same decision, other reason {doc_id}: ours={a} datatrove={b}")
    assert 0 < dropped < len(docs)  # the set exercises the filter both ways
    assert agreement >= MIN_AGREEMENT, differ


def test_c4_cleaned_text_is_datatrove_s(docs, datatrove_results):
    reasons, texts = _ours("c4", docs)
    both_kept = [(d["id"], ours, theirs) for d, r, ours, (r2, theirs)
                 in zip(docs, reasons, texts, datatrove_results["c4"]) if r is None and r2 is None]
    differ = [doc_id for doc_id, a, b in both_kept if a != b]
    print(f"\nc4 cleaned text: {len(both_kept) - len(differ)}/{len(both_kept)} identical")
    for doc_id in differ:
        print(f"  DIFFERENT TEXT {doc_id}")
    assert len(both_kept) > 500
    assert len(differ) <= (1 - MIN_AGREEMENT) * len(both_kept), differ


def test_spacy_compat_splits_words_like_spacy(docs):
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    from stages.words_en import split_words

    spacy_en = load_word_tokenizer("en")
    sample = docs[:200]
    same = 0
    for d in sample:
        expected, got = spacy_en.word_tokenize(d["text"]), split_words(d["text"])
        if expected == got:
            same += 1
        else:
            print(f"  tokens differ in {d['id']}: {len(got)} vs spaCy {len(expected)}")
    print(f"\nspacy_compat: identical word lists for {same}/{len(sample)} documents")
    assert same >= MIN_AGREEMENT * len(sample)


def test_rules_rare_in_real_text_match_datatrove(docs):
    """Rules that seldom fire first on real pages, on real text made to trigger them."""
    from datatrove.data import Document
    from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter

    def paragraphs(text: str) -> list[str]:
        return [p for p in text.split("\n") if p.strip()]

    # an article with >= 8 paragraphs, one of them >= 15 % of its text
    page = next(d["text"] for d in docs if d["id"].startswith("sh-gold:")
                and len(paragraphs(d["text"])) >= 8
                and max(map(len, paragraphs(d["text"]))) >= 0.15 * len(d["text"]))
    paras = paragraphs(page)
    longest = max(paras, key=len)
    cases = {
        "gopher_quality": {
            "too_many_hashes": page + " #news" * (len(page.split()) // 6),
            "too_many_words": " ".join([page] * (100_001 // len(page.split()) + 1)),
            "too_many_bullet_lines": "\n".join("• " + p for p in paras),
        },
        "gopher_repetition": {
            "dup_para_char_ratio": "\n\n".join(paras + [longest] * 2),
            "dup_para_ratio": "\n\n".join(paras + ["Share on Facebook"] * len(paras)),
        },
    }
    steps = {"gopher_quality": GopherQualityFilter(), "gopher_repetition": GopherRepetitionFilter()}
    for name, texts in cases.items():
        ours, _ = _ours(name, [{"id": k, "text": t} for k, t in texts.items()])
        for (expected, text), reason in zip(texts.items(), ours):
            res = steps[name].filter(Document(text=text, id=expected))
            theirs = None if res is True else res[1]
            print(f"{name} {expected}: ours={reason} datatrove={theirs}")
            assert reason == expected and theirs == REASONS[name][expected]
