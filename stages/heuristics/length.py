"""Length filter on characters and whitespace words: vectorised over the batch."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from pipelines.lazy import lazy_module
from pipelines.schema import TEXT
from pipelines.stage import Params
from stages.heuristics.measured import Rule, RuleFilter, RuleTable, check_order
from stages.heuristics.per_language import PerLanguageParams

pa = lazy_module("pyarrow")
pc = lazy_module("pyarrow.compute")

RULES = RuleTable(
    {"chars": "int64", "words": "int64"},
    Rule("chars", "min_chars", "below", "too_short"),
    Rule("chars", "max_chars", "above", "too_long"),
    Rule("words", "min_words", "below", "too_few_words"),
    Rule("words", "max_words", "above", "too_many_words"),
)


class LengthParams(PerLanguageParams):
    min_chars: int | None = Field(None, ge=0, description="drop shorter texts (reason too_short)")
    max_chars: int | None = Field(None, ge=0, description="drop longer texts (reason too_long)")
    min_words: int | None = Field(
        None, ge=0, description="drop texts with fewer whitespace words (reason too_few_words)")
    max_words: int | None = Field(
        None, ge=0, description="drop texts with more whitespace words (reason too_many_words)")

    @model_validator(mode="after")
    def _passable(self):
        """Refuse a range no text fits in."""
        check_order(self, ("min_chars", "max_chars"), ("min_words", "max_words"))
        return self


class LengthFilter(RuleFilter):
    """Drops texts outside [min, max] characters or whitespace-separated words.

    In ``mode: annotate`` the counts are columns ``<name>_chars`` and ``<name>_words``,
    which ``thresher materialize`` decides from (not from the stored text, which a
    later stage such as ``c4`` may have rewritten).
    """

    Params: ClassVar[type[Params]] = LengthParams
    params: LengthParams
    rules: ClassVar[RuleTable] = RULES
    table_kind = "length"

    def check_batch(self, table: pa.Table) -> tuple[list[str | None], dict[str, list]]:
        text = pc.fill_null(table.column(TEXT), "")
        m = {"chars": pc.utf8_length(text)}
        if self.annotating or any(c.measure == "words" for c in self.all_checks()):
            m["words"] = pc.list_value_length(pc.utf8_split_whitespace(text))
        columns = {f"{self.name}_{k}": v.to_pylist() for k, v in m.items()} \
            if self.annotating else {}
        return self.decide_columns(m, table.num_rows, self.batch_languages(table)), columns

    def check(self, doc):
        row = {TEXT: [doc[TEXT]]} | ({"language": [doc.get("language")]}
                                     if self.reads_language() else {})
        reasons, columns = self.check_batch(pa.table(row))
        return reasons[0], {k: v[0] for k, v in columns.items()}
