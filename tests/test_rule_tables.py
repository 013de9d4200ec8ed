"""Rule tables of the heuristic filters (stages/heuristics/measured.py): the rules run in
the table's order, the columns a filter reads and writes are declared before setup, and
thresholds no document could pass are refused when the config is read, as one line.

Decisions on real text are in test_filters_heuristics.py, test_datatrove_parity.py and
test_materialize.py (which also checks that materialize decides like a direct run).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pytest
from conftest import DATA
from pydantic import Field
from test_cli_errors import assert_user_error, cli

from pipelines import config_from_yaml
from pipelines import stage as make_spec
from pipelines.errors import UserError
from pipelines.stage import FilterParams, TaskContext
from pipelines.stats import StageStats
from stages.heuristics.measured import MeasuredFilter, Rule, RuleTable

HEURISTICS = ["length", "char_ratio", "gopher_quality", "gopher_repetition", "c4",
              "fineweb_quality"]


def _texts(n: int) -> list[str]:
    rows = gzip.open(DATA / "quality" / "filter-docs.jsonl.gz", "rt", encoding="utf-8")
    return [json.loads(line)["text"] for _, line in zip(range(n), rows)]


def _annotate(name: str, table: pa.Table, **params) -> pa.Table:
    st = make_spec(name, mode="annotate", **params).build()
    st.setup()
    st.begin_task(TaskContext(Path("."), "main", 0, "test"))
    return st.process(table, StageStats())


# ----------------------------------------------------------------------------- order

def test_the_first_failing_rule_in_table_order_gives_the_reason():
    """A page that fails several Gopher rules is dropped for the first row that fails;
    switching that rule off (null) gives the next one, and so on down the table."""
    text = "... # # # # ... " + "x " * 20  # few words, short ones, hashes, no stop words
    table = pa.table({"id": ["a"], "text": [text]})
    expected = ["too_few_words", "avg_word_too_short", "too_many_hashes",
                "too_few_alpha_words", "too_few_stop_words", None]
    off: dict[str, Any] = {}
    for reason, param in zip(expected, ["min_doc_words", "min_avg_word_length",
                                        "max_symbol_word_ratio", "min_alpha_words_ratio",
                                        "min_stop_words", None]):
        got = _annotate("gopher_quality", table, **off).column("gopher_quality_reason")
        assert got.to_pylist() == [reason], off
        off[param] = None


def test_ngram_rules_run_by_n_and_their_columns_by_rule():
    """One rule per n of each mapping: they run by n (top before dup for the same n), as
    before the table; the columns are all top sizes, then all dup sizes."""
    st = make_spec("gopher_repetition", mode="annotate",
                   max_top_ngram_char_ratio={6: 0.5, 2: 0.2},
                   max_dup_ngram_char_ratio={5: 0.15, 2: 0.3}).build()
    assert [c.reason for c in st.checks][-4:] == [
        "top_2gram_ratio", "dup_2gram_ratio", "dup_5gram_ratio", "top_6gram_ratio"]
    assert list(st.measure_types())[-4:] == [
        "top_2gram_ratio", "top_6gram_ratio", "dup_2gram_ratio", "dup_5gram_ratio"]
    assert st.measure_param("top_6gram_ratio") == "max_top_ngram_char_ratio (n = 6)"
    assert st.measure_param("dup_para_ratio") == "max_dup_para_ratio"


def test_materialize_params_are_what_the_rules_read():
    """Thresholds and switches the rules read, and nothing that changes what is measured."""
    from pipelines import registry

    got = {name: set(registry.get(name).materialize_params) for name in HEURISTICS}
    assert got["c4"] == {"drop_lorem_ipsum", "drop_curly_bracket", "min_sentences",
                         "bad_words_keep_fraction", "bad_words_seed", "thresholds"}
    assert got["fineweb_quality"] == {"thresholds",
        "min_terminal_punct_line_ratio", "keep_when_no_terminal_punct", "max_short_line_ratio",
        "max_dup_line_char_ratio", "max_newline_word_ratio"}
    assert got["length"] == {"min_chars", "max_chars", "min_words", "max_words", "thresholds"}
    for name in HEURISTICS:
        fields = set(registry.get(name).Params.model_fields)
        assert got[name] <= fields, name
        assert not got[name] & {"tokenizer", "stop_words", "bullets", "bad_words_file",
                                "short_line_length", "split", "mode"}, name


class _Params(FilterParams):
    low: float | None = Field(0.5)
    on: bool = Field(True)


def _unless_big(f: Any, m: Any, doc: dict) -> bool:
    return (m["n"] or 0) > 100


class _Every(MeasuredFilter):
    """Every kind of rule, on measurements given as the document itself."""

    Params: ClassVar[type] = _Params
    rules: ClassVar[RuleTable] = RuleTable(
        {"x": pa.float64(), "n": pa.int64(), "flag": pa.bool_()},
        Rule("x", None, "null", "no_x"),
        Rule("n", "on", "zero", "zero_n"),
        Rule("x", "low", "below", "low_x", unless=_unless_big),
        Rule("x", "low", "above", "high_x"),
        Rule("flag", None, "true", "flagged"),
        Rule("n", "on", "set", "has_n"),
    )

    def measure(self, doc, full):
        return doc


def test_row_and_column_decisions_agree_on_every_kind_of_rule():
    """The per-document ``decide`` and the vectorised ``decide_columns`` read the same
    table the same way, nulls included (a null measurement fails only `null`/`zero`)."""
    rows = [{"x": x, "n": n, "flag": f} for x in (None, 0.0, 0.2, 0.5, 0.9)
            for n in (None, 0, 3, 500) for f in (None, False, True)]
    st = _Every(_Params(low=0.5, on=True), name="every")
    by_row = [st.decide(r) for r in rows]
    assert set(by_row) == {"no_x", "zero_n", "low_x", "high_x", "flagged", "has_n"}
    assert by_row[rows.index({"x": 0.2, "n": 500, "flag": None})] == "has_n"  # unless
    plain = _Every(_Params(low=None, on=True), name="plain")  # no unless rule is on
    columns = {k: pa.array([r[k] for r in rows], t) for k, t in plain.measure_types().items()}
    assert plain.decide_columns(columns, len(rows)) == [plain.decide(r) for r in rows]
    with pytest.raises(TypeError, match="decided row by row"):
        st.decide_columns(columns, len(rows))
    off = _Every(_Params(low=None, on=False), name="off")  # false switches its rules off
    assert [c.reason for c in off.checks] == ["no_x", "flagged"]


def test_a_rule_on_an_undeclared_measure_is_a_bug_found_at_import():
    with pytest.raises(ValueError, match="measure 'y' is not declared"):
        RuleTable({"x": pa.float64()}, Rule("y", "low", "below", "low_y"))
    with pytest.raises(ValueError, match="per_n needs"):
        RuleTable({"x_{n}": pa.float64()}, Rule("x_{n}", "low", "above", "x"))


# ----------------------------------------------------------------------------- declared I/O

def test_columns_are_declared_before_setup(tmp_path):
    """What a filter reads and writes is known from its params alone: setup (which would
    fail here, the word lists do not exist) is not needed to ask."""
    missing = {"en": str(tmp_path / "none.txt")}
    st = make_spec("c4", mode="annotate", bad_words_file=missing).build()
    assert st.required == ("text", "language")
    assert list(st.annotations) == ["text", "c4_lorem_ipsum_line", "c4_curly_bracket_line",
                                    "c4_sentences", "c4_chars", "c4_bad_words"]
    with pytest.raises(UserError, match="cannot read bad_words_file"):
        st.setup()
    plain = make_spec("c4", rewrite_text=False).build()
    assert (plain.required, plain.annotations) == (("text",), {})
    for name in HEURISTICS:
        for mode in ("filter", "annotate"):
            st = make_spec(name, mode=mode).build()
            before = (dict(st.annotations), tuple(st.required), tuple(st.columns))
            st.setup()
            assert (dict(st.annotations), tuple(st.required), tuple(st.columns)) == before
            measures = set(st.measure_columns())
            assert measures and (measures <= set(st.annotations)) == (mode == "annotate")


def test_declared_columns_are_the_columns_written():
    table = pa.table({"id": [f"d{i}" for i in range(40)], "text": _texts(40)})
    for name in HEURISTICS:
        st = make_spec(name, mode="annotate").build()
        declared = {**st.annotations, f"{name}_reason": pa.string()}
        out = _annotate(name, table)
        new = {f.name: f.type for f in out.schema if f.name not in ("id", "text")}
        assert new == {k: t for k, t in declared.items() if k != "text"}, name


# ----------------------------------------------------------------------------- validation

IMPOSSIBLE = [
    # (stage, params as YAML lines, line of the error, key.path, message)
    ("length", ["min_chars: 500", "max_chars: 100"], 9, "max_chars",
     "must be at least min_chars (500), got 100"),
    ("length", ["max_words: 5", "min_words: 10"], 8, "max_words",
     "must be at least min_words (10), got 5"),
    ("length", ["min_chars: -1"], 8, "min_chars", "greater than or equal to 0, got -1"),
    ("gopher_quality", ["min_doc_words: 200000"], 8, "min_doc_words",
     "must be at most max_doc_words (100000), got 200000"),
    ("gopher_quality", ["max_doc_words: 20"], 8, "max_doc_words",
     "must be at least min_doc_words (50), got 20"),
    ("gopher_quality", ["min_avg_word_length: 12", "max_avg_word_length: 4"], 9,
     "max_avg_word_length", "must be at least min_avg_word_length (12), got 4"),
    ("gopher_quality", ["min_alpha_words_ratio: 1.2"], 8, "min_alpha_words_ratio",
     "less than or equal to 1, got 1.2"),
    ("gopher_quality", ["max_symbol_word_ratio: -0.1"], 8, "max_symbol_word_ratio",
     "greater than or equal to 0"),
    ("gopher_quality", ["stop_words: [the, of, the]", "min_stop_words: 3"], 9,
     "min_stop_words", "must be at most the number of distinct stop_words (2), got 3"),
    ("gopher_repetition", ["max_dup_line_ratio: 1.5"], 8, "max_dup_line_ratio",
     "less than or equal to 1"),
    ("gopher_repetition", ["max_top_ngram_char_ratio: {1: 0.2}"], 8,
     "max_top_ngram_char_ratio", "n-gram sizes must be at least 2, got 1"),
    ("gopher_repetition", ["max_dup_ngram_char_ratio: {5: 2}"], 8,
     "max_dup_ngram_char_ratio", "the limit for n = 5 must be within [0, 1], got 2"),
    ("c4", ["min_sentences: -1"], 8, "min_sentences", "greater than or equal to 0"),
    ("c4", ["bad_words_keep_fraction: 2"], 8, "bad_words_keep_fraction",
     "less than or equal to 1"),
    ("fineweb_quality", ["max_short_line_ratio: 67"], 8, "max_short_line_ratio",
     "less than or equal to 1, got 67"),
    ("fineweb_quality", ["max_newline_word_ratio: -1"], 8, "max_newline_word_ratio",
     "greater than or equal to 0"),
    ("char_ratio", ["max_uppercase_ratio: 1.01"], 8, "max_uppercase_ratio",
     "less than or equal to 1"),
]


def _yaml(stage: str, lines: list[str]) -> str:
    params = "".join(f"    {line}\n" for line in lines)
    return ("input:\n  format: jsonl\n  paths: [in.jsonl]\noutput:\n  path: out\n"
            f"stages:\n  - stage: {stage}\n{params}")


@pytest.mark.parametrize("stage,lines,line,key,message", IMPOSSIBLE,
                         ids=[f"{c[0]}-{c[3]}-{i}" for i, c in enumerate(IMPOSSIBLE)])
def test_impossible_thresholds_are_refused_at_the_parameter(stage, lines, line, key, message):
    with pytest.raises(UserError) as err:
        config_from_yaml(_yaml(stage, lines), file="p.yaml")
    assert str(err.value).startswith(f"p.yaml:{line}: stages[0].{key}: "), str(err.value)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_possible_thresholds_pass():
    for stage, lines in [("length", ["min_chars: 100", "max_chars: 100"]),
                         ("gopher_quality", ["min_doc_words: 0", "max_doc_words: 0"]),
                         ("gopher_quality", ["stop_words: [a, b]", "min_stop_words: 2"]),
                         ("gopher_quality", ["max_symbol_word_ratio: 3"]),  # per word
                         ("fineweb_quality", ["max_newline_word_ratio: 2"]),
                         ("gopher_repetition", ["max_dup_ngram_char_ratio: {2: 0, 3: 1}"])]:
        config_from_yaml(_yaml(stage, lines), file="p.yaml")


def test_thresher_validate_prints_one_line(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"id": "a", "text": "hello"}\n')
    (tmp_path / "p.yaml").write_text(_yaml("length", ["min_chars: 500", "max_chars: 100"]))
    assert_user_error(cli("validate", "p.yaml", cwd=tmp_path),
                      "p.yaml:9: stages[0].max_chars: must be at least min_chars (500), "
                      "got 100 (stage 'length')")

