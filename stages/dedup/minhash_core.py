"""MinHash LSH near-duplicate detection: the core of the ``minhash`` stage, in numpy.

Everything here is a function of its inputs and a ``MinHashSpec``: no files, no
global state, no Python ``hash()``. The stage (stages/dedup/minhash.py) calls it phase by
phase; the same functions run the evaluation (benchmarks/neardup_set.py). Steps 1-4 for
word shingles run in the compiled kernel where it is built (minhash_native.py); the numpy
functions below (``signatures_numpy``, ``_minhash_numpy``) are its reference and fallback.

Pipeline, per batch of documents, then over all of them:

1. ``normalize`` the text (Unicode form, case, digits, punctuation, whitespace) and
   cut it into tokens, words or characters (stages/text/normalize.py, numpy tables);
2. hash every token to 64 bits: a polynomial in its code points modulo 2**64 for all
   words of the batch at once, finished by a full-avalanche mix (only long crafted
   strings could collide; words are short);
3. combine every ``n`` consecutive token hashes into a shingle hash (vectorised);
4. ``signatures``: for each of ``bands * rows`` permutations ``x -> a*x + b (mod 2**64)``
   keep the minimum over the document's shingles (one numpy pass per permutation
   over the whole batch, ``minimum.reduceat`` per document);
5. ``band_keys``: one 64-bit hash per band of ``rows`` minima;
6. ``candidate_edges``: documents sharing a (band, key) bucket are linked to the
   bucket's smallest document (a star: k-1 edges for k documents, not k^2/2);
7. ``connected_components`` over all edges; a component's label is its smallest
   document key, so the result does not depend on the order of anything.

Word tokens are runs of characters that are neither whitespace nor (after
normalization) punctuation; each character of scripts written without spaces
(Han, kana, Thai, Lao, Khmer, Myanmar) is a token of its own. This is not a
linguistic tokenizer and need not be: dedup only needs the *same* text to give the
same tokens on both sides, and a split that is stable under the edits near
duplicates differ by (punctuation, spacing, case). Splitting with numpy tables costs
far less than the spaCy tokenizer datatrove uses by default (docs/benchmarks.md).

Documents with fewer than ``n`` tokens get one shingle made of all their tokens;
documents with no token (empty, or only punctuation when it counts as a space) get no
shingle, an all-``EMPTY`` signature, and must never become candidates: use
``nonempty`` (or ``band_rows``, which drops them).

Hashes are stable across processes, platforms and numpy versions (permutations come
from BLAKE2b of the seed, not from a numpy generator). Normalization
uses the Unicode tables of the running Python, so a Python upgrade that assigns new
characters can change the signatures of text containing those characters.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np

from stages.dedup import minhash_native as native
from stages.text import normalize as tn

U64 = np.uint64
EMPTY = np.uint64(0xFFFF_FFFF_FFFF_FFFF)  # signature value of a document with no shingle
_MASK = (1 << 64) - 1
_CHUNK = 1 << 17  # shingles per permutation pass: the working array stays in L2 cache
_CHARS = 1 << 19  # code points normalized at once: bounds the working memory to ~40 MB


@dataclass(frozen=True)
class MinHashSpec:
    """Everything that changes signatures and band keys (hashable, validated)."""

    unit: Literal["word", "char"] = "word"
    n: int = 5
    bands: int = 14
    rows: int = 8
    seed: int = 1
    lowercase: bool = True
    punctuation_as_space: bool = True
    normalize_digits: bool = True
    unicode: Literal["NFKC", "NFC", "NFKD", "NFD", "none"] = "NFKC"
    collapse_whitespace: bool = True

    def __post_init__(self) -> None:
        if self.unit not in ("word", "char"):
            raise ValueError(f"unit must be 'word' or 'char', got {self.unit!r}")
        for name in ("n", "bands", "rows"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if not isinstance(self.seed, int) or not 0 <= self.seed <= _MASK:
            raise ValueError(f"seed must be an integer in [0, 2**64), got {self.seed!r}")
        if self.unicode not in ("NFKC", "NFC", "NFKD", "NFD", "none"):
            raise ValueError(f"unicode must be NFKC, NFC, NFKD, NFD or none, got {self.unicode!r}")

    @property
    def num_perm(self) -> int:
        return self.bands * self.rows


# ---------------------------------------------------------------- LSH parameters
def params_for_threshold(threshold: float, num_perm: int, fp_weight: float = 0.5,
                         fn_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) with bands*rows <= num_perm minimising the weighted error areas.

    The same criterion as datasketch's MinHashLSH: the area under the candidate
    probability 1-(1-s^r)^b below the threshold (false positives) and above it
    (false negatives). Both integrands are polynomials of degree <= num_perm, so a
    Gauss-Legendre rule with num_perm/2+1 nodes integrates them exactly.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
    if num_perm < 1:
        raise ValueError(f"num_perm must be >= 1, got {num_perm!r}")
    if fp_weight < 0 or fn_weight < 0 or fp_weight + fn_weight == 0:
        raise ValueError("fp_weight and fn_weight must be >= 0 and not both 0")
    b, r = zip(*[(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)])
    b, r = np.array(b, float)[:, None], np.array(r, float)[:, None]
    x, w = np.polynomial.legendre.leggauss(num_perm // 2 + 1)

    def area(lo: float, hi: float, below: bool) -> np.ndarray:
        s = (hi - lo) / 2 * x + (hi + lo) / 2
        p = 1.0 - (1.0 - s[None, :] ** r) ** b
        return ((p if below else 1.0 - p) @ w) * (hi - lo) / 2

    err = fp_weight * area(0.0, threshold, True) + fn_weight * area(threshold, 1.0, False)
    i = int(np.argmin(err))  # first minimum in (b, r) order, as datasketch's strict <
    return int(b[i, 0]), int(r[i, 0])


# ---------------------------------------------------------------- tokens and hashing
def normalize(text: str, spec: MinHashSpec) -> str:
    """The text as shingling sees it, e.g. 'Ｔｈｅ  2019 Cup!' -> 'the 0000 cup'."""
    return tn.normalize(text, spec)


def tokens(text: str, spec: MinHashSpec) -> list[str]:
    """The units shingles are made of: words (see module doc) or characters."""
    return tn.words(text, spec) if spec.unit == "word" else list(normalize(text, spec))


def _fmix64(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer: a bijection with full avalanche (in place)."""
    x ^= x >> U64(33)
    x *= U64(0xFF51AFD7ED558CCD)
    x ^= x >> U64(33)
    x *= U64(0xC4CEB9FE1A85EC53)
    x ^= x >> U64(33)
    return x


def _blake64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


_BASE = 0x9E3779B97F4A7C15  # odd, so invertible modulo 2**64


@lru_cache(maxsize=4)
def _powers(size: int) -> tuple[np.ndarray, np.ndarray]:
    """_BASE**i and _BASE**-i modulo 2**64 for i < size."""
    up = np.full(size, _BASE, U64)
    down = np.full(size, pow(_BASE, -1, 1 << 64), U64)
    up[0] = down[0] = 1
    return np.cumprod(up, dtype=U64), np.cumprod(down, dtype=U64)


def _char_batches(texts: Sequence[str]) -> Iterator[tuple[int, int]]:
    """(lo, hi) ranges of consecutive texts of about _CHARS code points together (a longer
    text alone): the unit of work that bounds the working memory."""
    lo = 0
    while lo < len(texts):
        hi, size = lo + 1, len(texts[lo])
        while hi < len(texts) and size + len(texts[hi]) <= _CHARS:
            size += len(texts[hi])
            hi += 1
        yield lo, hi
        lo = hi


def _token_hashes(texts: Sequence[str], spec: MinHashSpec) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hash of every token of every text, concatenated, and tokens per text.

    Texts go through in chunks of about _CHARS code points to bound memory. A word's
    hash is a polynomial in its code points, sum c_i * B**i (mod 2**64), computed for
    all words at once from one prefix sum and made position-free by B**-start, then
    mixed with its length by _fmix64: equal words get equal hashes wherever they are.
    """
    out, lens = [], []
    for lo, hi in _char_batches(texts):
        norm = tn.normalize_batch(texts[lo:hi], spec)
        if spec.unit == "char":
            out.append(_fmix64(norm.cps.astype(U64) + U64(_BASE)))
            lens.append(norm.lens)
        else:
            starts, ends, doc = tn.word_spans(norm)
            up, down = _powers(max(_CHARS, 1 << int(len(norm.cps)).bit_length()))
            prefix = np.zeros(len(norm.cps) + 1, U64)
            np.cumsum(norm.cps.astype(U64) * up[:len(norm.cps)], out=prefix[1:])
            h = (prefix[ends] - prefix[starts]) * down[starts]
            out.append(_fmix64(h + (ends - starts).astype(U64) * U64(0xD6E8FEB86659FD93)))
            lens.append(np.bincount(doc, minlength=hi - lo).astype(np.int64))
    if not out:
        return np.zeros(0, U64), np.zeros(0, np.int64)
    return np.concatenate(out), np.concatenate(lens)


def _shingles(tok: np.ndarray, lens: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of all n-token windows of each document, concatenated, and counts per doc.

    A window never crosses a document boundary; a document shorter than n tokens
    gets one window of all its tokens; an empty one gets none. Windows are built for
    every position of the batch with slices (after step j, h[i] combines tokens
    i..i+j), then the ones that cross a boundary are dropped.
    """
    lens = np.asarray(lens, np.int64)
    counts = np.where(lens >= n, lens - n + 1, np.minimum(lens, 1))
    if len(tok) == 0:
        return np.zeros(0, U64), counts
    starts = np.cumsum(lens) - lens
    short = np.flatnonzero((lens > 0) & (lens < n))
    h = tok.copy()
    whole = tok[starts[short]]  # the one shingle of each short document
    for j in range(1, n):
        h[:-j] *= U64(0x100000001B3)
        h[:-j] += tok[j:]
        done = lens[short] == j + 1
        whole[done] = h[starts[short][done]]
    keep = np.ones(len(tok), bool)
    tails = lens >= n  # the last n-1 positions of a document start no full window
    drop = (starts + lens - n + 1)[tails][:, None] + np.arange(n - 1)
    keep[drop.reshape(-1)] = False
    rest = lens[short] - 1  # a short document keeps only its first position
    first = np.repeat(starts[short] + 1 - (np.cumsum(rest) - rest), rest)
    keep[first + np.arange(len(first))] = False
    h[starts[short]] = whole
    return _fmix64(h[keep]), counts


def shingle_hashes(text: str, spec: MinHashSpec) -> np.ndarray:
    """Sorted distinct 64-bit hashes of the text's shingles (its set, for exact Jaccard)."""
    sh, _ = _shingles(*_token_hashes([text], spec), spec.n)
    return np.unique(sh)


def shingle_sets(texts: Sequence[str], spec: MinHashSpec) -> tuple[np.ndarray, np.ndarray]:
    """``shingle_hashes`` of every text, concatenated, and the set size of each."""
    sh, counts = _shingles(*_token_hashes(texts, spec), spec.n)
    doc = np.repeat(np.arange(len(counts)), counts)
    order = np.lexsort((sh, doc))
    sh, doc = sh[order], doc[order]
    new = np.ones(len(sh), bool)
    new[1:] = (sh[1:] != sh[:-1]) | (doc[1:] != doc[:-1])
    return sh[new], np.bincount(doc[new], minlength=len(counts)).astype(np.int64)


@lru_cache(maxsize=64)
def _permutations(seed: int, num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of x -> a*x + b mod 2**64, a odd: a bijection of 64-bit values per row.

    Derived from BLAKE2b of the seed (not from a numpy generator, whose streams
    may change between numpy versions).
    """
    raw = [_blake64(f"thresher-minhash:{seed}:{i}".encode()) for i in range(2 * num_perm)]
    a = np.array(raw[:num_perm], U64) | U64(1)
    return a, np.array(raw[num_perm:], U64)


def _minhash(sh: np.ndarray, counts: np.ndarray, spec: MinHashSpec) -> np.ndarray:
    """(n_docs, num_perm) minima of the permuted shingle hashes; EMPTY rows if no shingle."""
    if native.available():
        return native.perm_min(sh, counts, *_permutations(spec.seed, spec.num_perm))
    return _minhash_numpy(sh, counts, spec)


def _minhash_numpy(sh: np.ndarray, counts: np.ndarray, spec: MinHashSpec) -> np.ndarray:
    """``_minhash`` in numpy passes: the reference of the compiled kernel."""
    a, b = _permutations(spec.seed, spec.num_perm)
    out = np.full((len(counts), spec.num_perm), EMPTY, U64)
    docs = np.flatnonzero(counts)
    ends = np.cumsum(counts[docs])  # end offset of each document's shingles in sh
    lo, s0 = 0, 0
    while lo < len(docs):  # chunks of whole documents, about _CHUNK shingles each
        hi = max(lo + 1, int(np.searchsorted(ends, s0 + _CHUNK, side="right")))
        x = sh[s0:ends[hi - 1]]
        seg = np.concatenate(([0], ends[lo:hi - 1] - s0))
        tmp = np.empty_like(x)
        block = np.empty((hi - lo, spec.num_perm), U64)
        for i in range(spec.num_perm):
            np.multiply(x, a[i], out=tmp)
            np.add(tmp, b[i], out=tmp)
            block[:, i] = np.minimum.reduceat(tmp, seg)
        out[docs[lo:hi]] = block
        lo, s0 = hi, int(ends[hi - 1])
    return out


def signatures(texts: Sequence[str], spec: MinHashSpec) -> np.ndarray:
    """(len(texts), bands*rows) uint64 MinHash signatures; the same for any batching.

    Word shingles run in the compiled kernel where it is built (minhash_native.py), in
    batches of about _CHARS code points; otherwise, and for characters, in numpy passes."""
    if spec.unit != "word" or not native.available():
        return signatures_numpy(texts, spec)
    a, b = _permutations(spec.seed, spec.num_perm)
    out = np.empty((len(texts), spec.num_perm), U64)
    for lo, hi in _char_batches(texts):
        native.word_signatures(texts[lo:hi], spec, spec.n, a, b, out[lo:hi])
    return out


def column_signatures(column, spec: MinHashSpec) -> np.ndarray:
    """``signatures`` of an Arrow string column (an Array or ChunkedArray; nulls are empty
    texts). Word shingles are read from its UTF-8 by the compiled kernel, so most
    documents never become Python strings (minhash_native.utf8_word_signatures)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        column = column.cast(pa.large_string())  # e.g. string_view
    if column.null_count:
        column = pc.fill_null(column, "")
    if spec.unit != "word" or not native.available():
        return signatures(column.to_pylist(), spec)
    a, b = _permutations(spec.seed, spec.num_perm)
    out = np.empty((len(column), spec.num_perm), U64)
    row = 0
    for chunk in column.chunks if isinstance(column, pa.ChunkedArray) else [column]:
        native.utf8_word_signatures(chunk, spec, spec.n, a, b, out[row:row + len(chunk)])
        row += len(chunk)
    return out


def signatures_numpy(texts: Sequence[str], spec: MinHashSpec) -> np.ndarray:
    """``signatures`` in numpy passes: the reference of the compiled kernel."""
    tok, lens = _token_hashes(texts, spec)
    return _minhash_numpy(*_shingles(tok, lens, spec.n), spec)


def signatures_from_shingles(shingles: Sequence[np.ndarray], spec: MinHashSpec) -> np.ndarray:
    """Signatures of given shingle hash sets (e.g. from ``shingle_hashes``)."""
    counts = np.array([len(s) for s in shingles], np.int64)
    flat = np.concatenate([np.asarray(s, U64) for s in shingles]) if shingles else \
        np.zeros(0, U64)
    return _minhash(flat, counts, spec)


def nonempty(sigs: np.ndarray) -> np.ndarray:
    """True for documents that have at least one shingle (only those may be candidates)."""
    return ~np.all(sigs == EMPTY, axis=1)


# ---------------------------------------------------------------- LSH buckets
def band_keys(sigs: np.ndarray, spec: MinHashSpec) -> np.ndarray:
    """(n_docs, bands) uint64: one hash of each band's ``rows`` minima, salted by band.

    Equal keys in the same band mean equal minima (up to 64-bit collisions); the
    band salt makes keys of different bands differ even for equal minima.
    """
    n = sigs.shape[0]
    s = np.ascontiguousarray(sigs, U64).reshape(n, spec.bands, spec.rows)
    k = np.broadcast_to(_fmix64(np.arange(1, spec.bands + 1, dtype=U64)
                                * U64(0x9E3779B97F4A7C15)), (n, spec.bands)).copy()
    for j in range(spec.rows):
        k = _fmix64(k * U64(0x100000001B3) + s[:, :, j])
    return k


def band_rows(sigs: np.ndarray, docs: np.ndarray, spec: MinHashSpec
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat (band int32, key uint64, doc uint64) rows of the documents that have shingles."""
    keep = nonempty(sigs)
    keys = band_keys(sigs[keep], spec)
    m = keys.shape[0]
    return (np.tile(np.arange(spec.bands, dtype=np.int32), m), keys.reshape(-1),
            np.repeat(np.asarray(docs, U64)[keep], spec.bands))


def bucket_partition(band_keys: np.ndarray, n_partitions: int) -> np.ndarray:
    """Partition (0..n_partitions-1) of each band key, same shape: all rows of one
    bucket land in one partition, and every band spreads over all partitions."""
    if n_partitions < 1:
        raise ValueError(f"n_partitions must be >= 1, got {n_partitions!r}")
    h = _fmix64(np.asarray(band_keys, U64) ^ U64(0x5851F42D4C957F2D))
    return (h % U64(n_partitions)).astype(np.int64)


def candidate_edges(band: np.ndarray, key: np.ndarray, doc: np.ndarray) -> np.ndarray:
    """(m, 2) uint64 edges (u < v), sorted and unique: each document of a (band, key)
    bucket linked to the bucket's smallest document."""
    band, key, doc = np.asarray(band), np.asarray(key, U64), np.asarray(doc, U64)
    if len(doc) == 0:
        return np.zeros((0, 2), U64)
    order = np.lexsort((doc, key, band))
    band, key, doc = band[order], key[order], doc[order]
    first = np.ones(len(doc), bool)
    first[1:] = (band[1:] != band[:-1]) | (key[1:] != key[:-1])
    root = doc[np.maximum.accumulate(np.where(first, np.arange(len(doc)), 0))]
    link = doc != root
    return _unique_rows(root[link], doc[link])


def _unique_rows(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    order = np.lexsort((v, u))
    u, v = u[order], v[order]
    new = np.ones(len(u), bool)
    new[1:] = (u[1:] != u[:-1]) | (v[1:] != v[:-1])
    return np.stack([u[new], v[new]], axis=1) if len(u) else np.zeros((0, 2), U64)


# ---------------------------------------------------------------- clustering
def connected_components(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nodes, labels): every node of the edge list, sorted, and the smallest node of its
    component.

    Vectorised hook-and-compress on dense ids (ids are ranks of the sorted node keys,
    so the smallest id is the smallest key): every edge hooks the larger of its two
    roots under the smaller, then pointer jumping flattens every tree. Each round
    at least halves the number of trees that still have an edge between them in
    practice; the work per round is a few numpy passes over the edges.
    """
    edges = np.asarray(edges, U64).reshape(-1, 2)
    nodes, dense = np.unique(edges, return_inverse=True)
    dense = dense.reshape(-1, 2)
    u, v = dense[:, 0], dense[:, 1]
    parent = np.arange(len(nodes))
    while True:
        pu, pv = parent[u], parent[v]
        differ = pu != pv
        if not differ.any():
            break
        pu, pv = pu[differ], pv[differ]
        np.minimum.at(parent, np.maximum(pu, pv), np.minimum(pu, pv))
        # pointer jumping until every node points at its root, over the nodes that do not
        # yet (a shrinking set: most are done after the first jump)
        active = np.flatnonzero(parent[parent] != parent)
        while len(active):
            parent[active] = parent[parent[active]]
            active = active[parent[active] != parent[parent[active]]]
        u, v = u[differ], v[differ]  # edges inside one tree stay there: drop them
    return nodes, nodes[parent]


# ---------------------------------------------------------------- similarity
def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Share of equal minima: an unbiased estimate of the Jaccard similarity."""
    a, b = np.asarray(sig_a, U64), np.asarray(sig_b, U64)
    if a.shape != b.shape:
        raise ValueError(f"signatures differ in length: {a.shape} vs {b.shape}")
    if np.all(a == EMPTY) or np.all(b == EMPTY):
        return 0.0
    return float(np.mean(a == b))


def jaccard(a_hashes: np.ndarray, b_hashes: np.ndarray) -> float:
    """Exact Jaccard similarity of two shingle hash sets; 0.0 if both are empty."""
    a, b = np.unique(a_hashes), np.unique(b_hashes)
    union = len(a) + len(b)
    if union == 0:
        return 0.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (union - inter)


# ---------------------------------------------------------------- sharded clustering
# Connected components without holding the edge list in one process: the large-star and
# small-star operations of Kiveris et al., "Connected Components in MapReduce and Beyond"
# (SoCC 2014), each a function of one node's neighbourhood, so a task can run them on the
# nodes of one hash partition. Alternating them turns every component into a star around
# its smallest node; the edge set they produce is a function of the edge set alone, never
# of how it is partitioned, and neither operation ever adds edges. Rows are directed
# (key, nbr) pairs of uint64 node keys.
_NODE_SALT = U64(0x2545F4914F6CDD1D)


def node_partition(keys: np.ndarray, n_partitions: int) -> np.ndarray:
    """Partition (0..n_partitions-1) of each node key: where its neighbourhood is grouped."""
    if n_partitions < 1:
        raise ValueError(f"n_partitions must be >= 1, got {n_partitions!r}")
    return (_fmix64(np.asarray(keys, U64) ^ _NODE_SALT) % U64(n_partitions)).astype(np.int64)


def _groups(key: np.ndarray, nbr: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows sorted by key; the first row, row count and smallest neighbour of each key."""
    order = np.argsort(key, kind="stable")
    key, nbr = key[order], nbr[order]
    first = np.ones(len(key), bool)
    first[1:] = key[1:] != key[:-1]
    starts = np.flatnonzero(first)
    return key, nbr, starts, np.diff(np.append(starts, len(key))), \
        np.minimum.reduceat(nbr, starts)


def both_ways(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Large-star rows of undirected edges {u, v}: each edge under both of its nodes."""
    u, v = np.asarray(u, U64), np.asarray(v, U64)
    return np.concatenate([u, v]), np.concatenate([v, u])


def large_star(key: np.ndarray, nbr: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Large-star over the nodes of ``key``, whose whole neighbourhoods the rows hold (every
    edge under both nodes, ``both_ways``): each neighbour larger than a node is linked to
    the smallest node of that node's closed neighbourhood.

    Returns the new edges as small-star rows (larger node, smaller node), unique, and
    whether the neighbourhoods seen are already final: every node either a root (all
    neighbours larger) or a leaf (a single neighbour, smaller). When that holds for every
    node of the graph, each component is a star around its smallest node.
    """
    key, nbr = np.asarray(key, U64), np.asarray(nbr, U64)
    if len(key) == 0:
        return np.zeros(0, U64), np.zeros(0, U64), True
    key, nbr, starts, counts, low = _groups(key, nbr)
    node = key[starts]
    stars = bool(np.all((low > node) | ((counts == 1) & (low < node))))
    m = np.repeat(np.minimum(node, low), counts)
    up = nbr > key
    e = _unique_rows(nbr[up], m[up])
    return e[:, 0], e[:, 1], stars


def small_star(key: np.ndarray, nbr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Small-star over rows (node, smaller neighbour), all of them for each node present:
    the node and its smaller neighbours are linked to the smallest of those neighbours.

    Returns the new edges as large-star rows (``both_ways``), unique.
    """
    key, nbr = np.asarray(key, U64), np.asarray(nbr, U64)
    if len(key) == 0:
        return np.zeros(0, U64), np.zeros(0, U64)
    if np.any(nbr >= key):
        raise ValueError("small-star rows must be (node, smaller neighbour)")
    key, nbr, starts, counts, m = _groups(key, nbr)
    mrow = np.repeat(m, counts)
    other = nbr != mrow
    x = np.concatenate([nbr[other], key[starts]])
    lo = np.concatenate([mrow[other], m])
    e = _unique_rows(*both_ways(x, lo))
    return e[:, 0], e[:, 1]


def star_labels(key: np.ndarray, nbr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nodes, labels) of the nodes of ``key`` in a star forest in large-star rows: a root
    labels itself, a leaf takes its neighbour (the root)."""
    key, nbr = np.asarray(key, U64), np.asarray(nbr, U64)
    if len(key) == 0:
        return np.zeros(0, U64), np.zeros(0, U64)
    key, nbr, starts, _, low = _groups(key, nbr)
    node = key[starts]
    return node, np.minimum(node, low)


def star_components(edges: np.ndarray, max_rounds: int = 64
                    ) -> tuple[np.ndarray, np.ndarray, int]:
    """``connected_components`` by alternating large-star and small-star in memory (the
    reference of the sharded step, and how its rounds are counted): (nodes, labels,
    rounds until the large-star input was a star forest)."""
    edges = np.asarray(edges, U64).reshape(-1, 2)
    key, nbr = both_ways(edges[:, 0], edges[:, 1])
    for r in range(max_rounds):
        sk, sn, stars = large_star(key, nbr)
        if stars:
            nodes, labels = star_labels(key, nbr)
            return nodes, labels, r
        key, nbr = small_star(sk, sn)
    raise RuntimeError(f"no star forest after {max_rounds} rounds")
