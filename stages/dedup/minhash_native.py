"""The compiled MinHash kernel (minhash_kernel.c), loaded with ctypes.

``make install`` compiles it to ``_minhash_kernel.so`` next to this file. It gives exactly
the numpy path's signatures (minhash_core's ``*_numpy`` functions stay the reference, and
tests/test_minhash_native.py holds the two equal), about an order of magnitude faster for
word shingles (docs/benchmarks.md). Without it, because there was no C compiler or the
library is older than its source, thresher says so once and runs the numpy path:
same output, slower. ``THRESHER_MINHASH_KERNEL=numpy`` chooses the numpy path on purpose.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from pipelines.lazy import lazy_module
from stages.text import normalize as tn

np = lazy_module("numpy")

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("minhash_kernel.c")
LIBRARY = Path(__file__).with_name("_minhash_kernel.so")
ABI = 1  # THR_KERNEL_ABI of the source
_UNKNOWN_BATCH = 4096  # code points looked up per round of thr_unknown


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
    n = ctypes.c_int64
    lib.thr_unknown.argtypes = [u32, n, u8, u32, n]
    lib.thr_unknown.restype = n
    lib.thr_perm_min.argtypes = [u64, i64, n, u64, u64, n, u64]
    lib.thr_perm_min.restype = None
    lib.thr_word_signatures.argtypes = [u32, i64, n, u32, u8, n, u64, u64, n, u64]
    lib.thr_word_signatures.restype = n
    return lib


def available() -> bool:
    return kernel() is not None


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
    lens, raw = tn.code_points(tn.normal_form(texts, opts))
    tables = tn.tables(opts)
    lib = kernel()
    buf = np.empty(_UNKNOWN_BATCH, np.uint32)
    while found := lib.thr_unknown(raw, len(raw), tables.cls, buf, len(buf)):
        new = buf[:min(found, len(buf))]
        try:
            tables.fill(new)
        except BaseException:
            tables.cls[new] = tn.UNKNOWN  # marked pending by the kernel: not looked up
            raise
    status = lib.thr_word_signatures(raw, lens, len(lens), tables.cp, tables.cls, n, a, b,
                                     len(a), out)
    if status == -1:
        raise MemoryError("the MinHash kernel could not allocate its token buffer")
    if status != 0:
        raise RuntimeError(f"the MinHash kernel returned {status}")
