"""FineWeb's quality rules (Penedo et al. 2024, "The FineWeb Datasets", section 3.3).

Three line-based rules that FineWeb added on top of C4 and Gopher, plus a list
rule, with the thresholds of datatrove's FineWebQualityFilter (the reference
implementation); decisions are checked against it on real text by
tests/test_datatrove_parity.py. Lines are the non-blank lines of the text.

- ``few_terminal_punct_lines``: fewer than 12% of lines end in terminal punctuation;
- ``too_many_short_lines``: more than 67% of lines have at most 30 characters;
- ``too_many_dup_line_chars``: repeated lines hold more than 1% of the characters;
- ``too_many_newlines``: more than 0.3 newlines per word (list-like pages).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from pipelines.schema import TEXT
from pipelines.stage import Filter, FilterParams, Params

from .text import DEFAULT_TOKENIZER, TERMINAL_PUNCTUATION, TOKENIZER_HELP, duplicates, get_tokenizer


class FineWebQualityParams(FilterParams):
    min_terminal_punct_line_ratio: float | None = Field(
        0.12, description="minimum share of lines ending in terminal punctuation (. ! ? and "
                          "their equivalents in other scripts)")
    keep_when_no_terminal_punct: bool = Field(
        False, description="skip the previous rule when no line at all ends in punctuation "
                           "(for languages that do not use it)")
    max_short_line_ratio: float | None = Field(
        0.67, description="maximum share of lines of at most `short_line_length` characters")
    short_line_length: int = Field(30, description="characters")
    max_dup_line_char_ratio: float | None = Field(
        0.01, description="maximum share of characters (newlines excluded) in lines that "
                          "repeat an earlier line")
    max_newline_word_ratio: float | None = Field(
        0.3, description="maximum newlines per word")
    tokenizer: str = Field(DEFAULT_TOKENIZER, description=TOKENIZER_HELP)


class FineWebQuality(Filter):
    """FineWeb's line-punctuation, short-line, duplicate-line and list rules."""

    Params: ClassVar[type[Params]] = FineWebQualityParams
    params: FineWebQualityParams
    columns: ClassVar[tuple[str, ...]] = (TEXT,)

    def setup(self) -> None:
        self._split = get_tokenizer(self.params.tokenizer)
        self._stop = tuple(TERMINAL_PUNCTUATION)

    def check(self, doc: dict[str, Any]) -> str | None:
        p = self.params
        text = doc[TEXT] or ""
        lines = [ln for ln in text.split("\n") if ln.strip()]
        if not lines:
            return "empty"
        n = len(lines)
        if p.min_terminal_punct_line_ratio is not None:
            ratio = sum(1 for ln in lines if ln.endswith(self._stop)) / n
            if ratio < p.min_terminal_punct_line_ratio and not (
                    ratio == 0 and p.keep_when_no_terminal_punct):
                return "few_terminal_punct_lines"
        if p.max_short_line_ratio is not None:
            short = sum(1 for ln in lines if len(ln) <= p.short_line_length)
            if short / n > p.max_short_line_ratio:
                return "too_many_short_lines"
        if p.max_dup_line_char_ratio is not None:
            dup_chars = duplicates(lines)[1]
            if dup_chars / (len(text) - text.count("\n")) > p.max_dup_line_char_ratio:
                return "too_many_dup_line_chars"
        if p.max_newline_word_ratio is not None:
            words = len(self._split(text))
            if not words:
                return "no_words"
            if text.count("\n") / words > p.max_newline_word_ratio:
                return "too_many_newlines"
        return None
