"""Committing files whole, and hashing them: the one place for both.

A file is written under a hidden temporary name in its final directory
(``.<name>.tmp-<pid>``), flushed and fsynced, renamed into place, and the directory is
fsynced, so a reader (or a crash) sees the old file or the whole new one, never a
part. Leftover temporaries of killed writers are swept by ``finalize``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipelines.lazy import lazy_module

pa = lazy_module("pyarrow")
pq = lazy_module("pyarrow.parquet")


def temp_path(path: Path) -> Path:
    """The temporary name ``path`` is written under before it is committed (for a
    ``RemotePath``, a local file that ``commit`` uploads)."""
    local_temp = getattr(path, "local_temp", None)
    if local_temp is not None:
        return local_temp()
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(tmp: Path, path: Path) -> None:
    """fsync ``tmp`` (already closed), rename it to ``path`` and fsync the directory;
    for a ``RemotePath``, upload ``tmp`` as one object (its completion is the commit)."""
    upload_from = getattr(path, "upload_from", None)
    if upload_from is not None:
        upload_from(tmp)
        return
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def sweep_stale_temps(directory: Path, older_than_s: float = 3600.0) -> int:
    """Delete temporaries (``.<name>.tmp-<pid>``) untouched for ``older_than_s``: what
    killed writers left in a shared directory (a model cache). A live writer keeps its
    file's mtime fresh, on this host or another, so age, not the pid, decides."""
    import time

    n = 0
    for p in directory.glob(".*.tmp-*"):
        try:
            if time.time() - p.stat().st_mtime > older_than_s:
                p.unlink()
                n += 1
        except FileNotFoundError:
            pass
    return n


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it becomes ``path`` whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        commit(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=1) + "\n")


def write_table_atomic(path: Path, table: pa.Table, row_group_size: int | None = None) -> None:
    """A plain Parquet file (zstd); ``row_group_size`` bounds what a reader of its first
    rows loads."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=row_group_size)


def write_tables_atomic(path: Path, schema: pa.Schema, tables: Iterable[pa.Table],
                        row_group_size: int | None = None) -> int:
    """A plain Parquet file (zstd) written table by table as ``tables`` yields them (so
    the whole never needs to be in memory), committed whole; returns the rows written."""
    n = 0
    with atomic_path(path) as tmp:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for t in tables:
                writer.write_table(t, row_group_size=row_group_size)
                n += t.num_rows
    return n


# ------------------------------------------------------------------ reading run files
# Run-directory files may live in object storage (``RemotePath``); these read either kind.


def read_bytes(path: Path) -> bytes:
    return path.read_bytes()


def read_json(path: Path) -> Any:
    return json.loads(path.read_bytes())


def parquet_file(path: Path) -> pq.ParquetFile:
    """A ``ParquetFile`` to read row groups or metadata from (remote: range reads)."""
    opener = getattr(path, "open_read", None)
    return pq.ParquetFile(opener() if opener is not None else path)


def read_table(path: Path, columns: list[str] | None = None) -> pa.Table:
    """A whole Parquet file (or the ``columns`` given) as one table."""
    opener = getattr(path, "open_read", None)
    if opener is None:
        return pq.read_table(path, columns=columns)
    with opener() as fh:  # whole, then parsed: pyarrow's read-ahead threads must not call
        data = fh.read()  # back into Python (a read left running at exit aborts it)
    return pq.read_table(pa.BufferReader(data), columns=columns)


def open_binary(path: Path):
    """A binary reader of a local file or a ``RemotePath`` (streamed)."""
    opener = getattr(path, "open_read", None)
    return opener() if opener is not None else open(path, "rb")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open_binary(path) as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_hashes(paths: Iterable[str | Path]) -> dict[str, str]:
    """Absolute path -> sha256 of each file: what ``Stage.model_files`` returns."""
    return {str(Path(f).resolve()): sha256_file(Path(f)) for f in paths}
