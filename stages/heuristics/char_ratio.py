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

from pydantic import Field

from pipelines.lazy import lazy_module
from pipelines.schema import TEXT
from pipelines.stage import Params
from stages.heuristics.measured import Rule, RuleFilter, RuleTable
from stages.heuristics.per_language import PerLanguageParams

pa = lazy_module("pyarrow")
pc = lazy_module("pyarrow.compute")

# (ratio, regex of the counted characters, denominator)
_RATIOS = [
    ("letter_ratio", r"\p{L}", "visible"),
    ("digit_ratio", r"\p{N}", "visible"),
    ("uppercase_ratio", r"\p{Lu}", "letters"),
    ("punctuation_ratio", r"[\p{P}\p{S}]", "visible"),
    ("whitespace_ratio", r"[\s\p{Z}]", "all"),
]
_SPACE = r"[\s\p{Z}]"
MEASURES = {"visible_chars": "int64"} | {r[0]: "float64" for r in _RATIOS}
RULES = RuleTable(
    MEASURES,
    Rule("visible_chars", None, "zero", "empty"),  # only when a ratio rule is on
    Rule("letter_ratio", "min_letter_ratio", "below", "too_few_letters"),
    Rule("digit_ratio", "max_digit_ratio", "above", "too_many_digits"),
    Rule("uppercase_ratio", "max_uppercase_ratio", "above", "too_many_uppercase"),
    Rule("punctuation_ratio", "max_punctuation_ratio", "above", "too_many_punctuation"),
    Rule("whitespace_ratio", "max_whitespace_ratio", "above", "too_much_whitespace"),
)


class CharRatioParams(PerLanguageParams):
    min_letter_ratio: float | None = Field(
        None, ge=0, le=1, description="minimum share of letters among non-whitespace characters")
    max_digit_ratio: float | None = Field(
        None, ge=0, le=1, description="maximum share of digits among non-whitespace characters")
    max_uppercase_ratio: float | None = Field(
        None, ge=0, le=1, description="maximum share of uppercase letters among letters")
    max_punctuation_ratio: float | None = Field(
        None, ge=0, le=1, description="maximum share of punctuation and symbols among "
                                      "non-whitespace characters")
    max_whitespace_ratio: float | None = Field(
        None, ge=0, le=1, description="maximum share of whitespace among all characters")


class CharRatioFilter(RuleFilter):
    """Drops texts whose share of letters, digits, capitals, punctuation or spaces is off.

    In ``mode: annotate`` every ratio is a column (``<name>_letter_ratio``, ...) with
    ``<name>_visible_chars`` (0: reason ``empty``), which ``thresher materialize``
    decides from.
    """

    Params: ClassVar[type[Params]] = CharRatioParams
    params: CharRatioParams
    rules: ClassVar[RuleTable] = RULES
    table_kind = "char_ratio"

    def check_batch(self, table: pa.Table) -> tuple[list[str | None], dict[str, list]]:
        ratios = {c.measure for c in self.all_checks() if c.limit is not None}
        if not ratios and not self.annotating:
            return [None] * table.num_rows, {}
        m = _measure(pc.fill_null(table.column(TEXT), ""), self.annotating, ratios)
        columns = {f"{self.name}_{k}": v for k, v in m.items()} if self.annotating else {}
        return self._decide(m, table.num_rows, self.batch_languages(table)), columns

    def _decide(self, m: dict[str, pa.Array], n: int,
                languages: list[str | None] | None) -> list[str | None]:
        if all(c.limit is None for c in self.all_checks()):  # no ratio rule: not even "empty"
            return [None] * n
        return self.decide_columns(m, n, languages)

    def decide_from_columns(self, table: pa.Table) -> list[str | None]:
        """`thresher materialize`: the decision at new thresholds from the stored ratios."""
        return self._decide(self.stored_measures(table), table.num_rows,
                            self.stored_languages(table))

    def check(self, doc):
        row = {TEXT: [doc[TEXT]]} | ({"language": [doc.get("language")]}
                                     if self.reads_language() else {})
        reasons, columns = self.check_batch(pa.table(row))
        return reasons[0], {k: v[0].as_py() for k, v in columns.items()}


def _measure(text: pa.Array, every: bool, needed: set[str]) -> dict[str, pa.Array]:
    """Visible characters and the ratios in ``needed`` (all with ``every``), vectorised."""
    total = pc.utf8_length(text)
    space = pc.count_substring_regex(text, _SPACE)
    denominators = {"all": total, "visible": pc.subtract(total, space)}
    out = {"visible_chars": pc.cast(denominators["visible"], pa.int64())}
    for measure, pattern, denominator in _RATIOS:
        if not every and measure not in needed:
            continue
        if denominator not in denominators:
            denominators[denominator] = pc.count_substring_regex(text, r"\p{L}")
        count = space if pattern == _SPACE else pc.count_substring_regex(text, pattern)
        out[measure] = pc.divide(pc.cast(count, pa.float64()),
                                 pc.max_element_wise(denominators[denominator], 1))
    return out
