"""The `datatrove` stage: real datatrove steps inside thresher, reasons and metadata kept."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import DATA

from pipelines import run_pipeline
from pipelines import stage as make_spec
from pipelines.config import JsonlInput, OutputConfig, PipelineConfig
from pipelines.errors import UserError
from pipelines.stats import StageStats

pytest.importorskip("datatrove")
DOCS = DATA / "quality" / "filter-docs.jsonl.gz"


def _rows(n: int) -> list[dict]:
    rows = [json.loads(line) for line in gzip.open(DOCS, "rt", encoding="utf-8")]
    return [{k: r[k] for k in ("id", "text", "url", "kind")} for r in rows[:n]]


def _run(table: pa.Table, **params) -> tuple[pa.Table, StageStats]:
    st = make_spec("datatrove", **params).build()
    st.setup()
    stats = StageStats()
    stats.count_in(table)
    out = st.process(table, stats)
    stats.count_out(out)
    assert stats.balanced()
    return out, stats


def test_datatrove_filter_keeps_its_reasons():
    from datatrove.data import Document
    from datatrove.pipeline.filters import GopherQualityFilter

    rows = _rows(60)
    out, stats = _run(pa.Table.from_pylist(rows),
                      step="datatrove.pipeline.filters:GopherQualityFilter",
                      args={"min_doc_words": 80})
    ref = GopherQualityFilter(min_doc_words=80)
    expected = {}
    for r in rows:
        res = ref.filter(Document(text=r["text"], id=r["id"]))
        if res is not True:
            expected[res[1]] = expected.get(res[1], 0) + 1
    assert dict(stats.dropped) == expected and expected
    assert out.num_rows == len(rows) - sum(expected.values())
    assert all(k.startswith("gopher_") for k in stats.dropped)


def test_datatrove_filter_rewrites_text_and_annotates():
    rows = _rows(40)
    out, stats = _run(pa.Table.from_pylist(rows), step="datatrove.pipeline.filters.C4QualityFilter",
                      mode="annotate")
    assert out.num_rows == len(rows) and stats.n_dropped == 0
    reasons = out.column("datatrove_reason").to_pylist()
    texts = out.column("text").to_pylist()
    originals = [r["text"] for r in rows]
    assert {r for r in reasons if r} <= {"too_few_sentences", "lorem_ipsum", "curly_bracket"}
    assert any(r is None and t != o for r, t, o in zip(reasons, texts, originals))  # cleaned
    assert all(t == o for r, t, o in zip(reasons, texts, originals) if r)  # dropped: untouched


def test_datatrove_metadata_becomes_columns():
    from datatrove.pipeline.filters.base_filter import BaseFilter

    table = pa.Table.from_pylist(_rows(20))
    out, _ = _run(table, step="test_filters_datatrove_adapter:TagLength")
    assert out.column("n_chars").to_pylist() == [float(len(t)) for t in table.column("text")
                                                 .to_pylist()]
    assert out.column("tags").to_pylist()[0] == json.dumps(["a", "b"])
    assert out.column("kind_seen").to_pylist() == table.column("kind").to_pylist()
    out, _ = _run(table, step="test_filters_datatrove_adapter:TagLength",
                  columns={"n_chars": "int64"})
    assert out.schema.field("n_chars").type == pa.int64() and "tags" not in out.schema.names
    assert issubclass(TagLength, BaseFilter)


def test_datatrove_non_filter_step_runs_on_batches():
    rows = _rows(10)
    rows[0]["text"] = "Write to jane.doe@example.com or call from 192.168.10.20 please."
    out, stats = _run(pa.Table.from_pylist(rows),
                      step="datatrove.pipeline.formatters:PIIFormatter")
    assert out.num_rows == 10 and stats.n_dropped == 0
    assert "jane.doe@example.com" not in out.column("text")[0].as_py()


def test_datatrove_errors_are_counted_and_setup_errors_are_one_line():
    table = pa.Table.from_pylist(_rows(5))
    out, stats = _run(table, step="test_filters_datatrove_adapter:TagLength",
                      args={"fail_on": table.column("id")[1].as_py()})
    assert dict(stats.errors) == {"exception:ValueError": 1} and out.num_rows == 4
    with pytest.raises(UserError, match="cannot import step"):
        _run(table, step="datatrove.pipeline.filters:NoSuchFilter")
    with pytest.raises(UserError, match="not a datatrove PipelineStep"):
        _run(table, step="stages.heuristics.gopher:GopherQuality")
    with pytest.raises(UserError, match="cannot build"):
        _run(table, step="datatrove.pipeline.filters:GopherQualityFilter",
             args={"no_such_argument": 1})


def test_datatrove_stage_in_a_pipeline(tmp_path: Path):
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in _rows(80)))
    cfg = PipelineConfig(
        input=JsonlInput(paths=[str(src)]), output=OutputConfig(path=str(tmp_path / "run")),
        stages=[make_spec("datatrove", name="dt_gopher",
                          step="datatrove.pipeline.filters:GopherQualityFilter"),
                make_spec("fineweb_quality")])
    run = run_pipeline(cfg)
    stats = json.loads(run.stats_json.read_text())["stages"]
    assert stats["dt_gopher"]["docs_in"] == 80
    assert set(stats["dt_gopher"]["dropped"]) <= {
        "gopher_short_doc", "gopher_long_doc", "gopher_below_avg_threshold",
        "gopher_above_avg_threshold", "gopher_too_many_hashes", "gopher_too_many_ellipsis",
        "gopher_too_many_bullets", "gopher_too_many_end_ellipsis",
        "gopher_below_alpha_threshold", "gopher_enough_stop_words"}
    rows = pq.read_table(run.data).num_rows
    assert rows == stats["fineweb_quality"]["docs_out"] > 0


try:
    from datatrove.pipeline.filters.base_filter import BaseFilter as _Base
except ImportError:  # pragma: no cover - skipped above
    _Base = object


class TagLength(_Base):
    """A user's datatrove filter that adds metadata (and fails on one document)."""

    name = "tag length"

    def __init__(self, fail_on: str | None = None):
        super().__init__()
        self.fail_on = fail_on

    def filter(self, doc) -> bool:
        if doc.id == self.fail_on:
            raise ValueError("boom")
        doc.metadata["n_chars"] = len(doc.text)
        doc.metadata["tags"] = ["a", "b"]
        doc.metadata["kind_seen"] = doc.metadata.get("kind")
        return True


class WordListFilter(_Base):
    """A user's datatrove filter that reads a word list: the manifest must record it."""

    name = "word list"

    def __init__(self, words_file: str, also: list[str] | None = None):
        super().__init__()
        self.words = Path(words_file).read_text().split()

    def filter(self, doc) -> bool | tuple[bool, str]:
        return (False, "listed_word") if any(w in doc.text for w in self.words) else True


def test_a_file_the_step_reads_is_in_the_manifest(tmp_path: Path):
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in _rows(80)))
    words = tmp_path / "words.txt"
    words.write_text("research\n")
    cfg = PipelineConfig(
        input=JsonlInput(paths=[str(src)]), output=OutputConfig(path=str(tmp_path / "run")),
        stages=[make_spec("datatrove", step="test_filters_datatrove_adapter:WordListFilter",
                          args={"words_file": str(words), "also": ["research", "en"]})])
    run = run_pipeline(cfg)
    manifest = json.loads((run.root / "manifest.json").read_text())
    assert manifest["models"] == [{"path": str(words),
                                   "sha256": hashlib.sha256(words.read_bytes()).hexdigest()}]
    assert json.loads(run.stats_json.read_text())["stages"]["datatrove"]["dropped"][
        "listed_word"] > 0
