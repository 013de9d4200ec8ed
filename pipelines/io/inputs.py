"""One planned input file -> Arrow tables, with what no format reader can see.

The format readers (readers.py) count the records inside a file. What the plan knows
about the file itself is handled here: a zero-byte file holds no record, yet the
funnel must show it (one ``empty_file`` error of the ``read`` stage); directories the
input globs matched are counted once, by task 0 (``input_is_directory``); and the
file's ``input.dataset`` name becomes the ``dataset`` column. And the file's sha256 for
the manifest is taken here, while the reader reads it (hashing.py).

A remote input (``s3://``...) is streamed through the storage layer (storage.py:
read-ahead in blocks, transient errors retried and counted into ``InputDigest.retries``,
which the task records as ``storage_retries``). A read that fails for good ends the task
with one line naming the URL (``InputUnreadable``), even when a reader would have taken
the failure for damaged data: a remote reader that failed stays failed, and is asked.

A piece of a split input (``InputFile.is_piece``, ``input.max_task_bytes``) is read the
same way, its reader told the piece, and its digest is the sha256 of the piece's byte
range (a remote piece seeks: only its range, and the record it finishes past the end,
are fetched).
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pyarrow as pa

from pipelines.config import InputBase
from pipelines.errors import UserError
from pipelines.io import storage as st
from pipelines.io.files import sha256_file
from pipelines.io.hashing import HashingFile, InputDigest
from pipelines.io.readers import Reader, make_reader
from pipelines.plan import InputFile
from pipelines.schema import ID, SOURCE, stable_id
from pipelines.stats import DATASET, StageStats


class InputUnreadable(UserError):
    """A remote input that could not be read: ``<url>: <cause>``, one line."""


def read_input(cfg: InputBase, inp: InputFile, stats: StageStats,
               digest: InputDigest | None = None) -> Iterator[pa.Table]:
    """The tables of one input. ``digest``, if given, gets the sha256 of the file's bytes
    once the reader is done: taken as the reader reads (one read of the file) when it
    streams, else by a read of its own first."""
    if st.is_remote(inp.path):
        yield from _read_remote(cfg, inp, stats, digest)
        return
    path, reader = Path(inp.path), make_reader(cfg)
    if digest is None:
        yield from _tables(reader, inp, stats, None)
        return
    if not reader.streams:
        t0 = time.perf_counter()
        if inp.is_piece:
            with HashingFile(path, inp.start, inp.end) as hashed:
                digest.sha256, size = hashed.hexdigest(), hashed.size
        else:
            size, digest.sha256 = path.stat().st_size, sha256_file(path)
        digest.seconds = time.perf_counter() - t0
        yield from _tables(reader, inp, stats, None)
    else:
        with HashingFile(path, inp.start, inp.end) as raw:
            yield from _tables(reader, inp, stats, io.BufferedReader(raw, 1 << 16))
            digest.sha256, size = raw.hexdigest(), raw.size
            digest.seconds = raw.seconds
    _check_size(inp, size)


def _read_remote(cfg: InputBase, inp: InputFile, stats: StageStats,
                 digest: InputDigest | None) -> Iterator[pa.Table]:
    """``read_input`` of a remote input: one streamed read through the storage layer
    (two for a reader that does not stream, e.g. Parquet: one to hash, one to read)."""
    from pipelines.io.discovery import storage_for

    storage, reader, url = storage_for(cfg), make_reader(cfg), inp.path
    try:
        if digest is not None and not reader.streams:
            t0 = time.perf_counter()
            with storage.open_read(url) as fh:
                hashed, size = HashingFile(fh, inp.start, inp.end), 0
                if not inp.is_piece:
                    while hashed.read(1 << 20):
                        pass
                digest.sha256, size = hashed.hexdigest(), hashed.size  # a piece: seeks
            digest.seconds = time.perf_counter() - t0
            _check_size(inp, size)
        with storage.open_read(url) as stream:
            if digest is None or not reader.streams:
                yield from _guarded(_tables(reader, inp, stats, stream), stream)
            else:
                with HashingFile(stream, inp.start, inp.end) as raw:
                    yield from _guarded(_tables(reader, inp, stats,
                                                io.BufferedReader(raw, 1 << 16)), stream)
                    digest.sha256, size = raw.hexdigest(), raw.size
                    digest.seconds = raw.seconds
                _check_size(inp, size)
    except st.StorageError as exc:
        raise InputUnreadable(str(exc)) from None
    finally:
        if digest is not None:
            digest.retries = storage.retries.as_dict()


def _guarded(tables: Iterator[pa.Table], stream: IO[bytes]) -> Iterator[pa.Table]:
    """``tables``, ended by the remote stream's failure even if the reader took it for
    damage (and counted it as such): a task must not finish on part of an input."""
    for table in tables:
        if st.stream_error(stream) is not None:
            raise st.stream_error(stream)  # type: ignore[misc]
        yield table
    if st.stream_error(stream) is not None:
        raise st.stream_error(stream)  # type: ignore[misc]


def _check_size(inp: InputFile, size: int) -> None:
    if size != inp.length:  # the manifest would pair the planned size with other bytes
        what = f"bytes {inp.start}-{inp.end} " if inp.is_piece else ""
        raise UserError(f"input {inp.path} changed size while the run read it ({what}"
                        f"{inp.length} bytes planned, {size} hashed); run again when it "
                        "no longer changes")


def _tables(reader: Reader, inp: InputFile, stats: StageStats,
            fh: IO[bytes] | None) -> Iterator[pa.Table]:
    if inp.size == 0:
        count_unreadable(stats, inp, "empty_file")
        return
    part = inp if inp.is_piece else None
    for table in reader.read(st.as_path(inp.path), inp.source, stats, fh, part):
        if inp.dataset is not None:
            table = _with_dataset(table, inp.dataset)
        yield table


def count_unreadable(stats: StageStats, inp: InputFile, reason: str) -> None:
    """One input path that yields no record, counted (and sampled) as one error."""
    stats.docs_in += 1
    doc = None
    if stats.sampler is not None:
        doc = {ID: stable_id(inp.source, -1), SOURCE: inp.source,
               "details": {"path": inp.path, "size": inp.size}}
    stats.error(reason, doc=doc)


def _with_dataset(table: pa.Table, name: str) -> pa.Table:
    col = pa.array([name] * table.num_rows, pa.string())
    if DATASET in table.schema.names:  # input.dataset wins over a column of the input
        return table.set_column(table.schema.get_field_index(DATASET), DATASET, col)
    return table.append_column(DATASET, col)
