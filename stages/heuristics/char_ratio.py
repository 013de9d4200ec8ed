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

# (measure, regex of the counted characters, denominator)
_MEASURES = [
    ("letter_ratio", r"\p{L}", "visible"),
    ("digit_ratio", r"\p{N}", "visible"),
    ("uppercase_ratio", r"\p{Lu}", "letters"),
    ("punctuation_ratio", r"[\p{P}\p{S}]", "visible"),
    ("whitespace_ratio", r"[\s\p{Z}]", "all"),
]
_SPACE = r"[\s\p{Z}]"
# (parameter, measure, reason when out of bounds), in the order the rules run
_RULES = [
    ("min_letter_ratio", "letter_ratio", "too_few_letters"),
    ("max_digit_ratio", "digit_ratio", "too_many_digits"),
    ("max_uppercase_ratio", "uppercase_ratio", "too_many_uppercase"),
    ("max_punctuation_ratio", "punctuation_ratio", "too_many_punctuation"),
    ("max_whitespace_ratio", "whitespace_ratio", "too_much_whitespace"),
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
    """Drops texts whose share of letters, digits, capitals, punctuation or spaces is off.

    In ``mode: annotate`` every ratio is a column (``<name>_letter_ratio``, ...) with
    ``<name>_visible_chars`` (0: reason ``empty``), which ``thresher materialize``
    decides from.
    """

    Params: ClassVar[type[Params]] = CharRatioParams
    params: CharRatioParams
    materialize_params: ClassVar[frozenset[str]] = frozenset(r[0] for r in _RULES)

    def measure_columns(self) -> dict[str, pa.DataType]:
        return {f"{self.name}_visible_chars": pa.int64()} | {
            f"{self.name}_{m[0]}": pa.float64() for m in _MEASURES}

    def setup(self) -> None:
        if self.params.mode == "annotate":
            self.annotations = self.measure_columns()

    def check_batch(self, table: pa.Table) -> tuple[list[str | None], dict[str, list]]:
        annotate = self.params.mode == "annotate"
        needed = {r[1] for r in _RULES if getattr(self.params, r[0]) is not None}
        if not needed and not annotate:
            return [None] * table.num_rows, {}
        m = _measure(pc.fill_null(table.column(TEXT), ""), annotate, needed)
        columns = {f"{self.name}_{k}": v for k, v in m.items()} if annotate else {}
        return self._decide(m, table.num_rows), columns

    def _decide(self, m: dict[str, pa.Array], n: int) -> list[str | None]:
        rules = [r for r in _RULES if getattr(self.params, r[0]) is not None]
        if not rules:
            return [None] * n
        reasons: list[str | None] = [
            "empty" if e else None for e in pc.equal(m["visible_chars"], 0).to_pylist()]
        for param, measure, reason in rules:
            limit = getattr(self.params, param)
            ratio = m[measure]
            bad = pc.less(ratio, limit) if param.startswith("min") else pc.greater(ratio, limit)
            for i, b in enumerate(bad.to_pylist()):
                if b and reasons[i] is None:
                    reasons[i] = reason
        return reasons

    def decide_from_columns(self, table: pa.Table) -> list[str | None]:
        """`thresher materialize`: the decision at new thresholds from the stored ratios."""
        names = ["visible_chars"] + [m[0] for m in _MEASURES]
        return self._decide({k: table.column(f"{self.name}_{k}") for k in names},
                            table.num_rows)

    def check(self, doc):
        reasons, columns = self.check_batch(pa.table({TEXT: [doc[TEXT]]}))
        return reasons[0], {k: v[0].as_py() for k, v in columns.items()}


def _measure(text: pa.Array, every: bool, needed: set[str]) -> dict[str, pa.Array]:
    """Visible characters and the ratios in ``needed`` (all with ``every``), vectorised."""
    total = pc.utf8_length(text)
    space = pc.count_substring_regex(text, _SPACE)
    denominators = {"all": total, "visible": pc.subtract(total, space)}
    out = {"visible_chars": pc.cast(denominators["visible"], pa.int64())}
    for measure, pattern, denominator in _MEASURES:
        if not every and measure not in needed:
            continue
        if denominator not in denominators:
            denominators[denominator] = pc.count_substring_regex(text, r"\p{L}")
        count = space if pattern == _SPACE else pc.count_substring_regex(text, pattern)
        out[measure] = pc.divide(pc.cast(count, pa.float64()),
                                 pc.max_element_wise(denominators[denominator], 1))
    return out
