"""The sha256 of an input file, taken while its reader reads it (for the manifest).

A reader that goes through its file front to back (WARC, WET, JSONL) is handed a
``HashingFile`` instead of opening the path itself, so the input is read once, not twice
(the second read costs little from the page cache, a full transfer on network storage).
Every byte the reader reads is fed to sha256 once, in file order, whatever it does:

- bytes read again after a backward seek (a gzip probe, a resync after damage, the
  fastwarc back-end handing the file to warcio) are not fed again;
- bytes jumped over by a forward seek are read with ``os.pread`` (the reader's position
  is left alone) and fed before anything after them; over a stream that is not a local
  file (a remote object from ``storage.open_read``) they are read through the stream
  itself, which is then put back where the reader left it;
- ``hexdigest()`` feeds what the reader left unread (it stopped early, or the file's
  tail is damaged).

So the digest is always the sha256 of the file's bytes. Readers that start at the end
(Parquet's footer) keep one read of their own (``writers.sha256_file``).

A piece of a split input (``input.max_task_bytes``) hashes its own byte range
[start, end) the same way: bytes its reader reads outside the range (the line or record
before it, found to resync; the last record, read past ``end``) are not fed. The
manifest pairs the range hashes of a file's pieces (manifest.py).
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

_CHUNK = 1 << 20


class HashingFile(io.RawIOBase):
    """A binary file (read-only, seekable) that hashes its bytes as they are read:
    ``path`` is a local file, or an open binary stream (owned: closed by ``release``)."""

    def __init__(self, path: str | Path | IO[bytes], start: int = 0, end: int | None = None):
        if isinstance(path, (str, os.PathLike)):
            self._f: IO[bytes] = open(path, "rb", buffering=0)
            self._fd: int | None = self._f.fileno()
        else:
            self._f, self._fd = path, None
        self._h = hashlib.sha256()
        self._pos = 0  # the reader's position
        self._start, self._end = start, end  # the range hashed (end None: the file's end)
        self._hashed = start  # bytes [start, _hashed) have been fed
        self.seconds = 0.0  # spent hashing, and reading what the reader skipped

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._pos = self._f.seek(offset, whence)
        return self._pos

    def readinto(self, b) -> int:
        n = self._f.readinto(b)
        hi = self._pos + n if self._end is None else min(self._pos + n, self._end)
        if n and hi > self._hashed:
            t0 = time.perf_counter()
            self._feed_up_to(self._pos)
            with memoryview(b) as view, view.cast("B") as data:
                self._h.update(data[self._hashed - self._pos:hi - self._pos])
            self._hashed = hi
            self.seconds += time.perf_counter() - t0
        self._pos += n
        return n

    def _feed_up_to(self, end: int | None) -> None:
        """Feed the bytes from ``_hashed`` to ``end`` (None: to the end of the range)."""
        if self._end is not None:
            end = self._end if end is None else min(end, self._end)
        fd = self._fd
        back = self._f.tell() if fd is None else None
        if fd is None:
            self._f.seek(self._hashed)
        try:
            while end is None or self._hashed < end:
                size = _CHUNK if end is None else min(_CHUNK, end - self._hashed)
                chunk = os.pread(fd, size, self._hashed) if fd is not None else \
                    self._f.read(size)
                if not chunk:
                    return
                self._h.update(chunk)
                self._hashed += len(chunk)
        finally:
            if back is not None:
                self._f.seek(back)

    @property
    def size(self) -> int:
        """Bytes hashed so far (the range's size once ``hexdigest`` has run)."""
        return self._hashed - self._start

    def hexdigest(self) -> str:
        """The sha256 of the whole file or range (what the reader did not read is read
        here)."""
        t0 = time.perf_counter()
        self._feed_up_to(None)
        self.seconds += time.perf_counter() - t0
        return self._h.hexdigest()

    def close(self) -> None:
        """Closed for the reader (warcio closes what it has iterated); the file itself stays
        open for ``hexdigest`` until ``release`` (on leaving ``with``)."""
        super().close()

    def release(self) -> None:
        self.close()
        self._f.close()

    def __exit__(self, *exc) -> None:
        self.release()


@dataclass
class InputDigest:
    """The sha256 of one input, filled in by ``read_input`` once the reader is done."""

    sha256: str | None = None
    seconds: float = 0.0  # time spent hashing (inside the reader's time)
    # a remote input's storage retries by kind (throttled, server_error, connection,
    # timeout); None for a local input
    retries: dict[str, int] | None = None



def pieces_differ(path: str, pieces: list[dict], storage=None) -> list[int]:
    """Indexes of the ``pieces`` (start, end, sha256: a split input's, manifest.py) whose
    bytes [start, end) of ``path`` (local, or a URL read through ``storage``) no longer
    hash to their sha256; a file shorter than a piece's end differs there too."""
    from pipelines.io import storage as st

    fh = (storage or st.Storage()).open_read(path) if st.is_remote(path) else \
        open(path, "rb")
    bad = []
    with fh:
        for i, p in enumerate(pieces):
            fh.seek(p["start"])
            h, left = hashlib.sha256(), p["end"] - p["start"]
            while left > 0:
                chunk = fh.read(min(_CHUNK, left))
                if not chunk:
                    break
                h.update(chunk)
                left -= len(chunk)
            if left or h.hexdigest() != p["sha256"]:
                bad.append(i)
    return bad
