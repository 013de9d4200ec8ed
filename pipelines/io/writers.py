"""Shard writers: Parquet (zstd by default, bounded row groups and files) and JSONL.

A writer writes each file under a hidden temporary name and renames it into
place only when it is complete (after fsync), so a crash never leaves a
half-written file under a final name. Whether the *task* is done is decided by
its stats file, written after all of its shards (see ``runner``).

Batches may disagree on their schema (a column all null so far, hence typed
null; a column a stage adds only to some batches): the writer widens its schema
deterministically (``_widen``) and rewrites what it already wrote of the task,
so every shard of a task has one schema. A full disk or a read-only output is an
``OutputError`` naming the file; ``abort`` then closes and removes the unfinished
file and never raises.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from pipelines.config import OutputConfig
from pipelines.errors import UserError
from pipelines.io.files import commit, parquet_file, sha256_file, temp_path
from pipelines.io.storage import is_remote, on_network_filesystem


class OutputError(UserError):
    """The output cannot be written: disk full, read-only, or batches of clashing types."""


@dataclass(frozen=True)
class ShardInfo:
    path: str  # relative to the run directory
    rows: int
    bytes: int
    sha256: str | None  # None for an intermediate shard: nothing checks it, so not hashed

    def to_dict(self) -> dict:
        return {"path": self.path, "rows": self.rows, "bytes": self.bytes, "sha256": self.sha256}


class ShardWriter:
    """Writes ``<dir>/<prefix>-NNNN.<ext>`` files of at most ``rows_per_file`` rows."""

    ext = ""

    def __init__(self, directory: Path, prefix: str, cfg: OutputConfig, run_dir: Path,
                 drop_columns: list[str] | None = None, hashed: bool = True):
        self.dir, self.prefix, self.cfg, self.run_dir = directory, prefix, cfg, run_dir
        self.hashed = hashed
        self.drop_columns = set(drop_columns or [])
        self.shards: list[ShardInfo] = []
        self.schema: pa.Schema | None = None
        self._shard_schemas: list[pa.Schema] = []  # the schema each closed shard has
        self._file_rows = 0
        self._tmp: Path | None = None
        with self._io("create the output directory"):
            self.dir.mkdir(parents=True, exist_ok=True)

    # -- public
    def write(self, table: pa.Table) -> None:
        if self.drop_columns:
            table = table.drop_columns([c for c in table.schema.names if c in self.drop_columns])
        if table.num_rows == 0:
            return
        if self.schema is None:
            self.schema = table.schema
        elif not table.schema.equals(self.schema):
            wider = _widen(self.schema, table.schema)
            if not wider.equals(self.schema):
                self.schema = wider
                with self._io("rewrite the open shard with a wider schema"):
                    self._schema_widened()
            table = _fit(table, self.schema)
        with self._io("write a shard"):
            self._write_rows(table)

    def _write_rows(self, table: pa.Table) -> None:
        start = 0
        while start < table.num_rows:
            if self._tmp is None:
                self._open()
            take = min(self.cfg.rows_per_file - self._file_rows, table.num_rows - start)
            self._write(table.slice(start, take))
            self._file_rows += take
            start += take
            if self._file_rows >= self.cfg.rows_per_file:
                self._close_file()

    def close(self) -> list[ShardInfo]:
        with self._io("finish a shard"):
            if self._tmp is not None:
                self._close_file()
            for i, schema in enumerate(self._shard_schemas):
                if self.schema is not None and not schema.equals(self.schema):
                    self._rewrite_shard(i)
        return self.shards

    def abort(self) -> None:
        """Close and remove the unfinished shard; never raises (it runs on a failure path)."""
        if self._tmp is None:
            return
        try:
            self._abort_file()
        except Exception:  # e.g. a full disk refusing the footer: the file goes anyway
            pass
        try:
            self._tmp.unlink(missing_ok=True)
        except OSError:
            pass
        self._tmp = None

    @contextmanager
    def _io(self, what: str) -> Iterator[None]:
        """Turn an OSError (disk full, read-only...) into one line naming the place."""
        try:
            yield
        except OutputError:
            raise
        except OSError as exc:
            why = exc.strerror or str(exc).splitlines()[0]
            where = exc.filename or self._tmp or self.dir
            raise OutputError(f"cannot {what} in {self.dir}: {why} ({where})") from exc

    # -- per format
    def _open_file(self, tmp: Path) -> None:
        raise NotImplementedError

    def _write(self, table: pa.Table) -> None:
        raise NotImplementedError

    def _finish_file(self) -> None:
        raise NotImplementedError

    def _abort_file(self) -> None:
        """Close whatever handle the unfinished file has open."""

    def _schema_widened(self) -> None:
        """The schema grew: make the open file's flushed part match it."""

    def _rewrite_shard(self, i: int) -> None:
        """Rewrite closed shard ``i`` with the (wider) current schema."""

    # -- shared
    def _final_path(self) -> Path:
        return self.dir / f"{self.prefix}-{len(self.shards):04d}{self.ext}"

    def _open(self) -> None:
        final = self._final_path()
        self._tmp = temp_path(final)
        self._file_rows = 0
        self._open_file(self._tmp)

    def _close_file(self) -> None:
        assert self._tmp is not None
        self._finish_file()
        final = self._final_path()
        info = self._info(final, self._file_rows, self._tmp)  # hashed before the commit
        commit(self._tmp, final)
        self.shards.append(info)
        self._shard_schemas.append(self.schema)
        self._tmp = None
        self._file_rows = 0

    def _info(self, final: Path, rows: int, content: Path | None = None) -> ShardInfo:
        """``final``'s entry; its bytes are read from ``content`` (the committed file's
        local temporary) when given, so a remote shard is not read back."""
        src = content if content is not None else final
        return ShardInfo(path=final.relative_to(self.run_dir).as_posix(), rows=rows,
                         bytes=src.stat().st_size,
                         sha256=sha256_file(src) if self.hashed else None)


def _widen(schema: pa.Schema, other: pa.Schema) -> pa.Schema:
    """``schema`` grown to hold ``other``'s batches: null-typed columns take other's type
    (also inside lists and structs), other's new columns come last; both nullable where
    one side lacks them. Order and types otherwise stay ``schema``'s, so the result
    depends only on the order of the batches, not on how they are cut."""
    fields = []
    for f in schema:
        if f.name not in other.names:
            fields.append(f.with_nullable(True))
            continue
        o = other.field(f.name)
        try:  # 'default' promotion merges null types only
            f = pa.unify_schemas([pa.schema([f]), pa.schema([o])]).field(0)
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            pass  # other's batches are cast to f's type (or fail, naming the column)
        fields.append(f)
    fields += [o.with_nullable(True) for o in other if o.name not in schema.names]
    return pa.schema(fields, metadata=schema.metadata)


def _fit(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with ``schema``'s columns, order and types (missing columns as nulls)."""
    cols = []
    for f in schema:
        if f.name not in table.schema.names:
            cols.append(pa.nulls(table.num_rows, f.type))
            continue
        col = table.column(f.name)
        if not col.type.equals(f.type):
            try:
                col = col.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                raise OutputError(
                    f"column {f.name!r} is {f.type} in earlier documents of this task and "
                    f"{col.type} in later ones, which cannot be converted "
                    f"({str(exc).splitlines()[0]}); make the input or stage give one type"
                ) from None
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=schema)


class ParquetShardWriter(ShardWriter):
    ext = ".parquet"

    def _open_file(self, tmp: Path) -> None:
        self._writer: pq.ParquetWriter | None = None
        self._path = tmp
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def _write(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._pending_rows += table.num_rows
        n = self.cfg.rows_per_row_group
        if self._pending_rows >= n:
            whole = pa.concat_tables(self._pending)
            full = (whole.num_rows // n) * n
            groups = self._combined(whole.slice(0, full))
            rest = whole.slice(full)
            # the batches are copied into ``groups``: let them go before the encoder's
            # buffers are added (a 10,000-row group of web text is tens of MB each)
            del whole
            self._pending = [rest] if rest.num_rows else []
            self._pending_rows = rest.num_rows
            self._flush(groups)

    def _combined(self, table: pa.Table) -> pa.Table:
        table = _fit(table, self.schema)  # row groups read back after a widening
        # One chunk per column: Parquet's encoder decides pages and dictionary fallback
        # chunk by chunk, so without this the bytes would depend on how the rows were
        # batched in memory (e.g. a materialized run vs the direct run), not just on them.
        return table.combine_chunks()

    def _flush(self, table: pa.Table) -> None:
        table = self._combined(table)  # copies nothing when _write combined it already
        if self._writer is None:
            comp = None if self.cfg.compression == "none" else self.cfg.compression
            self._writer = pq.ParquetWriter(
                self._path, table.schema, compression=comp,
                compression_level=self.cfg.compression_level, write_statistics=True)
        self._writer.write_table(table, row_group_size=self.cfg.rows_per_row_group)

    def _finish_file(self) -> None:
        if self._pending:
            self._flush(pa.concat_tables(self._pending))
            self._pending = []
        assert self._writer is not None
        self._writer.close()
        self._writer = None

    def _abort_file(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()

    def _schema_widened(self) -> None:
        if self._tmp is None:
            return
        self._pending = [_fit(t, self.schema) for t in self._pending]
        if self._writer is None:
            return  # nothing flushed yet
        self._writer.close()
        self._writer = None
        old = self._tmp.with_name(self._tmp.name + "-old")  # a leftover a retry removes
        os.replace(self._tmp, old)
        try:
            src = pq.ParquetFile(old)
            for g in range(src.num_row_groups):  # the same row groups, in the new schema
                self._flush(src.read_row_group(g))
        finally:
            old.unlink(missing_ok=True)

    def _rewrite_shard(self, i: int) -> None:
        final = self.run_dir / self.shards[i].path
        tmp = temp_path(final)
        src = parquet_file(final)
        comp = None if self.cfg.compression == "none" else self.cfg.compression
        with pq.ParquetWriter(tmp, self.schema, compression=comp,
                              compression_level=self.cfg.compression_level,
                              write_statistics=True) as w:
            for g in range(src.num_row_groups):
                w.write_table(_fit(src.read_row_group(g), self.schema),
                              row_group_size=self.cfg.rows_per_row_group)
        info = self._info(final, self.shards[i].rows, tmp)
        commit(tmp, final)
        self.shards[i] = info
        self._shard_schemas[i] = self.schema


class JsonlShardWriter(ShardWriter):
    """JSON Lines; compressed with gzip (mtime 0, deterministic) or zstd if asked."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.ext = {"gzip": ".jsonl.gz", "zstd": ".jsonl.zst"}.get(self.cfg.compression, ".jsonl")

    def _open_file(self, tmp: Path) -> None:
        raw = open(tmp, "wb")
        if self.cfg.compression == "gzip":
            # filename="": else the header names the temporary file, pid included
            self._fh: io.RawIOBase = gzip.GzipFile(filename="", fileobj=raw, mode="wb",
                                                   mtime=0)
            self._raw = raw
        elif self.cfg.compression == "zstd":
            level = self.cfg.compression_level or 3
            self._fh = zstandard.ZstdCompressor(level=level).stream_writer(raw, closefd=False)
            self._raw = raw
        else:
            self._fh, self._raw = raw, None

    def _write(self, table: pa.Table) -> None:
        for row in table.to_pylist():
            self._fh.write(json.dumps(row, ensure_ascii=False, default=str).encode() + b"\n")

    def _finish_file(self) -> None:
        self._fh.close()
        if self._raw is not None:
            self._raw.close()

    def _abort_file(self) -> None:
        for fh in (self._fh, self._raw):
            if fh is not None:
                try:
                    fh.close()
                except Exception:
                    pass

    def _rewrite_shard(self, i: int) -> None:
        """JSON rows name their keys: earlier shards need no rewrite."""


def make_writer(directory: Path, prefix: str, cfg: OutputConfig, run_dir: Path,
                final: bool) -> ShardWriter:
    """The final phase writes the configured format; intermediate phases Parquet in
    ``intermediate_compression``, not hashed (the manifest lists final shards only)."""
    if final and cfg.format == "jsonl":
        return JsonlShardWriter(directory, prefix, cfg, run_dir, cfg.drop_columns)
    if final:
        return ParquetShardWriter(directory, prefix, cfg, run_dir, cfg.drop_columns)
    return ParquetShardWriter(directory, prefix, intermediate_output(cfg), run_dir, None,
                              hashed=False)


def intermediate_output(cfg: OutputConfig) -> OutputConfig:
    """``cfg`` as intermediate shards are written: ``intermediate_compression``, where auto
    is none on a local disk and zstd where bytes cross a network (object storage, a network
    filesystem: ``storage.NETWORK_FILESYSTEMS``)."""
    codec = cfg.intermediate_compression
    if codec == "auto":
        codec = "zstd" if is_remote(cfg.path) or on_network_filesystem(cfg.path) else "none"
    return cfg.model_copy(update={"compression": codec, "compression_level": None})
