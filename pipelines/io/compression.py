"""Open plain, gzip or zstd files by extension, for reading and writing."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import IO

import zstandard


def open_binary(path: Path) -> IO[bytes]:
    """Decompressing binary reader chosen by file extension."""
    name = path.name
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".zst") or name.endswith(".zstd"):
        raw = open(path, "rb")
        return zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
    return open(path, "rb")


def open_text(path: Path) -> IO[str]:
    return io.TextIOWrapper(open_binary(path), encoding="utf-8", errors="strict", newline="\n")
