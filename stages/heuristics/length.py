"""Length filter on characters and whitespace words: vectorised over the batch."""

from __future__ import annotations

from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from pipelines.schema import TEXT
from pipelines.stage import Filter, FilterParams, Params


class LengthParams(FilterParams):
    min_chars: int | None = Field(None, description="drop shorter texts (reason too_short)")
    max_chars: int | None = Field(None, description="drop longer texts (reason too_long)")
    min_words: int | None = Field(None, description="drop texts with fewer whitespace words")
    max_words: int | None = None


class LengthFilter(Filter):
    """Drops texts outside [min, max] characters or whitespace-separated words.

    In ``mode: annotate`` the counts are columns ``<name>_chars`` and ``<name>_words``,
    which ``thresher materialize`` decides from (not from the stored text, which a
    later stage such as ``c4`` may have rewritten).
    """

    Params: ClassVar[type[Params]] = LengthParams
    params: LengthParams
    materialize_params: ClassVar[frozenset[str]] = frozenset(
        {"min_chars", "max_chars", "min_words", "max_words"})

    def measure_columns(self) -> dict[str, pa.DataType]:
        return {f"{self.name}_chars": pa.int64(), f"{self.name}_words": pa.int64()}

    def setup(self) -> None:
        if self.params.mode == "annotate":
            self.annotations = self.measure_columns()

    def check_batch(self, table: pa.Table) -> tuple[list[str | None], dict[str, list]]:
        p = self.params
        annotate = p.mode == "annotate"
        text = pc.fill_null(table.column(TEXT), "")
        chars = pc.utf8_length(text).to_pylist()
        need_words = annotate or p.min_words is not None or p.max_words is not None
        words = (pc.list_value_length(pc.utf8_split_whitespace(text)).to_pylist()
                 if need_words else [0] * len(chars))
        columns = dict(zip(self.measure_columns(), (chars, words))) if annotate else {}
        return self._decide(chars, words), columns

    def _decide(self, chars: list[int], words: list[int]) -> list[str | None]:
        p = self.params
        reasons: list[str | None] = []
        for c, w in zip(chars, words):
            if p.min_chars is not None and c < p.min_chars:
                reasons.append("too_short")
            elif p.max_chars is not None and c > p.max_chars:
                reasons.append("too_long")
            elif p.min_words is not None and w < p.min_words:
                reasons.append("too_few_words")
            elif p.max_words is not None and w > p.max_words:
                reasons.append("too_many_words")
            else:
                reasons.append(None)
        return reasons

    def decide_from_columns(self, table: pa.Table) -> list[str | None]:
        """`thresher materialize`: the decision at new thresholds from the stored counts."""
        chars, words = (table.column(c).to_pylist() for c in self.measure_columns())
        return self._decide(chars, words)

    def check(self, doc):
        reasons, columns = self.check_batch(pa.table({TEXT: [doc[TEXT]]}))
        return reasons[0], {k: v[0] for k, v in columns.items()}
