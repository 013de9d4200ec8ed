"""The bad-input catalogue of issue #11, one test (or more) per entry.

Each bad input must be counted under a reason (the books balance), must not stop the
reader, and must cost only itself: the records around it come out exactly as they do
from the intact file. Damage is made from the real WARCs in tests/data/warc (bytes
cut, inserted or overwritten at offsets warcio reports for the intact file), and
expectations come from reading the intact file, not from the reader under test.
Entries already covered elsewhere are listed in docs/reliability.md with their tests.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import re
import tracemalloc
import uuid
import zlib
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import thresher
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_readers import AUT, CC2020, WARCS, cached_truth, col, make_warc, page, read_all
from warcio.archiveiterator import ArchiveIterator

from pipelines.config import JsonlInput, ParquetInput, WarcInput, WetInput
from pipelines.io.html_charset import decode_html, looks_binary
from pipelines.schema import stable_id


def offsets(path: Path) -> list[int]:
    """Record offsets as warcio reports them (compressed offsets for .gz)."""
    out = []
    with open(path, "rb") as fh:
        it = ArchiveIterator(fh, arc2warc=True)
        for rec in it:
            rec.content_stream().read()
            out.append(it.get_record_offset())
    return out


def full_ids(path: Path) -> list[str]:
    return [r["id"] for r in cached_truth(path).rows]


def html_index(path: Path) -> dict[str, int]:
    """Record index of each HTML document of the intact file."""
    truth = cached_truth(path)
    return {doc: i for i, (_, _, doc) in enumerate(truth.records) if doc}


# ----------------------------------------------------------------------------- WARC damage

@pytest.mark.parametrize("where", [3, 11, 30, 49])
def test_garbage_between_gzip_members_costs_nothing_else(tmp_path: Path, where: int):
    data, offs = CC2020.read_bytes(), offsets(CC2020)
    bad = tmp_path / "g.warc.gz"
    bad.write_bytes(data[:offs[where]] + b"\x00garbage\xff" * 300 + data[offs[where]:])
    table, stats, _ = read_all(WarcInput(paths=["x"]), bad)
    assert col(table, "id") == full_ids(CC2020)
    assert stats.errors == {"corrupt_warc": 1}
    assert stats.docs_in == cached_truth(CC2020).n_records + 1


def test_garbage_between_plain_records_costs_nothing_else(tmp_path: Path):
    plain = tmp_path / "p.warc"
    plain.write_bytes(gzip.decompress(AUT.read_bytes()))
    data, offs = plain.read_bytes(), offsets(plain)
    for k in (100, 500):  # two damaged places
        at = offs[k] + (data[:offs[k]].count(b"") * 0)
        data = data[:at] + b"this line is not a record\r\n" * 5 + data[at:]
        offs = offsets_after_insert(offs, k, len(b"this line is not a record\r\n" * 5))
    bad = tmp_path / "bad.warc"
    bad.write_bytes(data)
    table, stats, _ = read_all(WarcInput(paths=["x"]), bad)
    assert col(table, "id") == full_ids(AUT)
    assert stats.errors == {"corrupt_warc": 2}


def offsets_after_insert(offs: list[int], k: int, n: int) -> list[int]:
    return offs[:k] + [o + n for o in offs[k:]]


def _damage_member(data: bytes, start: int, end: int) -> bytes:
    """Overwrite 16 bytes in the middle of the member (its CRC cannot match any more)."""
    mid = (start + end) // 2
    return data[:mid] + b"\x55\xaa" * 8 + data[mid + 16:]


@pytest.mark.parametrize("path", [CC2020, WARCS[2]], ids=lambda p: p.name)
def test_a_gzip_member_that_does_not_inflate_costs_only_its_record(tmp_path: Path, path: Path):
    data, offs = path.read_bytes(), offsets(path)
    index = html_index(path)
    victim_id, k = sorted(index.items(), key=lambda kv: kv[1])[len(index) // 2]
    bad = tmp_path / path.name
    bad.write_bytes(_damage_member(data, offs[k], offs[k + 1]))
    table, stats, _ = read_all(WarcInput(paths=["x"]), bad)
    assert col(table, "id") == [i for i in full_ids(path) if i != victim_id]
    assert stats.errors["corrupt_warc"] == 1
    assert set(stats.errors) <= {"corrupt_warc", "unreadable_body"}


def test_a_member_that_is_not_a_warc_record(tmp_path: Path):
    data, offs = CC2020.read_bytes(), offsets(CC2020)
    k = 12
    member = gzip.decompress(data[offs[k]:offs[k + 1]])
    garbled = gzip.compress(member.replace(b"WARC/1.0", b"WORC/9.x", 1), mtime=0)
    bad = tmp_path / "m.warc.gz"
    bad.write_bytes(data[:offs[k]] + garbled + data[offs[k + 1]:])
    table, stats, _ = read_all(WarcInput(paths=["x"]), bad)
    assert col(table, "id") == [i for i in full_ids(CC2020)
                                if html_index(CC2020)[i] != k]
    assert stats.errors == {"corrupt_warc": 1}
    assert stats.docs_in == cached_truth(CC2020).n_records


def _plain_with(tmp_path: Path, k: int, edit) -> tuple[Path, bytes]:
    plain = gzip.decompress(CC2020.read_bytes())
    p = tmp_path / "plain.warc"
    p.write_bytes(plain)
    offs = offsets(p)
    seg = plain[offs[k]:offs[k + 1]]
    bad = tmp_path / "bad.warc"
    bad.write_bytes(plain[:offs[k]] + edit(seg) + plain[offs[k + 1]:])
    return bad, seg


def _content_length(seg: bytes) -> re.Match:
    return re.search(rb"Content-Length: (\d+)", seg)


@pytest.mark.parametrize("name,edit,counted", [
    ("not_a_number", lambda s: s.replace(b"Content-Length: ", b"Content-Length: x", 1), True),
    ("far_too_long", lambda s: s.replace(_content_length(s).group(0), b"Content-Length: %d"
                                         % (int(_content_length(s).group(1)) * 3), 1), True),
    ("no_version_line", lambda s: s.replace(b"WARC/1.0\r\n", b"", 1), True),
    # warcio reads binary junk among the header lines as odd headers: nothing is lost
    ("binary_header_block", lambda s: s[:40] + bytes(range(256)) + s[40:], False),
])
def test_malformed_warc_headers_cost_a_few_records_at_most(tmp_path: Path, name: str, edit,
                                                           counted: bool):
    """Record 12 (metadata) gets a broken header; the response records around it
    survive (a too-long Content-Length may swallow the record right after it)."""
    bad, _ = _plain_with(tmp_path, 12, edit)
    table, stats, _ = read_all(WarcInput(paths=["x"]), bad)
    lost = set(full_ids(CC2020)) - set(col(table, "id"))
    assert all(html_index(CC2020)[i] in (12, 13, 14) for i in lost)
    assert len(lost) <= 1
    assert (stats.errors["corrupt_warc"] >= 1) == counted


HTML = page("Hello from a page with a few words in it.").encode()


def _http_response(block: bytes) -> bytes:
    head = (b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:%s>\r\n"
            b"WARC-Target-URI: http://example.org/\r\nWARC-Date: 2024-01-01T00:00:00Z\r\n"
            b"Content-Type: application/http; msgtype=response\r\nContent-Length: %d\r\n\r\n"
            % (str(uuid.uuid4()).encode(), len(block)))
    return gzip.compress(head + block + b"\r\n\r\n", mtime=0)


@pytest.mark.parametrize("block,reason", [
    (b"Content-Type: text/html\r\n\r\n" + HTML, "http_status"),  # no status line
    (b"BLAH BLAH\r\nContent-Type: text/html\r\n\r\n" + HTML, "http_status"),
    (b"HTTP/1.1 abc OK\r\nContent-Type: text/html\r\n\r\n" + HTML, "http_status"),
    (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n" + HTML, "empty"),  # no blank line
    (b"", "no_http_headers"),
    (b"HTTP/1.1 200 OK\r\n", "not_html"),  # no Content-Type at all
    (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\n\r\n"
     + b"\x1f\x8b\x08 not really gzip", "binary_content"),
])
def test_malformed_http_headers_are_counted_drops(tmp_path: Path, block: bytes, reason: str):
    path = tmp_path / "h.warc.gz"
    good = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n" + HTML
    path.write_bytes(_http_response(block) + _http_response(good))
    table, stats, _ = read_all(WarcInput(paths=["x"]), path)
    assert table.num_rows == 1 and col(table, "html") == [HTML.decode()]
    assert dict(stats.dropped) | dict(stats.errors) == {reason: 1}


def test_odd_but_readable_http_headers_keep_the_page(tmp_path: Path):
    blocks = [b"HTTP/1.1 200 OK\r\n\x00\x01\xff: \x80\r\nContent-Type: text/html\r\n\r\n" + HTML,
              b"HTTP/1.1 200 OK\r\nnot a header line\r\nContent-Type: text/html\r\n\r\n" + HTML,
              b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=\xe9\xe9\r\n\r\n" + HTML]
    path = tmp_path / "odd.warc.gz"
    path.write_bytes(b"".join(_http_response(b) for b in blocks))
    table, stats, _ = read_all(WarcInput(paths=["x"]), path)
    assert col(table, "html") == [HTML.decode()] * 3 and stats.n_errors == 0


def test_warc_reader_reads_gzip_by_content_and_plain_by_content(tmp_path: Path):
    """A gzip WARC without .gz in its name is still read member by member."""
    named_plain = tmp_path / "really-gzip.warc"
    named_plain.write_bytes(CC2020.read_bytes())
    table, stats, _ = read_all(WarcInput(paths=["x"]), named_plain)
    assert col(table, "id") == full_ids(CC2020) and stats.n_errors == 0


# ----------------------------------------------------------------------------- contents

def _one_page(tmp_path: Path, body: bytes, ctype: str = "text/html", **cfg):
    path = make_warc(tmp_path / f"{uuid.uuid4().hex}.warc.gz", [
        {"body": body, "ctype": ctype}, {"body": HTML, "ctype": "text/html"}])
    table, stats, _ = read_all(WarcInput(paths=["x"], **cfg), path)
    return table, stats


def _real_payloads(ctype_prefix: str) -> list[bytes]:
    out = []
    with open(AUT, "rb") as fh:
        for rec in ArchiveIterator(fh):
            h = rec.http_headers
            if rec.rec_type == "response" and h and \
                    (h.get_header("Content-Type") or "").startswith(ctype_prefix):
                body = rec.content_stream().read()
                if body:
                    out.append(body)
    return out


@pytest.mark.parametrize("kind", ["image/png", "image/jpeg", "image/gif",
                                  "application/x-shockwave-flash"])
def test_real_binary_bodies_labelled_html_are_binary_content(tmp_path: Path, kind: str):
    bodies = _real_payloads(kind)
    assert bodies
    for body in bodies[:5]:
        table, stats = _one_page(tmp_path, body, "text/html; charset=utf-8")
        assert col(table, "html") == [HTML.decode()]
        assert stats.errors == {"binary_content": 1}


def test_no_real_html_page_looks_binary():
    n = 0
    for path in WARCS:
        with open(path, "rb") as fh:
            for rec in ArchiveIterator(fh, arc2warc=True):
                h = rec.http_headers
                ctype = h.get_header("Content-Type") if h else ""
                if rec.rec_type == "response" and ctype and "html" in ctype:
                    body = rec.content_stream().read()
                    n += 1
                    assert not looks_binary(body, ctype), (path.name, body[:80])
    assert n > 200


def test_text_with_a_stray_nul_or_in_utf16_is_not_binary():
    assert not looks_binary(b"<html><p>fine text\x00 with one NUL</p></html>" * 20)
    utf16 = page("Grüße aus Köln, a page in UTF-16.").encode("utf-16")
    assert not looks_binary(utf16) and not looks_binary(utf16[2:], "text/html; charset=utf-16le")


@pytest.mark.parametrize("encoding,ctype", [
    ("utf-8-sig", "text/html; charset=iso-8859-1"),  # BOM wins over the header
    ("utf-16", "text/html"),
    ("utf-16", "text/html; charset=utf-8"),
])
def test_byte_order_mark_wins(tmp_path: Path, encoding: str, ctype: str):
    text = page("Grüße aus Köln – “quoted” €")
    html, cs = decode_html(text.encode(encoding), ctype)
    assert html == text and cs == encoding
    table, stats = _one_page(tmp_path, text.encode(encoding), ctype)
    assert col(table, "html")[0] == text and stats.n_errors == 0


def test_invalid_utf8_in_a_utf8_page_is_replaced_not_fatal(tmp_path: Path):
    body = page("caf\xe9 ok").encode("utf-8").replace(b"\xc3\xa9", b"\xe9\xff\xfe")
    table, stats = _one_page(tmp_path, body, "text/html; charset=utf-8")
    assert "\ufffd" in col(table, "html")[0] and stats.n_errors == 0


# ----------------------------------------------------------------------------- size

BIG = 50 * 2**20


def _peak_mb(fn) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def test_a_50mb_page_is_dropped_unread(tmp_path: Path):
    """Memory stays far below the page's size (tracemalloc sees every bytes object)."""
    big = b"<html><body>" + b"<p>lorem ipsum dolor sit amet</p>" * (BIG // 33) + b"</body></html>"
    path = make_warc(tmp_path / "big.warc.gz", [{"body": HTML, "ctype": "text/html"},
                                                {"body": big, "ctype": "text/html"},
                                                {"body": HTML, "ctype": "text/html"}])
    del big
    result = {}
    peak = _peak_mb(lambda: result.update(zip(("t", "s", "n"), read_all(
        WarcInput(paths=["x"]), path))))
    assert col(result["t"], "url") == ["http://example.org/page/0", "http://example.org/page/2"]
    assert result["s"].dropped == {"too_large": 1}
    assert peak < 20, f"peak {peak:.0f} MB"
    # with the limit off the page is read whole (the limit is what saved the memory)
    table, stats, _ = read_all(WarcInput(paths=["x"], max_record_bytes=None), path)
    assert table.num_rows == 3 and len(col(table, "html")[1]) > BIG


def _gzip_bomb(megabytes: int) -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [z.compress(b"<p>")] + [z.compress(b"a" * 2**20) for _ in range(megabytes)]
    return b"".join([*parts, z.compress(b"</p>"), z.flush()])


def test_a_small_record_that_inflates_to_400mb_is_too_large(tmp_path: Path):
    """Content-Encoding: gzip makes the WARC record small (400 KB); the decoded body is
    400 MB. Memory is bounded by the limit plus a few inflated blocks, not the body."""
    bomb = _gzip_bomb(400)
    path = make_warc(tmp_path / "bomb.warc.gz", [
        {"body": bomb, "headers": [("Content-Type", "text/html"),
                                   ("Content-Encoding", "gzip")]},
        {"body": HTML, "ctype": "text/html"}])
    result = {}
    peak = _peak_mb(lambda: result.update(zip(("t", "s", "n"), read_all(
        WarcInput(paths=["x"]), path))))
    assert result["s"].dropped == {"too_large": 1} and result["t"].num_rows == 1
    assert peak < 64, f"peak {peak:.0f} MB"


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_a_50mb_jsonl_line_is_skipped_in_bounded_memory(tmp_path: Path, suffix: str):
    lines = [json.dumps({"id": "a", "text": "first"}),
             json.dumps({"id": "big", "text": "x" * BIG}),
             json.dumps({"id": "c", "text": "last"})]
    data = ("\n".join(lines) + "\n").encode()
    path = tmp_path / f"big.jsonl{suffix}"
    path.write_bytes(gzip.compress(data, compresslevel=1) if suffix else data)
    del data, lines
    result = {}
    peak = _peak_mb(lambda: result.update(zip(("t", "s", "n"), read_all(
        JsonlInput(paths=["x"], max_record_bytes=2**20), path, "src"))))
    assert col(result["t"], "id") == ["a", "c"]
    assert result["s"].dropped == {"too_large": 1}
    assert peak < 20, f"peak {peak:.0f} MB"
    # the ids of what follows do not move: line numbers still count the skipped line
    table, _, _ = read_all(JsonlInput(paths=["x"], id_key="none"), path, "src")
    assert col(table, "id") == [stable_id("src", i) for i in range(3)]


def test_wet_records_over_the_limit_are_too_large(tmp_path: Path):
    from warcio.warcwriter import WARCWriter

    path = tmp_path / "x.warc.wet.gz"
    with open(path, "wb") as fh:
        w = WARCWriter(fh, gzip=True)
        for i, text in enumerate([b"short text", b"y" * 5000, b"another"]):
            w.write_record(w.create_warc_record(f"http://e.org/{i}", "conversion",
                                                payload=io.BytesIO(text),
                                                warc_content_type="text/plain"))
    table, stats, _ = read_all(WetInput(paths=["x"], max_record_bytes=1000), path)
    assert col(table, "text") == ["short text", "another"]
    assert stats.dropped == {"too_large": 1}


# ----------------------------------------------------------------------------- Parquet

def _write(tmp_path: Path, table: pa.Table, name: str = "in.parquet", **kw) -> Path:
    path = tmp_path / name
    pq.write_table(table, path, **kw)
    return path


def test_parquet_null_ids_get_stable_ids(tmp_path: Path):
    path = _write(tmp_path, pa.table({"id": ["a", None, "c", None],
                                      "text": ["1", "2", "3", "4"]}), row_group_size=3)
    table, stats, _ = read_all(ParquetInput(paths=["x"], batch_size=2), path, "src")
    assert col(table, "id") == ["a", stable_id("src", 1), "c", stable_id("src", 3)]
    assert stats.n_errors == 0


def test_parquet_ids_of_any_type(tmp_path: Path):
    path = _write(tmp_path, pa.table({"id": [{"k": 1}, {"k": 2}], "text": ["1", "2"]}))
    table, stats, _ = read_all(ParquetInput(paths=["x"]), path, "src")
    assert col(table, "id") == [stable_id("src", 0), stable_id("src", 1)]
    path = _write(tmp_path, pa.table({"id": [7, None], "text": ["1", "2"]}), "ints.parquet")
    table, _, _ = read_all(ParquetInput(paths=["x"]), path, "src")
    assert col(table, "id") == ["7", stable_id("src", 1)]


def test_parquet_unknown_columns_are_counted_not_a_crash(tmp_path: Path):
    path = _write(tmp_path, pa.table({"id": ["a", "b"], "text": ["1", "2"]}))
    table, stats, _ = read_all(ParquetInput(paths=["x"], columns=["quality", "lang"]), path)
    assert table is None and stats.errors == {"missing_column": 2}


@pytest.mark.parametrize("values,kept,errors", [
    (pa.array(["a", None, "c"]), ["a", "c"], {"missing_text": 1}),
    (pa.array([b"ok", b"\xff\xfe bad", None], pa.binary()), ["ok"],
     {"bad_unicode": 1, "missing_text": 1}),
    (pa.array([b"ok", b"fine"], pa.large_binary()), ["ok", "fine"], {}),
    (pa.array(["x", "y", "x"]).dictionary_encode(), ["x", "y", "x"], {}),
    (pa.array(["a", "b"], pa.large_string()), ["a", "b"], {}),
    (pa.array([1, 2, None]), [], {"text_not_string": 2, "missing_text": 1}),
    (pa.array([["a"], ["b"]]), [], {"text_not_string": 2}),
    (pa.nulls(2), [], {"missing_text": 2}),
])
def test_parquet_mistyped_or_missing_text(tmp_path: Path, values, kept, errors):
    n = len(values)
    path = _write(tmp_path, pa.table({"id": [f"d{i}" for i in range(n)], "text": values}))
    table, stats, _ = read_all(ParquetInput(paths=["x"]), path)
    assert col(table, "text") == kept and stats.errors == Counter(errors)
    if table is not None:
        assert table.schema.field("text").type == pa.string()


def test_parquet_damaged_row_group_costs_only_its_rows(tmp_path: Path):
    t = pa.table({"id": [f"i{i}" for i in range(30)],
                  "text": [f"text number {i} " * 20 for i in range(30)]})
    path = _write(tmp_path, t, row_group_size=10, compression="none")
    chunk = pq.ParquetFile(path).metadata.row_group(1).column(1)
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data = bytearray(path.read_bytes())
    data[start:start + chunk.total_compressed_size] = b"\xab" * chunk.total_compressed_size
    path.write_bytes(bytes(data))
    for batch_size in (7, 10, 64):
        table, stats, _ = read_all(ParquetInput(paths=["x"], batch_size=batch_size), path)
        assert col(table, "id") == [f"i{i}" for i in [*range(10), *range(20, 30)]]
        assert stats.errors == {"corrupt_parquet": 10}


# ----------------------------------------------------------------------------- property

@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.sampled_from(["html", "png", "empty", "request", "404"]),
                      min_size=1, max_size=8),
       damage=st.lists(st.tuples(st.integers(0, 8), st.sampled_from(["garbage", "flip"])),
                       max_size=3),
       cut=st.one_of(st.none(), st.floats(0.05, 0.95)),
       backend=st.sampled_from(["warcio", "fastwarc"]))
def test_any_damage_loses_only_the_damaged_records(tmp_path_factory, kinds, damage, cut,
                                                   backend):
    """A WARC of mixed records, with garbage inserted between members, members damaged,
    and maybe a cut tail: the reader never raises, the books balance (read_all checks),
    and every HTML record whose member is intact and before the cut comes out, in order
    (with either record parser)."""
    d = tmp_path_factory.mktemp("warc")
    bodies = {"html": HTML, "png": _PNG, "empty": b"", "request": b"GET / HTTP/1.1\r\n\r\n",
              "404": HTML}
    members, ids = [], []
    for i, k in enumerate(kinds):
        recs = [{"body": bodies[k], "ctype": "text/html", "uri": f"http://e.org/{i}",
                 **({"rec_type": "resource"} if k == "request" else {}),
                 **({"status": "404 Not Found"} if k == "404" else {})}]
        p = make_warc(d / f"m{i}.warc.gz", recs)
        members.append(p.read_bytes())
        ids.append(f"http://e.org/{i}" if k == "html" else None)
    damaged = set()
    junk = [b""] * len(members)  # garbage written after each member
    for pos, how in damage:
        pos = min(pos, len(members) - 1)
        if how == "garbage":
            junk[pos] += b"\x00junk\xff" * 7
        else:
            members[pos] = _damage_member(members[pos], 0, len(members[pos]))
            damaged.add(pos)
    data = b"".join(m + j for m, j in zip(members, junk))
    if cut is not None:  # a member is lost when the cut falls inside it (not its junk)
        n = int(len(data) * cut)
        data = data[:n]
        starts = itertools.accumulate((len(m) + len(j) for m, j in zip(members, junk)),
                                      initial=0)
        damaged |= {i for i, (s, m) in enumerate(zip(starts, members)) if s + len(m) > n}
    path = d / "mixed.warc.gz"
    path.write_bytes(data)
    table, stats, _ = read_all(WarcInput(paths=["x"], backend=backend), path)
    expected = [u for i, u in enumerate(ids) if u and i not in damaged]
    assert col(table, "url") == expected
    assert stats.dropped.get("http_status", 0) <= kinds.count("404")


_PNG = b"\x89PNG\r\n\x1a\n" + zlib.compress(bytes(range(256)) * 8)


_TEXT = st.one_of(st.none(), st.text(max_size=8), st.binary(max_size=8))


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(_TEXT, min_size=1, max_size=30),
       id_kind=st.sampled_from(["none", "string", "int", "nullable"]),
       as_binary=st.booleans(), row_group=st.integers(1, 8), batch=st.integers(1, 9))
def test_any_parquet_text_column_is_read_whole(tmp_path_factory, texts, id_kind, as_binary,
                                               row_group, batch):
    """Whatever mix of strings, nulls and (non-UTF-8) bytes the text column holds, and
    whatever the ids: the reader never raises, the books balance (read_all checks), every
    row with a real text comes out once, in order, and every id is a non-null string."""
    if as_binary:
        vals = [t.encode() if isinstance(t, str) else t for t in texts]
        text_col = pa.array(vals, pa.binary())
    else:
        vals = [t.decode("utf-8", "replace") if isinstance(t, bytes) else t for t in texts]
        text_col = pa.array(vals, pa.string())
    n = len(vals)
    cols = {"text": text_col}
    if id_kind == "string":
        cols["id"] = pa.array([f"d{i}" for i in range(n)])
    elif id_kind == "int":
        cols["id"] = pa.array(list(range(n)))
    elif id_kind == "nullable":
        cols["id"] = pa.array([None if i % 3 == 0 else f"d{i}" for i in range(n)])
    path = tmp_path_factory.mktemp("pq") / "t.parquet"
    pq.write_table(pa.table(cols), path, row_group_size=row_group)
    table, stats, _ = read_all(ParquetInput(paths=["x"], batch_size=batch), path, "src")
    good = []
    for v in vals:
        if isinstance(v, bytes):
            try:
                good.append(v.decode("utf-8"))
            except UnicodeDecodeError:
                pass
        elif v is not None:
            good.append(v)
    assert col(table, "text") == good
    ids = col(table, "id")
    assert all(isinstance(i, str) for i in ids) and len(set(ids)) == len(ids)
    assert stats.n_errors == n - len(good)


# ----------------------------------------------------------------------------- whole runs

def _cfg(tmp_path: Path, paths: list[str], fmt: str = "warc", **extra) -> Path:
    cfg = {"input": {"format": fmt, "paths": paths}, "output": {"path": str(tmp_path / "run")},
           "stages": [], **extra}
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_zero_byte_files_and_a_directory_in_the_glob(tmp_path: Path):
    """The glob matches a directory, zero-byte files and a real file: each directory and
    each zero-byte file is one counted, sampled error of `read`; the run finishes."""
    d = tmp_path / "in"
    d.mkdir()
    (d / "a-dir.warc.gz").mkdir()
    (d / "empty.warc.gz").write_bytes(b"")
    (d / "empty.warc").write_bytes(b"")
    (d / "real.warc.gz").write_bytes(CC2020.read_bytes())
    thresher("run", str(_cfg(tmp_path, [str(d / "*.warc*")])), "--quiet")
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    read = stats["stages"]["read"]
    assert read["docs_out"] == stats["stages"]["write"]["docs_out"] == len(full_ids(CC2020))
    assert read["errors"] == {"empty_file": 2, "input_is_directory": 1}
    assert read["docs_in"] == read["docs_out"] + sum(read["dropped"].values()) + 3
    plan = json.loads((tmp_path / "run" / "plan.json").read_text())
    assert len(plan["inputs"]) == 3 and [s["source"] for s in plan["skipped"]] == ["a-dir.warc.gz"]
    samples = pq.read_table(tmp_path / "run" / "samples" / "read.parquet").to_pylist()
    assert sorted((s["reason"], s["source"]) for s in samples if s["kind"] == "error") == [
        ("empty_file", "empty.warc"), ("empty_file", "empty.warc.gz"),
        ("input_is_directory", "a-dir.warc.gz")]

    pq.write_table(pa.table({"text": ["hello"]}), d / "ok.parquet")
    (d / "zero.parquet").write_bytes(b"")
    out = tmp_path / "pq"
    out.mkdir()
    thresher("run", str(_cfg(out, [str(d / "*.parquet")], fmt="parquet")), "--quiet")
    stats = json.loads((out / "run" / "stats.json").read_text())
    assert stats["stages"]["read"]["errors"] == {"empty_file": 1}
    assert stats["stages"]["write"]["docs_out"] == 1


def test_a_damaged_input_is_counted_and_sampled_with_its_offset(tmp_path: Path):
    data, offs = CC2020.read_bytes(), offsets(CC2020)
    d = tmp_path / "in"
    d.mkdir()
    (d / "damaged.warc.gz").write_bytes(data[:offs[20]] + b"JUNK" * 50 + data[offs[20]:])
    thresher("run", str(_cfg(tmp_path, [str(d / "*.warc.gz")])), "--quiet")
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    assert stats["stages"]["read"]["errors"] == {"corrupt_warc": 1}
    assert stats["stages"]["write"]["docs_out"] == len(full_ids(CC2020))
    samples = pq.read_table(tmp_path / "run" / "samples" / "read.parquet").to_pylist()
    (bad,) = [s for s in samples if s["reason"] == "corrupt_warc"]
    assert bad["kind"] == "error" and bad["source"] == "damaged.warc.gz"
    assert json.loads(bad["details"])["offset"] == offs[20]


# ----------------------------------------------------------------------------- max_error_rate

def test_max_error_rate_fails_the_task_with_a_clear_message(tmp_path: Path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "a-good.warc.gz").write_bytes(CC2020.read_bytes())
    lines = [json.dumps({"text": "fine"})] * 3 + ["{broken"] * 2  # 40% errors
    # (warcio would take a line of five or more words for an ARC header)
    (d / "b-bad.warc.gz").write_bytes(gzip.compress(b"not-a-warc\n" * 10))
    jl = tmp_path / "jl"
    jl.mkdir()
    (jl / "x.jsonl").write_text("\n".join(lines) + "\n")

    proc = thresher("run", str(_cfg(tmp_path, [str(d / "*.warc.gz")], max_error_rate=0.1)),
                    check=False)
    assert proc.returncode == 2
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("thresher: error:")]
    assert "phase main: task 1 failed: TaskError: stage 'read' in task 1 (b-bad.warc.gz): " \
           "1 errors in 1 documents (100.0%) exceed max_error_rate 0.1 (corrupt_warc 1)" in line
    assert "task-00001.log" in line
    run = tmp_path / "run"
    assert (run / "stats" / "main" / "task-00000.json").exists()
    assert not (run / "stats" / "main" / "task-00001.json").exists()
    assert not list((run / "data").glob("part-00001-*"))
    # the limit is not part of the output: raising it and resuming finishes the run
    proc = thresher("run", str(_cfg(tmp_path, [str(d / "*.warc.gz")],
                                    max_error_rate={"read": 1.0, "default": 0.1})),
                    "--resume", "--quiet")
    assert json.loads((run / "stats.json").read_text())["stages"]["read"]["errors"] == \
        {"corrupt_warc": 1}

    # per stage, and exactly at the limit passes: 2 errors in 5 lines is 40%
    out = tmp_path / "j1"
    out.mkdir()
    thresher("run", str(_cfg(out, [str(jl / "x.jsonl")], fmt="jsonl",
                             max_error_rate={"read": 0.4})), "--quiet")
    out = tmp_path / "j2"
    out.mkdir()
    proc = thresher("run", str(_cfg(out, [str(jl / "x.jsonl")], fmt="jsonl",
                                    max_error_rate={"read": 0.39})), check=False)
    assert proc.returncode == 2 and "2 errors in 5 documents (40.0%) exceed max_error_rate " \
        "0.39 (bad_json 2)" in proc.stderr
