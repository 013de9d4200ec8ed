"""Readers on the real WARC/WET files in tests/data/warc and on JSONL/Parquet made here.

Every expectation is computed independently of the reader: WARC records are counted and
classified with warcio directly (warcio's own gzip handling, not the reader's), truncated
files are judged by warcio's record offsets in the intact file, compressed JSONL by
decompressing with zlib/zstandard. The books must balance on every read:
``docs_in == yielded rows + sum(dropped) + sum(errors)`` (the runner adds docs_out).
"""

from __future__ import annotations

import encodings.aliases
import functools
import gzip
import io
import json
import logging
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipelines.config import JsonlInput, OutputConfig, ParquetInput, WarcInput, WetInput
from pipelines.io.html_charset import declared_charset, decode_html, normalize_charset
from pipelines.io.readers import make_reader
from pipelines.io.writers import ParquetShardWriter
from pipelines.schema import stable_id
from pipelines.stats import StageStats

WARC_DIR = Path(__file__).resolve().parent / "data" / "warc"
# every real WARC (the .warc.wet.gz / .warc.wat.gz files do not match this glob)
WARCS = sorted(WARC_DIR.glob("*.warc.gz"))
WET = WARC_DIR / "cc-main-2024-22-whirlwind.warc.wet.gz"
CC2020 = WARC_DIR / "resiliparse-cc-main-2020-34-warcfile.warc.gz"
AUT = WARC_DIR / "aut-ia-2008-example.warc.gz"
CLUEWEB = WARC_DIR / "resiliparse-clueweb09-ja-quirk.warc.gz"
HTML_TYPES = ("text/html", "application/xhtml+xml")

# (records, HTML documents) per file, counted once by hand with warcio: an anchor in case
# the independent counting below and the reader were ever wrong the same way
KNOWN = {
    "aut-ia-2008-example.warc.gz": (822, 94),
    "cc-main-2024-22-whirlwind.warc.gz": (4, 1),
    "dolma-wget-2024-sample-0000.warc.gz": (48, 22),
    "dolma-wget-2024-sample-0001.warc.gz": (34, 15),
    "resiliparse-cc-main-2020-34-warcfile.warc.gz": (50, 16),
    "resiliparse-clueweb09-ja-quirk.warc.gz": (30, 29),
}

WARC_REASONS = {"no_http_headers", "http_status", "not_html", "empty"}


@pytest.fixture(autouse=True)
def _quiet_reader_warnings(caplog):
    caplog.set_level(logging.ERROR, logger="pipelines.io.readers")


# ----------------------------------------------------------------------------- helpers

def read_all(cfg, path: Path, source: str = "src") -> tuple[pa.Table | None, StageStats, int]:
    """(all yielded rows or None, stats, number of tables); checks the books balance."""
    stats = StageStats()
    tables = list(make_reader(cfg).read(Path(path), source, stats))
    for t in tables:
        assert isinstance(t, pa.Table) and t.num_rows > 0
    table = pa.concat_tables(tables) if tables else None
    n = table.num_rows if table is not None else 0
    assert stats.docs_in == n + stats.n_dropped + stats.n_errors, stats
    assert stats.docs_out == 0  # the runner, not the reader, counts what goes out
    return table, stats, len(tables)


def col(table: pa.Table | None, name: str) -> list:
    return [] if table is None else table.column(name).to_pylist()


@dataclass
class WarcTruth:
    """What warcio itself finds in a WARC file."""

    n_records: int = 0
    rows: list[dict] = field(default_factory=list)  # expected documents, in order
    dropped: Counter = field(default_factory=Counter)
    # (offset, length, id of the document it gives or None) per record, as warcio reports
    records: list[tuple[int, int, str | None]] = field(default_factory=list)


def warc_truth(path: Path, content_types=HTML_TYPES, only_ok: bool = True) -> WarcTruth:
    truth = WarcTruth()
    with open(path, "rb") as fh:
        it = ArchiveIterator(fh, arc2warc=True)
        for rec in it:
            truth.n_records += 1
            body = rec.content_stream().read()
            offset, length = it.get_record_offset(), it.get_record_length()
            h = rec.http_headers
            reason = None
            if rec.rec_type != "response":
                reason = f"record_{rec.rec_type}"
            elif h is None:
                reason = "no_http_headers"
            elif only_ok and not (h.get_statuscode() or "").startswith("2"):
                reason = "http_status"
            elif (h.get_header("Content-Type") or "").split(";")[0].strip().lower() \
                    not in content_types:
                reason = "not_html"
            elif not body.strip():
                reason = "empty"
            doc_id = None
            if reason:
                truth.dropped[reason] += 1
            else:
                doc_id = rec.rec_headers.get_header("WARC-Record-ID")[1:-1]
                truth.rows.append({"id": doc_id, "url": rec.rec_headers.get_header(
                    "WARC-Target-URI"), "warc_date": rec.rec_headers.get_header("WARC-Date"),
                    "body": body, "content_type": h.get_header("Content-Type")})
            truth.records.append((offset, length, doc_id))
    return truth


@functools.lru_cache(maxsize=None)
def cached_truth(path: Path) -> WarcTruth:
    return warc_truth(path)


def make_warc(path: Path, records: list[dict], gz: bool = True) -> Path:
    """Write a WARC of response records with warcio; each dict: body, ctype (or headers),
    and optionally status, uri, rec_type, no_id."""
    with open(path, "wb") as fh:
        w = WARCWriter(fh, gzip=gz)
        for i, r in enumerate(records):
            rec_type = r.get("rec_type", "response")
            uri = r.get("uri", f"http://example.org/page/{i}")
            if rec_type == "response":
                headers = r.get("headers") or [("Content-Type", r["ctype"])]
                http = StatusAndHeaders(r.get("status", "200 OK"), headers, protocol="HTTP/1.1")
                rec = w.create_warc_record(uri, "response", payload=io.BytesIO(r["body"]),
                                           http_headers=http)
            else:
                rec = w.create_warc_record(uri, rec_type, payload=io.BytesIO(r["body"]),
                                           warc_content_type="text/plain")
            if r.get("no_id"):
                rec.rec_headers.remove_header("WARC-Record-ID")
            w.write_record(rec)
    return path


def page(body_html: str, head: str = "") -> str:
    return (f"<!DOCTYPE html><html><head>{head}<title>t</title></head>"
            f"<body><p>{body_html}</p></body></html>")


# ----------------------------------------------------------------------------- WARC: real files

def test_all_real_warcs_are_found():
    assert {p.name for p in WARCS} == set(KNOWN)


@pytest.mark.parametrize("path", WARCS, ids=lambda p: p.name)
def test_warc_reader_on_real_file(path: Path):
    truth = cached_truth(path)
    assert (truth.n_records, len(truth.rows)) == KNOWN[path.name]

    table, stats, _ = read_all(WarcInput(paths=["x"]), path, f"crawl/{path.name}")
    assert stats.docs_in == truth.n_records
    assert table is not None and table.num_rows == len(truth.rows)
    assert stats.dropped == truth.dropped
    assert stats.errors == Counter()
    assert set(stats.dropped) - WARC_REASONS <= {f"record_{t}" for t in (
        "warcinfo", "request", "metadata", "resource", "revisit", "conversion")}
    assert table.schema.names == ["id", "url", "source", "html", "warc_date", "content_type",
                                  "charset"]
    assert all(pa.types.is_string(f.type) for f in table.schema)

    ids = col(table, "id")
    assert ids == [r["id"] for r in truth.rows]
    assert len(set(ids)) == len(ids)
    assert not any(i.startswith("<") or i.endswith(">") or i != i.strip() for i in ids)
    assert col(table, "url") == [r["url"] for r in truth.rows]
    assert col(table, "warc_date") == [r["warc_date"] for r in truth.rows]
    assert set(col(table, "source")) == {f"crawl/{path.name}"}
    assert col(table, "content_type") == [
        r["content_type"].split(";")[0].strip().lower() for r in truth.rows]
    assert set(col(table, "content_type")) <= set(HTML_TYPES)
    for row, expected in zip(table.to_pylist(), truth.rows):
        assert isinstance(row["html"], str) and row["html"].strip()
        # whatever charset the reader chose, the text is exactly the body in that charset
        assert row["html"] == expected["body"].decode(row["charset"], errors="replace")


@pytest.mark.parametrize("path", [CC2020, AUT], ids=lambda p: p.name)
def test_warc_reader_is_deterministic_and_batch_size_independent(path: Path):
    a, sa, _ = read_all(WarcInput(paths=["x"]), path)
    b, sb, _ = read_all(WarcInput(paths=["x"]), path)
    assert a.equals(b) and sa == sb
    c, sc, n_tables = read_all(WarcInput(paths=["x"], batch_size=5), path)
    assert c.equals(a) and sc == sa
    assert n_tables == -(-a.num_rows // 5)
    batches = list(make_reader(WarcInput(paths=["x"], batch_size=5)).read(path, "src",
                                                                          StageStats()))
    assert [t.num_rows for t in batches[:-1]] == [5] * (len(batches) - 1)


def test_source_changes_only_the_source_column():
    a, _, _ = read_all(WarcInput(paths=["x"]), CC2020, "one")
    b, _, _ = read_all(WarcInput(paths=["x"]), CC2020, "two")
    assert col(a, "id") == col(b, "id")  # ids come from WARC-Record-ID, not the source
    assert set(col(b, "source")) == {"two"}
    assert a.drop_columns(["source"]).equals(b.drop_columns(["source"]))


def test_real_pages_in_legacy_charsets_decode_cleanly():
    cc, _, _ = read_all(WarcInput(paths=["x"]), CC2020)
    charsets = Counter(col(cc, "charset"))
    assert charsets["gb18030"] >= 1  # gb2312/gbk pages, decoded the WHATWG way
    for html, cs in zip(col(cc, "html"), col(cc, "charset")):
        assert "\ufffd" not in html
        if cs == "gb18030":
            assert any("\u4e00" <= ch <= "\u9fff" for ch in html)
    ja, _, _ = read_all(WarcInput(paths=["x"]), CLUEWEB)
    assert set(col(ja, "charset")) == {"euc_jp"}
    for html in col(ja, "html"):
        assert "\ufffd" not in html
        assert any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in html)


def test_aut_mixed_mime_404s_and_records_without_http_headers():
    truth = cached_truth(AUT)
    _, stats, _ = read_all(WarcInput(paths=["x"]), AUT)
    # dns: records are responses without HTTP headers; 404/301/302 pages are not 2xx
    assert stats.dropped["no_http_headers"] == truth.dropped["no_http_headers"] > 0
    assert stats.dropped["http_status"] == truth.dropped["http_status"] > 0
    assert stats.dropped["not_html"] == truth.dropped["not_html"] > 0


def test_only_ok_status_false_keeps_error_pages():
    truth = warc_truth(AUT, only_ok=False)
    table, stats, _ = read_all(WarcInput(paths=["x"], only_ok_status=False), AUT)
    assert col(table, "id") == [r["id"] for r in truth.rows]
    assert table.num_rows > KNOWN[AUT.name][1]
    assert "http_status" not in stats.dropped


def test_content_types_setting_selects_other_mime_types():
    truth = warc_truth(AUT, content_types=("text/plain", "text/css"))
    table, stats, _ = read_all(WarcInput(paths=["x"], content_types=["TEXT/PLAIN", "text/css"]),
                               AUT)
    assert table.num_rows == len(truth.rows) > 0
    assert col(table, "id") == [r["id"] for r in truth.rows]
    assert set(col(table, "content_type")) == {"text/plain", "text/css"}
    assert stats.dropped == truth.dropped


@pytest.mark.parametrize("path", WARCS, ids=lambda p: p.name)
def test_uncompressed_warc_reads_the_same(tmp_path: Path, path: Path):
    plain = tmp_path / path.name[: -len(".gz")]
    with gzip.open(path, "rb") as src:
        plain.write_bytes(src.read())
    a, sa, _ = read_all(WarcInput(paths=["x"]), path, "s")
    b, sb, _ = read_all(WarcInput(paths=["x"]), plain, "s")
    assert b.equals(a)
    assert sb == sa
    assert sb.docs_in == cached_truth(path).n_records


# ----------------------------------------------------------------------------- WARC: made here

def test_warc_record_variants(tmp_path: Path):
    html = page("Grüße aus Köln").encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(html), html)
    records = [
        {"body": html, "ctype": "text/html"},
        {"body": html, "ctype": "TEXT/HTML; Charset=UTF-8"},
        {"body": html, "ctype": "application/xhtml+xml; charset=utf-8"},
        {"body": gzip.compress(html, mtime=0),
         "headers": [("Content-Type", "text/html"), ("Content-Encoding", "gzip")]},
        {"body": chunked,
         "headers": [("Content-Type", "text/html"), ("Transfer-Encoding", "chunked")]},
        {"body": html, "ctype": "text/html", "no_id": True},
        {"body": b"", "ctype": "text/html"},
        {"body": b" \r\n\t ", "ctype": "text/html"},
        {"body": html, "ctype": "text/html", "status": "404 Not Found"},
        {"body": html, "ctype": "text/html", "status": "301 Moved Permanently"},
        {"body": html, "ctype": "text/html", "status": "204 No Content"},
        {"body": b"\x89PNG\r\n\x1a\n", "ctype": "image/png"},
        {"body": b"plain", "ctype": "text/plain"},
        {"body": html, "ctype": ""},
        {"body": b"GET / HTTP/1.1\r\n\r\n", "rec_type": "resource"},
        {"body": b"x", "rec_type": "metadata"},
    ]
    path = make_warc(tmp_path / "variants.warc.gz", records)
    table, stats, _ = read_all(WarcInput(paths=["x"]), path, "made")
    assert stats.docs_in == len(records)
    rows = table.to_pylist()
    assert [r["url"] for r in rows] == [f"http://example.org/page/{i}" for i in
                                        (0, 1, 2, 3, 4, 5, 10)]
    assert all(r["html"] == html.decode() for r in rows)
    assert [r["content_type"] for r in rows] == ["text/html", "text/html",
                                                 "application/xhtml+xml"] + ["text/html"] * 4
    # the record without a WARC-Record-ID gets the stable id of its position in the file
    assert rows[5]["id"] == stable_id("made", 5)
    assert len({r["id"] for r in rows}) == len(rows)
    assert stats.dropped == {"empty": 2, "http_status": 2, "not_html": 3,
                             "record_resource": 1, "record_metadata": 1}
    assert stats.errors == Counter()


# ----------------------------------------------------------------------------- charsets

TEXT_1252 = "Prix : 5 € – « déjà vu » “quoted” naïve Œuvre"  # €–“” exist only in cp1252
TEXT_JA = "日本語のページです。①～ 全角チルダ"  # ① and ～ exist only in cp932, not shift_jis
TEXT_ZH = "简体中文网页：喆、镕、堃"  # 喆镕堃 are in GBK/GB18030 but not GB2312
TEXT_RU = "Привет, мир! Съешь ещё этих мягких булок"


def _charset_case(tmp_path: Path, body: bytes, ctype: str = "text/html", **cfg):
    path = make_warc(tmp_path / f"cs-{abs(hash((body, ctype)))}.warc.gz",
                     [{"body": body, "ctype": ctype}])
    table, stats, _ = read_all(WarcInput(paths=["x"], **cfg), path)
    assert table.num_rows == 1 and stats.errors == Counter()
    return table.column("html")[0].as_py(), table.column("charset")[0].as_py()


def test_charset_from_http_header_latin1_means_windows_1252(tmp_path: Path):
    body = page(TEXT_1252).encode("cp1252")
    html, cs = _charset_case(tmp_path, body, "text/html; charset=ISO-8859-1")
    assert TEXT_1252 in html and cs == "cp1252"
    html, cs = _charset_case(tmp_path, body, 'text/html; charset="latin1"')
    assert TEXT_1252 in html and cs == "cp1252"


def test_charset_from_meta_charset(tmp_path: Path):
    body = page(TEXT_JA, '<meta charset="Shift_JIS">').encode("cp932")
    html, cs = _charset_case(tmp_path, body)
    assert TEXT_JA in html and cs == "cp932"
    body = page(TEXT_RU, "<META CHARSET=windows-1251>").encode("cp1251")
    html, cs = _charset_case(tmp_path, body)
    assert TEXT_RU in html and cs == "cp1251"


def test_charset_from_meta_http_equiv(tmp_path: Path):
    head = '<meta http-equiv="Content-Type" content="text/html; charset=gb2312">'
    body = page(TEXT_ZH, head).encode("gbk")
    html, cs = _charset_case(tmp_path, body)
    assert TEXT_ZH in html and cs == "gb18030"
    head = "<meta http-equiv='content-type' content='text/html;charset=GBK'/>"
    html, cs = _charset_case(tmp_path, page(TEXT_ZH, head).encode("gb18030"))
    assert TEXT_ZH in html and cs == "gb18030"


def test_http_header_wins_over_meta_and_unknown_header_label_defers_to_meta(tmp_path: Path):
    body = page(TEXT_RU, '<meta charset="utf-8">').encode("cp1251")
    html, cs = _charset_case(tmp_path, body, "text/html; charset=windows-1251")
    assert TEXT_RU in html and cs == "cp1251"
    body = page(TEXT_JA, '<meta charset="shift_jis">').encode("cp932")
    html, cs = _charset_case(tmp_path, body, "text/html; charset=x-no-such-charset")
    assert TEXT_JA in html and cs == "cp932"


def test_undeclared_charsets_utf8_then_fallback(tmp_path: Path):
    html, cs = _charset_case(tmp_path, page(TEXT_JA).encode("utf-8"))
    assert TEXT_JA in html and cs == "utf-8"
    html, cs = _charset_case(tmp_path, page(TEXT_1252).encode("cp1252"))
    assert TEXT_1252 in html and cs == "cp1252"  # default_charset
    html, cs = _charset_case(tmp_path, page(TEXT_RU).encode("cp1251"),
                             default_charset="windows-1251")
    assert TEXT_RU in html and cs == "cp1251"


def test_wrong_declaration_falls_back_to_utf8_or_replaces(tmp_path: Path):
    # declared shift_jis, really UTF-8 (which cp932 cannot decode): UTF-8 is used
    body = page(TEXT_JA, '<meta charset="shift_jis">').encode("utf-8")
    with pytest.raises(UnicodeDecodeError):
        body.decode("cp932")
    html, cs = _charset_case(tmp_path, body)
    assert TEXT_JA in html and cs == "utf-8"
    # declared UTF-8, really cp1252: replacement characters, never an exception
    html, cs = _charset_case(tmp_path, page(TEXT_1252).encode("cp1252"),
                             "text/html; charset=utf-8")
    assert cs == "utf-8" and "\ufffd" in html and "Prix" in html


def test_invalid_bytes_and_odd_labels_never_raise(tmp_path: Path):
    junk = b"<html><body>ok \xff\xfe\x81\x8d\x90 \xed\xa0\x80 \xc3</body></html>"
    for ctype in ("text/html", "text/html; charset=utf-8", "text/html; charset=shift_jis",
                  "text/html; charset=undefined", "text/html; charset=base64",
                  "text/html; charset=hex", "text/html; charset=idna",
                  "text/html; charset=utf-7", "text/html; charset=rot13",
                  "text/html; charset=zlib", "text/html; charset=;;"):
        html, cs = _charset_case(tmp_path, junk, ctype)
        assert "ok" in html and html == junk.decode(cs, errors="replace")


def test_meta_utf16_on_ascii_bytes_means_utf8():
    # WHATWG: a <meta> readable as ASCII cannot really be UTF-16
    body = page("hello there!", '<meta charset="utf-16">').encode()
    assert len(body) % 2 == 0  # so a UTF-16 decode would "succeed" into garbage
    html, cs = decode_html(body, "text/html")
    assert cs == "utf-8" and "hello there!" in html


def test_meta_after_the_prescan_window_is_ignored():
    body = ("<!--" + "x" * 5000 + "-->" + page(TEXT_1252, '<meta charset="koi8-r">')).encode(
        "cp1252")
    assert declared_charset(body, None) is None
    assert declared_charset(body[:4096], "text/html; charset=koi8-r") == "koi8-r"


@pytest.mark.parametrize("label,expected", [
    ("latin-1", "cp1252"), ("ISO-8859-1", "cp1252"), ("us-ascii", "cp1252"),
    ("gb2312", "gb18030"), ("GBK", "gb18030"), ("shift_jis", "cp932"), ("sjis", "cp932"),
    ("euc-kr", "cp949"), ("utf8", "utf-8"), ("UTF-8", "utf-8"), (" 'utf-8' ", "utf-8"),
    ("windows-1251", "cp1251"), ("iso-8859-9", "cp1254"), ("tis-620", "cp874"),
    ("no-such", None), ("", None), (None, None),
    ("base64", None), ("hex", None), ("rot13", None), ("zlib", None), ("undefined", None),
    ("idna", None), ("unicode_escape", None), ("utf-7", None),
])
def test_normalize_charset(label, expected):
    assert normalize_charset(label) == expected


ALL_LABELS = sorted(set(encodings.aliases.aliases) | set(encodings.aliases.aliases.values())
                    | {"undefined", "utf-7", "x-user-defined", "gb2312", "sjis", "latin-1"})


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=200), label=st.sampled_from(ALL_LABELS),
       where=st.sampled_from(["header", "meta", "both"]))
def test_decode_html_never_raises_on_any_label_or_bytes(body: bytes, label: str, where: str):
    ctype = f"text/html; charset={label}" if where in ("header", "both") else "text/html"
    if where in ("meta", "both"):
        body = f'<meta charset="{label}">'.encode() + body
    html, cs = decode_html(body, ctype)
    assert isinstance(html, str) and isinstance(cs, str)
    assert html == body.decode(cs, errors="replace")
    html.encode("utf-8")  # no lone surrogates: Arrow can hold it


# ----------------------------------------------------------------------------- truncated WARCs

CUTS = (1 / 3, 1 / 2, 2 / 3)


def _check_cut(path: Path, cut_path: Path, truth: WarcTruth, cut: int):
    table, stats, _ = read_all(WarcInput(paths=["x"]), cut_path)
    complete = [r for r in truth.records if r[0] + r[1] <= cut]
    expected = [r[2] for r in complete if r[2] is not None]
    assert col(table, "id") == expected  # every whole record before the cut, no partial one
    assert stats.errors["corrupt_warc"] == 1
    assert set(stats.errors) <= {"corrupt_warc", "unreadable_body"}
    assert stats.errors["unreadable_body"] <= 1
    # the whole records, maybe the cut one, and the corrupt tail
    assert len(complete) + 1 <= stats.docs_in <= len(complete) + 2
    if table is not None:  # what was read before the cut is what the whole file gives
        full, _, _ = read_all(WarcInput(paths=["x"]), path)
        assert table.equals(full.slice(0, table.num_rows))


@pytest.mark.parametrize("frac", CUTS, ids=lambda f: f"{f:.2f}")
@pytest.mark.parametrize("path", WARCS, ids=lambda p: p.name)
def test_truncated_warc_gz(tmp_path: Path, path: Path, frac: float):
    data = path.read_bytes()
    cut = int(len(data) * frac)
    truth = cached_truth(path)
    assert not any(r[0] == cut for r in truth.records)  # not on a record boundary
    cut_path = tmp_path / path.name
    cut_path.write_bytes(data[:cut])
    _check_cut(path, cut_path, truth, cut)


def test_truncated_warc_gz_inside_an_html_response(tmp_path: Path):
    truth = cached_truth(CC2020)
    offset, length, doc_id = [r for r in truth.records if r[2] is not None][-1]
    cut = offset + length // 2
    cut_path = tmp_path / CC2020.name
    cut_path.write_bytes(CC2020.read_bytes()[:cut])
    table, stats, _ = read_all(WarcInput(paths=["x"]), cut_path)
    assert doc_id not in col(table, "id")
    assert table.num_rows == len(truth.rows) - 1
    assert stats.errors == {"unreadable_body": 1, "corrupt_warc": 1}


def test_warc_gz_cut_on_a_record_boundary_is_a_shorter_valid_file(tmp_path: Path):
    truth = cached_truth(CC2020)
    k = 20
    cut = truth.records[k][0]
    cut_path = tmp_path / CC2020.name
    cut_path.write_bytes(CC2020.read_bytes()[:cut])
    table, stats, _ = read_all(WarcInput(paths=["x"]), cut_path)
    assert stats.docs_in == k and stats.errors == Counter()
    assert col(table, "id") == [r[2] for r in truth.records[:k] if r[2]]


@pytest.fixture(scope="module")
def plain_warcs(tmp_path_factory) -> dict[str, tuple[Path, WarcTruth]]:
    d = tmp_path_factory.mktemp("plain")
    out = {}
    for path in (CC2020, AUT, WARC_DIR / "dolma-wget-2024-sample-0000.warc.gz"):
        plain = d / path.name[: -len(".gz")]
        plain.write_bytes(gzip.decompress(path.read_bytes()))
        out[path.name] = (plain, warc_truth(plain))
    return out


@pytest.mark.parametrize("frac", (0.3, 0.5, 0.62, 0.65, 0.95), ids=lambda f: f"{f:.2f}")
@pytest.mark.parametrize("name", [CC2020.name, AUT.name, "dolma-wget-2024-sample-0000.warc.gz"])
def test_truncated_uncompressed_warc(tmp_path: Path, plain_warcs, name: str, frac: float):
    """A cut plain WARC must not yield a cut page as if it were whole (warcio ends silently)."""
    plain, truth = plain_warcs[name]
    data = plain.read_bytes()
    cut = int(len(data) * frac)
    cut_path = tmp_path / plain.name
    cut_path.write_bytes(data[:cut])
    _check_cut(plain, cut_path, truth, cut)


def test_trailing_garbage_and_non_warc_files(tmp_path: Path):
    good = gzip.decompress(CC2020.read_bytes())
    bad = tmp_path / "trailing.warc"
    # (a line of five or six words would pass for an ARC header: warcio reads ARC too)
    bad.write_bytes(good + b"garbage-not-a-record\r\n\r\n")
    table, stats, _ = read_all(WarcInput(paths=["x"]), bad)
    assert table.num_rows == KNOWN[CC2020.name][1] and stats.errors == {"corrupt_warc": 1}

    bad_gz = tmp_path / "trailing.warc.gz"
    bad_gz.write_bytes(CC2020.read_bytes() + b"garbage, not gzip")
    table, stats, _ = read_all(WarcInput(paths=["x"]), bad_gz)
    assert table.num_rows == KNOWN[CC2020.name][1] and stats.errors == {"corrupt_warc": 1}

    for name, data in [("text.warc", b"hello world\nthis is text\n"),
                       ("text.warc.gz", b"hello, not gzip at all"),
                       ("gz-text.warc.gz", gzip.compress(b"just some text\n" * 10))]:
        p = tmp_path / name
        p.write_bytes(data)
        table, stats, _ = read_all(WarcInput(paths=["x"]), p)
        assert table is None and stats.errors == {"corrupt_warc": 1}

    empty = tmp_path / "empty.warc.gz"
    empty.write_bytes(b"")
    table, stats, _ = read_all(WarcInput(paths=["x"]), empty)
    assert table is None and stats.docs_in == 0


# ----------------------------------------------------------------------------- WET

def test_wet_reader_on_real_file():
    with open(WET, "rb") as fh:
        recs = [(r.rec_type, r.rec_headers.get_header("WARC-Record-ID"),
                 r.rec_headers.get_header("WARC-Target-URI"), r.content_stream().read())
                for r in ArchiveIterator(fh)]
    conv = [r for r in recs if r[0] == "conversion"]
    assert len(recs) == 2 and len(conv) == 1

    table, stats, _ = read_all(WetInput(paths=["x"]), WET, "wet/one")
    assert table.num_rows == 1
    assert stats.docs_in == 2 and stats.dropped == {"record_warcinfo": 1}
    assert stats.errors == Counter()
    row = table.to_pylist()[0]
    assert row["id"] == conv[0][1].strip("<>") and row["url"] == conv[0][2]
    assert row["source"] == "wet/one"
    assert row["text"] == conv[0][3].decode("utf-8") and row["text"].strip()
    assert "Escopete" in row["text"]
    assert table.schema.names == ["id", "url", "source", "text", "warc_date"]


def test_wet_reader_on_a_warc_drops_every_record():
    table, stats, _ = read_all(WetInput(paths=["x"]), CC2020)
    truth = cached_truth(CC2020)
    assert table is None and stats.docs_in == truth.n_records
    assert stats.dropped == {"record_warcinfo": 1, "record_request": 17,
                             "record_metadata": 16, "record_response": 16}


def test_truncated_wet_is_counted(tmp_path: Path):
    data = WET.read_bytes()
    cut = tmp_path / WET.name
    cut.write_bytes(data[: len(data) * 3 // 4])
    table, stats, _ = read_all(WetInput(paths=["x"]), cut)
    assert table is None and stats.errors["corrupt_warc"] == 1


# ----------------------------------------------------------------------------- JSONL

JSONL_LINES = [
    json.dumps({"id": "a", "text": "hello", "url": "http://x.org/", "lang": "en",
                "extra": {"k": [1, 2]}, "z": 1}),                          # 0 kept
    "",                                                                     # 1 blank
    "   \t",                                                                # 2 blank
    "{not json",                                                            # 3 bad_json
    json.dumps([1, 2]),                                                     # 4 not_an_object
    json.dumps("a string"),                                                 # 5 not_an_object
    json.dumps({"text": None, "id": "n"}),                                  # 6 missing_text
    json.dumps({"id": "m"}),                                                # 7 missing_text
    json.dumps({"text": 5}),                                                # 8 text_not_string
    json.dumps({"text": "no id here", "lang": 3, "url": 7}),                # 9 kept
    json.dumps({"text": "ünïcödé 日本 😀", "id": 42, "lang": ["x"]},
               ensure_ascii=False),                                         # 10 kept
    json.dumps({"text": "", "id": "empty-text"}),                           # 11 kept
    "null",                                                                 # 12 not_an_object
    '{"text": "trailing"} garbage',                                         # 13 bad_json
]


def _jsonl_bytes(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode("utf-8")


def _compress(data: bytes, suffix: str) -> bytes:
    if suffix == ".gz":
        return gzip.compress(data, mtime=0)
    if suffix in (".zst", ".zstd"):
        return zstandard.ZstdCompressor().compress(data)
    return data


@pytest.mark.parametrize("suffix", ["", ".gz", ".zst", ".zstd"])
def test_jsonl_reader_counts_and_columns(tmp_path: Path, suffix: str):
    path = tmp_path / f"in.jsonl{suffix}"
    path.write_bytes(_compress(_jsonl_bytes(JSONL_LINES), suffix))
    table, stats, _ = read_all(JsonlInput(paths=["x"], fields=["lang"]), path, "dir/in.jsonl")
    assert stats.docs_in == 12  # the 2 blank lines are not records
    assert stats.errors == {"bad_json": 2, "not_an_object": 3, "missing_text": 2,
                            "text_not_string": 1}
    assert stats.dropped == Counter()
    assert table.schema.names == ["id", "text", "url", "source", "lang", "metadata"]
    rows = table.to_pylist()
    assert [r["text"] for r in rows] == ["hello", "no id here", "ünïcödé 日本 😀", ""]
    assert [r["id"] for r in rows] == ["a", stable_id("dir/in.jsonl", 9), "42", "empty-text"]
    assert [r["url"] for r in rows] == ["http://x.org/", None, None, None]
    assert [r["lang"] for r in rows] == ["en", "3", '["x"]', None]
    assert {r["source"] for r in rows} == {"dir/in.jsonl"}
    assert json.loads(rows[0]["metadata"]) == {"extra": {"k": [1, 2]}, "z": 1}
    assert rows[0]["metadata"] == '{"extra": {"k": [1, 2]}, "z": 1}'  # sorted, stable
    assert [r["metadata"] for r in rows[1:]] == [None, None, None]


def test_jsonl_custom_keys_and_batches(tmp_path: Path):
    lines = [json.dumps({"doc": f"d{i}", "body": f"text {i}", "link": f"http://e/{i}",
                         "id": f"other-{i}", "text": "not the text"}) for i in range(23)]
    path = tmp_path / "custom.jsonl"
    path.write_bytes(_jsonl_bytes(lines))
    cfg = JsonlInput(paths=["x"], text_key="body", id_key="doc", url_key="link", batch_size=5)
    table, stats, n_tables = read_all(cfg, path)
    assert n_tables == 5 and stats.docs_in == 23
    assert col(table, "id") == [f"d{i}" for i in range(23)]
    assert col(table, "text") == [f"text {i}" for i in range(23)]
    assert col(table, "url") == [f"http://e/{i}" for i in range(23)]
    assert json.loads(col(table, "metadata")[3]) == {"id": "other-3", "text": "not the text"}


def test_jsonl_ids_use_line_index_counting_blank_lines(tmp_path: Path):
    path = tmp_path / "ids.jsonl"
    path.write_bytes(b'\n\n{"text": "third line"}\r\n\n{"text": "fifth"}')  # CRLF, no final \n
    table, stats, _ = read_all(JsonlInput(paths=["x"]), path, "ids.jsonl")
    assert col(table, "id") == [stable_id("ids.jsonl", 2), stable_id("ids.jsonl", 4)]
    assert col(table, "text") == ["third line", "fifth"]
    again, _, _ = read_all(JsonlInput(paths=["x"]), path, "ids.jsonl")
    assert again.equals(table)


def test_jsonl_bad_utf8_loses_only_its_line(tmp_path: Path):
    good = [json.dumps({"text": f"doc {i}"}).encode() for i in range(50)]
    bad = b'{"text": "caf\xe9 in latin-1"}'
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(good[:25] + [bad] + good[25:]) + b"\n")
    table, stats, _ = read_all(JsonlInput(paths=["x"]), path)
    assert col(table, "text") == [f"doc {i}" for i in range(50)]
    assert stats.docs_in == 51 and stats.errors == {"bad_unicode": 1}


def test_jsonl_lone_surrogate_escapes(tmp_path: Path):
    path = tmp_path / "surrogates.jsonl"
    path.write_text("\n".join([
        '{"text": "ok"}',
        '{"text": "cut emoji \\ud83d"}',          # lone high surrogate in the text
        '{"text": "fine", "meta": "\\udc00"}',    # ... in metadata
        '{"text": "x", "id": "\\uD800"}',         # ... in the id
        '{"text": "pair \\ud83d\\ude00"}',        # a proper pair: one emoji
        '{"text": "escaped backslash \\\\ud800"}',  # not an escape at all
    ]) + "\n")
    table, stats, _ = read_all(JsonlInput(paths=["x"]), path)
    assert col(table, "text") == ["ok", "pair 😀", "escaped backslash \\ud800"]
    assert stats.errors == {"bad_unicode": 3}


def _complete_lines(partial: bytes) -> int:
    return partial.count(b"\n")


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
@pytest.mark.parametrize("frac", [0.25, 0.5, 0.9])
def test_truncated_compressed_jsonl(tmp_path: Path, suffix: str, frac: float):
    lines = [json.dumps({"id": str(i), "text": f"document {i} " + "lorem ipsum " * (i % 37)})
             for i in range(4000)]
    data = _compress(_jsonl_bytes(lines), suffix)
    cut = data[: int(len(data) * frac)]
    # independent: what the decompressor itself can recover from the cut file
    if suffix == ".gz":
        partial = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(cut)
    else:
        partial = zstandard.ZstdDecompressor().decompressobj().decompress(cut)
    n_whole = _complete_lines(partial)
    assert 0 < n_whole < len(lines)
    path = tmp_path / f"cut.jsonl{suffix}"
    path.write_bytes(cut)
    table, stats, _ = read_all(JsonlInput(paths=["x"]), path)
    assert col(table, "id") == [str(i) for i in range(n_whole)]
    assert stats.errors["corrupt_file"] == 1
    # the cut line, if the decompressor gave part of it, is either bad JSON or in the tail
    assert set(stats.errors) <= {"corrupt_file", "bad_json"}


def test_corrupt_and_multiframe_compressed_jsonl(tmp_path: Path):
    for name, data in [("garbage.jsonl.gz", b"not gzip at all\n"),
                       ("garbage.jsonl.zst", b"not zstd at all\n")]:
        p = tmp_path / name
        p.write_bytes(data)
        table, stats, _ = read_all(JsonlInput(paths=["x"]), p)
        assert table is None and stats.errors == {"corrupt_file": 1}
    c = zstandard.ZstdCompressor()
    lines = [json.dumps({"text": f"t{i}"}) for i in range(10)]
    p = tmp_path / "frames.jsonl.zst"
    p.write_bytes(c.compress(_jsonl_bytes(lines[:4])) + c.compress(_jsonl_bytes(lines[4:])))
    table, stats, _ = read_all(JsonlInput(paths=["x"]), p)
    assert col(table, "text") == [f"t{i}" for i in range(10)]
    gz = tmp_path / "members.jsonl.gz"
    gz.write_bytes(gzip.compress(_jsonl_bytes(lines[:3])) + gzip.compress(_jsonl_bytes(lines[3:])))
    table, _, _ = read_all(JsonlInput(paths=["x"]), gz)
    assert col(table, "text") == [f"t{i}" for i in range(10)]
    for name in ("empty.jsonl", "empty.jsonl.gz", "empty.jsonl.zst"):
        p = tmp_path / name
        p.write_bytes(_compress(b"", Path(name).suffix) if name != "empty.jsonl" else b"")
        table, stats, _ = read_all(JsonlInput(paths=["x"]), p)
        assert table is None and stats.docs_in == 0


TRICKY_LINES = [
    b'{"text": "ok"}', b"{}", b"[]", b"null", b"1", b'"s"', b"{", b"}", b'{"text": 1}',
    b'{"text": null}', b'{"text": "a", "id": null}', b'{"text": "\\ud800"}',
    b'{"text": "caf\xe9"}', b"\xff\xfe", b'{"text": "x", "text": 2}', b"\x00",
    b'{"text": "x"} {"text": "y"}', b'{"text": "\\u0000"}', b"\xef\xbb\xbf{}",
    b'{"text": "x", "id": {"nested": 1}, "url": ["u"]}', b"NaN", b'{"text": NaN}',
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids,
                                                              max_size=3),
    max_leaves=6)
json_objects = st.dictionaries(st.sampled_from(["text", "id", "url", "lang", "x"]),
                               json_values, max_size=5)
jsonl_line = st.one_of(
    json_objects.map(lambda d: json.dumps(d).encode()),
    json_objects.map(lambda d: json.dumps(d, ensure_ascii=False).encode()),
    st.text(max_size=40).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.binary(max_size=40),
    st.sampled_from(TRICKY_LINES),
).map(lambda b: b.replace(b"\n", b" "))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(jsonl_line, max_size=25), suffix=st.sampled_from(["", ".gz", ".zst"]),
       fields=st.sampled_from([[], ["lang"], ["lang", "x"]]))
def test_jsonl_books_always_balance(tmp_path_factory, lines, suffix, fields):
    path = tmp_path_factory.mktemp("prop") / f"in.jsonl{suffix}"
    path.write_bytes(_compress(b"\n".join(lines) + b"\n", suffix))
    table, stats, _ = read_all(JsonlInput(paths=["x"], fields=fields), path, "p")
    non_blank = [ln for ln in lines if ln.strip()]
    assert stats.docs_in == len(non_blank)  # every non-blank line is one record
    assert stats.dropped == Counter()  # the JSONL reader only knows errors
    assert set(stats.errors) <= {"bad_json", "not_an_object", "missing_text",
                                 "text_not_string", "bad_unicode"}
    if table is not None:
        assert table.schema.names == ["id", "text", "url", "source", *fields, "metadata"]
        assert all(isinstance(t, str) for t in col(table, "text"))
        assert all(isinstance(i, str) for i in col(table, "id"))


# ----------------------------------------------------------------------------- Parquet

def _docs(n: int, start: int = 0) -> pa.Table:
    return pa.table({
        "id": [f"doc-{i}" for i in range(start, start + n)],
        "text": [f"text number {i} – ünïcode" for i in range(start, start + n)],
        "url": [f"http://example.org/{i}" if i % 3 else None for i in range(start, start + n)],
        "source": ["orig/file.jsonl"] * n,
        "quality": [i / 10 for i in range(start, start + n)],
    })


def test_parquet_round_trip_from_shard_writer(tmp_path: Path):
    cfg = OutputConfig(path=str(tmp_path), rows_per_file=1000, rows_per_row_group=7)
    w = ParquetShardWriter(tmp_path / "data", "part-00000", cfg, tmp_path)
    w.write(_docs(30))
    w.write(_docs(20, start=30))
    (shard,) = w.close()
    table, stats, n_tables = read_all(ParquetInput(paths=["x"], batch_size=16),
                                      tmp_path / shard.path, "ignored")
    assert stats.docs_in == 50 and stats.errors == Counter() and n_tables == 4
    assert table.equals(pa.concat_tables([_docs(30), _docs(20, 30)]))  # source kept as written


def test_parquet_missing_text_column_counts_every_row(tmp_path: Path):
    path = tmp_path / "notext.parquet"
    pq.write_table(_docs(13).drop_columns(["text"]), path, row_group_size=5)
    table, stats, _ = read_all(ParquetInput(paths=["x"]), path)
    assert table is None
    assert stats.docs_in == 13 and stats.errors == {"missing_text_column": 13}
    table, stats, _ = read_all(ParquetInput(paths=["x"], text_column="body"), tmp_path /
                               "notext.parquet")
    assert stats.errors == {"missing_text_column": 13}


def test_parquet_text_and_id_column_renaming(tmp_path: Path):
    src = pa.table({"doc_id": [10, 11, 12], "content": ["one", "two", "three"],
                    "text": ["old a", "old b", "old c"], "id": ["x", "y", "z"],
                    "score": [1.5, 2.5, 3.5]})
    path = tmp_path / "renamed.parquet"
    pq.write_table(src, path)
    table, stats, _ = read_all(ParquetInput(paths=["x"], text_column="content",
                                            id_column="doc_id"), path, "renamed.parquet")
    assert table.schema.names[0] == "id"
    assert sorted(table.schema.names) == ["id", "score", "source", "text"]
    assert col(table, "id") == ["10", "11", "12"]
    assert col(table, "text") == ["one", "two", "three"]
    assert col(table, "score") == [1.5, 2.5, 3.5]
    assert col(table, "source") == ["renamed.parquet"] * 3
    assert pa.types.is_string(table.schema.field("id").type)


def test_parquet_stable_ids_without_id_column_across_batches(tmp_path: Path):
    src = pa.table({"text": pa.array([f"t{i}" for i in range(11)], pa.large_string())})
    path = tmp_path / "noid.parquet"
    pq.write_table(src, path, row_group_size=4)
    table, stats, n_tables = read_all(ParquetInput(paths=["x"], batch_size=3), path, "a/noid")
    assert n_tables >= 4
    assert col(table, "id") == [stable_id("a/noid", i) for i in range(11)]
    assert col(table, "text") == [f"t{i}" for i in range(11)]
    assert table.schema.field("text").type == pa.string()
    assert col(table, "source") == ["a/noid"] * 11
    other, _, _ = read_all(ParquetInput(paths=["x"], batch_size=100), path, "a/noid")
    assert other.equals(table)  # ids do not depend on batching


def test_parquet_column_selection_keeps_text_and_id(tmp_path: Path):
    path = tmp_path / "cols.parquet"
    pq.write_table(_docs(5).drop_columns(["source"]), path)
    table, _, _ = read_all(ParquetInput(paths=["x"], columns=["quality"]), path, "sel")
    assert table.schema.names == ["id", "text", "quality", "source"]
    assert col(table, "id") == [f"doc-{i}" for i in range(5)]


def test_corrupt_parquet_is_one_error(tmp_path: Path):
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"PAR1 this is not really parquet")
    table, stats, _ = read_all(ParquetInput(paths=["x"]), path)
    assert table is None and stats.errors == {"corrupt_parquet": 1}


# ----------------------------------------------------------------------------- warcio internals

def test_warcio_internals_the_reader_relies_on_hold_on_the_installed_warcio():
    """The undocumented warcio attributes the readers use (warc_stream's module doc) behave
    as expected here; a warcio upgrade makes this fail until its version is added to
    WARCIO_CHECKED after comparing those internals in its source."""
    from importlib.metadata import version

    from pipelines.io import warc_stream

    assert warc_stream.warcio_problem() is None
    assert version("warcio") in warc_stream.WARCIO_CHECKED


def test_an_unknown_warcio_is_checked_and_refused_in_one_line(monkeypatch):
    import warcio.archiveiterator

    from pipelines.errors import UserError
    from pipelines.io import warc_stream

    warc_stream.check_warcio("9.9.0")  # unknown, but its internals behave: accepted
    assert "9.9.0" in warc_stream._WARCIO_OK

    class Moved(warcio.archiveiterator.ArchiveIterator):
        """A warcio whose iterator no longer keeps the record's start in ``offset``."""

        offset = property(lambda self: 0, lambda self, value: None)

    monkeypatch.setattr(warcio.archiveiterator, "ArchiveIterator", Moved)
    assert "offsets" in warc_stream.warcio_problem()
    with pytest.raises(UserError) as err:
        warc_stream.check_warcio("9.9.1")
    message = str(err.value)
    assert "\n" not in message and message.startswith("warcio 9.9.1 ") and "1.8.1" in message
