"""The C allocator's settings for a process that runs tasks (glibc only).

glibc serves a request above its mmap threshold (128 KiB at start, raised only when a
larger mapped block is freed) with a fresh mapping and unmaps it at ``free``, and it
gives the top of the heap back to the kernel above a trim threshold. A task allocates
and frees work arrays of 1-40 MB batch after batch (the MinHash kernel's numpy arrays,
decoded text, Arrow buffers copied out), so without a fixed threshold each of them
is mapped, faulted in page by page and unmapped again: on the 20,000-document
MinHash run, 313-334 k page faults and 1.4-1.8 s of system time in 6.4-6.8 s
(docs/benchmarks.md, MinHash against datatrove). A fixed 32 MiB mmap threshold and a
64 MiB trim threshold keep those blocks in the heap for reuse, at the price of up to
64 MiB of freed memory a worker may hold. Bytes written never depend on it.

Before and after each task, ``release_free_memory`` hands back what the process freed:
Arrow's pool keeps freed blocks for reuse and the tuned glibc up to its trim threshold,
which a worker would otherwise hold while idle or through a next task that needs less
(and which a task's measured peak would otherwise not show).

Set in the processes thresher owns: the ``thresher`` command (so its in-process tasks
and Slurm's ``thresher run-task``), the local executor's pool workers and Ray task
processes. A program that calls ``run_pipeline`` itself keeps its allocator as it is
unless it calls ``tune_allocator()``. ``THRESHER_ALLOCATOR=default`` leaves glibc as it
is; a ``MALLOC_*_`` variable the user set wins over the value here (glibc read it at
start).
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 64 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)

_tuned: bool | None = None  # None: not tried yet (a forked child inherits both)


def tune_allocator() -> bool:
    """Set the thresholds once per process; True if glibc took them."""
    global _tuned
    if _tuned is None:
        _tuned = _set_thresholds()
    return _tuned


def tuned() -> bool:
    """Whether this process runs with the thresholds (a task records it)."""
    return bool(_tuned)


def release_free_memory() -> None:
    """Return freed memory to the kernel: Arrow's pool's unused blocks (if pyarrow is
    loaded) and, where thresher tuned glibc, the heap's free pages (``malloc_trim``)."""
    pa = sys.modules.get("pyarrow")
    if pa is not None:
        pa.default_memory_pool().release_unused()
    if _tuned:
        _libc().malloc_trim(0)


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None)  # the symbols the interpreter is linked with: libc's


def _set_thresholds() -> bool:
    if os.environ.get("THRESHER_ALLOCATOR", "") == "default" or not sys.platform.startswith(
            "linux"):
        return False
    try:
        libc = _libc()
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - glibc only; musl's mallopt does nothing
    except (OSError, AttributeError):
        return False
    ok = True
    for env, param, value in (("MALLOC_MMAP_THRESHOLD_", _M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                              ("MALLOC_TRIM_THRESHOLD_", _M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        if env not in os.environ:
            ok = mallopt(param, value) == 1 and ok
    return ok
