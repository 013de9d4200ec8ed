"""Open plain, gzip or zstd files by extension, for reading and writing."""

from __future__ import annotations

import gzip
import io
from contextlib import nullcontext
from pathlib import Path
from typing import IO, ContextManager

import zstandard

from pipelines.io.storage import is_remote, open_read


class _ZstdReader(io.RawIOBase):
    """All frames of a zstd file; EOFError if the file ends inside a frame.

    (zstandard's ``stream_reader`` ends cleanly at a truncated frame, so a cut file would
    read as a shorter, valid one.) Corrupt data raises OSError, as gzip's does.
    """

    def __init__(self, raw: IO[bytes], owned: bool = True):
        self._raw, self._owned = raw, owned  # closed with this reader only if owned
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
        if self._owned:
            self._raw.close()
        super().close()


def open_binary(path: Path) -> IO[bytes]:
    """Decompressing binary reader chosen by file extension."""
    name = path.name
    if is_remote(path):
        return decompressing(open_read(path), name)
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".zst") or name.endswith(".zstd"):
        return io.BufferedReader(_ZstdReader(open(path, "rb")))
    return open(path, "rb")


def opened(path: Path, fh: IO[bytes] | None = None) -> ContextManager[IO[bytes]]:
    """``fh`` when the caller has opened ``path`` already (left open), else ``path``
    opened for reading (closed on exit): a remote URL through the storage layer."""
    if fh is not None:
        return nullcontext(fh)
    if is_remote(path):
        return open_read(path)
    return open(path, "rb")


def decompressing(raw: IO[bytes], name: str) -> IO[bytes]:
    """The decompressed bytes of the open binary file ``raw``, by the extension of
    ``name``. Do not close the result: it holds nothing of its own, ``raw``'s opener
    closes the file."""
    if name.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if name.endswith(".zst") or name.endswith(".zstd"):
        return io.BufferedReader(_ZstdReader(raw, owned=False))
    return raw


def open_text(path: Path) -> IO[str]:
    return io.TextIOWrapper(open_binary(path), encoding="utf-8", errors="strict", newline="\n")
