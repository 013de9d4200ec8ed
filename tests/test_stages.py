"""Each built-in stage on real data, plus the Filter protocol's guarantees."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import DATA, WARC_DIR

from pipelines import stage as make_spec
from pipelines.config import WarcInput
from pipelines.errors import UserError
from pipelines.io.readers import make_reader
from pipelines.stage import Filter, FilterParams, TaskContext
from pipelines.stats import StageStats


def _build(name: str, **params):
    st = make_spec(name, **params).build()
    st.setup()
    st.begin_task(TaskContext(Path("."), "main", 0, "test"))
    return st


def _run(st, table: pa.Table) -> tuple[pa.Table, StageStats]:
    stats = StageStats()
    stats.count_in(table)
    out = st.process(table, stats)
    stats.count_out(out)
    assert stats.balanced()
    return out, stats


@pytest.fixture(scope="module")
def html_table() -> pa.Table:
    """The 22 real HTML responses of a 2024 wget WARC."""
    path = WARC_DIR / "dolma-wget-2024-sample-0000.warc.gz"
    stats = StageStats()
    tables = list(make_reader(WarcInput(paths=[str(path)])).read(path, path.name, stats))
    return pa.concat_tables(tables)


@pytest.fixture(scope="module")
def text_table(html_table) -> pa.Table:
    out, _ = _run(_build("extract"), html_table)
    return out


@pytest.fixture(scope="module")
def lingua() -> pa.Table:
    rows = [json.loads(line) for line in
            (DATA / "lid" / "lingua-sentences-12lang.jsonl").read_text().splitlines()]
    return pa.Table.from_pylist(rows)


# ----------------------------------------------------------------------------- extract

def test_extract_real_pages(html_table, text_table):
    assert html_table.num_rows == 22
    assert "html" not in text_table.schema.names
    assert text_table.schema.names[:2] == ["id", "text"]
    assert text_table.num_rows >= 18
    texts = text_table.column("text").to_pylist()
    assert all(t.strip() for t in texts)
    assert all("<div" not in t and "<script" not in t for t in texts)
    # extraction keeps much less than the raw HTML
    assert sum(map(len, texts)) < 0.2 * sum(map(len, html_table.column("html").to_pylist()))


def test_extract_counts_pages_without_text():
    table = pa.table({"id": ["a", "b"], "url": [None, None],
                      "html": ["<html><body><script>var x=1;</script></body></html>", ""]})
    out, stats = _run(_build("extract"), table)
    assert out.num_rows == 0
    assert stats.dropped == Counter({"no_text": 1, "no_html": 1})


def test_extract_deduplicate_is_per_task(html_table):
    st = _build("extract", deduplicate=True)
    first, _ = _run(st, html_table)
    st.begin_task(TaskContext(Path("."), "main", 1, "again"))
    second, _ = _run(st, html_table)
    assert first.equals(second)  # the cache does not leak across tasks


# ----------------------------------------------------------------------------- langid

def test_langid_accuracy_on_real_sentences(lingua):
    out, stats = _run(_build("langid"), lingua)
    assert out.num_rows == lingua.num_rows
    gold = out.column("gold").to_pylist()
    pred = out.column("language").to_pylist()
    acc = sum(g == p for g, p in zip(gold, pred)) / len(gold)
    assert acc >= 0.9, acc
    scores = out.column("language_score").to_pylist()
    assert all(0 < s <= 1.0001 for s in scores)


def test_langid_languages_and_thresholds(lingua):
    out, stats = _run(_build("langid", languages=["de", "fr"], min_score=0.5), lingua)
    assert set(out.column("language").to_pylist()) <= {"de", "fr"}
    assert stats.dropped["other_language"] >= 290
    assert all(s >= 0.5 for s in out.column("language_score").to_pylist())
    # per-language thresholds: the highest possible for de, none for the rest
    out2, stats2 = _run(_build("langid", languages=["de", "fr"],
                               min_score={"de": 1.0, "default": 0.0}), lingua)
    assert set(out2.column("language").to_pylist()) == {"fr"}
    assert stats2.dropped["low_score"] >= 25


def test_langid_model_is_verified(tmp_path):
    bad = tmp_path / "model.ftz"
    bad.write_bytes(b"not a model")
    with pytest.raises(UserError, match="sha256"):
        _build("langid", model=str(bad), model_sha256="0" * 64)
    with pytest.raises(UserError, match="does not exist"):
        _build("langid", model=str(tmp_path / "missing.bin"))


# ----------------------------------------------------------------------------- gopher

def _texts(out: pa.Table) -> list[str]:
    return out.column("text").to_pylist()


def test_gopher_rules_fire_with_their_reasons():
    good = ("The committee said that the new library will open to the public next spring, and "
            "that it will have a reading room with more than ten thousand books. " * 5)
    cases = {
        "too_few_words": "The cat sat on the mat with the dog.",
        "avg_word_too_long": " ".join(["internationalization"] * 60 + ["the", "and"]),
        "avg_word_too_short": " ".join(["a b c of to"] * 20),
        "too_many_hashes": good + " #tag" * 30,
        "too_many_bullet_lines": "\n".join(["- " + good[:90]] * 20),
        "too_many_ellipsis_lines": "\n".join([good[:200] + "..."] * 5),
        "too_few_alpha_words": good + " 20240 19990 31415 27182" * 30,
        "too_few_stop_words": " ".join(["Quick brown foxes jump over lazy dogs"] * 20),
    }
    ids = ["good", *cases]
    table = pa.table({"id": ids, "text": [good, *cases.values()]})
    out, stats = _run(_build("gopher_quality"), table)
    assert out.column("id").to_pylist() == ["good"]
    assert stats.dropped == Counter({reason: 1 for reason in cases})


def test_gopher_null_threshold_disables_rule():
    text = "The cat sat on the mat with the dog."
    out, _ = _run(_build("gopher_quality", min_doc_words=None), pa.table({"id": ["x"],
                                                                          "text": [text]}))
    assert out.num_rows == 1


def test_gopher_on_real_extracted_text(text_table):
    out, stats = _run(_build("gopher_quality"), text_table)
    assert 0 < out.num_rows < text_table.num_rows
    assert stats.n_dropped == text_table.num_rows - out.num_rows


# ----------------------------------------------------------------------------- filter protocol

def test_annotate_mode_keeps_all_and_matches_filter(text_table):
    filtered, fstats = _run(_build("gopher_quality"), text_table)
    annotated, astats = _run(_build("gopher_quality", mode="annotate"), text_table)
    assert annotated.num_rows == text_table.num_rows
    reasons = annotated.column("gopher_quality_reason").to_pylist()
    assert Counter(r for r in reasons if r) == fstats.dropped
    kept = annotated.filter(pa.compute.is_null(annotated.column("gopher_quality_reason")))
    measures = [c for c in annotated.column_names if c.startswith("gopher_quality_")]
    assert len(measures) == 9  # the reason and the 8 measurements
    assert kept.drop_columns(measures).equals(filtered)


def test_length_filter_vectorised():
    table = pa.table({"id": list("abcd"), "text": ["", "one two", "x" * 50, "a b c d e"]})
    out, stats = _run(_build("length", min_chars=3, max_chars=20, min_words=3), table)
    assert out.column("id").to_pylist() == ["d"]
    assert stats.dropped == Counter({"too_short": 1, "too_long": 1, "too_few_words": 1})


class Exploding(Filter):
    """A user filter with a bug on one document."""

    class Params(FilterParams):
        bad_id: str = "b"

    def check(self, doc):
        if doc["id"] == self.params.bad_id:
            raise ValueError("boom")
        return None if len(doc["text"]) > 3 else "too_short"


def test_filter_errors_are_isolated_and_counted():
    st = Exploding(name="exploding")
    table = pa.table({"id": ["a", "b", "c"], "text": ["long enough", "long enough", "no"]})
    out, stats = _run(st, table)
    assert out.column("id").to_pylist() == ["a"]
    assert stats.errors == Counter({"exception:ValueError": 1})
    assert stats.dropped == Counter({"too_short": 1})
