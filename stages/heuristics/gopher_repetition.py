"""Gopher repetition rules (Rae et al. 2021, appendix A, table A1).

Documents that repeat themselves (menus, tag clouds, spam, boilerplate) are
dropped when duplicated lines, paragraphs or word n-grams cover too much of the
text. Thresholds are the paper's; the counting follows datatrove's
GopherRepetitionFilter so the two make the same decisions:

- duplicate lines/paragraphs: elements after their first occurrence, as a share
  of all elements and (their characters) of the text's characters;
- top n-gram (n = 2..4): characters of the most frequent n-gram times its count;
- duplicate n-grams (n = 5..10): characters of n-grams already seen, scanning
  left to right and jumping over a repeated n-gram.

A threshold set to null disables its rule. In ``mode: annotate`` each share is a
column named like the reason (``<name>_dup_line_ratio``, ``<name>_top_2gram_ratio``,
...); the rules are the rows of ``RULES`` (stages/heuristics/measured.py). One
difference on purpose: n-grams are compared as word sequences, where datatrove
compares the words glued together (so there "ab c" equals "a bc"); see docs/filters.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, ClassVar

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from pipelines.lazy import lazy_module
from pipelines.schema import TEXT
from pipelines.stage import Params
from stages.heuristics.measured import Lazy, MeasuredFilter, Rule, RuleTable
from stages.heuristics.per_language import LANGUAGE, PerLanguageParams
from stages.text.words import (
    DEFAULT_TOKENIZER,
    TOKENIZER_HELP,
    clear_word_caches,
    duplicates,
    splitter_for,
)

np = lazy_module("numpy")
pa = lazy_module("pyarrow")

_PARAGRAPHS = re.compile(r"\n{2,}")
_LINES = re.compile(r"\n+")


class GopherRepetitionParams(PerLanguageParams):
    max_dup_line_ratio: float | None = Field(
        0.3, ge=0, le=1, description="maximum share of lines that repeat an earlier line")
    max_dup_para_ratio: float | None = Field(
        0.3, ge=0, le=1,
        description="maximum share of paragraphs (split on blank lines) that repeat one")
    max_dup_line_char_ratio: float | None = Field(
        0.2, ge=0, le=1, description="maximum share of the text's characters in repeated lines")
    max_dup_para_char_ratio: float | None = Field(
        0.2, ge=0, le=1,
        description="maximum share of the text's characters in repeated paragraphs")
    max_top_ngram_char_ratio: dict[int, float] = Field(
        {2: 0.2, 3: 0.18, 4: 0.16},
        description="n -> maximum share of characters covered by the most frequent n-gram")
    max_dup_ngram_char_ratio: dict[int, float] = Field(
        {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10},
        description="n -> maximum share of characters in n-grams that repeat an earlier one")
    tokenizer: str = Field(DEFAULT_TOKENIZER, description=TOKENIZER_HELP)

    @field_validator("max_top_ngram_char_ratio", "max_dup_ngram_char_ratio")
    @classmethod
    def _ngram_limits(cls, v: dict[int, float]) -> dict[int, float]:
        """n-grams of one word are words; a share of characters is within [0, 1]."""
        for n, limit in v.items():
            if n < 2:
                raise PydanticCustomError("ngram_size", "n-gram sizes must be at least 2, "
                                          "got {n}", {"n": n})
            if not 0 <= limit <= 1:
                raise PydanticCustomError("ngram_limit", "the limit for n = {n} must be "
                                          "within [0, 1], got {limit}", {"n": n, "limit": limit})
        return v


def _dup_scan(ids: np.ndarray, counts: np.ndarray, chars: np.ndarray, n: int) -> int:
    """Characters of n-grams seen before, scanning left to right and jumping past a repeat.

    Only n-grams that occur more than once can be seen before, and the others change
    nothing by being seen, so the scan visits just the positions of repeated n-grams
    (few in most text) and skips those a jump passed over.
    """
    positions = np.flatnonzero(counts[ids.astype(np.int64)] > 1)
    seen: set[int] = set()
    total = resume = 0
    for p, g, c in zip(positions.tolist(), ids[positions].tolist(),
                       chars[positions].tolist()):
        if p < resume:
            continue
        if g in seen:
            total += c
            resume = p + n
        else:
            seen.add(g)
    return total


class NGrams:
    """Top and duplicate n-gram measurements of one word list, one n at a time.

    n-grams get exact integer ids, built up one word at a time: the id of an
    (n+1)-gram is the rank of the pair (id of its n-gram prefix, id of its last
    word). One ``np.unique`` per n gives counts and first occurrences, so Python
    only loops over a document's words to measure duplicate n-grams, and in filter
    mode (``limits``: the duplicate thresholds) only when their repeats could cross
    the threshold; otherwise the bound stands in for the exact share (both are at
    most the threshold, so they decide the same).
    """

    def __init__(self, words: list[str], size: int, top: Iterable[int], dup: Iterable[int],
                 limits: dict[int, float] | None = None):
        index = {w: i for i, w in enumerate(dict.fromkeys(words))}
        self.word_ids = np.fromiter(map(index.__getitem__, words), np.uint64, len(words))
        self.word_chars = np.fromiter(map(len, words), np.int64, len(words))
        self.cum = np.concatenate(([0], np.cumsum(self.word_chars)))
        self.size, self.top, self.dup, self.limits = size, set(top), set(dup), limits
        self.last_top = max(self.top, default=0)
        self.last = max(self.top | self.dup, default=1)
        self.ids, self.n = self.word_ids, 1

    def fill(self, m: dict, key: str) -> None:
        """Measure n = 2, 3, ... until ``key`` (``top_{n}gram_ratio`` or ``dup_...``) is in m."""
        while key not in m:
            if self.n >= self.last:
                raise KeyError(key)
            self.n += 1
            self._measure(m, self.n)

    def _measure(self, m: dict, n: int) -> None:
        if len(self.word_ids) < n:  # no n-grams, nor longer ones: their rules do not apply
            m.update({f"top_{k}gram_ratio": None for k in self.top if k >= n})
            m.update({f"dup_{k}gram_ratio": None for k in self.dup if k >= n})
            return
        self.ids = (self.ids[:-1] << np.uint64(32)) | self.word_ids[n - 1:]
        _, first, ids, counts = np.unique(self.ids, return_index=True, return_inverse=True,
                                          return_counts=True)
        self.ids = ids = ids.astype(np.uint64).ravel()
        chars = self.cum[n:] - self.cum[:-n]  # each n-gram's characters, without separators
        if n in self.top:  # the most frequent n-gram; ties go to the one seen first
            best = counts.max()
            pos = first[counts == best].min()
            m[f"top_{n}gram_ratio"] = float((chars[pos] + n - 1) * int(best) / self.size)
        if n not in self.dup:
            return
        # The scan counts disjoint repeated n-grams, so at most the characters of the
        # words that repeated n-grams cover; longer repeated n-grams cover no more.
        repeats = np.flatnonzero(first[ids.astype(np.int64)] != np.arange(len(ids)))
        if not len(repeats):  # none, nor of any longer n-gram
            m.update({f"dup_{k}gram_ratio": 0.0 for k in self.dup if k >= n})
            return
        cover = np.zeros(len(self.word_ids) + 1, np.int64)
        np.add.at(cover, repeats, 1)
        np.add.at(cover, repeats + n, -1)
        bound = float(self.word_chars[np.cumsum(cover[:-1]) > 0].sum() / self.size)
        if self.limits is None or bound > self.limits[n]:
            m[f"dup_{n}gram_ratio"] = _dup_scan(ids, counts, chars, n) / self.size
            return
        m[f"dup_{n}gram_ratio"] = bound
        later = [k for k in self.dup if k > n]
        if n >= self.last_top and all(bound <= self.limits[k] for k in later):
            for k in later:  # no longer n-gram can cross its threshold
                m[f"dup_{k}gram_ratio"] = bound


MEASURES = {k: "float64" for k in ("dup_para_ratio", "dup_para_char_ratio", "dup_line_ratio",
                                      "dup_line_char_ratio", "top_{n}gram_ratio",
                                      "dup_{n}gram_ratio")}
RULES = RuleTable(
    MEASURES,
    Rule("dup_para_ratio", None, "null", "empty"),  # only an empty text has no paragraph
    Rule("dup_para_ratio", "max_dup_para_ratio", "above", "dup_para_ratio"),
    Rule("dup_para_char_ratio", "max_dup_para_char_ratio", "above", "dup_para_char_ratio"),
    Rule("dup_line_ratio", "max_dup_line_ratio", "above", "dup_line_ratio"),
    Rule("dup_line_char_ratio", "max_dup_line_char_ratio", "above", "dup_line_char_ratio"),
    # one rule per n of each mapping, by n (top before dup for the same n)
    Rule("top_{n}gram_ratio", "max_top_ngram_char_ratio", "above", "top_{n}gram_ratio",
         per_n=True),
    Rule("dup_{n}gram_ratio", "max_dup_ngram_char_ratio", "above", "dup_{n}gram_ratio",
         per_n=True),
)


class GopherRepetition(MeasuredFilter):
    """Gopher's repetition heuristics: duplicate lines, paragraphs and n-grams."""

    Params: ClassVar[type[Params]] = GopherRepetitionParams
    params: GopherRepetitionParams
    columns: ClassVar[tuple[str, ...]] = (TEXT,)
    rules: ClassVar[RuleTable] = RULES

    table_kind = "gopher_repetition"

    def begin_task(self, ctx) -> None:
        clear_word_caches()  # no word cache outlives a task (stages/text/words.py)

    def setup(self) -> None:
        self._split_for = splitter_for(self.params.tokenizer)

    def measure(self, doc: dict[str, Any], full: bool) -> dict[str, Any]:
        """Line and paragraph measurements at once; n-grams when a rule asks."""
        p = self.params
        text = doc[TEXT] or ""
        if not text:
            return dict.fromkeys(self.measure_types())  # no paragraph: "empty"
        size = len(text)
        paragraphs = _PARAGRAPHS.split(text.strip())
        para_dups, para_chars = duplicates(paragraphs)
        lines = _LINES.split(text)
        line_dups, line_chars = duplicates(lines)
        m = {"dup_para_ratio": para_dups / len(paragraphs),
             "dup_para_char_ratio": para_chars / size,
             "dup_line_ratio": line_dups / len(lines), "dup_line_char_ratio": line_chars / size}
        top, dup = p.max_top_ngram_char_ratio, p.max_dup_ngram_char_ratio
        if not top and not dup:
            return m
        language = doc.get(LANGUAGE)
        limits = None if full else self.params_for(language).max_dup_ngram_char_ratio
        split = self._split_for(language)

        grams: list[NGrams] = []  # split the text only if a rule gets that far

        def ngrams(m: Lazy, key: str) -> None:
            if not grams:
                grams.append(NGrams(split(text), size, top, dup, limits))
            grams[0].fill(m, key)

        return Lazy(ngrams, m)
