"""Vectorised text normalization and word splitting for hashing (dedup).

Dedup needs the *same* text to give the *same* units on both sides of a comparison,
fast, for any language; it does not need linguistic tokens. So a batch of texts
becomes one numpy array of code points: Unicode normal form first (``unicodedata``,
called only for the texts it would change), then a table lowercases every character
(context-free case folding: a word folds the same wherever it is) and a table from
the Unicode database classifies it (both filled in as code points first occur):

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

np = lazy_module("numpy")


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


def char_class(cp: int) -> int:
    """The class of one code point, from the running Python's ``unicodedata``.

    Planes 4-13 have no assigned characters and 15-16 are private use: word characters.
    """
    if not (cp < 0x40000 or 0xE0000 <= cp < 0xF0000):
        return WORD
    ch = chr(cp)
    cat = unicodedata.category(ch)
    if ch.isspace():
        return SPACE
    if cat[0] in "PS" or cat == "Cc":
        return PUNCT
    if cat == "Cf":
        return FORMAT
    if cat == "Nd":
        return DIGIT
    if any(lo <= cp <= hi for lo, hi in _NO_SPACE_SCRIPTS):
        return SOLO
    return WORD


def case_fold(cp: int) -> int:
    """Case fold of one code point to one code point (only planes 0-1 have case).

    Context-free, unlike str.lower: Σ and ς both become σ, İ becomes i (its combining
    dot is dropped); the one-character case folding where there is one, else the
    first character of the lowercase (ß stays ß).
    """
    if cp >= 0x20000:
        return cp
    ch = chr(cp)
    fold = ch.casefold()
    return ord((fold if len(fold) == 1 else ch.lower())[0])


class _Tables:
    """(output code point, output class) of every code point under one set of options.

    A code point is looked up the first time a batch holds it: a corpus holds a few
    thousand of the 1.1M, and building whole tables cost every process a Python call
    per code point of planes 0-3 (tests/test_minhash_core.py checks both agree).
    """

    def __init__(self, lowercase: bool, punctuation_as_space: bool, normalize_digits: bool,
                 delete_format: bool, collapse_whitespace: bool) -> None:
        self.options = (lowercase, punctuation_as_space, normalize_digits, delete_format,
                        collapse_whitespace)
        self.cp = np.arange(0x110000, dtype=np.uint32)
        self.cls = np.full(0x110000, UNKNOWN, np.uint8)

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
        looked_up = [self._lookup(c) for c in new.tolist()]
        self.cp[new] = [c for c, _ in looked_up]
        self.cls[new] = [k for _, k in looked_up]

    def _lookup(self, cp: int) -> tuple[int, int]:
        lowercase, punctuation_as_space, normalize_digits, delete_format, collapse = \
            self.options
        cls = char_class(cp)
        out = case_fold(cp) if lowercase else cp
        if cls == DIGIT:
            out = ord("0") if normalize_digits else out
            cls = WORD
        if cls == PUNCT and punctuation_as_space:
            out, cls = ord(" "), SPACE
        if cls == SPACE and collapse:
            out = ord(" ")
        if cls == FORMAT and not delete_format:
            cls = WORD
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
