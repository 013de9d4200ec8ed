"""Our Gopher, C4 and FineWeb filters decide like datatrove's on 1,000 real documents.

The documents are tests/data/quality/filter-docs.jsonl.gz (real pages extracted with
trafilatura, gold article texts, whole-page texts with their boilerplate, Common
Crawl text; see tests/data/make_quality_docs.py), a fixed 1,000 of them chosen by
hash of id. datatrove 0.10.1 runs with its defaults (spaCy's blank English tokenizer);
its results are cached in the repository's ``.cache/parity/`` (not the shared, world-writable
temp directory; see ``datatrove_results``). The docs publish 100 % agreement, so every
decision must agree, and the drop reasons too (mapped by ``REASONS``), but for the named
documents in ``KNOWN`` with the reason each differs. Disagreements are printed (run with
-s to see them even when the test passes).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
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
CACHE = Path(__file__).resolve().parents[1] / ".cache" / "parity"

# The only documents allowed to differ from datatrove, by test and id, and why.
KNOWN = {
    # a Japanese page of long unspaced "words": both drop it; our rules run in Gopher's
    # published order (mean word length before alphabetic words), datatrove's do not
    "reason gopher_quality": {"read-main:hukumusume"},
}

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
    CACHE.mkdir(parents=True, exist_ok=True)
    cache = CACHE / f"{key.hexdigest()[:16]}.json"
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
    assert {i for i, *_ in differ} == KNOWN.get(f"decision {name}", set()), differ
    assert {i for i, *_ in other_reason} == KNOWN.get(f"reason {name}", set()), other_reason


def test_c4_cleaned_text_is_datatrove_s(docs, datatrove_results):
    reasons, texts = _ours("c4", docs)
    both_kept = [(d["id"], ours, theirs) for d, r, ours, (r2, theirs)
                 in zip(docs, reasons, texts, datatrove_results["c4"]) if r is None and r2 is None]
    differ = [doc_id for doc_id, a, b in both_kept if a != b]
    print(f"\nc4 cleaned text: {len(both_kept) - len(differ)}/{len(both_kept)} identical")
    for doc_id in differ:
        print(f"  DIFFERENT TEXT {doc_id}")
    assert len(both_kept) > 500
    assert set(differ) == KNOWN.get("c4 text", set()), differ


def test_spacy_compat_splits_words_like_spacy(docs):
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    from stages.text.words_en import split_words

    spacy_en = load_word_tokenizer("en")
    sample = docs[:200]
    differ = set()
    for d in sample:
        expected, got = spacy_en.word_tokenize(d["text"]), split_words(d["text"])
        if expected != got:
            differ.add(d["id"])
            print(f"  tokens differ in {d['id']}: {len(got)} vs spaCy {len(expected)}")
    print(f"\nspacy_compat: identical word lists for {len(sample) - len(differ)}/{len(sample)} "
          "documents")
    assert differ == KNOWN.get("spacy words", set()), differ


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


# ----------------------------------------------------------------------------- C4's options
# datatrove's C4QualityFilter at non-default options, against ours at the same ones.

C4_VARIANTS = {  # name: (datatrove's arguments, ours)
    "sentences": ({"split_paragraph": False}, {"split": "sentences"}),
    "sentences_3": ({"split_paragraph": False, "min_num_sentences": 3, "min_words_per_line": 5},
                    {"split": "sentences", "min_sentences": 3, "min_words_per_line": 5}),
    "lines_loose": (
        {"filter_no_terminal_punct": False, "min_words_per_line": 5, "max_word_length": 20,
         "min_num_sentences": 3, "remove_citations": False, "filter_javascript": False,
         "filter_policy": False},
        {"drop_lines_without_terminal_punct": False, "min_words_per_line": 5,
         "max_word_length": 20, "min_sentences": 3, "remove_citations": False,
         "drop_javascript_lines": False, "drop_policy_lines": False}),
    "no_doc_rules": (
        {"filter_lorem_ipsum": False, "filter_curly_bracket": False, "min_num_sentences": -1,
         "min_words_per_line": -1, "max_word_length": -1},
        {"drop_lorem_ipsum": False, "drop_curly_bracket": False, "min_sentences": None,
         "min_words_per_line": None, "max_word_length": None}),
}


def _cached(tag: str, docs: list[dict], compute) -> object:
    """datatrove's results for ``tag``, kept in the temp directory like ``datatrove_results``."""
    from importlib.metadata import version

    key = hashlib.sha256((DATA / "quality" / "filter-docs.jsonl.gz").read_bytes())
    key.update(f"{N_DOCS} {version('datatrove')} {version('spacy')} {tag}".encode())
    CACHE.mkdir(parents=True, exist_ok=True)
    cache = CACHE / f"{key.hexdigest()[:16]}.json"
    if cache.exists():
        return json.loads(cache.read_text(encoding="utf-8"))
    results = compute()
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(results), encoding="utf-8")
    tmp.replace(cache)
    return results


def _c4_datatrove(docs: list[dict], args: dict) -> list:
    from datatrove.data import Document
    from datatrove.pipeline.filters import C4QualityFilter

    step = C4QualityFilter(**args)
    out = []
    for row in docs:
        doc = Document(text=row["text"], id=row["id"])
        res = step.filter(doc)
        out.append([None if res is True else res[1], doc.text])
    return out


def _ours_with(docs: list[dict], name: str = "c4", **params) -> pa.Table:
    st = make_spec(name, mode="annotate", **params).build()
    st.setup()
    st.begin_task(TaskContext(Path("."), "main", 0, "parity"))
    columns = {"id": [d["id"] for d in docs], "text": [d["text"] for d in docs]}
    if "language" in docs[0]:
        columns["language"] = [d["language"] for d in docs]
    return st.process(pa.table(columns), StageStats())


def test_sentence_pieces_are_datatrove_s(docs):
    """C4's sentence mode cuts texts where datatrove's split_into_sentences (spaCy) does."""
    from datatrove.utils.text import split_into_sentences

    from stages.text.sentences import sentence_pieces
    from stages.text.words_en import split_words

    theirs = _cached("sentences", docs, lambda: [split_into_sentences(d["text"]) for d in docs])
    ours = [sentence_pieces(d["text"], split_words) for d in docs]
    assert all("".join(p) == d["text"] for p, d in zip(ours, docs))
    differ = [d["id"] for d, a, b in zip(docs, ours, theirs) if a != b]
    print(f"\nsentences: same pieces for {len(docs) - len(differ)}/{len(docs)} documents "
          f"({sum(map(len, ours))} sentences)")
    for doc_id in differ:
        print(f"  DIFFERENT SENTENCES {doc_id}")
    assert set(differ) == KNOWN.get("sentences", set()), differ


@pytest.mark.parametrize("variant", list(C4_VARIANTS))
def test_c4_options_decide_like_datatrove(variant, docs):
    dt_args, ours_args = C4_VARIANTS[variant]
    theirs = _cached(f"c4 {json.dumps(dt_args, sort_keys=True)}", docs,
                     lambda: _c4_datatrove(docs, dt_args))
    out = _ours_with(docs, **ours_args)
    reasons, texts = out.column("c4_reason").to_pylist(), out.column("text").to_pylist()
    # datatrove keeps a document with no line left, as an empty text (we drop it)
    dt_kept = [r is None and bool(t) for r, t in theirs]
    differ = [(d["id"], a, b) for d, a, (b, _), k in zip(docs, reasons, theirs, dt_kept)
              if (a is None) != k]
    other_text = [d["id"] for d, a, t, (b, t2), k in zip(docs, reasons, texts, theirs, dt_kept)
                  if a is None and k and t != t2]
    dropped = sum(r is not None for r in reasons)
    print(f"\nc4 {variant}: we drop {dropped}, datatrove drops or empties "
          f"{len(docs) - sum(dt_kept)}; same "
          f"decision on {1 - len(differ) / len(docs):.2%}; cleaned text differs for "
          f"{len(other_text)} of {len(docs) - dropped} kept")
    for doc_id, a, b in differ:
        print(f"  DISAGREE {doc_id}: ours={a} datatrove={b}")
    for doc_id in other_text:
        print(f"  DIFFERENT TEXT {doc_id}")
    assert 0 < dropped < len(docs)
    assert {i for i, *_ in differ} == KNOWN.get(f"c4 {variant}", set()), differ
    assert set(other_text) == KNOWN.get(f"c4 {variant} text", set()), other_text


# ----------------------------------------------------------------------------- C4 bad words
# datatrove's C4BadWordsFilter downloads the LDNOOBW lists; here both sides read the same
# small lists (thresher bundles none), on the text C4QualityFilter cleaned.

BAD_WORDS = {
    "en": ["sex", "porn", "nude", "naked", "shit", "fuck", "damn", "crap", "bitch", "bastard",
           "hell", "kill"],
    "de": ["scheiße", "arsch", "verdammt", "nackt", "sex", "porno", "mord", "krieg"],
}


@pytest.fixture(scope="module")
def labelled_docs(docs) -> list[dict]:
    """The parity documents with the language our langid stage gives them."""
    out = _ours_with(docs, "langid")
    return [d | {"language": lang} for d, lang in zip(docs, out.column("language").to_pylist())]


def _bad_words_datatrove(docs: list[dict], files: dict[str, Path], monkeypatch,
                         by_language: bool) -> list:
    from datatrove.data import Document
    from datatrove.pipeline.filters import C4BadWordsFilter, C4QualityFilter, c4_filters

    def local_copy(url: str, **_) -> str:  # instead of downloading the list
        return str(files["en" if url.endswith("/en") else url.rsplit("/", 1)[1]])

    monkeypatch.setattr(c4_filters, "cached_asset_path_or_download", local_copy)
    monkeypatch.setattr(c4_filters, "_BADWORDS_LANGS", sorted(files))
    quality = C4QualityFilter()
    bad = C4BadWordsFilter(fail_on_missing_language=False)
    out = []
    for row in docs:
        doc = Document(text=row["text"], id=row["id"],
                       metadata={"language": row["language"]} if by_language else {})
        res = quality.filter(doc)
        if res is True:
            res = bad.filter(doc)
        out.append(None if res is True else res[1])
    return out


@pytest.mark.parametrize("by_language", [False, True], ids=["one_list", "per_language"])
def test_c4_bad_words_decide_like_datatrove(by_language, labelled_docs, tmp_path, monkeypatch):
    files = {}
    for lang, words in BAD_WORDS.items():
        files[lang] = tmp_path / lang
        files[lang].write_text("\n".join(words) + "\n", encoding="utf-8")
    if not by_language:
        files = {"en": files["en"]}  # datatrove's default language for every document
    theirs = _bad_words_datatrove(labelled_docs, files, monkeypatch, by_language)
    bad_words_file = {k: str(v) for k, v in files.items()} if by_language else str(files["en"])
    out = _ours_with(labelled_docs, bad_words_file=bad_words_file)
    ours = out.column("c4_reason").to_pylist()
    differ = [(d["id"], d["language"], a, b) for d, a, b in zip(labelled_docs, ours, theirs)
              if (a is None) != (b is None)]
    ours_bad = sum(r == "bad_words" for r in ours)
    theirs_bad = sum(r == "document_removed_with_badwords" for r in theirs)
    print(f"\nc4 bad words ({'per language' if by_language else 'one list'}): "
          f"{ours_bad} / {theirs_bad} documents dropped for bad words (ours / datatrove); "
          f"same decision on {1 - len(differ) / len(labelled_docs):.2%}")
    for d in differ:
        print("  DISAGREE", *d)
    assert ours_bad >= 20  # the lists matter on this set
    assert {i for i, *_ in differ} == KNOWN.get("c4 bad words", set()), differ
    if by_language:  # a German-only word is found in German documents only
        langs = {d["language"] for d, r in zip(labelled_docs, ours) if r == "bad_words"}
        assert {"en", "de"} <= langs
