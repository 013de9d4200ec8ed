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

A threshold set to null disables its rule. One difference on purpose: n-grams
are compared as word sequences, where datatrove compares the words glued
together (so there "ab c" equals "a bc"); see docs/filters.md.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from pipelines.errors import UserError
from pipelines.schema import TEXT
from pipelines.stage import Filter, FilterParams, Params

from .text import DEFAULT_TOKENIZER, TOKENIZER_HELP, duplicates, get_tokenizer

_PARAGRAPHS = re.compile(r"\n{2,}")
_LINES = re.compile(r"\n+")


class GopherRepetitionParams(FilterParams):
    max_dup_line_ratio: float | None = Field(
        0.3, description="maximum share of lines that repeat an earlier line")
    max_dup_para_ratio: float | None = Field(
        0.3, description="maximum share of paragraphs (split on blank lines) that repeat one")
    max_dup_line_char_ratio: float | None = Field(
        0.2, description="maximum share of the text's characters in repeated lines")
    max_dup_para_char_ratio: float | None = Field(
        0.2, description="maximum share of the text's characters in repeated paragraphs")
    max_top_ngram_char_ratio: dict[int, float] = Field(
        {2: 0.2, 3: 0.18, 4: 0.16},
        description="n -> maximum share of characters covered by the most frequent n-gram")
    max_dup_ngram_char_ratio: dict[int, float] = Field(
        {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10},
        description="n -> maximum share of characters in n-grams that repeat an earlier one")
    tokenizer: str = Field(DEFAULT_TOKENIZER, description=TOKENIZER_HELP)


def _dup_scan(groups: list[int], lengths: list[int], n: int) -> int:
    """Characters of n-grams seen before, scanning left to right and jumping past a repeat."""
    seen: set[int] = set()
    chars = i = 0
    while i < len(groups):
        g = groups[i]
        if g in seen:
            chars += lengths[i]
            i += n
        else:
            seen.add(g)
            i += 1
    return chars


def ngram_rules(words: list[str], size: int, top: dict[int, float],
                dup: dict[int, float]) -> str | None:
    """The first n-gram rule that fires, or None.

    n-grams get exact integer ids, built up one word at a time: the id of an
    (n+1)-gram is the rank of the pair (id of its n-gram prefix, id of its last
    word). One ``np.unique`` per n gives counts and first occurrences, so Python
    only loops over a document's words when its repeats could cross a threshold.
    """
    index = {w: i for i, w in enumerate(dict.fromkeys(words))}
    word_ids = np.fromiter(map(index.__getitem__, words), np.uint64, len(words))
    word_chars = np.fromiter(map(len, words), np.int64, len(words))
    cum = np.concatenate(([0], np.cumsum(word_chars)))
    last_top = max(top, default=0)
    ids = word_ids
    for n in range(2, max([*top, *dup], default=1) + 1):
        if len(words) < n:
            return None  # no n-grams, nor longer ones
        ids = (ids[:-1] << np.uint64(32)) | word_ids[n - 1:]
        _, first, ids, counts = np.unique(ids, return_index=True, return_inverse=True,
                                          return_counts=True)
        ids = ids.astype(np.uint64).ravel()
        chars = cum[n:] - cum[:-n]  # each n-gram's characters, without separators
        if n in top:  # the most frequent n-gram; ties go to the one seen first
            best = counts.max()
            pos = first[counts == best].min()
            if (chars[pos] + n - 1) * int(best) / size > top[n]:
                return f"top_{n}gram_ratio"
        if n in dup:
            # The scan counts disjoint repeated n-grams, so at most the characters of the
            # words that repeated n-grams cover; longer repeated n-grams cover no more.
            repeats = np.flatnonzero(first[ids.astype(np.int64)] != np.arange(len(ids)))
            cover = np.zeros(len(words) + 1, np.int64)
            np.add.at(cover, repeats, 1)
            np.add.at(cover, repeats + n, -1)
            bound = word_chars[np.cumsum(cover[:-1]) > 0].sum() / size
            if bound > dup[n] and _dup_scan(ids.tolist(), chars.tolist(), n) / size > dup[n]:
                return f"dup_{n}gram_ratio"
            if n >= last_top and bound <= min(r for m, r in dup.items() if m >= n):
                return None  # no longer n-gram can cross its threshold
    return None


class GopherRepetition(Filter):
    """Gopher's repetition heuristics: duplicate lines, paragraphs and n-grams."""

    Params: ClassVar[type[Params]] = GopherRepetitionParams
    params: GopherRepetitionParams
    columns: ClassVar[tuple[str, ...]] = (TEXT,)

    def setup(self) -> None:
        self._split = get_tokenizer(self.params.tokenizer)
        p = self.params
        if any(n < 2 for n in [*p.max_top_ngram_char_ratio, *p.max_dup_ngram_char_ratio]):
            raise UserError(f"stage {self.name}: n-gram sizes must be at least 2")

    def check(self, doc: dict[str, Any]) -> str | None:
        p = self.params
        text = doc[TEXT] or ""
        if not text:
            return "empty"
        size = len(text)
        paragraphs = _PARAGRAPHS.split(text.strip())
        n, chars = duplicates(paragraphs)
        if p.max_dup_para_ratio is not None and n / len(paragraphs) > p.max_dup_para_ratio:
            return "dup_para_ratio"
        if p.max_dup_para_char_ratio is not None and chars / size > p.max_dup_para_char_ratio:
            return "dup_para_char_ratio"
        lines = _LINES.split(text)
        n, chars = duplicates(lines)
        if p.max_dup_line_ratio is not None and n / len(lines) > p.max_dup_line_ratio:
            return "dup_line_ratio"
        if p.max_dup_line_char_ratio is not None and chars / size > p.max_dup_line_char_ratio:
            return "dup_line_char_ratio"
        if not p.max_top_ngram_char_ratio and not p.max_dup_ngram_char_ratio:
            return None
        return ngram_rules(self._split(text), size, p.max_top_ngram_char_ratio,
                           p.max_dup_ngram_char_ratio)
