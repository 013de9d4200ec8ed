"""Shard writers: Parquet (zstd, bounded row groups and files) and JSONL.

A writer writes each file under a hidden temporary name and renames it into
place only when it is complete (after fsync), so a crash never leaves a
half-written file under a final name. Whether the *task* is done is decided by
its stats file, written after all of its shards (see ``runner``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from ..config import OutputConfig


@dataclass(frozen=True)
class ShardInfo:
    path: str  # relative to the run directory
    rows: int
    bytes: int
    sha256: str

    def to_dict(self) -> dict:
        return {"path": self.path, "rows": self.rows, "bytes": self.bytes, "sha256": self.sha256}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ShardWriter:
    """Writes ``<dir>/<prefix>-NNNN.<ext>`` files of at most ``rows_per_file`` rows."""

    ext = ""

    def __init__(self, directory: Path, prefix: str, cfg: OutputConfig, run_dir: Path,
                 drop_columns: list[str] | None = None):
        self.dir, self.prefix, self.cfg, self.run_dir = directory, prefix, cfg, run_dir
        self.drop_columns = set(drop_columns or [])
        self.shards: list[ShardInfo] = []
        self.schema: pa.Schema | None = None
        self._file_rows = 0
        self._tmp: Path | None = None
        self.dir.mkdir(parents=True, exist_ok=True)

    # -- public
    def write(self, table: pa.Table) -> None:
        if self.drop_columns:
            table = table.drop_columns([c for c in table.schema.names if c in self.drop_columns])
        if table.num_rows == 0:
            return
        if self.schema is None:
            self.schema = table.schema
        elif table.schema != self.schema:
            table = table.select(self.schema.names).cast(self.schema)
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
        if self._tmp is not None:
            self._close_file()
        return self.shards

    def abort(self) -> None:
        """Remove the temporary file of an unfinished shard."""
        if self._tmp is not None and self._tmp.exists():
            self._tmp.unlink()
        self._tmp = None

    # -- per format
    def _open_file(self, tmp: Path) -> None:
        raise NotImplementedError

    def _write(self, table: pa.Table) -> None:
        raise NotImplementedError

    def _finish_file(self) -> None:
        raise NotImplementedError

    # -- shared
    def _final_path(self) -> Path:
        return self.dir / f"{self.prefix}-{len(self.shards):04d}{self.ext}"

    def _open(self) -> None:
        final = self._final_path()
        self._tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        self._file_rows = 0
        self._open_file(self._tmp)

    def _close_file(self) -> None:
        assert self._tmp is not None
        self._finish_file()
        with open(self._tmp, "rb+") as f:
            os.fsync(f.fileno())
        final = self._final_path()
        os.replace(self._tmp, final)
        _fsync_dir(self.dir)
        self.shards.append(ShardInfo(
            path=final.relative_to(self.run_dir).as_posix(), rows=self._file_rows,
            bytes=final.stat().st_size, sha256=sha256_file(final)))
        self._tmp = None
        self._file_rows = 0


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
            self._flush(whole.slice(0, full))
            rest = whole.slice(full)
            self._pending = [rest] if rest.num_rows else []
            self._pending_rows = rest.num_rows

    def _flush(self, table: pa.Table) -> None:
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


def make_writer(directory: Path, prefix: str, cfg: OutputConfig, run_dir: Path,
                final: bool) -> ShardWriter:
    """The final phase writes the configured format; intermediate phases Parquet."""
    if final and cfg.format == "jsonl":
        return JsonlShardWriter(directory, prefix, cfg, run_dir, cfg.drop_columns)
    return ParquetShardWriter(directory, prefix, cfg, run_dir,
                              cfg.drop_columns if final else None)
