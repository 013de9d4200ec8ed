"""Gopher quality rules (Rae et al. 2021, "Scaling Language Models", appendix A).

Each rule drops with its own reason, and every threshold is a parameter; a
threshold set to null disables its rule. Defaults follow the paper and
datatrove's GopherQualityFilter.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pyarrow as pa
from pydantic import Field

from pipelines.schema import TEXT
from pipelines.stage import Filter, FilterParams, Params

from .text import TOKENIZERS, is_symbol_word

STOP_WORDS = ["the", "be", "to", "of", "and", "that", "have", "with"]


class GopherQualityParams(FilterParams):
    min_doc_words: int | None = Field(50, description="minimum words (not counting punctuation)")
    max_doc_words: int | None = 100_000
    min_avg_word_length: float | None = 3
    max_avg_word_length: float | None = 10
    max_symbol_word_ratio: float | None = Field(
        0.1, description="maximum ratio of '#' and of '...'/'…' to words (each separately)")
    max_bullet_lines_ratio: float | None = Field(
        0.9, description="maximum share of lines starting with a bullet")
    max_ellipsis_lines_ratio: float | None = Field(
        0.3, description="maximum share of lines ending with an ellipsis")
    max_non_alpha_words_ratio: float | None = Field(
        0.8, description="minimum share of words with at least one letter (the paper's 80% rule)")
    min_stop_words: int | None = Field(2, description="minimum count of `stop_words` present")
    stop_words: list[str] = STOP_WORDS
    tokenizer: str = Field("regex", description="word splitter: " + ", ".join(TOKENIZERS))


class GopherQuality(Filter):
    """Gopher's document-quality heuristics; reasons name the rule that fired."""

    Params: ClassVar[type[Params]] = GopherQualityParams
    params: GopherQualityParams
    columns: ClassVar[tuple[str, ...]] = (TEXT,)
    annotations: ClassVar[dict[str, pa.DataType]] = {}

    def setup(self) -> None:
        if self.params.tokenizer not in TOKENIZERS:
            from pipelines.errors import UserError

            raise UserError(f"stage {self.name}: unknown tokenizer {self.params.tokenizer!r}; "
                            f"expected one of: {', '.join(TOKENIZERS)}")
        self._split = TOKENIZERS[self.params.tokenizer]
        self._stop = frozenset(self.params.stop_words)

    def check(self, doc: dict[str, Any]) -> str | None:
        p = self.params
        text = doc[TEXT] or ""
        words = self._split(text)
        n_words = len(words)
        content_words = [w for w in words if not is_symbol_word(w)]
        n = len(content_words)
        if p.min_doc_words is not None and n < p.min_doc_words:
            return "too_few_words"
        if p.max_doc_words is not None and n > p.max_doc_words:
            return "too_many_words"
        avg = sum(map(len, content_words)) / n if n else 0.0
        if p.min_avg_word_length is not None and avg < p.min_avg_word_length:
            return "avg_word_too_short"
        if p.max_avg_word_length is not None and avg > p.max_avg_word_length:
            return "avg_word_too_long"
        if p.max_symbol_word_ratio is not None and n_words:
            if text.count("#") / n_words > p.max_symbol_word_ratio:
                return "too_many_hashes"
            if (text.count("...") + text.count("…")) / n_words > p.max_symbol_word_ratio:
                return "too_many_ellipses"
        lines = text.splitlines()
        if lines:
            if p.max_bullet_lines_ratio is not None:
                bullets = sum(1 for ln in lines if ln.lstrip().startswith(("•", "-", "*", "●")))
                if bullets / len(lines) > p.max_bullet_lines_ratio:
                    return "too_many_bullet_lines"
            if p.max_ellipsis_lines_ratio is not None:
                ell = sum(1 for ln in lines if ln.rstrip().endswith(("...", "…")))
                if ell / len(lines) > p.max_ellipsis_lines_ratio:
                    return "too_many_ellipsis_lines"
        if p.max_non_alpha_words_ratio is not None and n_words:
            alpha = sum(1 for w in words if any(ch.isalpha() for ch in w))
            if alpha / n_words < p.max_non_alpha_words_ratio:
                return "too_few_alpha_words"
        if p.min_stop_words is not None:
            if sum(1 for w in words if w.lower() in self._stop) < p.min_stop_words:
                return "too_few_stop_words"
        return None
