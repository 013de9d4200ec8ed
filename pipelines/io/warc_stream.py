"""WARC records of one file, surviving damage: a bad region costs only what is inside it.

``iter_warc(path)`` yields ``(index, offset, record, None)`` for each record and
``(index, offset, None, problem)`` for each unreadable region (the reader counts it as
one ``corrupt_warc`` error), then goes on at the next record it can find:

- gzip files (named .gz, or starting with gzip's magic bytes) are read one gzip
  member at a time, as WARC writers produce them (one record per member). Garbage
  between members, a member that does not inflate, or a member that is not a WARC
  record is skipped up to the next offset where a gzip member starts and inflates to a
  ``WARC/`` (or ARC) header. ``offset`` is the member's offset in the compressed file,
  the number Common Crawl's index and ``warcio extract`` use.
- uncompressed files are read straight through; after damage, reading resumes at the
  next line starting with ``WARC/<digit>``. ``offset`` is the record's byte offset.

A file that ends early (truncated) yields its whole records, then one problem. warcio
itself ends silently in some of these cases, which is why ``truncated`` and the
record's remaining length are checked here.

That takes warcio internals beyond its documented API (here and in fastwarc_reader):
``ArchiveIterator.offset`` (the record's start, read before the record is consumed) and
``.next_line`` (a line read past a record's end), ``LimitReader.limit`` (what is left of
a record's block), ``ArcWarcRecord.content_stream`` reading only ``http_headers`` and
``raw_stream``, and ``ArcWarcRecordLoader.load_http_headers``. They are the same in
every warcio of ``WARCIO_CHECKED`` (compared in warcio's sources). On another version
``check_warcio()`` first reads WARCs made here (plain and gzip, whole and cut short)
and stops with one line if warcio no longer behaves as this module expects.
"""

from __future__ import annotations

import importlib.metadata
import io
import logging
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from pipelines.errors import UserError
from pipelines.io.compression import CHUNK as _CHUNK
from pipelines.io.compression import GZIP_MAGIC, next_member, opened
from pipelines.io.compression import GzipMember as _Member

log = logging.getLogger(__name__)

_PLAIN_START = re.compile(rb"\nWARC/\d")
_RECORD_START = re.compile(rb"WARC/\d|[a-z][a-z0-9+.\-]*://", re.IGNORECASE)  # WARC or ARC

Event = tuple[int, int, Any, "str | None"]

#: warcio releases whose internals used here are known (see the module doc)
WARCIO_CHECKED = ("1.7.4", "1.7.5", "1.8.0", "1.8.1")
_WARCIO_OK: set[str] = set()


def iter_warc(path: Path, fh: IO[bytes] | None = None,
              span: tuple[int, int] | None = None) -> Iterator[Event]:
    """``fh``: ``path`` already open by the caller (e.g. hashed as it is read).

    ``span`` (start, end): only the records (and damaged regions) that start at an offset
    in [start, end), one piece of a split input (see ``record_starts``)."""
    check_warcio()
    with opened(path, fh) as fh:
        start, end = span if span is not None else (0, None)
        gz = path.name.endswith(".gz")
        if span is None:  # a piece is of a file named .warc(.gz)/.wet(.gz): no read at 0
            fh.seek(0)
            gz = gz or fh.read(len(GZIP_MAGIC)) == GZIP_MAGIC
            fh.seek(0)
        yield from (_gzip_records(fh, start, end) if gz else _plain_records(fh, start, end))


def first_record_at(fh, start: int, end: int | None, gz: bool) -> int | None:
    """Where a split piece [start, end) begins reading: 0 for the first piece, else the
    first offset in [start, end) where a record starts (a gzip member that inflates to a
    record header; a ``WARC/<digit>`` line whose header block, Content-Length and the
    record's end check out), None if no record starts there.

    A pure function of the file's bytes, so the piece before stops exactly where this
    one starts: it reads every record that starts before ``start``, even past it. What
    can fool it is a record's payload holding a whole WARC record itself (an archived
    WARC file, or in a gzip member stored deflate blocks of one) right after ``start``."""
    if start == 0:
        return 0
    return _next_member(fh, start, end) if gz else _next_plain_record(fh, start, end,
                                                                      check=True)


def cut_short(record) -> bool:
    """Whether the stream ended inside this (fully read) record: before its Content-Length
    did, or inside its WARC headers (no Content-Length, which every WARC record has)."""
    return record is not None and getattr(record.raw_stream, "limit", None) != 0


def intact(record) -> bool:
    """Whether a fully read record is whole and, for a record of a gzip file, its member
    inflates and its CRC checks: damage inside a member can garble bytes (a header, a
    status line) without zlib noticing before the member's end."""
    check = getattr(record, "member_intact", None)
    return not cut_short(record) and (check is None or check() is not False)


# ----------------------------------------------------------------------------- warcio

def check_warcio(version: str | None = None) -> None:
    """Once per process: a warcio outside ``WARCIO_CHECKED`` must pass ``warcio_problem``,
    else UserError (one line). ``version``: the installed one unless given."""
    version = version or importlib.metadata.version("warcio")
    if version in WARCIO_CHECKED or version in _WARCIO_OK:
        return
    problem = warcio_problem()
    if problem is not None:
        raise UserError(f"warcio {version} does not read WARC files the way thresher's reader "
                        f"expects ({problem}); install one of "
                        f"{', '.join(WARCIO_CHECKED)} (requirements.lock pins one)")
    _WARCIO_OK.add(version)
    log.info("warcio %s is not among the checked %s; its internals passed the check",
             version, ", ".join(WARCIO_CHECKED))


def warcio_problem() -> str | None:
    """What the installed warcio does differently from what this module and
    fastwarc_reader rely on, found on small WARCs made with its writer; None if nothing."""
    from warcio.recordloader import ArcWarcRecord, ArcWarcRecordLoader
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    bodies = [b"<p>one</p>", b"<p>two</p>" * 40]
    http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n"
    for gz in (False, True):
        buf = io.BytesIO()
        writer = WARCWriter(buf, gzip=gz)
        starts = []
        for i, body in enumerate(bodies):
            starts.append(buf.tell())
            headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html")],
                                       protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(
                f"http://example.com/{i}", "response", payload=io.BytesIO(body),
                http_headers=headers))
        data, kind = buf.getvalue(), "gzip" if gz else "plain"
        read = _gzip_records if gz else _plain_records
        got = []
        for _, offset, record, problem in read(io.BytesIO(data)):
            if problem is not None:
                return f"{kind}: {problem}"
            payload = record.content_stream().read()
            while record.raw_stream.read(1 << 16):
                pass
            got.append((offset, payload, intact(record)))
        if got != [(start, body, True) for start, body in zip(starts, bodies)]:
            return f"{kind}: records, offsets or the end of a record differ"
        damaged = False
        for _, _, record, problem in read(io.BytesIO(data[:-30])):  # cut short
            if record is not None:
                record.content_stream().read()
                while record.raw_stream.read(1 << 16):
                    pass
            damaged = damaged or problem is not None or not intact(record)
        if not damaged:
            return f"{kind}: a file cut short reads as whole"
    block = http + bodies[0]
    loaded = ArcWarcRecordLoader().load_http_headers("response", "http://example.com/",
                                                     io.BytesIO(block), len(block))

    class Record:  # what fastwarc_reader's records give content_stream
        http_headers, raw_stream = loaded, io.BytesIO(bodies[0])

    if loaded.get_statuscode() != "200" or ArcWarcRecord.content_stream(
            Record()).read() != bodies[0]:
        return "HTTP headers or payload of a record not read by warcio"
    return None


# ----------------------------------------------------------------------------- gzip

def _gzip_records(fh, start: int = 0, end: int | None = None) -> Iterator[Event]:
    from warcio.archiveiterator import ArchiveIterator

    idx, head = 0, b""
    pos = first_record_at(fh, start, end, gz=True)
    while pos is not None:
        if end is not None and pos >= end:
            return  # the next piece's
        if len(head) < len(GZIP_MAGIC):
            fh.seek(pos + len(head))
            head += fh.read(_CHUNK)
        if not head:
            return  # a clean end
        if not head.startswith(GZIP_MAGIC):
            yield idx, pos, None, "bytes that are not a gzip member"
            idx += 1
            pos, head = _next_member(fh, pos + 1, end), b""
            continue
        member = _Member(fh, pos, head)
        it = ArchiveIterator(member, arc2warc=True)
        record, problem = None, None
        while True:
            try:
                record = next(it)
            except StopIteration:
                break
            except Exception as exc:  # not a WARC record, bad headers...
                problem = f"{type(exc).__name__}: {exc}"
                break
            record.member_intact = member.intact
            yield idx, pos, record, None
            idx += 1
        if member.error is None and not member.truncated:
            member.drain()  # to where the next member starts
        if member.truncated:
            yield idx, pos, None, problem or "file ends inside a gzip member (truncated?)"
            return
        if problem is None and member.error is None and (
                cut_short(record) or getattr(it, "next_line", None)):
            problem = "gzip member ends inside a record"
        if member.error is not None or member.end is None:
            yield idx, pos, None, problem or member.error
            idx += 1
            pos, head = _next_member(fh, pos + 1, end), b""
            continue
        if problem is not None:  # a whole member, but not a readable record
            yield idx, pos, None, problem
            idx += 1
        pos, head = member.end, member.rest


def _next_member(fh, start: int, limit: int | None = None) -> int | None:
    """Offset of the next gzip member at or after ``start`` (and before ``limit``) that
    inflates to a record header (a magic number inside compressed data is not enough)."""
    return next_member(fh, start, limit, _starts_a_record)


def _starts_a_record(fh, offset: int) -> bool:
    fh.seek(offset)
    z = zlib.decompressobj(31)
    try:
        out = z.decompress(fh.read(4096), 64)
    except zlib.error:
        return False
    return _RECORD_START.match(out) is not None


# ----------------------------------------------------------------------------- plain

def _plain_records(fh, start: int = 0, end: int | None = None) -> Iterator[Event]:
    from warcio.archiveiterator import ArchiveIterator

    idx = 0
    pos = first_record_at(fh, start, end, gz=False)
    while pos is not None:
        fh.seek(pos)
        it = ArchiveIterator(fh, arc2warc=True)
        record = None
        while True:
            try:
                record = next(it)
            except StopIteration:
                # warcio ends without an error when the file is cut inside a record's body
                # or WARC headers, or inside the HTTP headers (a line left over)
                if (cut_short(record) or getattr(it, "next_line", None)) and (
                        end is None or it.offset < end or cut_short(record)):
                    yield idx, it.offset, None, "file ends inside a record (truncated?)"
                return
            except Exception as exc:  # garbage where a record should start, bad headers
                bad = it.offset
                if end is not None and bad >= end:
                    return  # the next piece's
                yield idx, bad, None, f"{type(exc).__name__}: {exc}"
                idx += 1
                pos = _next_plain_record(fh, bad + 1, end)
                break
            if end is not None and it.offset >= end:
                return  # the next piece's
            yield idx, it.offset, record, None
            idx += 1


def _next_plain_record(fh, start: int, limit: int | None = None,
                       check: bool = False) -> int | None:
    """Offset of the first line at or after ``start`` (and before ``limit``) that starts
    with ``WARC/<digit>``; with ``check``, also a record whose header block and end check
    out (``_plain_record_ends``)."""
    offset = start - 1  # the newline before a record starting right at ``start``
    while limit is None or offset + 1 < limit:
        fh.seek(offset)
        chunk = fh.read(_CHUNK + 8)
        full = len(chunk) == _CHUNK + 8
        for m in _PLAIN_START.finditer(chunk):
            at = offset + m.start() + 1
            if (full and m.start() >= _CHUNK) or (limit is not None and at >= limit):
                break  # the next chunk's (it overlaps this one), or the next piece's
            if not check or _plain_record_ends(fh, at):
                return at
        if len(chunk) < _CHUNK + 8:
            return None
        offset += _CHUNK
    return None


_CONTENT_LENGTH = re.compile(rb"\ncontent-length:[ \t]*(\d+)[ \t]*\r?\n", re.IGNORECASE)
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_WARC_LINE = re.compile(rb"WARC/\d+\.\d+\r?\n")


def _plain_record_ends(fh, offset: int) -> bool:
    """Whether a record starting at ``offset`` looks whole: a ``WARC/x.y`` line, a header
    block with a Content-Length, then after that many bytes the record's blank lines and
    the next record's ``WARC/`` (or the file's end; or the file ends inside it)."""
    fh.seek(offset)
    head = fh.read(_CHUNK)
    if not _WARC_LINE.match(head):
        return False
    blank = _HEADER_END.search(head)
    if blank is None:
        return False
    length = _CONTENT_LENGTH.search(head, 0, blank.start() + 2)
    if length is None:
        return False
    fh.seek(offset + blank.end() + int(length.group(1)))
    tail = fh.read(4 + 5)
    if len(tail) < 2:  # the file ends inside the record: a truncated last record
        return True
    rest = tail.lstrip(b"\r\n")
    return len(tail) - len(rest) in (2, 4) and (rest == b"" or rest.startswith(b"WARC/"))
