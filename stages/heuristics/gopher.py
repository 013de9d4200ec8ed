"""Gopher quality rules (Rae et al. 2021, "Scaling Language Models", appendix A).

Each rule drops with its own reason, and every threshold is a parameter; a
threshold set to null disables its rule. Defaults and the exact counting follow
datatrove's GopherQualityFilter, so the two make the same decisions (checked on
real text by tests/test_datatrove_parity.py); docs/filters.md lists the rules.
In ``mode: annotate`` every measurement is written as a column
(``<name>_words``, ``<name>_avg_word_length``, ...), so ``thresher materialize``
can re-decide at new thresholds. The rules are the rows of ``RULES``, in the order
they run (stages/heuristics/measured.py).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

from pydantic import Field, model_validator

from pipelines.lazy import lazy_module
from pipelines.schema import TEXT
from pipelines.stage import Params
from stages.heuristics.measured import MeasuredFilter, Rule, RuleTable, check_order, refuse
from stages.heuristics.per_language import LANGUAGE, PerLanguageParams
from stages.text.words import (
    DEFAULT_TOKENIZER,
    LETTERS,
    SYMBOL,
    TOKENIZER_HELP,
    clear_word_caches,
    splitter_for,
    word_kind,
)

pa = lazy_module("pyarrow")

STOP_WORDS = ["the", "be", "to", "of", "and", "that", "have", "with"]


class GopherQualityParams(PerLanguageParams):
    min_doc_words: int | None = Field(
        50, ge=0,
        description="minimum words, not counting words made only of punctuation or symbols")
    max_doc_words: int | None = Field(100_000, ge=0, description="maximum words (same count)")
    min_avg_word_length: float | None = Field(3, ge=0, description="minimum mean word length")
    max_avg_word_length: float | None = Field(10, ge=0, description="maximum mean word length")
    max_symbol_word_ratio: float | None = Field(
        0.1, ge=0,
        description="maximum ratio to all words of '#', and of '...'/'…' (each separately)")
    max_bullet_lines_ratio: float | None = Field(
        0.9, ge=0, le=1, description="maximum share of lines starting with one of `bullets`")
    bullets: list[str] = Field(["•", "-"], description="line starts counted as bullets")
    max_ellipsis_lines_ratio: float | None = Field(
        0.3, ge=0, le=1, description="maximum share of lines ending with '...' or '…'")
    min_alpha_words_ratio: float | None = Field(
        0.8, ge=0, le=1, description="minimum share of words with at least one letter")
    min_stop_words: int | None = Field(
        2, ge=0, description="minimum number of distinct `stop_words` present (case-sensitive)")
    stop_words: list[str] = Field(STOP_WORDS, description="the stop words")
    tokenizer: str = Field(DEFAULT_TOKENIZER, description=TOKENIZER_HELP)

    @model_validator(mode="after")
    def _passable(self):
        """Refuse thresholds no document can pass."""
        check_order(self, ("min_doc_words", "max_doc_words"),
                    ("min_avg_word_length", "max_avg_word_length"))
        distinct = len(set(self.stop_words))
        if self.min_stop_words is not None and self.min_stop_words > distinct:
            raise refuse(self, "min_stop_words",
                         f"must be at most the number of distinct stop_words ({distinct})")
        return self


MEASURES = {
    "words": "int32", "avg_word_length": "float64", "hash_word_ratio": "float64",
    "ellipsis_word_ratio": "float64", "bullet_line_ratio": "float64",
    "ellipsis_line_ratio": "float64", "alpha_word_ratio": "float64",
    "stop_words": "int32",
}
RULES = RuleTable(
    MEASURES,
    Rule("words", "min_doc_words", "below", "too_few_words"),
    Rule("words", "max_doc_words", "above", "too_many_words"),
    Rule("avg_word_length", "min_avg_word_length", "below", "avg_word_too_short"),
    Rule("avg_word_length", "max_avg_word_length", "above", "avg_word_too_long"),
    Rule("hash_word_ratio", "max_symbol_word_ratio", "above", "too_many_hashes"),
    Rule("ellipsis_word_ratio", "max_symbol_word_ratio", "above", "too_many_ellipses"),
    Rule("bullet_line_ratio", "max_bullet_lines_ratio", "above", "too_many_bullet_lines"),
    Rule("ellipsis_line_ratio", "max_ellipsis_lines_ratio", "above", "too_many_ellipsis_lines"),
    Rule("alpha_word_ratio", "min_alpha_words_ratio", "below", "too_few_alpha_words"),
    Rule("stop_words", "min_stop_words", "below", "too_few_stop_words"),
)
# measures that need at least one word (token) to be taken
_PER_WORD = ("hash_word_ratio", "ellipsis_word_ratio", "bullet_line_ratio",
             "ellipsis_line_ratio", "alpha_word_ratio", "stop_words")


class GopherQuality(MeasuredFilter):
    """Gopher's document-quality heuristics; reasons name the rule that fired."""

    Params: ClassVar[type[Params]] = GopherQualityParams
    params: GopherQualityParams
    columns: ClassVar[tuple[str, ...]] = (TEXT,)
    rules: ClassVar[RuleTable] = RULES
    table_kind = "gopher_quality"
    per_language_extra = frozenset({"stop_words"})

    def begin_task(self, ctx) -> None:
        clear_word_caches()  # no word cache outlives a task (stages/text/words.py)

    def setup(self) -> None:
        self._split_for = splitter_for(self.params.tokenizer)
        self._stop = frozenset(self.params.stop_words)
        self._stop_for = {id(p): frozenset(p.stop_words) for p in self._by_language.values()}
        self._bullets = tuple(self.params.bullets)

    def measure(self, doc: dict[str, Any], full: bool) -> dict[str, Any]:
        """Every measurement: all are cheap once the text is split into words."""
        text = doc[TEXT] or ""
        language = doc.get(LANGUAGE)
        words = self._split_for(language)(text)
        stop = self._stop_for.get(id(self.params_for(language)), self._stop) \
            if self._stop_for else self._stop
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
        m: dict[str, Any] = {"words": n, "avg_word_length": chars / n if n else None}
        if not n_words:  # nothing else to measure
            return m | dict.fromkeys(_PER_WORD)
        m["hash_word_ratio"] = text.count("#") / n_words
        m["ellipsis_word_ratio"] = (text.count("...") + text.count("…")) / n_words
        lines = text.splitlines()
        if lines:
            m["bullet_line_ratio"] = sum(
                1 for ln in lines if ln.lstrip().startswith(self._bullets)) / len(lines)
            m["ellipsis_line_ratio"] = sum(
                1 for ln in lines if ln.rstrip().endswith(("...", "…"))) / len(lines)
        else:
            m["bullet_line_ratio"] = m["ellipsis_line_ratio"] = None
        m["alpha_word_ratio"] = with_letter / n_words
        m["stop_words"] = len(stop.intersection(counts))
        return m
