"""Character-class ratios (letters, digits, uppercase, punctuation, whitespace), vectorised.

Pages that are mostly numbers (tables, price lists), symbols (ASCII art, code
dumps), capitals (spam) or blank space are cheap to spot from character counts.
Counts are Unicode classes, computed over the whole batch with Arrow's regex
kernels, never per document in Python. Every rule is off (null) by default:
there is no one published recipe, so set the ratios your corpus needs, e.g.
``min_letter_ratio: 0.6`` and ``max_digit_ratio: 0.2``.
"""

from __future__ import annotations

from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from pipelines.schema import TEXT
from pipelines.stage import Filter, FilterParams, Params

# (parameter, regex of the counted characters, denominator, reason when out of bounds)
_RULES = [
    ("min_letter_ratio", r"\p{L}", "visible", "too_few_letters"),
    ("max_digit_ratio", r"\p{N}", "visible", "too_many_digits"),
    ("max_uppercase_ratio", r"\p{Lu}", "letters", "too_many_uppercase"),
    ("max_punctuation_ratio", r"[\p{P}\p{S}]", "visible", "too_many_punctuation"),
    ("max_whitespace_ratio", r"[\s\p{Z}]", "all", "too_much_whitespace"),
]


class CharRatioParams(FilterParams):
    min_letter_ratio: float | None = Field(
        None, description="minimum share of letters among non-whitespace characters")
    max_digit_ratio: float | None = Field(
        None, description="maximum share of digits among non-whitespace characters")
    max_uppercase_ratio: float | None = Field(
        None, description="maximum share of uppercase letters among letters")
    max_punctuation_ratio: float | None = Field(
        None, description="maximum share of punctuation and symbols among non-whitespace "
                          "characters")
    max_whitespace_ratio: float | None = Field(
        None, description="maximum share of whitespace among all characters")


class CharRatioFilter(Filter):
    """Drops texts whose share of letters, digits, capitals, punctuation or spaces is off."""

    Params: ClassVar[type[Params]] = CharRatioParams
    params: CharRatioParams

    def check_batch(self, table: pa.Table) -> tuple[list[str | None], dict[str, list]]:
        text = pc.fill_null(table.column(TEXT), "")
        rules = [r for r in _RULES if getattr(self.params, r[0]) is not None]
        if not rules:
            return [None] * table.num_rows, {}
        total = pc.utf8_length(text)
        space = pc.count_substring_regex(text, r"[\s\p{Z}]")
        denominators = {"all": total, "visible": pc.subtract(total, space)}
        if any(r[2] == "letters" for r in rules):
            denominators["letters"] = pc.count_substring_regex(text, r"\p{L}")
        reasons: list[str | None] = [None] * table.num_rows
        for i, empty in enumerate(pc.equal(denominators["visible"], 0).to_pylist()):
            if empty:
                reasons[i] = "empty"
        for param, pattern, denominator, reason in rules:
            limit = getattr(self.params, param)
            count = space if pattern == r"[\s\p{Z}]" else pc.count_substring_regex(text, pattern)
            ratio = pc.divide(pc.cast(count, pa.float64()),
                              pc.max_element_wise(denominators[denominator], 1))
            bad = pc.less(ratio, limit) if param.startswith("min") else pc.greater(ratio, limit)
            for i, b in enumerate(bad.to_pylist()):
                if b and reasons[i] is None:
                    reasons[i] = reason
        return reasons, {}

    def check(self, doc):
        return self.check_batch(pa.table({TEXT: [doc[TEXT]]}))[0][0]
