"""Gopher quality rules (Rae et al. 2021, "Scaling Language Models", appendix A).

Each rule drops with its own reason, and every threshold is a parameter; a
threshold set to null disables its rule. Defaults and the exact counting follow
datatrove's GopherQualityFilter, so the two make the same decisions (checked on
real text by tests/test_datatrove_parity.py); docs/filters.md lists the rules.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

from pydantic import Field

from pipelines.schema import TEXT
from pipelines.stage import Filter, FilterParams, Params

from .text import DEFAULT_TOKENIZER, LETTERS, SYMBOL, TOKENIZER_HELP, get_tokenizer, word_kind

STOP_WORDS = ["the", "be", "to", "of", "and", "that", "have", "with"]


class GopherQualityParams(FilterParams):
    min_doc_words: int | None = Field(
        50, description="minimum words, not counting words made only of punctuation or symbols")
    max_doc_words: int | None = Field(100_000, description="maximum words (same count)")
    min_avg_word_length: float | None = Field(3, description="minimum mean word length")
    max_avg_word_length: float | None = Field(10, description="maximum mean word length")
    max_symbol_word_ratio: float | None = Field(
        0.1, description="maximum ratio to all words of '#', and of '...'/'…' (each separately)")
    max_bullet_lines_ratio: float | None = Field(
        0.9, description="maximum share of lines starting with one of `bullets`")
    bullets: list[str] = Field(["•", "-"], description="line starts counted as bullets")
    max_ellipsis_lines_ratio: float | None = Field(
        0.3, description="maximum share of lines ending with '...' or '…'")
    min_alpha_words_ratio: float | None = Field(
        0.8, description="minimum share of words with at least one letter")
    min_stop_words: int | None = Field(
        2, description="minimum number of distinct `stop_words` present (case-sensitive)")
    stop_words: list[str] = Field(STOP_WORDS, description="the stop words")
    tokenizer: str = Field(DEFAULT_TOKENIZER, description=TOKENIZER_HELP)


class GopherQuality(Filter):
    """Gopher's document-quality heuristics; reasons name the rule that fired."""

    Params: ClassVar[type[Params]] = GopherQualityParams
    params: GopherQualityParams
    columns: ClassVar[tuple[str, ...]] = (TEXT,)

    def setup(self) -> None:
        self._split = get_tokenizer(self.params.tokenizer)
        self._stop = frozenset(self.params.stop_words)
        self._bullets = tuple(self.params.bullets)

    def check(self, doc: dict[str, Any]) -> str | None:
        p = self.params
        text = doc[TEXT] or ""
        words = self._split(text)
        n_words = len(words)
        counts = Counter(words)
        n = chars = with_letter = 0
        for w, c in counts.items():
            kind = word_kind(w)
            if kind != SYMBOL:
                n += c
                chars += len(w) * c
                if kind == LETTERS:
                    with_letter += c
        if p.min_doc_words is not None and n < p.min_doc_words:
            return "too_few_words"
        if p.max_doc_words is not None and n > p.max_doc_words:
            return "too_many_words"
        if n:
            avg = chars / n
            if p.min_avg_word_length is not None and avg < p.min_avg_word_length:
                return "avg_word_too_short"
            if p.max_avg_word_length is not None and avg > p.max_avg_word_length:
                return "avg_word_too_long"
        if not n_words:
            return None  # only reachable with min_doc_words disabled: nothing else to measure
        if p.max_symbol_word_ratio is not None:
            if text.count("#") / n_words > p.max_symbol_word_ratio:
                return "too_many_hashes"
            if (text.count("...") + text.count("…")) / n_words > p.max_symbol_word_ratio:
                return "too_many_ellipses"
        lines = text.splitlines()
        if lines and p.max_bullet_lines_ratio is not None:
            bullets = sum(1 for ln in lines if ln.lstrip().startswith(self._bullets))
            if bullets / len(lines) > p.max_bullet_lines_ratio:
                return "too_many_bullet_lines"
        if lines and p.max_ellipsis_lines_ratio is not None:
            ell = sum(1 for ln in lines if ln.rstrip().endswith(("...", "…")))
            if ell / len(lines) > p.max_ellipsis_lines_ratio:
                return "too_many_ellipsis_lines"
        if p.min_alpha_words_ratio is not None:
            if with_letter / n_words < p.min_alpha_words_ratio:
                return "too_few_alpha_words"
        if p.min_stop_words is not None and len(self._stop.intersection(counts)) < p.min_stop_words:
            return "too_few_stop_words"
        return None
