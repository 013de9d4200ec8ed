"""Vectorised text normalization and word splitting for hashing (dedup).

Dedup needs the *same* text to give the *same* units on both sides of a comparison,
fast, for any language; it does not need linguistic tokens. So a batch of texts
becomes one numpy array of code points: Unicode normal form first (``unicodedata``,
called only for the texts it would change), then a table lowercases every character
(context-free case folding: a word folds the same wherever it is) and a table from
the Unicode database classifies it (both from unicode_data.py's properties: planes 0-3
computed at install, other code points looked up as they first occur):

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

import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from pipelines.lazy import lazy_module
from stages.text import unicode_data
from stages.text.unicode_data import (  # noqa: F401 (the classes, for normalize's users)
    DIGIT,
    FORMAT,
    PUNCT,
    SOLO,
    SPACE,
    WORD,
    case_fold,
    char_class,
)

np = lazy_module("numpy")


class NormOptions(Protocol):
    """What normalization reads from a spec (e.g. ``MinHashSpec``)."""

    lowercase: bool
    punctuation_as_space: bool
    normalize_digits: bool
    unicode: str  # NFKC, NFC, NFKD, NFD or none
    collapse_whitespace: bool


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


UNKNOWN = 255  # the class of a code point not looked up yet (lazily filled tables)


class _Tables:
    """(output code point, output class) of every code point under one set of options.

    Planes 0-3 start from the properties ``make install`` computed (unicode_data.py);
    a code point beyond, or every one without that file, is looked up the first time a
    batch holds it: a corpus holds a few thousand of the 1.1M, and building whole tables
    in Python cost every process a call per code point of planes 0-3
    (tests/test_unicode_data.py and tests/test_minhash_core.py check they all agree).
    """

    def __init__(self, lowercase: bool, punctuation_as_space: bool, normalize_digits: bool,
                 delete_format: bool, collapse_whitespace: bool, prefill: bool = True) -> None:
        self.options = (lowercase, punctuation_as_space, normalize_digits, delete_format,
                        collapse_whitespace)
        self.cp = np.arange(0x110000, dtype=np.uint32)
        self.cls = np.full(0x110000, UNKNOWN, np.uint8)
        data = unicode_data.installed() if prefill else None
        if data is not None:
            end = unicode_data.END
            self.cp[:end], self.cls[:end] = self._derive(self.cp[:end], data.char_class,
                                                         data.case_fold)

    def __call__(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Output code points and classes of the code points ``raw``."""
        cls = self.cls[raw]
        unknown = cls == UNKNOWN
        if unknown.any():
            self.fill(np.unique(raw[unknown]))
            cls = self.cls[raw]
        return self.cp[raw], cls

    def fill(self, new: np.ndarray) -> None:
        """Look up the code points ``new`` (distinct) and enter them in the tables."""
        cps = new.tolist()
        self.cp[new], self.cls[new] = self._derive(
            new, np.fromiter(map(char_class, cps), np.uint8, len(cps)),
            np.fromiter(map(case_fold, cps), np.uint32, len(cps)))

    def _derive(self, cps: np.ndarray, cls: np.ndarray, fold: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        """(output code points, output classes) of ``cps`` from their ``char_class`` and
        ``case_fold``."""
        lowercase, punctuation_as_space, normalize_digits, delete_format, collapse = \
            self.options
        out = (fold if lowercase else cps).astype(np.uint32)
        cls = cls.copy()
        digit = cls == DIGIT
        if normalize_digits:
            out[digit] = ord("0")
        cls[digit] = WORD
        if punctuation_as_space:
            punct = cls == PUNCT
            out[punct], cls[punct] = ord(" "), SPACE
        if collapse:
            out[cls == SPACE] = ord(" ")
        if not delete_format:
            cls[cls == FORMAT] = WORD
        return out, cls


@lru_cache(maxsize=8)
def _tables(lowercase: bool, punctuation_as_space: bool, normalize_digits: bool,
            delete_format: bool, collapse_whitespace: bool) -> _Tables:
    return _Tables(lowercase, punctuation_as_space, normalize_digits, delete_format,
                   collapse_whitespace)


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


def code_points(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    lens = np.fromiter(map(len, texts), np.int64, len(texts))
    return lens, np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), np.uint32)


_TABLES_LOCK = threading.Lock()


def tables(opts: NormOptions) -> _Tables:
    """The (code point, class) tables of the options (shared by every caller in a process;
    threads asking at once for new options get one)."""
    with _TABLES_LOCK:
        return _tables(opts.lowercase, opts.punctuation_as_space, opts.normalize_digits,
                       opts.unicode != "none", opts.collapse_whitespace)


def normalize_batch(texts: Sequence[str], opts: NormOptions) -> Normalized:
    """Normalize every text; see the module doc for what each option does."""
    form = None if opts.unicode == "none" else opts.unicode
    if form:  # is_normalized is a quick check in C for most texts
        texts = [t if unicodedata.is_normalized(form, t) else unicodedata.normalize(form, t)
                 for t in texts]
    lens, raw = code_points(texts)
    cps, cls = tables(opts)(raw)
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
