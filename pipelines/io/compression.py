"""Open plain, gzip or zstd files by extension, for reading and writing; and the gzip
members and zstd frames of a file, which let a split input be entered mid-way.

A gzip file may be several gzip members one after the other (bgzip, ``cat a.gz b.gz``,
writers that flush a member per chunk; a WARC.gz holds one per record), a zstd file
several independent frames (a frame per chunk, as ``zstandard`` or pzstd write them).
Decompression can start at any member or frame: ``next_member`` finds the next one at or
after an offset (a magic number, then a check that it really starts one: a magic number
inside compressed data is not enough), and ``Members`` reads the decompressed bytes from
there on, noting where each member starts in the file and in its output.
"""

from __future__ import annotations

import bisect
import gzip
import io
import zlib
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import IO, ContextManager

import zstandard

from pipelines.io.storage import is_remote, open_read

GZIP_MAGIC = b"\x1f\x8b\x08"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHUNK = 1 << 16
MAX_OUT = 1 << 20  # inflate at most this much per step (bounded memory on gzip bombs)
#: a candidate member (frame) is taken once this much of it decompresses without error,
#: if it has not ended (and checked out) before
VERIFY_BYTES = 1 << 20


class _Chunked(io.RawIOBase):
    """A reader that serves the byte chunks ``_chunk()`` makes (None at the end); the
    decompressing readers below only make chunks."""

    _out: bytes = b""
    _pos: int = 0

    def readable(self) -> bool:
        return True

    def _chunk(self) -> bytes | None:
        raise NotImplementedError

    def readinto(self, b) -> int:
        while self._pos >= len(self._out):
            out = self._chunk()
            if out is None:
                return 0
            self._out, self._pos = out, 0
        n = min(len(b), len(self._out) - self._pos)
        b[:n] = self._out[self._pos:self._pos + n]
        self._pos += n
        return n


class _ZstdReader(_Chunked):
    """All frames of a zstd file; EOFError if the file ends inside a frame.

    (zstandard's ``stream_reader`` ends cleanly at a truncated frame, so a cut file would
    read as a shorter, valid one.) Corrupt data raises OSError, as gzip's does.
    """

    def __init__(self, raw: IO[bytes], owned: bool = True):
        self._raw, self._owned = raw, owned  # closed with this reader only if owned
        self._dctx = zstandard.ZstdDecompressor()
        self._frame = None  # decompressobj of the frame being read

    def _chunk(self) -> bytes | None:
        data = self._raw.read(1 << 16)
        if not data:
            if self._frame is not None:
                raise EOFError("zstd file ends inside a frame (truncated?)")
            return None
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
        return b"".join(out)

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


# ----------------------------------------------------------------------------- members

def member_kind(name: str) -> str | None:
    """``"gzip"`` or ``"zstd"`` for a file name whose compression has members (frames)
    that can be read on their own, else None."""
    name = name.lower()
    if name.endswith(".gz"):
        return "gzip"
    if name.endswith((".zst", ".zstd")):
        return "zstd"
    return None


class GzipMember(_Chunked):
    """The inflated bytes of the one gzip member starting at ``start``.

    Ends (returns b"") at the member's end; notes whether the file ended first
    (``truncated``) or the data did not inflate (``error``). ``end`` is the offset just
    after the member once it is known; ``rest`` the bytes already read beyond it.
    """

    def __init__(self, fh, start: int, head: bytes = b""):
        self.fh, self.start = fh, start
        self._z = zlib.decompressobj(31)
        self._in = head  # compressed bytes read but not yet inflated (fh is after them)
        self._out, self._pos = b"", 0
        self.end: int | None = None
        self.rest = b""
        self.truncated = False
        self.error: str | None = None

    def _chunk(self) -> bytes | None:
        return self._inflate()

    def _inflate(self) -> bytes | None:
        """The next inflated piece, or None at the member's end (or its failure)."""
        if self.end is not None or self.truncated or self.error:
            return None
        if not self._in:
            self._in = self.fh.read(CHUNK)
            if not self._in:
                self.truncated = True
                return None
        try:
            out = self._z.decompress(self._in, MAX_OUT)
        except zlib.error as exc:
            self.error = f"gzip data does not inflate ({exc})"
            return None
        if self._z.eof:
            self.rest = self._z.unused_data
            self.end = self.fh.tell() - len(self.rest)
            self._in = b""
        else:
            self._in = self._z.unconsumed_tail
        return out

    def intact(self, lookahead: int = MAX_OUT) -> bool | None:
        """Whether the member inflates to its end and its CRC checks, found by inflating
        ahead (what is inflated stays buffered for the reader). None when that would
        take more than ``lookahead`` bytes (a member holding more records)."""
        ahead = [self._out[self._pos:]]
        size = len(ahead[0])
        while self.end is None and not (self.truncated or self.error) and size <= lookahead:
            out = self._inflate()
            if out is not None:
                ahead.append(out)
                size += len(out)
        self._out, self._pos = b"".join(ahead), 0
        if self.truncated or self.error:
            return False
        return True if self.end is not None else None

    def drain(self) -> None:
        """Inflate to the member's end (to find where the next one starts)."""
        while self.read(CHUNK):
            pass


def next_member(fh, start: int, limit: int | None,
                starts: Callable[[IO[bytes], int], bool], magic: bytes = GZIP_MAGIC
                ) -> int | None:
    """Offset of the first ``magic`` at or after ``start`` (and before ``limit``) where
    ``starts(fh, offset)`` says a member (frame) begins (a magic number inside
    compressed data is not enough)."""
    offset = start
    while limit is None or offset < limit:
        fh.seek(offset)
        chunk = fh.read(CHUNK + len(magic))
        if len(chunk) < len(magic):
            return None
        # a magic number starting before ``stop`` (it may end after it)
        stop = (CHUNK if limit is None else min(CHUNK, limit - offset)) + len(magic) - 1
        i = chunk.find(magic, 0, stop)
        while i >= 0:
            if starts(fh, offset + i):
                return offset + i
            i = chunk.find(magic, i + 1, stop)
        offset += CHUNK
    return None


def gzip_member_at(fh, offset: int) -> bool:
    """Whether a gzip member starts at ``offset``: it inflates without error to its end
    (zlib checks its CRC and length) or for ``VERIFY_BYTES``."""
    fh.seek(offset)
    z, out, data = zlib.decompressobj(31), 0, b""
    while out < VERIFY_BYTES:
        if not data:
            data = fh.read(CHUNK)
            if not data:
                return False  # the file ends inside it
        try:
            out += len(z.decompress(data, MAX_OUT))
        except zlib.error:
            return False
        if z.eof:
            return True
        data = z.unconsumed_tail
    return True


def _frame_follows(rest: bytes) -> bool:
    """Whether ``rest`` (at least 4 bytes, or the file's end) starts a zstd frame or a
    skippable frame (magic 0x184D2A5?)."""
    return rest == b"" or rest[:4] == ZSTD_MAGIC or (
        len(rest) >= 4 and rest[1:4] == b"\x2a\x4d\x18" and rest[0] & 0xF0 == 0x50)


def zstd_frame_at(fh, offset: int) -> bool:
    """Whether a zstd frame starts at ``offset``: it decompresses without error for
    ``VERIFY_BYTES``, or to its end where the next frame (or the file's end) follows (a
    frame's blocks may be stored raw, so decoding alone proves little)."""
    fh.seek(offset)
    d, out = zstandard.ZstdDecompressor().decompressobj(), 0
    while out < VERIFY_BYTES:
        data = fh.read(CHUNK // 4)
        if not data:
            return False  # the file ends inside it
        try:
            out += len(d.decompress(data))
        except zstandard.ZstdError:
            return False
        if d.eof:
            rest = d.unused_data
            if len(rest) < 4:
                rest += fh.read(4 - len(rest))
            return _frame_follows(rest)
    return True


_STARTS = {"gzip": (gzip_member_at, GZIP_MAGIC), "zstd": (zstd_frame_at, ZSTD_MAGIC)}


def first_member(fh, kind: str, start: int, limit: int | None) -> int | None:
    """Where decompression can start at or after ``start`` (before ``limit``): 0 when
    ``start`` is, else the first member (frame) found there."""
    if start == 0:
        return 0
    check, magic = _STARTS[kind]
    return next_member(fh, start, limit, check, magic)


class Members(_Chunked):
    """The decompressed bytes of the gzip members (zstd frames) of ``fh`` from the one
    at offset ``at`` on, to the file's end (``at`` None: nothing).

    ``starts`` lists (offset in the file, position in the output) of each member begun;
    ``stop_at`` is the output position where the first member at or after ``end``
    begins, once reached. EOFError if the file ends inside a member; OSError on data
    that does not decompress, or bytes between members that are not one (after gzip's
    last member, zero bytes are allowed, as gzip allows them)."""

    def __init__(self, fh, kind: str, at: int | None, end: int | None = None):
        self.fh, self.kind, self.end = fh, kind, end
        self.starts: list[tuple[int, int]] = []
        self._outs: list[int] = []  # the output positions of ``starts``, for bisect
        self.stop_at: int | None = None
        self._total = 0  # bytes output so far
        self._out, self._pos = b"", 0
        self._member = None  # the GzipMember or zstd decompressobj being read
        self._next, self._head = at, b""  # the next member's offset, its bytes read
        self._dctx = zstandard.ZstdDecompressor() if kind == "zstd" else None


    def number(self, at: int) -> int:
        """A number for the output position ``at`` that does not depend on where reading
        began: its member's offset in the file x 2^40 + its offset in the member's
        output."""
        i = bisect.bisect_right(self._outs, at) - 1
        if i < 0:
            return at
        offset, out = self.starts[i]
        return (offset << 40) + at - out

    def _chunk(self) -> bytes | None:
        """The next decompressed bytes (maybe empty), None at the file's end."""
        if self._member is None and not self._begin():
            return None
        out = self._gzip_step() if self.kind == "gzip" else self._zstd_step()
        self._total += len(out)
        return out

    def _begin(self) -> bool:
        """Start the member at ``_next``; False at the file's end."""
        if self._next is None:
            return False
        pos, head = self._next, self._head
        if len(head) < len(GZIP_MAGIC):
            self.fh.seek(pos + len(head))
            head += self.fh.read(CHUNK)
        if not head:
            return False
        if self.kind == "gzip":
            if not head.startswith(GZIP_MAGIC):
                while head and not head.strip(b"\0"):  # zero padding to the end
                    head = self.fh.read(CHUNK)
                if not head:
                    return False
                raise OSError(f"bytes that are not a gzip member at offset {pos}")
            self._member = GzipMember(self.fh, pos, head)
        else:
            self._member = self._dctx.decompressobj()  # type: ignore[union-attr]
            self._head = head
        if self.stop_at is None and self.end is not None and pos >= self.end:
            self.stop_at = self._total
        self.starts.append((pos, self._total))
        self._outs.append(self._total)
        return True

    def _gzip_step(self) -> bytes:
        member: GzipMember = self._member  # type: ignore[assignment]
        out = member.read(CHUNK)
        if out:
            return out
        if member.truncated:
            raise EOFError("file ends inside a gzip member (truncated?)")
        if member.error is not None:
            raise OSError(f"gzip member at offset {member.start}: {member.error}")
        self._next, self._head, self._member = member.end, member.rest, None
        return b""

    def _zstd_step(self) -> bytes:
        data, self._head = self._head or self.fh.read(CHUNK), b""
        if not data:
            raise EOFError("zstd file ends inside a frame (truncated?)")
        try:
            out = self._member.decompress(data)  # type: ignore[union-attr]
        except zstandard.ZstdError as exc:
            raise OSError(f"corrupt zstd data: {exc}") from exc
        if self._member.eof:  # type: ignore[union-attr]
            rest = self._member.unused_data  # type: ignore[union-attr]
            self._next, self._head, self._member = self.fh.tell() - len(rest), rest, None
        return out


def has_second_member(fh, kind: str, size: int, window: int) -> bool:
    """Whether a member (frame) other than the first starts in the first ``window``
    bytes: the file can then be entered mid-way (a file of one member cannot)."""
    check, magic = _STARTS[kind]
    return next_member(fh, 1, min(size, window), check, magic) is not None
