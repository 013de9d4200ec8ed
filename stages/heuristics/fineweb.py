"""FineWeb's quality rules (Penedo et al. 2024, "The FineWeb Datasets", section 3.3).

Three line-based rules that FineWeb added on top of C4 and Gopher, plus a list
rule, with the thresholds of datatrove's FineWebQualityFilter (the reference
implementation); decisions are checked against it on real text by
tests/test_datatrove_parity.py. Lines are the non-blank lines of the text.

- ``few_terminal_punct_lines``: fewer than 12% of lines end in terminal punctuation;
- ``too_many_short_lines``: more than 67% of lines have at most 30 characters;
- ``too_many_dup_line_chars``: repeated lines hold more than 1% of the characters;
- ``too_many_newlines``: more than 0.3 newlines per word (list-like pages).

In ``mode: annotate`` each measurement is a column (``<name>_lines``,
``<name>_terminal_punct_line_ratio``, ...); the rules are the rows of ``RULES``
(stages/heuristics/measured.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field

from pipelines.lazy import lazy_module
from pipelines.schema import TEXT
from pipelines.stage import Params
from stages.heuristics.measured import Lazy, MeasuredFilter, Rule, RuleTable
from stages.heuristics.per_language import LANGUAGE, PerLanguageParams
from stages.text.words import (
    DEFAULT_TOKENIZER,
    TERMINAL_PUNCTUATION,
    TOKENIZER_HELP,
    clear_word_caches,
    duplicates,
    splitter_for,
)

pa = lazy_module("pyarrow")


class FineWebQualityParams(PerLanguageParams):
    min_terminal_punct_line_ratio: float | None = Field(
        0.12, ge=0, le=1,
        description="minimum share of lines ending in terminal punctuation (. ! ? and "
                    "their equivalents in other scripts)")
    keep_when_no_terminal_punct: bool = Field(
        False, description="skip the previous rule when no line at all ends in punctuation "
                           "(for languages that do not use it)")
    max_short_line_ratio: float | None = Field(
        0.67, ge=0, le=1,
        description="maximum share of lines of at most `short_line_length` characters")
    short_line_length: int = Field(30, ge=0, description="characters")
    max_dup_line_char_ratio: float | None = Field(
        0.01, ge=0, le=1,
        description="maximum share of characters (newlines excluded) in lines that "
                    "repeat an earlier line")
    max_newline_word_ratio: float | None = Field(
        0.3, ge=0, description="maximum newlines per word")
    tokenizer: str = Field(DEFAULT_TOKENIZER, description=TOKENIZER_HELP)


def _no_punctuation_at_all(f: FineWebQuality, m: Mapping[str, Any], doc: dict) -> bool:
    return m["terminal_punct_line_ratio"] == 0 and f.params.keep_when_no_terminal_punct


MEASURES = {
    "lines": "int32", "terminal_punct_line_ratio": "float64",
    "short_line_ratio": "float64", "dup_line_char_ratio": "float64",
    "words": "int32", "newline_word_ratio": "float64",
}
RULES = RuleTable(
    MEASURES,
    Rule("lines", None, "zero", "empty"),
    Rule("terminal_punct_line_ratio", "min_terminal_punct_line_ratio", "below",
         "few_terminal_punct_lines", unless=_no_punctuation_at_all,
         reads=("keep_when_no_terminal_punct",)),
    Rule("short_line_ratio", "max_short_line_ratio", "above", "too_many_short_lines"),
    Rule("dup_line_char_ratio", "max_dup_line_char_ratio", "above", "too_many_dup_line_chars"),
    # the newline rule needs words: with it on, a text without any is dropped
    Rule("words", "max_newline_word_ratio", "zero", "no_words"),
    Rule("newline_word_ratio", "max_newline_word_ratio", "above", "too_many_newlines"),
)


class FineWebQuality(MeasuredFilter):
    """FineWeb's line-punctuation, short-line, duplicate-line and list rules."""

    Params: ClassVar[type[Params]] = FineWebQualityParams
    params: FineWebQualityParams
    columns: ClassVar[tuple[str, ...]] = (TEXT,)
    rules: ClassVar[RuleTable] = RULES

    table_kind = "fineweb_quality"

    def begin_task(self, ctx) -> None:
        clear_word_caches()  # no word cache outlives a task (stages/text/words.py)

    def setup(self) -> None:
        self._split_for = splitter_for(self.params.tokenizer)
        self._stop = tuple(TERMINAL_PUNCTUATION)

    def measure(self, doc: dict[str, Any], full: bool) -> Lazy:
        """Line measurements at once; words (the costly part) when a rule asks."""
        text = doc[TEXT] or ""
        language = doc.get(LANGUAGE)

        def words(m: Lazy, key: str) -> None:
            m["words"] = n = len(self._split_for(language)(text))
            m["newline_word_ratio"] = text.count("\n") / n if n else None

        lines = [ln for ln in text.split("\n") if ln.strip()]
        n = len(lines)
        if not n:
            return Lazy(words, {"lines": 0, "terminal_punct_line_ratio": None,
                                "short_line_ratio": None, "dup_line_char_ratio": None})
        short = sum(1 for ln in lines if len(ln) <= self.params.short_line_length)
        return Lazy(words, {
            "lines": n,
            "terminal_punct_line_ratio": sum(1 for ln in lines if ln.endswith(self._stop)) / n,
            "short_line_ratio": short / n,
            "dup_line_char_ratio": duplicates(lines)[1] / (len(text) - text.count("\n")),
        })
