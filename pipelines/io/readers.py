"""Input readers: one file in, Arrow tables of documents out, every record counted.

A reader counts each record it sees into ``stats.docs_in`` and every record it
does not yield as a drop (``stats.drop``: a decision such as ``not_html``) or
an error (``stats.error``: bad input such as ``bad_json``). The runner counts
what is yielded, so ``docs_in == docs_out + dropped + errors`` for the reader.
When the task samples drops, each dropped record is described (id, url, source,
record index, a few headers) so ``thresher samples RUN read`` can show it.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..config import InputBase, JsonlInput, ParquetInput, WarcInput, WetInput
from ..schema import HTML, ID, SOURCE, TEXT, URL, stable_id
from ..stats import StageStats
from .compression import open_binary
from .html_charset import decode_html

log = logging.getLogger(__name__)


class Reader:
    """Base reader: ``read(path, source, stats)`` yields Arrow tables."""

    schema: pa.Schema

    def __init__(self, cfg: InputBase):
        self.cfg = cfg

    def read(self, path: Path, source: str, stats: StageStats) -> Iterator[pa.Table]:
        raise NotImplementedError

    def _batches(self, rows: Iterator[dict[str, Any]]) -> Iterator[pa.Table]:
        buf: list[dict[str, Any]] = []
        for row in rows:
            buf.append(row)
            if len(buf) >= self.cfg.batch_size:
                yield pa.Table.from_pylist(buf, schema=self.schema)
                buf = []
        if buf:
            yield pa.Table.from_pylist(buf, schema=self.schema)


# ----------------------------------------------------------------------------- WARC / WET

class _ShortReads:
    """A file whose ``read(n)`` returns what one step gives (``read1``) and notes an early end.

    ``GzipFile.read(n)`` throws away all it decompressed in that call when the file turns
    out truncated, which loses complete records just before the cut; and warcio ends its
    iteration silently on an EOFError met while parsing a record's headers, so
    ``truncated`` remembers that the file did end early.
    """

    def __init__(self, fh):
        self.fh, self.truncated = fh, False

    def tell(self) -> int:
        return self.fh.tell()

    def read(self, size: int = -1) -> bytes:
        try:
            return self.fh.read() if size is None or size < 0 else self.fh.read1(size)
        except EOFError:
            self.truncated = True
            raise


def _warc_records(path: Path, stats: StageStats, source: str = ""):
    """(index, record) for each WARC record; a corrupt tail is counted as one error."""
    from warcio.archiveiterator import ArchiveIterator

    idx = 0
    # Python's gzip (not warcio's own inflater) so a truncated file raises instead of
    # silently ending; warcio reads the decompressed stream as an uncompressed WARC.
    with (gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")) as fh:
        src = _ShortReads(fh)
        it = ArchiveIterator(src, arc2warc=True)
        record = None
        while True:
            try:
                record = next(it)
                problem = None
            except StopIteration:
                # warcio ends without an error when an uncompressed file is cut inside a
                # record's body or WARC headers, or inside the HTTP headers (a line left over)
                if not (src.truncated or _cut_short(record) or getattr(it, "next_line", None)):
                    return
                problem = "EOFError: file ends inside a record"
            except Exception as exc:  # truncated gzip, garbage between records...
                problem = f"{type(exc).__name__}: {exc}"
            if problem is not None:
                stats.docs_in += 1
                stats.error("corrupt_warc", doc=_at(stats, source, idx, problem=problem))
                log.warning("%s: unreadable after record %d (%s); rest of file skipped",
                            path, idx, problem)
                return
            stats.docs_in += 1
            yield idx, record
            idx += 1


def _cut_short(record) -> bool:
    """Whether the file ended inside this (fully read) record: before its Content-Length
    did, or inside its WARC headers (no Content-Length, which every WARC record has)."""
    return record is not None and getattr(record.raw_stream, "limit", None) != 0


def _payload(record) -> bytes:
    """The record's payload; EOFError if the file ends before the record does."""
    body = record.content_stream().read()
    record.raw_stream.read()
    if _cut_short(record):
        raise EOFError("file ends inside the record")
    return body


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

    schema = pa.schema([
        pa.field(ID, pa.string()), pa.field(URL, pa.string()), pa.field(SOURCE, pa.string()),
        pa.field(HTML, pa.string()), pa.field("warc_date", pa.string()),
        pa.field("content_type", pa.string()), pa.field("charset", pa.string()),
    ])
    cfg: WarcInput

    def read(self, path: Path, source: str, stats: StageStats) -> Iterator[pa.Table]:
        return self._batches(self._rows(path, source, stats))

    def _rows(self, path: Path, source: str, stats: StageStats) -> Iterator[dict[str, Any]]:
        allowed = {c.lower() for c in self.cfg.content_types}
        for idx, record in _warc_records(path, stats, source):
            rtype = record.rec_type
            if rtype != "response":
                stats.drop(f"record_{rtype}", doc=_about(stats, record, source, idx))
                continue
            http = record.http_headers
            if http is None:
                stats.drop("no_http_headers", doc=_about(stats, record, source, idx))
                continue
            status = http.get_statuscode() or ""
            if self.cfg.only_ok_status and not status.startswith("2"):
                stats.drop("http_status", doc=_about(stats, record, source, idx, status=status))
                continue
            ctype_full = http.get_header("Content-Type") or ""
            ctype = ctype_full.split(";")[0].strip().lower()
            if ctype not in allowed:
                stats.drop("not_html", doc=_about(stats, record, source, idx,
                                                  content_type=ctype_full))
                continue
            try:
                body = _payload(record)
            except Exception as exc:
                stats.error("unreadable_body", doc=_about(
                    stats, record, source, idx, problem=f"{type(exc).__name__}: {exc}"))
                log.warning("%s record %d: %s: %s", path, idx, type(exc).__name__, exc)
                continue
            if not body.strip():
                stats.drop("empty", doc=_about(stats, record, source, idx))
                continue
            html, charset = decode_html(body, ctype_full, self.cfg.default_charset)
            yield {
                ID: _record_id(record, source, idx),
                URL: record.rec_headers.get_header("WARC-Target-URI"),
                SOURCE: source,
                HTML: html,
                "warc_date": record.rec_headers.get_header("WARC-Date"),
                "content_type": ctype,
                "charset": charset,
            }


class WetReader(Reader):
    """WET (.warc.wet.gz): `conversion` records -> `text` column."""

    schema = pa.schema([
        pa.field(ID, pa.string()), pa.field(URL, pa.string()), pa.field(SOURCE, pa.string()),
        pa.field(TEXT, pa.string()), pa.field("warc_date", pa.string()),
    ])
    cfg: WetInput

    def read(self, path: Path, source: str, stats: StageStats) -> Iterator[pa.Table]:
        return self._batches(self._rows(path, source, stats))

    def _rows(self, path: Path, source: str, stats: StageStats) -> Iterator[dict[str, Any]]:
        for idx, record in _warc_records(path, stats, source):
            if record.rec_type != "conversion":
                stats.drop(f"record_{record.rec_type}", doc=_about(stats, record, source, idx))
                continue
            try:
                text = _payload(record).decode("utf-8", errors="replace")
            except Exception as exc:
                stats.error("unreadable_body", doc=_about(
                    stats, record, source, idx, problem=f"{type(exc).__name__}: {exc}"))
                log.warning("%s record %d: %s: %s", path, idx, type(exc).__name__, exc)
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

    def __init__(self, cfg: JsonlInput):
        super().__init__(cfg)
        extra = [pa.field(k, pa.string()) for k in cfg.fields]
        self.schema = pa.schema([pa.field(ID, pa.string()), pa.field(TEXT, pa.string()),
                                 pa.field(URL, pa.string()), pa.field(SOURCE, pa.string()),
                                 *extra, pa.field("metadata", pa.string())])

    def read(self, path: Path, source: str, stats: StageStats) -> Iterator[pa.Table]:
        return self._batches(self._rows(path, source, stats))

    def _rows(self, path: Path, source: str, stats: StageStats) -> Iterator[dict[str, Any]]:
        c = self.cfg
        taken = {c.text_key, c.id_key, c.url_key, *c.fields}
        # bytes, decoded line by line: a text reader decodes ahead in chunks, so one bad
        # byte would fail the lines before it too
        with open_binary(path) as fh:
            idx = -1
            while True:
                try:
                    raw = fh.readline()
                except (OSError, EOFError) as exc:
                    stats.docs_in += 1
                    stats.error("corrupt_file", doc=_at(stats, source, idx + 1, problem=str(exc)))
                    log.warning("%s: unreadable after line %d (%s); rest skipped", path, idx, exc)
                    return
                if not raw:
                    return
                idx += 1
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
                if _SURROGATE_ESCAPE.search(line) and not _valid_unicode(obj):
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


# ----------------------------------------------------------------------------- Parquet

class ParquetReader(Reader):
    """Parquet files, e.g. thresher's or datatrove's output; all columns pass through."""

    cfg: ParquetInput

    def read(self, path: Path, source: str, stats: StageStats) -> Iterator[pa.Table]:
        c = self.cfg
        try:
            pf = pq.ParquetFile(path)
        except Exception as exc:
            stats.docs_in += 1
            stats.error("corrupt_parquet", doc=_at(stats, source, 0, problem=str(exc)))
            log.warning("%s: not readable as Parquet (%s)", path, exc)
            return
        names = pf.schema_arrow.names
        n_rows = pf.metadata.num_rows
        if c.text_column not in names:
            stats.docs_in += n_rows
            stats.error("missing_text_column", n_rows, doc=_at(  # one sample for the file
                stats, source, 0, rows=n_rows, columns=", ".join(names)))
            log.warning("%s: no column %r (has %s); %d rows counted as errors",
                        path, c.text_column, names, n_rows)
            return
        columns = None if c.columns is None else sorted(
            set(c.columns) | {c.text_column} | ({c.id_column} & set(names)),
            key=names.index)
        offset = 0
        for batch in pf.iter_batches(batch_size=c.batch_size, columns=columns):
            t = pa.Table.from_batches([batch])
            stats.docs_in += t.num_rows
            t = self._canonical(t, source, offset)
            offset += batch.num_rows
            yield t

    def _canonical(self, t: pa.Table, source: str, offset: int) -> pa.Table:
        c = self.cfg
        if c.text_column != TEXT:
            t = t.drop_columns([TEXT]) if TEXT in t.schema.names else t
            t = t.rename_columns([TEXT if n == c.text_column else n for n in t.schema.names])
        if not pa.types.is_string(t.schema.field(TEXT).type):
            t = t.set_column(t.schema.get_field_index(TEXT), TEXT, t.column(TEXT).cast(pa.string()))
        if c.id_column in t.schema.names:
            ids = t.column(c.id_column).cast(pa.string())
            if c.id_column != ID:
                t = t.drop_columns([c.id_column])
        else:
            ids = pa.array([stable_id(source, offset + i) for i in range(t.num_rows)], pa.string())
        if ID in t.schema.names:
            t = t.drop_columns([ID])
        t = t.add_column(0, pa.field(ID, pa.string()), ids)
        if SOURCE not in t.schema.names:
            t = t.append_column(pa.field(SOURCE, pa.string()),
                                pa.array([source] * t.num_rows, pa.string()))
        return t


READERS: dict[str, type[Reader]] = {
    "warc": WarcReader, "wet": WetReader, "jsonl": JsonlReader, "parquet": ParquetReader,
}


def make_reader(cfg: InputBase) -> Reader:
    return READERS[cfg.format](cfg)  # type: ignore[attr-defined]
