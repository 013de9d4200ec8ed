"""The compiled MinHash kernel (minhash_kernel.c), loaded with ctypes.

``make install`` compiles it to ``_minhash_kernel.so`` next to this file. It gives exactly
the numpy path's signatures (minhash_core's ``*_numpy`` functions stay the reference, and
tests/test_minhash_native.py holds the two equal), about an order of magnitude faster for
word shingles (docs/benchmarks.md). Two entry points: ``utf8_word_signatures`` reads an
Arrow text column's UTF-8 and normalizes in C (what the stage uses); ``word_signatures``
takes Python strings. The Unicode data the kernel reads (quick check, decompositions,
combining classes, composition pairs, normalization classes) are tables of the running
Python's ``unicodedata``: planes 0-3 from what ``make install`` computed
(stages/text/unicode_data.py), other code points filled in as they first occur. Without
the library, because there was no C compiler or the library is older than its source,
thresher says so once and runs the numpy path: same output, slower.
``THRESHER_MINHASH_KERNEL=numpy`` chooses the numpy path on purpose.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import threading
import unicodedata
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path

from pipelines.lazy import lazy_module
from stages.text import normalize as tn
from stages.text import unicode_data

np = lazy_module("numpy")
pa = lazy_module("pyarrow")

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("minhash_kernel.c")
LIBRARY = Path(__file__).with_name("_minhash_kernel.so")
ABI = 4  # THR_KERNEL_ABI of the source
_UNKNOWN_BATCH = 4096  # code points looked up per round of thr_unknown
FORM_UNKNOWN, FORM_EXPANDS = 0xFFFFFFFF, 0x80000000  # as in minhash_kernel.c
QC_NOT_YES = 253  # as in minhash_kernel.c
DOC_DONE, DOC_UNKNOWN = 0, 2  # a document's status after a kernel call (DOC_* in the source)
FORM_NONE, FORM_DECOMPOSED, FORM_COMPOSED = 0, 1, 2  # as in minhash_kernel.c
PAIR_FIRST, PAIR_SECOND = 1, 2  # as in minhash_kernel.c
# The kernel runs without the GIL (ctypes releases it), and a table entry being looked up is
# marked pending: finding and filling unknown code points is one critical section, so a
# thread never meets another's pending entries (it only reads entries it found filled).
_FILLING = threading.Lock()
_CREATING = threading.RLock()  # a table built inside another's construction: reentrant


def _shared(make: Callable) -> Callable:
    """``functools.cache`` whose first calls for a key from several threads at once build
    one object: a table is filled under _FILLING, so each must exist once per process."""
    cached = cache(make)

    def get(*key):
        with _CREATING:
            return cached(*key)
    return get


def source_tag() -> str:
    """What the Makefile compiles into the library: 16 hex digits of the source's sha256."""
    return hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]


@cache
def kernel() -> ctypes.CDLL | None:
    """The loaded library, or None (numpy path) with the reason logged once."""
    if os.environ.get("THRESHER_MINHASH_KERNEL", "").lower() == "numpy":
        return None
    if not LIBRARY.exists():
        log.warning("the compiled MinHash kernel is not built (%s): running the numpy path "
                    "(same signatures, slower); `make install` builds it", LIBRARY)
        return None
    lib = ctypes.CDLL(str(LIBRARY))
    lib.thr_kernel_source.restype = ctypes.c_char_p
    built = lib.thr_kernel_source().decode()
    if lib.thr_kernel_abi() != ABI or built != source_tag():
        log.warning("the compiled MinHash kernel %s was built from another version of %s: "
                    "running the numpy path; `make install` rebuilds it", LIBRARY, SOURCE.name)
        return None
    u64, i64 = (np.ctypeslib.ndpointer(t, flags="C_CONTIGUOUS") for t in (np.uint64, np.int64))
    u32, u8 = (np.ctypeslib.ndpointer(t, flags="C_CONTIGUOUS") for t in (np.uint32, np.uint8))
    w32, w64, w8 = (np.ctypeslib.ndpointer(t, flags="C_CONTIGUOUS,WRITEABLE")
                    for t in (np.uint32, np.uint64, np.uint8))  # written to
    n = ctypes.c_int64
    lib.thr_unknown.argtypes = [u32, n, w8, w32, n]
    lib.thr_unknown.restype = n
    lib.thr_perm_min.argtypes = [u64, i64, n, u64, u64, n, w64]
    lib.thr_perm_min.restype = None
    lib.thr_form_length.argtypes = [u32, n, u32, i64, n]
    lib.thr_form_length.restype = n
    lib.thr_map_form.argtypes = [u32, n, u32, i64, i64, u32, w32]
    lib.thr_map_form.restype = None
    form = [n, u8, u32, i64, i64, u32, n, u8, u8, u64, u32, n]  # FORM_PARAMS
    rest = [u32, u8, n, u64, u64, n, w64, w8]
    lib.thr_utf8_word_signatures.argtypes = [u8, i64, i64, n, *form, *rest]
    lib.thr_utf8_word_signatures.restype = n
    lib.thr_word_signatures.argtypes = [u32, i64, i64, n, *form, *rest]
    lib.thr_word_signatures.restype = n
    return lib


def available() -> bool:
    return kernel() is not None


def _look_up_new(find: Callable[[np.ndarray], int], fill: Callable[[np.ndarray], None],
                 table: np.ndarray, unknown: int) -> None:
    """Fill ``table`` for every code point the kernel's ``find`` reports unknown (it writes
    them to its buffer, marked pending, and returns how many there are), batch by batch."""
    buf = np.empty(_UNKNOWN_BATCH, np.uint32)
    with _FILLING:
        while found := find(buf):
            new = buf[:min(found, len(buf))]
            try:
                fill(new)
            except BaseException:
                table[new] = unknown  # marked pending by the kernel: not looked up
                raise


def perm_min(sh: np.ndarray, counts: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n_docs, len(a)) minima of a*x + b over each document's shingles (``counts[d]`` of
    ``sh`` in turn); all-EMPTY rows for documents with none."""
    counts = np.ascontiguousarray(counts, np.int64)
    out = np.empty((len(counts), len(a)), np.uint64)
    kernel().thr_perm_min(np.ascontiguousarray(sh, np.uint64), counts, len(counts), a, b,
                          len(a), out)
    return out


def word_signatures(texts: Sequence[str], opts: tn.NormOptions, n: int, a: np.ndarray,
                    b: np.ndarray, out: np.ndarray) -> None:
    """Signatures of ``texts`` under ``n``-word shingles into ``out`` (len(texts), len(a)).

    The caller bounds the batch (its code points are one array here)."""
    lens, raw = tn.code_points(texts)
    ends = np.cumsum(lens)
    _signatures(kernel().thr_word_signatures, raw, ends - lens, ends,
                lambda rows: [texts[i] for i in rows.tolist()], opts, n, a, b, out)


_NO_BYTES = np.zeros(1, np.uint8)


def utf8_word_signatures(column: pa.Array, opts: tn.NormOptions, n: int, a: np.ndarray,
                         b: np.ndarray, out: np.ndarray) -> None:
    """``word_signatures`` of an Arrow string or large_string array without nulls, read
    from its UTF-8: its documents never become Python strings, except the few holding a
    code point not met before (looked up, once) and bytes that are not UTF-8 (which fail
    as reading them would anywhere)."""
    wide = pa.types.is_large_string(column.type)
    _, offsets_buf, data_buf = column.buffers()
    offsets = np.frombuffer(offsets_buf, np.int64 if wide else np.int32, len(column) + 1,
                            column.offset * (8 if wide else 4)).astype(np.int64)
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None and data_buf.size \
        else _NO_BYTES
    _signatures(kernel().thr_utf8_word_signatures, data, offsets[:-1].copy(),
                offsets[1:].copy(), lambda rows: column.take(rows).to_pylist(), opts, n, a, b,
                out)


def _signatures(entry, data: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                texts_of: Callable[[np.ndarray], list[str]], opts: tn.NormOptions, n: int,
                a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """Run a kernel entry point over documents ``data[starts[d]:ends[d]]``. A document
    holding a code point the tables do not have yet is looked up in Python (``texts_of``
    gives the str of such rows) and computed again; from then on that code point costs
    nothing. What is still not done (not UTF-8, a composite not met before, another thread
    looking the same code point up) is normalized in Python and computed from that."""
    form = None if opts.unicode == "none" else opts.unicode
    tables = tn.tables(opts)

    def run(entry, data, starts, ends, form, rows: np.ndarray) -> np.ndarray:
        status = np.empty(len(starts), np.uint8)
        if entry(data, starts, ends, len(starts), *_form_arguments(form), tables.cp,
                 tables.cls, n, a, b, len(a), rows, status) == -1:
            raise MemoryError("the MinHash kernel could not allocate its buffers")
        return status

    status = run(entry, data, starts, ends, form, out)
    unknown = np.flatnonzero(status == DOC_UNKNOWN)
    if len(unknown):
        _look_up_texts(texts_of(unknown), opts)
        rows = np.empty((len(unknown), len(a)), np.uint64)
        status[unknown] = run(entry, data, starts[unknown], ends[unknown], form, rows)
        out[unknown] = rows
    rest = np.flatnonzero(status != DOC_DONE)
    if len(rest):
        texts = texts_of(rest)
        lens, raw = tn.code_points([unicodedata.normalize(form, t) for t in texts]
                                   if form else texts)
        _look_up_new(lambda buf: kernel().thr_unknown(raw, len(raw), tables.cls, buf,
                                                      len(buf)),
                     tables.fill, tables.cls, tn.UNKNOWN)
        rows, cps_ends = np.empty((len(rest), len(a)), np.uint64), np.cumsum(lens)
        done = run(kernel().thr_word_signatures, raw, cps_ends - lens, cps_ends, None, rows)
        if (done != DOC_DONE).any():
            raise RuntimeError("the MinHash kernel left normalized documents undone")
        out[rest] = rows


class _FormTable:
    """Each code point's normal form under one form (here NFD or NFKD: its full
    decomposition), filled in as code points occur (the kernel's layout: one code point,
    or FORM_EXPANDS | k for expansion k)."""

    def __init__(self, form: str, prefill: bool = True) -> None:
        self.form = form
        self.table = np.full(0x110000, FORM_UNKNOWN, np.uint32)
        self._expansions: list[str] = []
        data = unicode_data.installed() if prefill else None
        if data is not None:  # planes 0-3 as make install computed them
            lens, cps = data.decomposed[form]
            starts = data.decomposition_starts(form)
            single = np.flatnonzero(lens == 1)
            self.table[single] = cps[starts[single]]
            several = np.flatnonzero(lens != 1)  # never 0: a normal form is never empty
            self.table[several] = FORM_EXPANDS | np.arange(len(several), dtype=np.uint32)
            text = cps.tobytes().decode("utf-32-le", "surrogatepass")
            self._expansions = [text[a:a + k] for a, k in
                                zip(starts[several].tolist(), lens[several].tolist())]
        self._arrays()

    def _arrays(self) -> None:
        lens = [len(e) for e in self._expansions] or [0]
        exp_len = np.array(lens, np.int64)
        exp_cps = np.frombuffer("".join(self._expansions).encode("utf-32-le") or b"\0\0\0\0",
                                np.uint32)
        # one assignment, so a thread reading them meanwhile gets arrays that go together
        self.expansions = (exp_len.cumsum() - exp_len, exp_len, exp_cps,
                           len(self._expansions))

    def fill(self, new: np.ndarray) -> None:
        values = []
        for c in new.tolist():
            f = unicodedata.normalize(self.form, chr(c))
            if len(f) == 1:
                values.append(ord(f))
            else:  # several (never none: a normal form is never empty)
                values.append(FORM_EXPANDS | len(self._expansions))
                self._expansions.append(f)
        self.table[new] = values
        self._arrays()


@_shared
def _form_table(form: str) -> _FormTable:
    return _FormTable(form)


# ----------------------------------------------------------------------- the normal form

_DECOMPOSED = {"NFC": "NFD", "NFD": "NFD", "NFKC": "NFKD", "NFKD": "NFKD"}


class _Compositions:
    """Canonical composition as unicodedata does it: the primary composites (a canonical
    decomposition in two that NFC keeps composed) as sorted (first << 21 | second) keys
    and composite values; ``pair``, which characters begin one (PAIR_FIRST) and end one
    (PAIR_SECOND); ``seconds``, those that end one or are Hangul's vowels and trailing
    consonants (composed by algorithm): the quick check's Maybe of NFC and NFKC. Primary
    composites are all in planes 0 and 1 (tests/test_minhash_native.py checks the rest of
    the code space)."""

    def __init__(self, prefill: bool = True) -> None:
        data = unicode_data.installed() if prefill else None
        self.keys, self.values = (data.pair_keys, data.pair_values) if data is not None \
            else unicode_data.primary_composites()
        self.pair = np.zeros(0x110000, np.uint8)
        self.pair[(self.keys >> np.uint64(21)).astype(np.int64)] |= PAIR_FIRST
        self.pair[(self.keys & np.uint64(0x1FFFFF)).astype(np.int64)] |= PAIR_SECOND
        self.seconds = frozenset(k & 0x1FFFFF for k in self.keys.tolist()) | frozenset(
            range(0x1161, 0x1176)) | frozenset(range(0x11A8, 0x11C3))


@_shared
def _compositions() -> _Compositions:
    return _Compositions()


class _QuickCheckTable:
    """Each code point's answer to the Unicode quick check of one form (UAX #15), filled in
    as code points occur: its canonical combining class if the answer is Yes, QC_NOT_YES if
    No (its own normal form is another) or Maybe (it might compose with the one before)."""

    def __init__(self, form: str, prefill: bool = True) -> None:
        self.form = form
        self.table = np.full(0x110000, tn.UNKNOWN, np.uint8)
        seconds = _compositions().seconds if form in ("NFC", "NFKC") else frozenset()
        self._seconds = np.array(sorted(seconds), np.int64)
        data = unicode_data.installed() if prefill else None
        if data is not None:  # planes 0-3 as make install computed them
            self.table[:unicode_data.END] = self._answers(
                np.arange(unicode_data.END), data.own[form], data.combining)

    def fill(self, new: np.ndarray) -> None:
        chars = [chr(c) for c in new.tolist()]
        own = np.fromiter((unicodedata.normalize(self.form, ch) == ch for ch in chars), bool,
                          len(chars))
        self.table[new] = self._answers(
            new, own, np.fromiter(map(unicodedata.combining, chars), np.uint8, len(chars)))

    def _answers(self, cps: np.ndarray, own: np.ndarray, combining: np.ndarray) -> np.ndarray:
        """The table's values for ``cps``, from whether each is its own normal form and its
        combining class: Yes unless it is not or it may compose with the one before."""
        yes = own & ~np.isin(cps, self._seconds)
        return np.where(yes, combining, QC_NOT_YES).astype(np.uint8)


@_shared
def _quick_check_table(form: str) -> _QuickCheckTable:
    return _QuickCheckTable(form)


class _CombiningClasses:
    """Each code point's canonical combining class, filled in as code points occur."""

    def __init__(self, prefill: bool = True) -> None:
        self.table = np.full(0x110000, tn.UNKNOWN, np.uint8)
        data = unicode_data.installed() if prefill else None
        if data is not None:
            self.table[:unicode_data.END] = data.combining

    def fill(self, new: np.ndarray) -> None:
        self.table[new] = [unicodedata.combining(chr(c)) for c in new.tolist()]


@_shared
def _combining_classes() -> _CombiningClasses:
    return _CombiningClasses()


def _look_up_texts(texts: Sequence[str], opts: tn.NormOptions) -> None:
    """Enter in the tables ``utf8_word_signatures`` reads what it needs for ``texts``: the
    quick check and decomposition of their code points, the combining classes of the
    decomposed ones, the normalization classes of both. (A composite the text did not
    hold, rare, is looked up by ``_signatures``' last step the first time it occurs.)"""
    _, raw = tn.code_points(texts)
    lib = kernel()
    form = None if opts.unicode == "none" else opts.unicode
    if form:
        qc, decomp = _quick_check_table(form), _form_table(_DECOMPOSED[form])
        ccc = _combining_classes()

        def fill(new: np.ndarray) -> None:  # a known quick check implies a known decomposition
            qc.fill(new)
            new = new[decomp.table[new] == FORM_UNKNOWN]  # NFKC and NFKD share the NFKD table
            if len(new):
                decomp.fill(new)

        _look_up_new(lambda buf: lib.thr_unknown(raw, len(raw), qc.table, buf, len(buf)),
                     fill, qc.table, tn.UNKNOWN)
        exp_off, exp_len, exp_cps, n_exp = decomp.expansions
        length = lib.thr_form_length(raw, len(raw), decomp.table, exp_len, n_exp)
        if length < 0:
            raise RuntimeError("a decomposition the table fill just entered is missing")
        decomposed = np.empty(length, np.uint32)
        lib.thr_map_form(raw, len(raw), decomp.table, exp_off, exp_len, exp_cps, decomposed)
        _look_up_new(lambda buf: lib.thr_unknown(decomposed, len(decomposed), ccc.table, buf,
                                                 len(buf)),
                     ccc.fill, ccc.table, tn.UNKNOWN)
        raw = np.concatenate([raw, decomposed])
    tables = tn.tables(opts)
    _look_up_new(lambda buf: lib.thr_unknown(raw, len(raw), tables.cls, buf, len(buf)),
                 tables.fill, tables.cls, tn.UNKNOWN)


@cache
def _no_form() -> tuple:
    """The kernel's form arguments (FORM_PARAMS) for ``unicode: none`` (never read)."""
    u8, u32, i64 = np.zeros(1, np.uint8), np.zeros(1, np.uint32), np.zeros(1, np.int64)
    return FORM_NONE, u8, u32, i64, i64, u32, 0, u8, u8, np.zeros(1, np.uint64), u32, 0


def _form_arguments(form: str | None) -> tuple:
    """The kernel's form arguments (FORM_PARAMS), the tables as they are now (an expansion
    added after this is seen as unknown)."""
    if not form:
        return _no_form()
    comp = _compositions()
    kind = FORM_COMPOSED if form in ("NFC", "NFKC") else FORM_DECOMPOSED
    return (kind, _quick_check_table(form).table, _form_table(_DECOMPOSED[form]).table,
            *_form_table(_DECOMPOSED[form]).expansions, _combining_classes().table,
            comp.pair, comp.keys, comp.values, len(comp.keys))
