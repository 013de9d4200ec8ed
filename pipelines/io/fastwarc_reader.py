"""The fastwarc back-end of the WARC reader (`input: {format: warc, backend: fastwarc}`).

FastWARC (Rust) inflates the gzip members and parses the WARC headers of every record,
which is most of what warcio costs in Python. Everything else is the warcio reader's:
its `_rows` makes every keep/drop decision, warcio's own parser reads the HTTP headers of
the few records that need them, and warcio's decoders undo chunked and compressed
payloads, so both back-ends give the same rows, counts and reasons.

FastWARC ends quietly on a truncated file and skips some damage, where thresher must
count it. So a record is handed over only once its whole block has been read and its
length checked, the last gzip member is checked to end the file, and at the first doubt
(an error, a short record, a bad tail) the rest of the file is read by the warcio
back-end, from the first record not yet handed over. Files that are not gzip (plain
WARC, ARC, zstd) are read by warcio throughout.
"""

from __future__ import annotations

import io
import logging
import zlib
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import IO

from pipelines.io.compression import opened
from pipelines.io.readers import WarcReader, _warc_records
from pipelines.io.warc_stream import GZIP_MAGIC, check_warcio
from pipelines.stats import StageStats

log = logging.getLogger(__name__)

_HEAD = 1 << 20  # bytes kept of a record over max_record_bytes


class _Doubt(Exception):
    """FastWARC's view of the file can no longer be trusted; warcio reads the rest."""


def _text(raw: bytes) -> str:
    """A header value decoded as warcio does: UTF-8, else ISO-8859-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("iso-8859-1")


class _WarcHeaders:
    """The few WARC headers the reader asks for, warcio-style (first occurrence wins)."""

    __slots__ = ("_h", "_uri")

    def __init__(self, headers):
        self._h = headers
        uri = self._first("WARC-Target-URI")
        if uri is not None:  # warcio fixes wget's <uri> and percent-encodes spaces
            if uri.startswith("<") and uri.endswith(">"):
                uri = uri[1:-1]
            uri = uri.replace(" ", "%20")
        self._uri = uri

    def _first(self, name: str) -> str | None:
        values = self._h.get_bytes_multiple(name.encode())
        return _text(values[0]).strip() if values else None

    def get_header(self, name: str, default: str | None = None) -> str | None:
        v = self._uri if name.lower() == "warc-target-uri" else self._first(name)
        return default if v is None else v


class _Record:
    """A complete WARC record read by FastWARC, with the warcio record attributes the
    reader uses (rec_type, rec_headers, http_headers, length, content_stream, raw_stream)."""

    __slots__ = ("rec_type", "rec_headers", "http_headers", "length", "raw_stream")

    def __init__(self, rec_type: str, rec_headers: _WarcHeaders, length: int | None,
                 block: bytes):
        self.rec_type, self.rec_headers, self.length = rec_type, rec_headers, length
        self.raw_stream = _Complete(block)
        self.http_headers = None
        uri = rec_headers.get_header("WARC-Target-URI") or ""
        # as warcio does for a response (it also parses those of requests and revisits,
        # which the reader drops by type without looking at them)
        if length != 0 and rec_type == "response" and uri.startswith(("http:", "https:")):
            try:
                self.http_headers = _loader().load_http_headers(rec_type, uri, self.raw_stream,
                                                             length)
            except Exception as exc:  # warcio's iterator would stop here: let it say why
                raise _Doubt(f"HTTP headers: {type(exc).__name__}: {exc}") from exc

    def content_stream(self):
        """The payload with chunked transfer and content encodings undone, by warcio."""
        from warcio.recordloader import ArcWarcRecord

        return ArcWarcRecord.content_stream(self)  # uses http_headers and raw_stream only


class _Complete(io.BytesIO):
    """A record block read in full: ``limit`` 0 tells the reader it was not cut short."""

    limit = 0


@lru_cache(maxsize=1)
def _loader():
    from warcio.recordloader import ArcWarcRecordLoader

    return ArcWarcRecordLoader()  # as warcio's ArchiveIterator makes it: no HTTP verification


class FastWarcReader(WarcReader):
    """WarcReader whose records come from FastWARC (gzip WARC files; the rest: warcio)."""

    def _records(self, path: Path, stats: StageStats, source: str, fh: IO[bytes] | None):
        check_warcio()  # _Record leans on warcio internals too (warc_stream's module doc)
        with opened(path, fh) as fh:
            yield from self._fast_or_warcio(path, stats, source, fh)

    def _fast_or_warcio(self, path: Path, stats: StageStats, source: str, fh: IO[bytes]):
        gz = fh.read(len(GZIP_MAGIC)) == GZIP_MAGIC
        fh.seek(0)
        if not gz:
            yield from _warc_records(path, stats, source, fh)
            return
        done, last_id, held = 0, None, None
        try:
            # a record is handed over once FastWARC has read past its gzip member (the
            # next record, or the end-of-file check): damage found there (a bad CRC, a
            # cut trailer) must still let warcio judge the record itself
            for offset, record in _fast_records(fh, self.cfg.max_record_bytes):
                if held is not None:
                    stats.docs_in += 1
                    yield done, *held
                    done += 1
                    last_id = held[1].rec_headers.get_header("WARC-Record-ID")
                held = (offset, record)
            if held is not None:
                stats.docs_in += 1
                yield done, *held
            return
        except _Doubt as exc:
            log.info("%s: fastwarc stopped after %d records (%s); warcio reads the rest",
                     path, done, exc)
        stats.docs_in -= done  # warcio counts these records again; only the rest is yielded
        for idx, offset, record in _warc_records(path, stats, source, fh):
            if idx == done - 1 and record.rec_headers.get_header("WARC-Record-ID") != last_id:
                raise RuntimeError(f"{path}: fastwarc and warcio disagree on record {idx}; "
                                   "read this file with `backend: warcio`")
            if idx >= done:
                yield idx, offset, record


def _fast_records(fh: IO[bytes], limit: int | None) -> Iterator[tuple[int, _Record]]:
    """(offset, record) of each whole record; _Doubt at the first sign of damage.

    A record longer than ``limit`` keeps only its head in memory (enough for its HTTP
    headers): the reader drops it as too_large without reading its payload."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    last = None
    it = ArchiveIterator(fh, record_types=WarcRecordType.any_type, parse_http=False,
                         auto_decode="none")
    while True:
        try:
            r = next(it)
        except StopIteration:
            break
        except Exception as exc:
            raise _Doubt(f"{type(exc).__name__}: {exc}") from exc
        last = r.stream_pos
        headers = _WarcHeaders(r.headers)
        declared = headers.get_header("Content-Length")
        try:
            length = int(declared) if declared is not None else None
        except ValueError as exc:
            raise _Doubt(f"Content-Length {declared!r}") from exc
        big = length is not None and limit is not None and length > limit
        try:
            block = b"" if r.reader is None else r.reader.read(_HEAD if big else -1)
            n = len(block) + (r.consume() if big else 0)
        except Exception as exc:
            raise _Doubt(f"{type(exc).__name__}: {exc}") from exc
        if length is None or n != length:
            raise _Doubt(f"record at offset {last} is cut short")
        rtype = headers.get_header("WARC-Type")
        yield last, _Record(rtype, headers, length, block)
    if last is not None and not _ends_the_file(fh, last):
        raise _Doubt("data after the last record, or a truncated last member")


def _ends_the_file(fh: IO[bytes], start: int) -> bool:
    """Whether the gzip member at ``start`` is whole and nothing follows it."""
    z = zlib.decompressobj(31)
    fh.seek(start)
    try:
        while chunk := fh.read(1 << 16):
            z.decompress(chunk, 1 << 16)
            while z.unconsumed_tail and not z.eof:
                z.decompress(z.unconsumed_tail, 1 << 16)
            if z.eof:
                return not z.unused_data and not fh.read(1)
    except zlib.error:
        return False
    return False
