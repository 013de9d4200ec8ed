"""The numeric core of sub-document dedup: units, window hashes, spans, text edits.

A document is cut into *units* (tokens, sentences or paragraphs), each a piece of the
text with character offsets. A *window* is ``k`` consecutive units of one document;
it is identified by two independent 64-bit hashes (128 bits in all) computed from
per-unit hashes with a polynomial rolling hash, so every window of a batch costs a
few numpy operations, whatever ``k``.

Why windows are enough (ExactSubstr): a unit is inside some span of at least ``k``
units that occurs twice in the corpus exactly when it is inside some window of ``k``
units that occurs twice (every window of a repeated span repeats; a repeated window
is a repeated span of length ``k``). So "remove every repeated span of >= k units" is
"remove the union of the windows whose content occurs more than once", which the
stages compute sharded: hash, partition by hash, count, mark, merge (stages/dedup/
subdoc.py). tests/test_subdoc_dedup.py checks this against a suffix array.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

from pipelines.lazy import lazy_module

np = lazy_module("numpy")
pa = lazy_module("pyarrow")
pc = lazy_module("pyarrow.compute")


MASK = (1 << 64) - 1
# two lanes: (seed of the unit hash, base of the polynomial); bases odd, so invertible
LANES = ((b"thresher-subdoc-1", 0x9E3779B97F4A7C15), (b"thresher-subdoc-2", 0xC2B2AE3D27D4EB4F))
WORD = re.compile(r"\w+|[^\w\s]")  # a word, or one punctuation/symbol character
# a sentence ends after . ! ? (and closing quotes/brackets) followed by whitespace, and at
# a line end; see docs/subdoc_dedup.md
SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s)")
PARAGRAPH = re.compile(r"[^\n]+")
# whitespace as str.isspace and re's \s define it (a test checks), for RE2 (Arrow's regex
# engine), whose \s is ASCII only
SPACE_CHARS = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
               "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


def _re2_class(chars: str) -> str:
    return "[" + "".join(f"\\x{{{ord(c):x}}}" for c in chars) + "]"


_INLINE = SPACE_CHARS.replace("\n", "")  # whitespace within a line
# sentence_strings' three rewrites: a whitespace run with a line break -> one line break;
# any other run that is not one space -> one space; after a sentence end, the space -> a
# line break (once whitespace is normalised, (?=\s) inside a line is "followed by a space")
_BREAK_RUN = f"{_re2_class(_INLINE)}*\\n{_re2_class(SPACE_CHARS)}*"
_SPACE_RUN = f"{_re2_class(_INLINE)}{{2,}}|{_re2_class(_INLINE.replace(' ', ''))}"
_END_SPACE = "([.!?]+[\"'”’)\\]]*) "


def splitmix64(x: np.ndarray) -> np.ndarray:
    """A bijective 64-bit mixer (splitmix64's finalizer), vectorised."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


# ----------------------------------------------------------------------------- units

@dataclass
class Units:
    """The units of a batch of documents, concatenated: ``offsets[d]:offsets[d+1]`` are
    document d's; ``h`` holds the two lanes of unit hashes, shape (2, n)."""

    offsets: np.ndarray  # int64, len = docs + 1
    h: np.ndarray  # uint64 (2, n)


class UnitHasher:
    """Unit strings -> two 64-bit hashes (BLAKE2b of the UTF-8), with a bounded cache.

    The batch's distinct strings are found by Arrow (dictionary encoding, in C++), so
    Python only hashes strings it has not seen."""

    def __init__(self, max_cache: int = 1_000_000, max_cached_chars: int = 32):
        self.cache: dict[str, tuple[int, int]] = {}
        self.max_cache = max_cache
        self.max_cached_chars = max_cached_chars  # longer units (sentences) are rarely seen
        # twice in a process: hashed each time, so the cache stays ~100 bytes an entry

    @staticmethod
    def digests(units: list[str]) -> np.ndarray:
        """(len(units), 2) uint64: the two little-endian halves of each unit's BLAKE2b-128."""
        return blake_rows([u.encode("utf-8", "surrogatepass") for u in units])

    def hashes(self, units: list[str]) -> np.ndarray:
        if not units:
            return np.zeros((2, 0), np.uint64)
        if len(self.cache) > self.max_cache:
            self.cache.clear()
        enc = pa.array(units, pa.large_string()).dictionary_encode()
        uniq = enc.dictionary.to_pylist()
        cache, limit = self.cache, self.max_cached_chars
        table = np.empty((len(uniq), 2), np.uint64)
        todo, hit, vals = [], [], []
        for j, u in enumerate(uniq):
            v = cache.get(u) if len(u) <= limit else None
            if v is None:
                todo.append(j)
            else:
                hit.append(j)
                vals.append(v)
        if hit:
            table[hit] = np.array(vals, np.uint64)
        if todo:
            fresh = self.digests([uniq[j] for j in todo])
            table[todo] = fresh
            for j, a, b in zip(todo, fresh[:, 0].tolist(), fresh[:, 1].tolist()):
                if len(uniq[j]) <= limit:
                    cache[uniq[j]] = (a, b)
        return np.ascontiguousarray(table.T)[:, enc.indices.to_numpy()]  # (2, n)


def blake_rows(blobs: list[bytes]) -> np.ndarray:
    """(len(blobs), 2) uint64 BLAKE2b-128 of each (the digests are joined and read by numpy,
    no Python int per unit)."""
    b2, person = hashlib.blake2b, b"thresher-unit"
    raw = b"".join([b2(u, digest_size=16, person=person).digest() for u in blobs])
    return np.frombuffer(raw, "<u8").reshape(-1, 2)


def string_hashes(strings: pa.Array) -> np.ndarray:
    """(2, n) unit hashes of an Arrow string array, the same as ``UnitHasher``'s, each string
    hashed (no dictionary or cache: for units that rarely repeat in a batch, sentences)."""
    blobs = strings.cast(pa.large_binary()).to_pylist()
    return np.ascontiguousarray(blake_rows(blobs).T) if blobs else np.zeros((2, 0), np.uint64)


def id_hashes(ids: np.ndarray) -> np.ndarray:
    """Two lanes of hashes of integer token ids (a tokenizer's)."""
    ids = np.asarray(ids, dtype=np.uint64)
    return np.stack([splitmix64(ids ^ np.uint64(0x5851F42D4C957F2D)),
                     splitmix64(ids ^ np.uint64(0x14057B7EF767814F))])


# ---------------------------------------------------------------------- splitting

def word_spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in WORD.finditer(text)]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentences without surrounding whitespace: each line is cut after every
    ``SENTENCE_END``; pieces that are only whitespace are no sentence."""
    out = []
    pos, n = 0, len(text)
    while pos < n:
        nl = text.find("\n", pos)
        line_end = n if nl < 0 else nl
        a = pos
        for m in SENTENCE_END.finditer(text, pos, line_end):
            b = m.end()
            lead = len(text[a:b]) - len(text[a:b].lstrip())
            if b > a + lead:
                out.append((a + lead, b))
            a = b
        piece = text[a:line_end]
        core = piece.strip()
        if core:
            lead = len(piece) - len(piece.lstrip())
            out.append((a + lead, a + lead + len(core)))
        pos = line_end + 1
    return out


def sentence_strings(texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """The sentences of every text, whitespace runs collapsed: what ``sentence_spans`` and
    ``normalize_space`` give, computed for the whole column by Arrow (RE2 in C++, no
    Python object per sentence until hashing). Returns (sentences per text, the sentences
    of all texts in order). Normalising first changes no cut: whitespace stays whitespace
    and line breaks stay where they were (tests compare with the per-text functions)."""
    t = pc.fill_null(texts, "")
    t = pc.replace_substring_regex(t, _BREAK_RUN, "\n")
    t = pc.replace_substring_regex(t, _SPACE_RUN, " ")
    t = pc.utf8_trim(t, SPACE_CHARS)
    t = pc.replace_substring_regex(t, _END_SPACE, "\\1\n")
    parts = pc.split_pattern(t, "\n")
    counts = pc.list_value_length(parts).to_numpy(zero_copy_only=False).astype(np.int64)
    empty = pc.equal(t, "").to_numpy(zero_copy_only=False)
    counts[empty] = 0  # an empty text splits into one empty piece, which is no sentence
    flat = pc.list_flatten(parts)
    if empty.any():
        flat = flat.filter(pc.not_equal(flat, ""))
    if isinstance(flat, pa.ChunkedArray):
        flat = flat.combine_chunks()
    return counts, flat


def paragraph_spans(text: str) -> list[tuple[int, int]]:
    """Lines (split on \\n) that are not blank, whole (indentation and trailing spaces
    included: they go with the line); compare them with ``str.strip``."""
    return [m.span() for m in PARAGRAPH.finditer(text) if not m.group().isspace()]


def normalize_space(s: str) -> str:
    return " ".join(s.split())


# ---------------------------------------------------------------------- windows

class Powers:
    """B^j and B^-j mod 2^64 for both lanes, grown on demand."""

    def __init__(self):
        self.n = 0
        self.pow = np.ones((2, 1), np.uint64)
        self.inv = np.ones((2, 1), np.uint64)

    def upto(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if n > self.n:
            m = max(n, 2 * self.n, 1024)
            pw, iv = np.empty((2, m), np.uint64), np.empty((2, m), np.uint64)
            for lane, (_, base) in enumerate(LANES):
                b = np.full(m, base, np.uint64)
                bi = np.full(m, pow(base, -1, 1 << 64), np.uint64)
                b[0] = bi[0] = 1
                with np.errstate(over="ignore"):
                    pw[lane], iv[lane] = np.cumprod(b), np.cumprod(bi)
            self.pow, self.inv, self.n = pw, iv, m
        return self.pow, self.inv


@cache
def _powers() -> Powers:
    """The one growing table of this process (made on first use: no numpy to load a config)."""
    return Powers()


def window_hashes(units: Units, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every window of ``k`` units inside one document: (hashes (2, w), doc index, start
    unit within the document). The hash of units u_0..u_{k-1} in a lane is
    mix(sum_j h(u_j) * B^(k-1-j) mod 2^64), computed from prefix sums of h(u_j) * B^-j."""
    off = units.offsets
    n = int(off[-1])
    lens = np.diff(off)
    nw = np.maximum(lens - k + 1, 0)
    total = int(nw.sum())
    doc = np.repeat(np.arange(len(lens), dtype=np.int64), nw)
    first = np.concatenate([[0], np.cumsum(nw)[:-1]]).astype(np.int64)
    local = np.arange(total, dtype=np.int64) - np.repeat(first, nw)
    start = off[:-1][doc] + local  # global unit index of each window's first unit
    if total == 0:
        return np.zeros((2, 0), np.uint64), doc, local
    pw, iv = _powers().upto(n + 1)
    out = np.empty((2, total), np.uint64)
    with np.errstate(over="ignore"):
        for lane in range(2):
            q = np.zeros(n + 1, np.uint64)
            np.cumsum(units.h[lane] * iv[lane, :n], out=q[1:])
            w = (q[start + k] - q[start]) * pw[lane, start + k - 1]
            out[lane] = splitmix64(w ^ np.uint64(lane + 1))
    return out, doc, local


# ---------------------------------------------------------------------- spans & edits

def merge_marks(keys: np.ndarray, pos: np.ndarray, k: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Union of the unit intervals [pos, pos + k) per key: (key, start, end) sorted, with
    touching intervals merged."""
    if not len(keys):
        e = np.zeros(0, np.int64)
        return np.zeros(0, np.uint64), e, e
    order = np.lexsort((pos, keys))
    keys, pos = keys[order], pos[order].astype(np.int64)
    end = pos + k
    new = np.ones(len(keys), bool)
    # ends are non-decreasing within a key (equal lengths), so the running end is the last
    new[1:] = (keys[1:] != keys[:-1]) | (pos[1:] > end[:-1])
    starts = np.flatnonzero(new)
    ends_idx = np.concatenate([starts[1:], [len(keys)]]) - 1
    return keys[starts], pos[starts], end[ends_idx]


def char_ranges(spans: Sequence[tuple[int, int]], unit_spans: Sequence[tuple[int, int]],
                text: str) -> list[tuple[int, int]]:
    """Character ranges to delete for unit intervals ``spans`` ([start, end) in units).

    The joining rule: an interval is cut from the start of its first unit to the start
    of the next unit after it, so the text resumes at a unit boundary and keeps the
    separator that preceded the interval (a space, a sentence's space, a paragraph's
    newline); an interval that ends the document is cut from the end of the unit before
    it (trailing whitespace goes too)."""
    out = []
    n = len(unit_spans)
    for s, e in spans:
        if e < n:
            a, b = unit_spans[s][0], unit_spans[e][0]
        else:
            a = unit_spans[s - 1][1] if s > 0 else 0
            b = len(text)
        out.append((a, b))
    return out


def cut(text: str, ranges: Sequence[tuple[int, int]]) -> str:
    parts, last = [], 0
    for a, b in ranges:
        parts.append(text[last:a])
        last = b
    parts.append(text[last:])
    return "".join(parts)


def in_context(text: str, ranges: Sequence[tuple[int, int]], width: int = 80,
               limit: int = 5) -> str:
    """The removed ranges in their context, ``…before [-removed-] after…``, for samples."""
    pieces = []
    for a, b in ranges[:limit]:
        pre = text[max(0, a - width):a]
        mid = text[a:b]
        if len(mid) > 4 * width:
            mid = mid[:2 * width] + " … " + mid[-2 * width:]
        pieces.append(f"…{pre}[-{mid}-]{text[b:b + width]}…")
    if len(ranges) > limit:
        pieces.append(f"(+{len(ranges) - limit} more)")
    return "\n".join(pieces)


def bloom_params(n: int, fp: float) -> tuple[int, int]:
    """(bits, hash functions) of a Bloom filter for ``n`` items at false-positive ``fp``."""
    m = int(np.ceil(-n * np.log(fp) / np.log(2) ** 2))
    return max(m, 64), max(1, int(round(m / max(n, 1) * np.log(2))))


def bloom_seen(h1: np.ndarray, h2: np.ndarray, bits: np.ndarray, m: int, n_hash: int,
               chunk: int = 1 << 16) -> np.ndarray:
    """Query-then-insert each item in order into the bit array ``bits`` (uint8, m bits);
    True where the item was (possibly) seen before: every bit was set by an earlier item.
    Chunked and vectorised: within a chunk, an item's bit counts as set when it was set
    before the chunk or by an earlier item of the chunk."""
    n = len(h1)
    out = np.zeros(n, bool)
    g1 = splitmix64(h1)
    g2 = splitmix64(h2) | np.uint64(1)
    for c0 in range(0, n, chunk):
        a, b = g1[c0:c0 + chunk], g2[c0:c0 + chunk]
        r = len(a)
        with np.errstate(over="ignore"):
            pos = np.stack([(a + np.uint64(i) * b) % np.uint64(m) for i in range(n_hash)],
                           axis=1).astype(np.int64)  # (r, n_hash)
        before = (bits[pos >> 3] >> (pos & 7).astype(np.uint8)) & 1
        flat = pos.ravel()
        row = np.repeat(np.arange(r), n_hash)
        uniq, inv = np.unique(flat, return_inverse=True)
        first = np.full(len(uniq), r, np.int64)
        np.minimum.at(first, inv, row)
        set_earlier = first[inv].reshape(r, n_hash) < np.arange(r)[:, None]
        out[c0:c0 + r] = np.all(before.astype(bool) | set_earlier, axis=1)
        np.bitwise_or.at(bits, uniq >> 3, (1 << (uniq & 7)).astype(np.uint8))
    return out


Splitter = Callable[[str], list[tuple[int, int]]]
