"""Input readers: one file in, Arrow tables of documents out, every record counted.

A reader counts each record it sees into ``stats.docs_in`` and every record it
does not yield as a drop (``stats.drop``: a decision such as ``not_html``) or
an error (``stats.error``: bad input such as ``bad_json``). The runner counts
what is yielded, so ``docs_in == docs_out + dropped + errors`` for the reader.
When the task samples drops, each dropped record is described (id, url, source,
record index, a few headers) so ``thresher samples RUN read`` can show it.

Bad input never ends a task: a damaged WARC region, a bad JSONL line, a Parquet row
without text is one counted error and reading goes on (docs/reliability.md lists
every reason). Memory stays bounded: records over ``max_record_bytes`` are dropped
unread (``too_large``) and batches are cut at ``BATCH_CHARS`` characters.
"""

from __future__ import annotations

import bisect
import io
import itertools
import json
import logging
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

from pipelines.io.compression import Members, decompressing, first_member, member_kind, opened
from pipelines.io.html_charset import decode_html, looks_binary
from pipelines.io.warc_stream import intact, iter_warc
from pipelines.lazy import lazy_module
from pipelines.schema import HTML, ID, SOURCE, TEXT, URL, stable_id
from pipelines.stage import ANY_COLUMN
from pipelines.stats import DATASET, StageStats

if TYPE_CHECKING:  # config.py reaches provided_columns (the chain check): no import back
    from pipelines.config import InputBase, JsonlInput, ParquetInput, WarcInput, WetInput
    from pipelines.plan import InputFile

pa = lazy_module("pyarrow")  # the chain check asks a reader for its columns, not tables
pc = lazy_module("pyarrow.compute")
pq = lazy_module("pyarrow.parquet")
log = logging.getLogger(__name__)
BATCH_CHARS = 64 * 2**20


class Reader:
    """Base reader: ``read(path, source, stats)`` yields Arrow tables.

    ``fh``, if given, is ``path`` already open (binary, seekable; its opener closes it):
    ``read_input`` passes a ``HashingFile`` to readers that ``stream`` (read the file
    front to back), so the input is hashed as it is read.

    ``part``, if given, is one piece of a split input (``InputFile.split``): the reader
    yields only the records that start in its byte range [start, end) (Parquet: its row
    groups; compressed JSONL: the lines after a newline in the gzip members or zstd
    frames that start in it), and numbers records by their byte offset in the file
    (Parquet: by row, as always; compressed JSONL: by member and offset in it,
    ``compression.Members.number``), so a record's stable id does not depend on how the
    file was cut."""

    #: name -> Arrow type alias of the columns the format fixes (see ``provides``)
    columns: ClassVar[dict[str, str]] = {}
    streams = True

    def __init__(self, cfg: InputBase):
        self.cfg = cfg

    @classmethod
    def provides(cls, cfg: InputBase) -> dict[str, pa.DataType | str | None]:
        """The columns every table this reader yields has, known from the config alone
        (``ANY_COLUMN``: and maybe others, known only once a file is read); types are
        Arrow aliases, so the chain check imports no pyarrow."""
        return dict(cls.columns)

    @property
    def schema(self) -> pa.Schema:
        """The Arrow schema of the tables ``_batches`` yields."""
        return _arrow_schema(tuple(self.provides(self.cfg).items()))

    def read(self, path: Path, source: str, stats: StageStats,
             fh: IO[bytes] | None = None, part: InputFile | None = None
             ) -> Iterator[pa.Table]:
        raise NotImplementedError

    def _batches(self, rows: Iterator[dict[str, Any]]) -> Iterator[pa.Table]:
        """Tables of ``batch_size`` rows, cut earlier when their text reaches
        ``BATCH_CHARS`` (a batch of huge pages must not hold gigabytes)."""
        buf: list[dict[str, Any]] = []
        chars = 0
        for row in rows:
            buf.append(row)
            chars += len(row.get(HTML) or row.get(TEXT) or "")
            if len(buf) >= self.cfg.batch_size or chars >= BATCH_CHARS:
                yield pa.Table.from_pylist(buf, schema=self.schema)
                buf, chars = [], 0
        if buf:
            yield pa.Table.from_pylist(buf, schema=self.schema)


# ----------------------------------------------------------------------------- WARC / WET

def _warc_records(path: Path, stats: StageStats, source: str = "",
                  fh: IO[bytes] | None = None, part: InputFile | None = None):
    """(index, offset, record) for each WARC record. Each unreadable region (a truncated
    tail, garbage between records, a record that does not parse) is counted as one
    ``corrupt_warc`` error, and reading goes on at the next record found after it.
    ``part``: only the records starting in its byte range, indexed by their offset."""
    span = None if part is None else (part.start, part.end)
    for idx, offset, record, problem in iter_warc(path, fh, span):
        if span is not None:
            idx = offset
        stats.docs_in += 1
        if problem is None:
            yield idx, offset, record
            continue
        stats.error("corrupt_warc", doc=_at(stats, source, idx, problem=problem, offset=offset))
        log.warning("%s: unreadable data at offset %d, after record %d (%s); skipped to the "
                    "next record", path, offset, idx - 1, problem)


class _TooLarge(Exception):
    pass


def _payload(record, limit: int | None = None) -> bytes:
    """The record's payload (at most ``limit`` bytes, else _TooLarge); EOFError if the
    file ends before the record does. Reads the rest of the record in bounded steps."""
    stream = record.content_stream()
    body = stream.read() if limit is None else stream.read(limit + 1)
    if limit is not None and len(body) > limit:
        raise _TooLarge
    if not _drain(record):
        raise EOFError("record cut short or its gzip member damaged")
    return body


def _drain(record) -> bool:
    """Read the rest of the record in bounded steps; False if the file ends inside it
    or its gzip member turns out damaged (warc_stream.intact)."""
    while record.raw_stream.read(1 << 16):
        pass
    return intact(record)


def _unreadable(stats: StageStats, record, source: str, path: Path, idx: int, offset: int,
                exc: Exception) -> None:
    stats.error("unreadable_body", doc=_about(
        stats, record, source, idx, problem=f"{type(exc).__name__}: {exc}", offset=offset))
    log.warning("%s record %d at offset %d: %s: %s", path, idx, offset, type(exc).__name__, exc)


def _drop_whole(stats: StageStats, record, source: str, path: Path, idx: int, offset: int,
                reason: str, details: dict) -> None:
    """Drop a record judged without its payload, once the whole record is known to be
    readable (damage can garble a header before the gzip check notices): else it is an
    ``unreadable_body`` error."""
    if _drain(record):
        stats.drop(reason, doc=_about(stats, record, source, idx, **details))
    else:
        _unreadable(stats, record, source, path, idx, offset,
                    EOFError("record cut short or its gzip member damaged"))


def _header_decision(record, cfg: WarcInput, allowed: set[str], limit: int | None,
                     offset: int) -> tuple[str | None, dict]:
    """The drop reason (and sample details) the WARC and HTTP headers alone decide, or
    (None, {}) for a record whose payload must be read."""
    rtype = record.rec_type
    if rtype != "response":
        return f"record_{rtype}", {}
    http = record.http_headers
    if http is None:
        return "no_http_headers", {}
    status = http.get_statuscode() or ""
    if cfg.only_ok_status and not status.startswith("2"):
        return "http_status", {"status": status}
    ctype_full = http.get_header("Content-Type") or ""
    if ctype_full.split(";")[0].strip().lower() not in allowed:
        return "not_html", {"content_type": ctype_full}
    if limit is not None and (record.length or 0) > limit:  # declared: dropped unread
        return "too_large", {"offset": offset, "length": record.length}
    return None, {}


def _record_id(record, source: str, idx: int) -> str:
    rid = record.rec_headers.get_header("WARC-Record-ID")
    return rid.strip().strip("<>") if rid else stable_id(source, idx)


def _about(stats: StageStats, record, source: str, idx: int, **details) -> dict | None:
    """A dropped WARC record as the sample sees it (None when the task does not sample)."""
    if stats.sampler is None:
        return None
    return {ID: _record_id(record, source, idx), URL:
            record.rec_headers.get_header("WARC-Target-URI"), SOURCE: source, "record": idx,
            "details": details}


def _at(stats: StageStats, source: str, idx: int, text: str | None = None,
        doc_id: str | None = None, **details) -> dict | None:
    """A dropped record known only by its position (a bad line, a corrupt tail)."""
    if stats.sampler is None:
        return None
    return {ID: doc_id if doc_id is not None else stable_id(source, idx), SOURCE: source,
            "record": idx, TEXT: text, "details": details}


class WarcReader(Reader):
    """WARC/ARC (.warc, .warc.gz, .arc.gz): HTML responses -> `html` column."""

    columns = dict.fromkeys((ID, URL, SOURCE, HTML, "warc_date", "content_type", "charset"),
                            "string")
    cfg: WarcInput

    def read(self, path: Path, source: str, stats: StageStats,
             fh: IO[bytes] | None = None, part: InputFile | None = None
             ) -> Iterator[pa.Table]:
        return self._batches(self._rows(path, source, stats, fh, part))

    def _records(self, path: Path, stats: StageStats, source: str, fh: IO[bytes] | None):
        """(index, offset, record) per record; fastwarc_reader.FastWarcReader overrides it."""
        return _warc_records(path, stats, source, fh)

    def _rows(self, path: Path, source: str, stats: StageStats,
              fh: IO[bytes] | None, part: InputFile | None = None
              ) -> Iterator[dict[str, Any]]:
        allowed = {c.lower() for c in self.cfg.content_types}
        limit = self.cfg.max_record_bytes
        # a piece of a split file is read by warcio's parser (same rows as fastwarc's)
        records = self._records(path, stats, source, fh) if part is None else \
            _warc_records(path, stats, source, fh, part)
        for idx, offset, record in records:
            reason, details = _header_decision(record, self.cfg, allowed, limit, offset)
            if reason is None:
                try:
                    body = _payload(record, limit)
                except _TooLarge:
                    reason, details = "too_large", {"offset": offset, "length": record.length}
                except Exception as exc:
                    _unreadable(stats, record, source, path, idx, offset, exc)
                    continue
            if reason is not None:
                _drop_whole(stats, record, source, path, idx, offset, reason, details)
                continue
            if not body.strip():
                stats.drop("empty", doc=_about(stats, record, source, idx))
                continue
            ctype_full = record.http_headers.get_header("Content-Type") or ""
            if looks_binary(body, ctype_full):  # an image or archive labelled as HTML
                stats.error("binary_content", doc=_about(stats, record, source, idx,
                                                         offset=offset, content_type=ctype_full))
                continue
            html, charset = decode_html(body, ctype_full, self.cfg.default_charset)
            yield {
                ID: _record_id(record, source, idx),
                URL: record.rec_headers.get_header("WARC-Target-URI"),
                SOURCE: source,
                HTML: html,
                "warc_date": record.rec_headers.get_header("WARC-Date"),
                "content_type": ctype_full.split(";")[0].strip().lower(),
                "charset": charset,
            }



class WetReader(Reader):
    """WET (.warc.wet.gz): `conversion` records -> `text` column."""

    columns = dict.fromkeys((ID, URL, SOURCE, TEXT, "warc_date"), "string")
    cfg: WetInput

    def read(self, path: Path, source: str, stats: StageStats,
             fh: IO[bytes] | None = None, part: InputFile | None = None
             ) -> Iterator[pa.Table]:
        return self._batches(self._rows(path, source, stats, fh, part))

    def _rows(self, path: Path, source: str, stats: StageStats,
              fh: IO[bytes] | None, part: InputFile | None = None
              ) -> Iterator[dict[str, Any]]:
        limit = self.cfg.max_record_bytes
        for idx, offset, record in _warc_records(path, stats, source, fh, part):
            reason, details = None, {}
            if record.rec_type != "conversion":
                reason = f"record_{record.rec_type}"
            elif limit is not None and (record.length or 0) > limit:
                reason, details = "too_large", {"offset": offset, "length": record.length}
            else:
                try:
                    text = _payload(record, limit).decode("utf-8", errors="replace")
                except _TooLarge:
                    reason, details = "too_large", {"offset": offset, "length": record.length}
                except Exception as exc:
                    _unreadable(stats, record, source, path, idx, offset, exc)
                    continue
            if reason is not None:
                _drop_whole(stats, record, source, path, idx, offset, reason, details)
                continue
            if not text.strip():
                stats.drop("empty", doc=_about(stats, record, source, idx))
                continue
            yield {
                ID: _record_id(record, source, idx),
                URL: record.rec_headers.get_header("WARC-Target-URI"),
                SOURCE: source,
                TEXT: text,
                "warc_date": record.rec_headers.get_header("WARC-Date"),
            }


# ----------------------------------------------------------------------------- JSONL

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _valid_unicode(obj: Any) -> bool:
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


class JsonlReader(Reader):
    """JSON Lines (.jsonl, .jsonl.gz, .jsonl.zst); one document per non-blank line."""

    cfg: JsonlInput

    @classmethod
    def provides(cls, cfg: InputBase) -> dict[str, pa.DataType | str | None]:
        """Fixed by the config: keys not in ``fields`` go into ``metadata``, never columns."""
        c: JsonlInput = cfg  # type: ignore[assignment]
        return dict.fromkeys((ID, TEXT, URL, SOURCE, *c.fields, "metadata"), "string")

    def read(self, path: Path, source: str, stats: StageStats,
             fh: IO[bytes] | None = None, part: InputFile | None = None
             ) -> Iterator[pa.Table]:
        return self._batches(self._rows(path, source, stats, fh, part))

    def _rows(self, path: Path, source: str, stats: StageStats,
              raw: IO[bytes] | None, part: InputFile | None = None
              ) -> Iterator[dict[str, Any]]:
        c = self.cfg
        taken = {c.text_key, c.id_key, c.url_key, *c.fields}
        # bytes, decoded line by line: a text reader decodes ahead in chunks, so one bad
        # byte would fail the lines before it too
        with opened(path, raw) as raw:
            idx = -1
            limit = c.max_record_bytes
            kind = None if part is None else member_kind(path.name)
            members: Members | None = None
            # a piece of a split plain file: the lines that start in [pos, end), each
            # numbered by its offset; the line cut by ``pos`` is the piece before's
            pos, end = (0, None) if part is None else (part.start, part.end)
            skip = False  # a compressed piece: the first line read is the piece before's
            if part is None:
                fh = decompressing(raw, path.name)
            elif kind is None:
                fh = raw
                if pos > 0:
                    fh.seek(pos - 1)
                    pos += _skip_line(fh) - 1
            else:
                # a piece of a compressed file (several gzip members or zstd frames):
                # read from its first member on; its lines are those whose newline
                # before (the file's start for the first) is in a member that starts in
                # [start, end), each numbered by its member and its offset in it
                members = Members(raw, kind, first_member(raw, kind, pos, end), end)
                fh = io.BufferedReader(members, 1 << 16)
                pos, end, skip = 0, None, part.start > 0
            while True:
                if end is not None and pos >= end:
                    return
                if members is not None and members.stop_at is not None \
                        and pos > members.stop_at:
                    return  # the newline before it is in the next piece's members
                at = pos
                try:
                    if skip:
                        pos, skip = pos + _skip_line(fh), False
                        continue
                    raw = fh.readline(-1 if limit is None else limit + 1)
                    pos += len(raw)
                    if limit is not None and len(raw) > limit and not raw.endswith(b"\n"):
                        pos += _skip_line(fh)
                        raw = None  # too large: never held whole in memory
                except (OSError, EOFError) as exc:
                    stats.docs_in += 1
                    stats.error("corrupt_file", doc=_at(stats, source, idx + 1, problem=str(exc)))
                    log.warning("%s: unreadable after line %d (%s); rest skipped", path, idx, exc)
                    return
                if raw is None:
                    idx = idx + 1 if part is None else \
                        at if members is None else members.number(at)
                    stats.docs_in += 1
                    stats.drop("too_large", doc=_at(stats, source, idx, limit=limit))
                    continue
                if not raw:
                    return
                idx = idx + 1 if part is None else at if members is None else members.number(at)
                if not raw.strip():
                    continue
                stats.docs_in += 1
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    stats.error("bad_unicode", doc=_at(
                        stats, source, idx, raw.decode("utf-8", errors="replace")))
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    stats.error("bad_json", doc=_at(stats, source, idx, line))
                    continue
                # JSON may escape lone surrogates ("\ud83d"), which no Arrow string holds
                if b"\\u" in raw and _SURROGATE_ESCAPE.search(line) and not _valid_unicode(obj):
                    stats.error("bad_unicode", doc=_at(stats, source, idx, line))
                    continue
                if not isinstance(obj, dict):
                    stats.error("not_an_object", doc=_at(stats, source, idx, line))
                    continue
                text = obj.get(c.text_key)
                if not isinstance(text, str):
                    own = obj.get(c.id_key)
                    stats.error("missing_text" if text is None else "text_not_string",
                                doc=_at(stats, source, idx, line,
                                        doc_id=None if own is None else str(own)))
                    continue
                doc_id = obj.get(c.id_key)
                url = obj.get(c.url_key)
                rest = {k: v for k, v in obj.items() if k not in taken}
                row = {
                    ID: str(doc_id) if doc_id is not None else stable_id(source, idx),
                    TEXT: text,
                    URL: url if isinstance(url, str) else None,
                    SOURCE: source,
                    "metadata": json.dumps(rest, sort_keys=True, ensure_ascii=False)
                    if rest else None,
                }
                for k in c.fields:
                    v = obj.get(k)
                    row[k] = v if v is None or isinstance(v, str) else json.dumps(v)
                yield row


def _skip_line(fh) -> int:
    """Read past the end of the current line in bounded steps; the bytes read."""
    n = 0
    while True:
        part = fh.readline(1 << 20)
        n += len(part)
        if not part or part.endswith(b"\n"):
            return n


# ----------------------------------------------------------------------------- Parquet

class ParquetReader(Reader):
    """Parquet files, e.g. thresher's or datatrove's output; all columns pass through."""

    cfg: ParquetInput
    streams = False  # the footer first: read_input hashes the file with a read of its own

    @classmethod
    def provides(cls, cfg: InputBase) -> dict[str, pa.DataType | str | None]:
        """`id`, `text`, `source`, and every column a file has (unknown before reading it)
        or, with ``columns``, just those."""
        c: ParquetInput = cfg  # type: ignore[assignment]
        out: dict[str, pa.DataType | str | None] = dict.fromkeys((ID, TEXT, SOURCE), "string")
        if c.columns is None:
            return {**out, ANY_COLUMN: None}
        for name in c.columns:
            if name not in (c.text_column, c.id_column):
                out.setdefault(name, None)
        return out

    def read(self, path: Path, source: str, stats: StageStats,
             fh: IO[bytes] | None = None, part: InputFile | None = None
             ) -> Iterator[pa.Table]:
        c = self.cfg
        try:
            pf = pq.ParquetFile(fh if fh is not None else path)
        except Exception as exc:
            stats.docs_in += 1
            stats.error("corrupt_parquet", doc=_at(stats, source, 0, problem=str(exc)))
            log.warning("%s: not readable as Parquet (%s)", path, exc)
            return
        names = pf.schema_arrow.names
        ends = list(itertools.accumulate(pf.metadata.row_group(g).num_rows
                                         for g in range(pf.num_row_groups)))
        # a piece of a split file: its row groups [first, last); rows keep their index
        first, last = (0, len(ends)) if part is None or part.row_groups is None else \
            part.row_groups
        n_rows = (ends[last - 1] if last else 0) - (ends[first - 1] if first else 0)
        if c.text_column not in names:
            stats.docs_in += n_rows
            stats.error("missing_text_column", n_rows, doc=_at(  # one sample for the file
                stats, source, 0, rows=n_rows, columns=", ".join(names)))
            log.warning("%s: no column %r (has %s); %d rows counted as errors",
                        path, c.text_column, names, n_rows)
            return
        lacking = [x for x in c.columns or [] if x not in names]
        if lacking:  # a file of another layout: say so rather than guess
            stats.docs_in += n_rows
            stats.error("missing_column", n_rows, doc=_at(
                stats, source, 0, rows=n_rows, missing=", ".join(lacking),
                columns=", ".join(names)))
            log.warning("%s: no column(s) %s (has %s); %d rows counted as errors",
                        path, lacking, names, n_rows)
            return
        columns = None if c.columns is None else sorted(
            set(c.columns) | {c.text_column} | ({c.id_column} & set(names)),
            key=names.index)
        offset, g = (ends[first - 1] if first else 0), first
        while g < last:
            batches = pf.iter_batches(batch_size=c.batch_size, columns=columns,
                                      row_groups=list(range(g, last)))
            while True:
                try:
                    batch = next(batches)
                except StopIteration:
                    return
                except Exception as exc:  # a damaged row group: lose only its rows
                    g = bisect.bisect_right(ends, offset)
                    rest = self._row_group_rest(pf, g, columns, offset, ends, exc, path,
                                                source, stats)
                    if rest is not None and rest.num_rows:
                        stats.docs_in += rest.num_rows
                        t = self._canonical(rest, source, offset, stats)
                        if t.num_rows:
                            yield t
                    offset, g = ends[g], g + 1
                    break
                stats.docs_in += batch.num_rows
                t = self._canonical(pa.Table.from_batches([batch]), source, offset, stats)
                offset += batch.num_rows
                if t.num_rows:
                    yield t

    def _row_group_rest(self, pf, g: int, columns, offset: int, ends: list[int],
                        exc: Exception, path: Path, source: str,
                        stats: StageStats) -> pa.Table | None:
        """Rows ``offset..`` of row group ``g`` read on their own, or counted as errors."""
        start = ends[g - 1] if g else 0
        try:
            return pf.read_row_group(g, columns=columns).slice(offset - start)
        except Exception:
            rest = ends[g] - offset
            problem = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            stats.docs_in += rest
            stats.error("corrupt_parquet", rest, doc=_at(stats, source, offset, rows=rest,
                                                         problem=problem))
            log.warning("%s: row group %d unreadable (%s); its %d rows counted as errors",
                        path, g, problem, rest)
            return None

    def _canonical(self, t: pa.Table, source: str, offset: int, stats: StageStats) -> pa.Table:
        """Canonical columns: string `text` (rows without one are counted as errors), a
        string `id` (stable ids where the file has none), `source`."""
        c = self.cfg
        if c.text_column != TEXT:
            t = t.drop_columns([TEXT]) if TEXT in t.schema.names else t
            t = t.rename_columns([TEXT if n == c.text_column else n for n in t.schema.names])
        text, reasons = _text_values(t.column(TEXT))
        t = t.set_column(t.schema.get_field_index(TEXT), TEXT, text)
        def stable() -> pa.Array:
            return pa.array([stable_id(source, offset + i) for i in range(t.num_rows)],
                            pa.string())

        ids = None
        if c.id_column in t.schema.names:
            try:
                ids = t.column(c.id_column).cast(pa.string())
                if ids.null_count:  # null ids get stable ones
                    ids = pc.if_else(pc.is_null(ids), stable(), ids)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                log.warning("id column %r of type %s is not usable as text; stable ids used",
                            c.id_column, t.schema.field(c.id_column).type)
            if c.id_column != ID:
                t = t.drop_columns([c.id_column])
        if ID in t.schema.names:
            t = t.drop_columns([ID])
        ids = stable() if ids is None else ids
        t = t.add_column(0, pa.field(ID, pa.string()), ids)
        if SOURCE not in t.schema.names:
            t = t.append_column(pa.field(SOURCE, pa.string()),
                                pa.array([source] * t.num_rows, pa.string()))
        if reasons is None:
            return t
        for i, r in enumerate(reasons):
            if r is not None:
                stats.error(r, doc=_at(stats, source, offset + i, doc_id=ids[i].as_py()))
        return t.filter(pa.array([r is None for r in reasons], pa.bool_()))


def _text_values(col: pa.ChunkedArray) -> tuple[pa.ChunkedArray, list[str | None] | None]:
    """The text column as strings, and per row the error reason of rows that have no text
    (None when every row has one): missing_text (null), text_not_string (a number, a
    list...), bad_unicode (binary that is not UTF-8)."""
    typ = col.type
    if pa.types.is_dictionary(typ):
        col, typ = col.cast(typ.value_type), typ.value_type
    if pa.types.is_string(typ) or pa.types.is_large_string(typ) or \
            pa.types.is_binary(typ) or pa.types.is_large_binary(typ):
        try:
            col = col.cast(pa.string())
        except pa.ArrowInvalid:  # binary that is not all UTF-8: decode row by row
            vals = []
            for v in col.to_pylist():
                try:
                    vals.append(None if v is None else v.decode("utf-8"))
                except UnicodeDecodeError:
                    vals.append(b"")  # marks the bad row below
            reasons = [None if isinstance(v, str) else
                       ("missing_text" if v is None else "bad_unicode") for v in vals]
            return pa.chunked_array([pa.array([v if isinstance(v, str) else None
                                               for v in vals], pa.string())]), reasons
        if col.null_count == 0:
            return col, None
        return col, ["missing_text" if v is None else None for v in col.to_pylist()]
    if pa.types.is_null(typ):
        return pa.nulls(len(col), pa.string()), ["missing_text"] * len(col)
    return pa.nulls(len(col), pa.string()), [
        "missing_text" if v is None else "text_not_string" for v in col.to_pylist()]


#: (input.format, backend) -> "module:Class"; a new reader is a class and a line here.
#: Named, not imported, so an optional back-end is imported only by runs that use it.
READERS: dict[tuple[str, str], str] = {
    ("warc", "warcio"): "pipelines.io.readers:WarcReader",
    ("warc", "fastwarc"): "pipelines.io.fastwarc_reader:FastWarcReader",
    ("wet", "warcio"): "pipelines.io.readers:WetReader",
    ("jsonl", "warcio"): "pipelines.io.readers:JsonlReader",
    ("parquet", "warcio"): "pipelines.io.readers:ParquetReader",
}


def provided_columns(cfg: InputBase) -> dict[str, pa.DataType | str | None]:
    """What the first stage of a pipeline reading ``cfg`` can count on: the reader's
    columns, and `dataset` when ``input.dataset`` is set."""
    from importlib import import_module

    # every back-end of a format yields the same columns: ask the one always installed
    module, _, cls = READERS[(cfg.format, "warcio")].partition(":")  # type: ignore[attr-defined]
    out = getattr(import_module(module), cls).provides(cfg)
    if cfg.dataset is not None:
        out[DATASET] = "string"
    return out


@cache
def _arrow_schema(columns: tuple[tuple[str, str], ...]) -> pa.Schema:
    return pa.schema(list(columns))


def make_reader(cfg: InputBase) -> Reader:
    from importlib import import_module

    key = (cfg.format, getattr(cfg, "backend", "warcio"))  # type: ignore[attr-defined]
    module, _, cls = READERS[key].partition(":")
    return getattr(import_module(module), cls)(cfg)
