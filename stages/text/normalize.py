"""Vectorised text normalization and word splitting for hashing (dedup).

Dedup needs the *same* text to give the *same* units on both sides of a comparison,
fast, for any language; it does not need linguistic tokens. So a batch of texts
becomes one numpy array of code points: Unicode normal form first (``unicodedata``,
called only for the texts that hold a character it may change), then a table
lowercases every character (context-free case folding: a word folds the same
wherever it is) and a table built once from the Unicode database classifies it:

- whitespace; punctuation = categories P*, S* and non-space controls; format
  characters (Cf: zero-width space and joiners, soft hyphen, BOM), which are
  deleted under any Unicode normal form; decimal digits (Nd);
- characters of scripts written without spaces (Han, kana, Thai, Lao, Khmer,
  Myanmar), each of which is a word of its own;
- everything else is a word character.

Digits become ``0``, punctuation becomes a space, whitespace runs collapse to one
space; a word is a maximal run of word characters. Whole batches are processed
with a handful of numpy passes instead of regex substitutions or the spaCy tokenizer
(docs/benchmarks.md, MinHash). The table follows the running Python's ``unicodedata`` version.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import numpy as np

WORD, SPACE, PUNCT, FORMAT, DIGIT, SOLO = range(6)  # character classes
_NO_SPACE_SCRIPTS = ((0x0E00, 0x0EFF), (0x1000, 0x109F), (0x1780, 0x17FF), (0x3040, 0x30FF),
                     (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x3134F))


class NormOptions(Protocol):
    """What normalization reads from a spec (e.g. ``MinHashSpec``)."""

    lowercase: bool
    punctuation_as_space: bool
    normalize_digits: bool
    unicode: str  # NFKC, NFC, NFKD, NFD or none
    collapse_whitespace: bool


@lru_cache(maxsize=1)
def char_classes() -> np.ndarray:
    """uint8 class of every code point (built once per process).

    Planes 4-13 have no assigned characters and 15-16 are private use: word characters.
    """
    table = np.full(0x110000, WORD, np.uint8)
    for cp in (*range(0x40000), *range(0xE0000, 0xF0000)):
        ch = chr(cp)
        cat = unicodedata.category(ch)
        if ch.isspace():
            table[cp] = SPACE
        elif cat[0] in "PS" or cat == "Cc":
            table[cp] = PUNCT
        elif cat == "Cf":
            table[cp] = FORMAT
        elif cat == "Nd":
            table[cp] = DIGIT
    for lo, hi in _NO_SPACE_SCRIPTS:
        block = table[lo:hi + 1]
        block[block == WORD] = SOLO
    return table


@dataclass
class Normalized:
    """A normalized batch: code points and classes of all texts, concatenated."""

    cps: np.ndarray   # uint32
    cls: np.ndarray   # uint8: WORD, SPACE or SOLO (and PUNCT if punctuation is kept)
    lens: np.ndarray  # int64 code points per text

    def text(self, i: int) -> str:
        start = int(self.lens[:i].sum())
        return self.cps[start:start + int(self.lens[i])].tobytes().decode("utf-32-le",
                                                                           "surrogatepass")


@lru_cache(maxsize=4)
def _may_change(form: str) -> np.ndarray:
    """True for the code points whose presence can make ``unicodedata.normalize(form)``
    change a text; a text without any is left as it is (most text: the check is one
    numpy gather, the normalization a Python call per text).

    Flagged: characters not in the form on their own, combining marks (reordering,
    composition with the previous character), second halves of canonical pairs
    (e.g. Bengali or Tamil vowel signs that compose with ccc 0), and Hangul jamo.
    """
    second = set()
    for cp in range(0x30000):
        d = unicodedata.decomposition(chr(cp))
        if d and not d.startswith("<") and len(d.split()) == 2:
            second.add(int(d.split()[1], 16))
    table = np.zeros(0x110000, bool)
    for cp in (*range(0x40000), *range(0xE0000, 0xF0000)):
        ch = chr(cp)
        if not unicodedata.is_normalized(form, ch) or unicodedata.combining(ch) or cp in second:
            table[cp] = True
    for lo, hi in ((0x1100, 0x11FF), (0x3130, 0x318F), (0xA960, 0xA97F), (0xD7B0, 0xD7FF)):
        table[lo:hi + 1] = True
    return table


@lru_cache(maxsize=1)
def _lowercase() -> np.ndarray:
    """Case fold of every code point to one code point (only planes 0-1 have case).

    Context-free, unlike str.lower: Σ and ς both become σ, İ becomes i (its combining
    dot is dropped); the one-character case folding where there is one, else the
    first character of the lowercase (ß stays ß).
    """
    table = np.arange(0x110000, dtype=np.uint32)
    for cp in range(0x20000):
        ch = chr(cp)
        fold = ch.casefold()
        low = fold if len(fold) == 1 else ch.lower()
        if low != ch:
            table[cp] = ord(low[0])
    return table


@lru_cache(maxsize=8)
def _tables(lowercase: bool, punctuation_as_space: bool, normalize_digits: bool,
            delete_format: bool, collapse_whitespace: bool) -> tuple[np.ndarray, np.ndarray]:
    """(output code point, output class) of every code point under these options."""
    cls = char_classes().copy()
    cp = _lowercase().copy() if lowercase else np.arange(0x110000, dtype=np.uint32)
    if normalize_digits:
        cp[cls == DIGIT] = ord("0")
    cls[cls == DIGIT] = WORD
    if punctuation_as_space:
        cp[cls == PUNCT] = ord(" ")
        cls[cls == PUNCT] = SPACE
    if collapse_whitespace:
        cp[cls == SPACE] = ord(" ")
    if not delete_format:
        cls[cls == FORMAT] = WORD
    return cp, cls


def segment_counts(mask: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Number of True values of ``mask`` in each consecutive segment of the given lengths."""
    out = np.zeros(len(lens), np.int64)
    full = lens > 0
    if full.any():  # empty segments would confuse reduceat: skip them
        starts = (np.cumsum(lens) - lens)[full]
        out[full] = np.add.reduceat(mask.view(np.uint8), starts, dtype=np.int64)
    return out


def _compact(keep: np.ndarray, lens: np.ndarray, *arrays: np.ndarray) -> tuple:
    """Keep the marked characters: (new lengths per text, *arrays[keep])."""
    return (segment_counts(keep, lens), *(a[keep] for a in arrays))


def _code_points(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    lens = np.fromiter(map(len, texts), np.int64, len(texts))
    return lens, np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), np.uint32)


def normalize_batch(texts: Sequence[str], opts: NormOptions) -> Normalized:
    """Normalize every text; see the module doc for what each option does."""
    form = None if opts.unicode == "none" else opts.unicode
    lens, raw = _code_points(texts)
    if form:
        change = segment_counts(_may_change(form)[raw], lens) > 0
        if change.any():
            lens, raw = _code_points([unicodedata.normalize(form, t) if c else t
                                      for t, c in zip(texts, change.tolist())])
    table_cp, table_cls = _tables(opts.lowercase, opts.punctuation_as_space,
                                  opts.normalize_digits, bool(form), opts.collapse_whitespace)
    cps, cls = table_cp[raw], table_cls[raw]
    if form:
        fmt = cls == FORMAT
        if fmt.any():
            lens, cps, cls = _compact(~fmt, lens, cps, cls)
    if opts.collapse_whitespace and len(cls):
        lens, cps, cls = _collapse(lens, cps, cls)
    return Normalized(cps, cls, lens)


def _collapse(lens: np.ndarray, cps: np.ndarray, cls: np.ndarray) -> tuple:
    """Whitespace runs become one space; no text starts or ends with one.

    A space is kept only right after a non-space of the same text; then the single
    space a text may still end with is dropped.
    """
    solid = cls != SPACE
    keep = solid.copy()
    keep[1:] |= solid[:-1]
    firsts = (np.cumsum(lens) - lens)[lens > 0]
    keep[firsts] = solid[firsts]
    lens, cps, cls = _compact(keep, lens, cps, cls)
    lasts = (np.cumsum(lens) - 1)[lens > 0]
    trailing = lasts[cls[lasts] == SPACE]
    if len(trailing):
        keep = np.ones(len(cls), bool)
        keep[trailing] = False
        lens, cps, cls = _compact(keep, lens, cps, cls)
    return lens, cps, cls


def normalize(text: str, opts: NormOptions) -> str:
    """One text normalized, e.g. 'Ｔｈｅ  2019 Cup!' -> 'the 0000 cup'."""
    return normalize_batch([text], opts).text(0)


def word_spans(norm: Normalized) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start, end, text index) of every word of the batch, in order.

    A word is a maximal run of word characters within one text; a SOLO character
    is a word by itself. With punctuation kept, punctuation is part of words
    (split on whitespace only).
    """
    cls = norm.cls
    inword = (cls != SPACE)
    solo = cls == SOLO
    n = len(cls)
    boundary = np.zeros(n + 1, bool)  # boundary[i]: a text starts or ends at i
    boundary[np.cumsum(norm.lens)] = True
    boundary[0] = True
    prev_in = np.zeros(n, bool)
    prev_in[1:] = inword[:-1]
    prev_solo = np.zeros(n, bool)
    prev_solo[1:] = solo[:-1]
    starts = np.flatnonzero(inword & (~prev_in | solo | prev_solo | boundary[:-1]))
    next_in = np.zeros(n, bool)
    next_in[:-1] = inword[1:]
    next_solo = np.zeros(n, bool)
    next_solo[:-1] = solo[1:]
    ends = np.flatnonzero(inword & (~next_in | solo | next_solo | boundary[1:])) + 1
    doc = np.searchsorted(np.cumsum(norm.lens), starts, side="right")
    return starts, ends, doc


def words(text: str, opts: NormOptions) -> list[str]:
    """The words of one normalized text (for inspection and tests)."""
    norm = normalize_batch([text], opts)
    s = norm.text(0)
    starts, ends, _ = word_spans(norm)
    return [s[a:b] for a, b in zip(starts, ends)]
