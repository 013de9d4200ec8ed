"""Readers and writers on the real WARC/WET files and on JSONL/Parquet they round-trip."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from conftest import WARC_DIR
from hypothesis import given, settings
from hypothesis import strategies as st
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipelines.config import JsonlInput, OutputConfig, ParquetInput, WarcInput, WetInput
from pipelines.io.html_charset import decode_html
from pipelines.io.readers import make_reader
from pipelines.io.writers import make_writer
from pipelines.schema import stable_id
from pipelines.stats import StageStats

WARCS = sorted(p for p in WARC_DIR.glob("*.warc.gz") if ".wet" not in p.name
               and ".wat" not in p.name)


def read_all(cfg, path: Path, source: str = "src") -> tuple[pa.Table | None, StageStats]:
    stats = StageStats()
    tables = list(make_reader(cfg).read(path, source, stats))
    table = pa.concat_tables(tables) if tables else None
    n = table.num_rows if table is not None else 0
    assert stats.docs_in == n + stats.n_dropped + stats.n_errors  # books balance
    return table, stats


def _expected_html(path: Path) -> tuple[int, list[str]]:
    """Independent count with warcio: all records, and ids of 2xx HTML responses with a body."""
    n, ids = 0, []
    with open(path, "rb") as fh:
        for rec in ArchiveIterator(fh, arc2warc=True):
            n += 1
            h = rec.http_headers
            if rec.rec_type != "response" or h is None:
                continue
            ct = (h.get_header("Content-Type") or "").split(";")[0].strip().lower()
            if not (h.get_statuscode() or "").startswith("2"):
                continue
            if ct in ("text/html", "application/xhtml+xml") and rec.content_stream().read().strip():
                ids.append(rec.rec_headers.get_header("WARC-Record-ID").strip("<>"))
    return n, ids


@pytest.mark.parametrize("path", WARCS, ids=lambda p: p.name)
def test_warc_reader_counts_every_record(path: Path):
    n_records, ids = _expected_html(path)
    table, stats = read_all(WarcInput(paths=["x"], batch_size=7), path, path.name)
    assert stats.docs_in == n_records
    assert table.column("id").to_pylist() == ids
    assert len(set(ids)) == len(ids)
    assert set(table.column("source").to_pylist()) == {path.name}
    assert all(isinstance(h, str) and h for h in table.column("html").to_pylist())
    again, _ = read_all(WarcInput(paths=["x"], batch_size=100), path, path.name)
    assert again.equals(table)  # batch size does not change what is read


def test_uncompressed_warc_reads_the_same(tmp_path: Path):
    src = WARC_DIR / "resiliparse-cc-main-2020-34-warcfile.warc.gz"
    plain = tmp_path / "cc.warc"
    plain.write_bytes(gzip.decompress(src.read_bytes()))
    a, sa = read_all(WarcInput(paths=["x"]), src)
    b, sb = read_all(WarcInput(paths=["x"]), plain)
    assert a.equals(b) and sa.dropped == sb.dropped
    assert sa.dropped["record_request"] == 17 and sa.dropped["record_metadata"] == 16


def test_truncated_warc_keeps_what_precedes_the_cut(tmp_path: Path):
    src = WARC_DIR / "dolma-wget-2024-sample-0000.warc.gz"
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    table, stats = read_all(WarcInput(paths=["x"]), cut)
    full, _ = read_all(WarcInput(paths=["x"]), src)
    assert 0 < table.num_rows < full.num_rows
    assert stats.errors["corrupt_warc"] == 1  # (+ the cut record's body, if it was started)
    assert set(stats.errors) <= {"corrupt_warc", "unreadable_body"}
    assert table.column("id").to_pylist() == full.column("id").to_pylist()[: table.num_rows]


def _warc_with(tmp_path: Path, pages: list[tuple[bytes, str]]) -> Path:
    path = tmp_path / "made.warc.gz"
    with open(path, "wb") as fh:
        w = WARCWriter(fh, gzip=True)
        for i, (body, ctype) in enumerate(pages):
            http = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.1")
            rec = w.create_warc_record(f"http://example.org/{i}", "response",
                                       payload=__import__("io").BytesIO(body), http_headers=http)
            w.write_record(rec)
    return path


def test_charsets_declared_sniffed_and_fallback(tmp_path: Path):
    text = "Überraschung – “quoted” café"
    ja = "日本語のページです"
    zh = "简体中文网页"
    pages = [
        (f"<html><body>{text}</body></html>".encode("cp1252"), "text/html; charset=iso-8859-1"),
        (f'<html><head><meta charset="shift_jis"></head><body>{ja}</body></html>'.encode(
            "shift_jis"), "text/html"),
        (('<html><head><meta http-equiv="Content-Type" content="text/html; charset=gb2312">'
          f'</head><body>{zh}</body></html>').encode("gbk"), "text/html"),
        (f"<html><body>{text}</body></html>".encode("cp1252"), "text/html"),  # undeclared
        (f"<html><body>{text}</body></html>".encode(), "text/html"),
        (b"<html><body>bad \xff\xfe bytes \x81</body></html>", "text/html; charset=utf-8"),
        (b"\x89PNG\r\n", "image/png"),
    ]
    table, stats = read_all(WarcInput(paths=["x"]), _warc_with(tmp_path, pages))
    html = table.column("html").to_pylist()
    charsets = table.column("charset").to_pylist()
    assert text in html[0] and charsets[0] == "cp1252"
    assert ja in html[1] and charsets[1] == "cp932"
    assert zh in html[2] and charsets[2] == "gb18030"
    assert text in html[3] and charsets[3] == "cp1252"
    assert text in html[4] and charsets[4] == "utf-8"
    assert "bad" in html[5] and "\ufffd" in html[5]
    assert stats.dropped == {"not_html": 1}


def test_decode_never_raises_on_unknown_labels():
    assert decode_html(b"caf\xe9", "text/html; charset=no-such-charset")[0] == "café"


def test_wet_reader_real_file():
    path = WARC_DIR / "cc-main-2024-22-whirlwind.warc.wet.gz"
    table, stats = read_all(WetInput(paths=["x"]), path)
    assert table.num_rows == 1 and "Escopete" in table.column("text")[0].as_py()
    assert table.column("url")[0].as_py().startswith("https://an.wikipedia.org/")
    assert stats.dropped == {"record_warcinfo": 1}


def _jsonl_lines() -> list[str]:
    return [json.dumps({"id": "a", "text": "hello", "url": "http://x", "lang": "en",
                        "extra": {"k": 1}}),
            "",
            "{not json",
            json.dumps([1, 2]),
            json.dumps({"text": None}),
            json.dumps({"text": 5}),
            json.dumps({"text": "no id here", "lang": 3})]


@pytest.mark.parametrize("suffix", ["", ".gz", ".zst"])
def test_jsonl_reader(tmp_path: Path, suffix: str):
    data = ("\n".join(_jsonl_lines()) + "\n").encode()
    path = tmp_path / f"in.jsonl{suffix}"
    if suffix == ".gz":
        data = gzip.compress(data)
    elif suffix == ".zst":
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    table, stats = read_all(JsonlInput(paths=["x"], fields=["lang"]), path, "in.jsonl")
    assert stats.docs_in == 6  # the blank line is not a record
    assert stats.errors == {"bad_json": 1, "not_an_object": 1, "missing_text": 1,
                            "text_not_string": 1}
    rows = table.to_pylist()
    assert rows[0]["id"] == "a" and rows[0]["lang"] == "en"
    assert json.loads(rows[0]["metadata"]) == {"extra": {"k": 1}}
    assert rows[1]["id"] == stable_id("in.jsonl", 6) and rows[1]["lang"] == "3"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=30),
                          st.dictionaries(st.sampled_from(["text", "id", "url", "x"]),
                                          st.one_of(st.text(max_size=10), st.integers(),
                                                    st.none()), max_size=4).map(json.dumps)),
                max_size=30))
def test_jsonl_reader_books_balance_on_any_input(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("j") / "in.jsonl"
    path.write_text("\n".join(s.replace("\n", " ").replace("\r", " ") for s in lines) + "\n")
    read_all(JsonlInput(paths=["x"]), path)


def test_parquet_round_trip_and_column_mapping(tmp_path: Path):
    src = pa.table({"doc_id": ["x", "y", "z"], "content": ["one", "two", "three"],
                    "score": [1.0, 2.0, 3.0]})
    pq.write_table(src, tmp_path / "a.parquet")
    table, _ = read_all(ParquetInput(paths=["x"], text_column="content", id_column="doc_id"),
                        tmp_path / "a.parquet", "a.parquet")
    assert table.column("id").to_pylist() == ["x", "y", "z"]
    assert table.column("text").to_pylist() == ["one", "two", "three"]
    assert table.column("source").to_pylist() == ["a.parquet"] * 3
    # no id column: stable ids from source and row index
    pq.write_table(src.drop_columns(["doc_id"]), tmp_path / "b.parquet")
    t2, _ = read_all(ParquetInput(paths=["x"], text_column="content", batch_size=2),
                     tmp_path / "b.parquet", "b.parquet")
    assert t2.column("id").to_pylist() == [stable_id("b.parquet", i) for i in range(3)]
    # missing text column: every row is counted as an error, nothing is lost silently
    _, s3 = read_all(ParquetInput(paths=["x"]), tmp_path / "b.parquet")
    assert s3.errors == {"missing_text_column": 3}


def _table(n: int) -> pa.Table:
    return pa.table({"id": [f"d{i}" for i in range(n)], "text": [f"text {i}" for i in range(n)]})


def test_parquet_writer_sizes_atomicity_and_determinism(tmp_path: Path):
    cfg = OutputConfig(path=str(tmp_path), rows_per_file=10, rows_per_row_group=4)

    def write(dirname: str):
        w = make_writer(tmp_path / dirname, "part-00000", cfg, tmp_path, final=True)
        for chunk in (_table(7), _table(9), _table(9)):
            w.write(chunk)
        return w.close()

    shards = write("a")
    assert [s.rows for s in shards] == [10, 10, 5]
    md = pq.ParquetFile(tmp_path / shards[0].path).metadata
    assert [md.row_group(i).num_rows for i in range(md.num_row_groups)] == [4, 4, 2]
    assert md.row_group(0).column(0).compression == "ZSTD"
    assert not list((tmp_path / "a").glob(".*"))  # no temp files left
    again = write("b")
    assert [s.sha256 for s in again] == [s.sha256 for s in shards]
    back, _ = read_all(ParquetInput(paths=["x"]), tmp_path / shards[0].path)
    assert back.column("id").to_pylist() == [f"d{i}" for i in range(7)] + ["d0", "d1", "d2"]


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_jsonl_writer_round_trips(tmp_path: Path, compression: str):
    cfg = OutputConfig(path=str(tmp_path), format="jsonl", compression=compression)
    outs = []
    for d in ("a", "b"):
        w = make_writer(tmp_path / d, "part-00000", cfg, tmp_path, final=True)
        w.write(_table(5))
        outs.append(w.close())
    assert outs[0][0].sha256 == outs[1][0].sha256
    table, _ = read_all(JsonlInput(paths=["x"]), tmp_path / outs[0][0].path)
    assert table.column("id").to_pylist() == [f"d{i}" for i in range(5)]


def test_writer_abort_leaves_nothing(tmp_path: Path):
    cfg = OutputConfig(path=str(tmp_path), rows_per_file=100)
    w = make_writer(tmp_path / "d", "part-00000", cfg, tmp_path, final=True)
    w.write(_table(5))
    w.abort()
    assert list((tmp_path / "d").iterdir()) == []
