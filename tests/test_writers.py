"""Shard writers: file and row-group sizes, compression, atomic renames, ShardInfo, determinism.

Sizes are checked in the Parquet footers (pyarrow.parquet metadata), hashes with hashlib,
JSONL output by reading it back with the JsonlReader and by decompressing it directly.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.config import JsonlInput, OutputConfig, WarcInput
from pipelines.io.readers import make_reader
from pipelines.io.writers import (
    JsonlShardWriter,
    ParquetShardWriter,
    ShardInfo,
    intermediate_output,
    make_writer,
    sha256_file,
)
from pipelines.stats import StageStats

WARC_DIR = Path(__file__).resolve().parent / "data" / "warc"
REPO = Path(__file__).resolve().parents[1]


DOC_SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("url", pa.string()),
                        ("source", pa.string()), ("score", pa.float64()),
                        ("n_words", pa.int64())])


def docs(n: int, start: int = 0) -> pa.Table:
    return pa.table({
        "id": [f"doc-{i:05d}" for i in range(start, start + n)],
        "text": [f"Text {i}: ünïcödé, 日本語, emoji 😀 " + "x" * (i % 13)
                 for i in range(start, start + n)],
        "url": [None if i % 4 == 0 else f"http://example.org/{i}" for i in range(start, start + n)],
        "source": ["in/a.warc.gz"] * n,
        "score": [i / 7 for i in range(start, start + n)],
        "n_words": [i * 3 for i in range(start, start + n)],
    }, schema=DOC_SCHEMA)


def chunks(sizes: list[int]) -> list[pa.Table]:
    out, start = [], 0
    for n in sizes:
        out.append(docs(n, start))
        start += n
    return out


def write(writer, tables: list[pa.Table]):
    for t in tables:
        writer.write(t)
    return writer.close()


def listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def row_groups(path: Path) -> list[int]:
    md = pq.ParquetFile(path).metadata
    return [md.row_group(i).num_rows for i in range(md.num_row_groups)]


def check_shard_info(run_dir: Path, shard: ShardInfo) -> Path:
    path = run_dir / shard.path
    assert path.is_file() and not Path(shard.path).is_absolute()
    assert shard.bytes == path.stat().st_size
    assert shard.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() == sha256_file(path)
    assert shard.to_dict() == {"path": shard.path, "rows": shard.rows, "bytes": shard.bytes,
                               "sha256": shard.sha256}
    return path


def _decompress(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        return zstandard.ZstdDecompressor().stream_reader(data).read()
    return data


# ----------------------------------------------------------------------------- Parquet

@pytest.mark.parametrize("sizes,per_file,per_group,files,groups", [
    ([7, 9, 9], 10, 4, [10, 10, 5], [[4, 4, 2], [4, 4, 2], [4, 1]]),
    ([25], 10, 4, [10, 10, 5], [[4, 4, 2], [4, 4, 2], [4, 1]]),
    ([1] * 12, 5, 2, [5, 5, 2], [[2, 2, 1], [2, 2, 1], [2]]),
    ([30], 100, 7, [30], [[7, 7, 7, 7, 2]]),
    ([3, 3], 100, 50, [6], [[6]]),
    ([20, 0, 20], 20, 20, [20, 20], [[20], [20]]),
    ([11], 1, 1, [1] * 11, [[1]] * 11),
])
def test_parquet_file_and_row_group_sizes(tmp_path: Path, sizes, per_file, per_group, files,
                                          groups):
    cfg = OutputConfig(path=str(tmp_path), rows_per_file=per_file, rows_per_row_group=per_group)
    out = tmp_path / "data"
    shards = write(ParquetShardWriter(out, "part-00003", cfg, tmp_path), chunks(sizes))
    assert [s.rows for s in shards] == files
    assert [s.path for s in shards] == [f"data/part-00003-{i:04d}.parquet"
                                        for i in range(len(files))]
    assert listing(out) == [Path(s.path).name for s in shards]  # nothing else, no temp files
    back = []
    for shard, expected_groups in zip(shards, groups):
        path = check_shard_info(tmp_path, shard)
        assert row_groups(path) == expected_groups
        assert pq.ParquetFile(path).metadata.num_rows == shard.rows
        back.append(pq.read_table(path))
    assert pa.concat_tables(back).equals(pa.concat_tables(chunks(sizes)))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(0, 30), max_size=6), per_file=st.integers(1, 25),
       per_group=st.integers(1, 12))
def test_parquet_sizes_property(tmp_path_factory, sizes, per_file, per_group):
    run = tmp_path_factory.mktemp("prop")
    cfg = OutputConfig(path=str(run), rows_per_file=per_file, rows_per_row_group=per_group)
    shards = write(ParquetShardWriter(run / "d", "p", cfg, run), chunks(sizes))
    total = sum(sizes)
    assert sum(s.rows for s in shards) == total
    assert [s.rows for s in shards[:-1]] == [per_file] * (len(shards) - 1)
    assert (not shards) == (total == 0)
    for s in shards:
        rg = row_groups(run / s.path)
        assert sum(rg) == s.rows
        assert all(n == per_group for n in rg[:-1]) and 0 < rg[-1] <= per_group
    assert listing(run / "d") == [Path(s.path).name for s in shards]


@pytest.mark.parametrize("compression,codec", [("zstd", "ZSTD"), ("snappy", "SNAPPY"),
                                               ("gzip", "GZIP"), ("none", "UNCOMPRESSED")])
def test_parquet_compression_is_recorded(tmp_path: Path, compression: str, codec: str):
    cfg = OutputConfig(path=str(tmp_path), compression=compression, rows_per_row_group=8)
    (shard,) = write(ParquetShardWriter(tmp_path / "d", "part", cfg, tmp_path), [docs(20)])
    md = pq.ParquetFile(tmp_path / shard.path).metadata
    for g in range(md.num_row_groups):
        for c in range(md.num_columns):
            assert md.row_group(g).column(c).compression == codec
    assert md.row_group(0).column(0).statistics is not None  # written with statistics


def test_parquet_zstd_level_changes_bytes_not_content(tmp_path: Path):
    big = docs(500)
    paths = []
    for level in (1, 19):
        cfg = OutputConfig(path=str(tmp_path), compression_level=level)
        (shard,) = write(ParquetShardWriter(tmp_path / f"l{level}", "p", cfg, tmp_path), [big])
        paths.append(tmp_path / shard.path)
    assert paths[0].read_bytes() != paths[1].read_bytes()
    assert pq.read_table(paths[0]).equals(pq.read_table(paths[1]))


def test_parquet_files_appear_only_under_final_names(tmp_path: Path):
    cfg = OutputConfig(path=str(tmp_path), rows_per_file=10, rows_per_row_group=4)
    out = tmp_path / "data"
    w = ParquetShardWriter(out, "part-00000", cfg, tmp_path)
    w.write(docs(6))  # one row group flushed to the temporary file, file not complete
    names = listing(out)
    assert len(names) == 1 and names[0].startswith(".part-00000-0000.parquet.tmp")
    assert not (out / "part-00000-0000.parquet").exists()
    w.write(docs(6, 6))  # completes file 0; file 1 has 2 rows, not yet on disk
    assert listing(out) == ["part-00000-0000.parquet"]
    assert pq.ParquetFile(out / "part-00000-0000.parquet").metadata.num_rows == 10
    w.write(docs(4, 12))  # a row group of file 1 flushed: to its temporary name
    assert listing(out) == [f".part-00000-0001.parquet.tmp-{os.getpid()}",
                            "part-00000-0000.parquet"]
    shards = w.close()
    assert listing(out) == ["part-00000-0000.parquet", "part-00000-0001.parquet"]
    assert [s.rows for s in shards] == [10, 6]


def _write_warc_tables(run_dir: Path, sub: str, cfg: OutputConfig) -> list[ShardInfo]:
    """Real documents: the HTML pages of a real WARC, in the reader's batches."""
    reader = make_reader(WarcInput(paths=["x"], batch_size=3))
    tables = reader.read(WARC_DIR / "dolma-wget-2024-sample-0000.warc.gz", "dolma-0",
                         StageStats())
    return write(make_writer(run_dir / sub, "part-00000", cfg, run_dir, final=True), tables)


def test_parquet_output_is_byte_identical_across_writes(tmp_path: Path):
    cfg = OutputConfig(path=str(tmp_path), rows_per_file=10, rows_per_row_group=4)
    a = _write_warc_tables(tmp_path, "a", cfg)
    b = _write_warc_tables(tmp_path, "b", cfg)
    assert [s.rows for s in a] == [10, 10, 2]
    assert [(s.rows, s.bytes, s.sha256) for s in a] == [(s.rows, s.bytes, s.sha256) for s in b]
    for sa, sb in zip(a, b):
        assert (tmp_path / sa.path).read_bytes() == (tmp_path / sb.path).read_bytes()
        check_shard_info(tmp_path, sa)


def test_parquet_later_tables_are_cast_to_the_first_schema(tmp_path: Path):
    cfg = OutputConfig(path=str(tmp_path), rows_per_file=100, rows_per_row_group=100)
    first = docs(3)
    reordered = docs(3, 3).select(["text", "id", "n_words", "url", "score", "source"])
    (shard,) = write(ParquetShardWriter(tmp_path / "d", "p", cfg, tmp_path), [first, reordered])
    back = pq.read_table(tmp_path / shard.path)
    assert back.schema.names == first.schema.names
    assert back.equals(docs(6))


def test_empty_writes_make_no_files(tmp_path: Path):
    cfg = OutputConfig(path=str(tmp_path))
    for w in (ParquetShardWriter(tmp_path / "p", "x", cfg, tmp_path),
              JsonlShardWriter(tmp_path / "j", "x", cfg.model_copy(update={"format": "jsonl"}),
                               tmp_path)):
        w.write(docs(0))
        assert w.close() == []
        assert listing(w.dir) == []


def test_make_writer_formats_and_drop_columns(tmp_path: Path):
    cfg = OutputConfig(path=str(tmp_path), format="jsonl", drop_columns=["score", "n_words"])
    final = make_writer(tmp_path / "f", "p", cfg, tmp_path, final=True)
    inter = make_writer(tmp_path / "i", "p", cfg, tmp_path, final=False)
    assert isinstance(final, JsonlShardWriter) and isinstance(inter, ParquetShardWriter)
    (fs,) = write(final, [docs(4)])
    (is_,) = write(inter, [docs(4)])
    assert fs.path.endswith(".jsonl.zst")  # zstd is the default compression
    rows = [json.loads(line) for line in _decompress(tmp_path / fs.path).splitlines()]
    assert list(rows[0]) == ["id", "text", "url", "source"]  # dropped in the final output
    assert pq.read_table(tmp_path / is_.path).schema.names == docs(1).schema.names  # kept
    pcfg = OutputConfig(path=str(tmp_path), drop_columns=["text"])
    (ps,) = write(make_writer(tmp_path / "pf", "p", pcfg, tmp_path, final=True), [docs(2)])
    assert "text" not in pq.read_table(tmp_path / ps.path).schema.names


# ----------------------------------------------------------------------------- JSONL

@pytest.mark.parametrize("compression,ext", [("none", ".jsonl"), ("gzip", ".jsonl.gz"),
                                             ("zstd", ".jsonl.zst")])
def test_jsonl_writer_round_trips_through_the_reader(tmp_path: Path, compression: str, ext: str):
    cfg = OutputConfig(path=str(tmp_path), format="jsonl", compression=compression,
                       rows_per_file=12)
    tables = chunks([5, 0, 9, 11])
    shards = write(JsonlShardWriter(tmp_path / "data", "part-00001", cfg, tmp_path), tables)
    assert [s.rows for s in shards] == [12, 12, 1]
    assert [s.path for s in shards] == [f"data/part-00001-{i:04d}{ext}" for i in range(3)]
    assert listing(tmp_path / "data") == [Path(s.path).name for s in shards]
    expected = pa.concat_tables(tables).to_pylist()
    got, raw_lines = [], []
    for s in shards:
        path = check_shard_info(tmp_path, s)
        lines = _decompress(path).decode("utf-8").split("\n")
        assert lines[-1] == "" and len(lines) - 1 == s.rows  # one object a line, final \n
        raw_lines += lines[:-1]
        stats = StageStats()
        for t in make_reader(JsonlInput(paths=["x"], fields=["n_words"])).read(path, "o", stats):
            got += t.to_pylist()
        assert stats.docs_in == s.rows and stats.errors == {}
    assert [json.loads(ln) for ln in raw_lines] == expected
    assert list(json.loads(raw_lines[0])) == tables[0].schema.names  # column order kept
    assert "ünïcödé, 日本語, emoji 😀" in raw_lines[0]  # UTF-8, not \\u escapes
    assert [r["id"] for r in got] == [e["id"] for e in expected]
    assert [r["text"] for r in got] == [e["text"] for e in expected]
    assert [r["url"] for r in got] == [e["url"] for e in expected]
    assert [r["n_words"] for r in got] == [str(e["n_words"]) for e in expected]
    assert [json.loads(r["metadata"]) for r in got] == [
        {"score": e["score"], "source": e["source"]} for e in expected]


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_jsonl_output_is_byte_identical_across_writes(tmp_path: Path, compression: str):
    cfg = OutputConfig(path=str(tmp_path), format="jsonl", compression=compression,
                       rows_per_file=8)
    a = _write_warc_tables(tmp_path, "a", cfg)
    b = _write_warc_tables(tmp_path, "b", cfg)
    assert [s.rows for s in a] == [8, 8, 6]
    for sa, sb in zip(a, b):
        assert sa.sha256 == sb.sha256
        assert (tmp_path / sa.path).read_bytes() == (tmp_path / sb.path).read_bytes()


def test_gzip_jsonl_header_has_no_name_and_no_time(tmp_path: Path):
    cfg = OutputConfig(path=str(tmp_path), format="jsonl", compression="gzip")
    (shard,) = write(JsonlShardWriter(tmp_path / "d", "part-00000", cfg, tmp_path), [docs(3)])
    head = (tmp_path / shard.path).read_bytes()[:10]
    assert head[:3] == b"\x1f\x8b\x08"
    assert head[3] == 0  # FLG: no FNAME (it would name the pid-suffixed temporary file)
    assert head[4:8] == b"\x00\x00\x00\x00"  # MTIME 0


_CHILD = """
import sys
from pathlib import Path
import pyarrow as pa
from pipelines.config import OutputConfig
from pipelines.io.writers import JsonlShardWriter
run = Path(sys.argv[1])
cfg = OutputConfig(path=str(run), format="jsonl", compression=sys.argv[2])
w = JsonlShardWriter(run / "d", "part-00000", cfg, run)
w.write(pa.table({"id": ["a", "b"], "text": ["eins", "zwei"]}))
print(w.close()[0].sha256)
"""


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_jsonl_output_does_not_depend_on_the_process(tmp_path: Path, compression: str):
    """Workers of a run have different pids: their output must still be the same bytes."""
    hashes = [subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path / f"r{i}"),
                              compression], check=True, capture_output=True, text=True,
                             cwd=REPO).stdout.strip() for i in range(2)]
    assert len(hashes[0]) == 64 and hashes[0] == hashes[1]


# ----------------------------------------------------------------------------- abort

@pytest.mark.parametrize("fmt,compression", [("parquet", "zstd"), ("jsonl", "none"),
                                             ("jsonl", "gzip"), ("jsonl", "zstd")])
def test_abort_removes_only_the_unfinished_shard(tmp_path: Path, fmt: str, compression: str):
    cfg = OutputConfig(path=str(tmp_path), format=fmt, compression=compression,
                       rows_per_file=10, rows_per_row_group=3)
    out = tmp_path / "data"
    w = make_writer(out, "part-00000", cfg, tmp_path, final=True)
    w.write(docs(25))  # two whole files, a third one half written (row groups flushed)
    assert len(listing(out)) == 3 and sum(n.startswith(".") for n in listing(out)) == 1
    w.abort()
    assert listing(out) == sorted(Path(s.path).name for s in w.shards)
    assert len(w.shards) == 2
    for s in w.shards:
        check_shard_info(tmp_path, s)
    w.abort()  # twice is harmless
    assert len(listing(out)) == 2


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_abort_before_any_flush_and_after_close(tmp_path: Path, fmt: str):
    cfg = OutputConfig(path=str(tmp_path), format=fmt, rows_per_file=100,
                       rows_per_row_group=100)
    w = make_writer(tmp_path / "a", "p", cfg, tmp_path, final=True)
    w.write(docs(5))
    w.abort()
    assert listing(tmp_path / "a") == []
    w2 = make_writer(tmp_path / "b", "p", cfg, tmp_path, final=True)
    shards = write(w2, [docs(5)])
    w2.abort()  # after close: nothing to remove, the finished shard stays
    assert listing(tmp_path / "b") == [Path(shards[0].path).name]


@pytest.mark.parametrize("path,codec,written", [
    ("s3://bucket/run", "auto", "zstd"),
    ("/tmp/run", "zstd", "zstd"), ("s3://bucket/run", "none", "none")])
def test_intermediate_codec(path: str, codec: str, written: str):
    """auto: zstd intermediate shards in object storage (a local disk: below); a level set
    for the output is not carried over to them."""
    cfg = OutputConfig(path=path, intermediate_compression=codec, compression="zstd",
                       compression_level=9)
    out = intermediate_output(cfg)
    assert out.compression == written and out.compression_level is None
    assert (cfg.compression, cfg.compression_level) == ("zstd", 9)


MOUNTS = """/dev/sda1 / ext4 rw 0 0
server:/export /mnt/shared nfs4 rw 0 0
mds@tcp:/lfs /mnt/lustre lustre rw 0 0
/dev/sdb1 /mnt/lustre/local ext4 rw 0 0
tmpfs /mnt/my\\040scratch tmpfs rw 0 0
"""


@pytest.mark.parametrize("path,kind", [
    ("/mnt/shared/runs/x", "nfs4"), ("/mnt/lustre/runs/x", "lustre"),
    ("/mnt/lustre/local/x", "ext4"), ("/mnt/my scratch/x", "tmpfs"), ("/home/u/x", "ext4"),
    ("/mnt/sharedother/x", "ext4"), ("file:///mnt/shared/x", "nfs4")])
def test_filesystem_of_a_run_directory(path: str, kind: str):
    """The innermost mount holding the path (octal escapes of /proc/mounts decoded); auto
    compresses intermediate shards on network filesystems."""
    from pipelines.io.storage import filesystem_type, on_network_filesystem

    assert filesystem_type(path, MOUNTS) == kind
    assert on_network_filesystem(path, MOUNTS) == (kind in ("nfs4", "lustre"))


def test_auto_follows_this_machines_filesystem(tmp_path: Path):
    from pipelines.io.storage import filesystem_type, on_network_filesystem

    assert filesystem_type(tmp_path / "not" / "yet") is not None  # /proc/mounts read
    want = "zstd" if on_network_filesystem(tmp_path) else "none"
    assert intermediate_output(OutputConfig(path=str(tmp_path / "run"))).compression == want
