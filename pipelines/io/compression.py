"""Open plain, gzip or zstd files by extension, for reading and writing."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import IO

import zstandard


class _ZstdReader(io.RawIOBase):
    """All frames of a zstd file; EOFError if the file ends inside a frame.

    (zstandard's ``stream_reader`` ends cleanly at a truncated frame, so a cut file would
    read as a shorter, valid one.) Corrupt data raises OSError, as gzip's does.
    """

    def __init__(self, path: Path):
        self._raw = open(path, "rb")
        self._dctx = zstandard.ZstdDecompressor()
        self._frame = None  # decompressobj of the frame being read
        self._out, self._pos = b"", 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while self._pos >= len(self._out):
            data = self._raw.read(1 << 16)
            if not data:
                if self._frame is not None:
                    raise EOFError("zstd file ends inside a frame (truncated?)")
                return 0
            out = []
            try:
                while data:
                    if self._frame is None:
                        self._frame = self._dctx.decompressobj()
                    out.append(self._frame.decompress(data))
                    data = b""
                    if self._frame.eof:
                        data, self._frame = self._frame.unused_data, None
            except zstandard.ZstdError as exc:
                raise OSError(f"corrupt zstd data: {exc}") from exc
            self._out, self._pos = b"".join(out), 0
        n = min(len(b), len(self._out) - self._pos)
        b[:n] = self._out[self._pos:self._pos + n]
        self._pos += n
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_binary(path: Path) -> IO[bytes]:
    """Decompressing binary reader chosen by file extension."""
    name = path.name
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".zst") or name.endswith(".zstd"):
        return io.BufferedReader(_ZstdReader(path))
    return open(path, "rb")


def open_text(path: Path) -> IO[str]:
    return io.TextIOWrapper(open_binary(path), encoding="utf-8", errors="strict", newline="\n")
