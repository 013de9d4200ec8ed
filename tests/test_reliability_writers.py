"""Writers under awkward batches and failing disks.

- schemas that change between batches (a column all null so far, a column only some
  batches have) give every shard of a task one schema, byte-identical to writing with
  that schema from the start, whatever the file and row-group sizes;
- types that cannot be reconciled are one clear error naming the column;
- ``abort`` closes the unfinished file (no open descriptor left) and removes it;
- a full disk (a real 1 MiB tmpfs, needs root) is an OutputError naming the place.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.config import OutputConfig
from pipelines.io.files import sha256_file
from pipelines.io.writers import OutputError, ParquetShardWriter, make_writer


def batch(start: int, rows: int, **cols) -> pa.Table:
    data = {"id": pa.array([f"d{i:04d}" for i in range(start, start + rows)])}
    data.update(cols)
    return pa.table(data)


def write_all(out: Path, run: Path, tables: list[pa.Table], fmt: str = "parquet",
              compression: str = "zstd", per_file: int = 100, per_group: int = 100):
    cfg = OutputConfig(path=str(run), format=fmt, compression=compression,
                       rows_per_file=per_file, rows_per_row_group=per_group)
    w = make_writer(out, "part-00000", cfg, run, final=True)
    for t in tables:
        w.write(t)
    return w.close()


SIZES = [(100, 100), (100, 2), (4, 2), (3, 1), (7, 3)]


@pytest.mark.parametrize("per_file,per_group", SIZES)
def test_null_typed_first_batch_is_widened_like_a_typed_one(tmp_path: Path, per_file: int,
                                                             per_group: int):
    """`x` is all-null (type null) in the first batches, then strings: the shards equal,
    byte for byte, what a writer given string-typed nulls from the start writes."""
    null_first = [batch(0, 3, x=pa.nulls(3)), batch(3, 2, x=pa.nulls(2)),
                  batch(5, 5, x=pa.array(["a", None, "c", "d", "e"]))]
    typed = [batch(0, 3, x=pa.nulls(3, pa.string())), batch(3, 2, x=pa.nulls(2, pa.string())),
             batch(5, 5, x=pa.array(["a", None, "c", "d", "e"]))]
    a = write_all(tmp_path / "a", tmp_path, null_first, per_file=per_file, per_group=per_group)
    b = write_all(tmp_path / "b", tmp_path, typed, per_file=per_file, per_group=per_group)
    assert [(s.rows, s.sha256) for s in a] == [(s.rows, s.sha256) for s in b]
    for s in a:  # the ShardInfo of a rewritten shard describes the file as it now is
        p = tmp_path / s.path
        assert s.sha256 == sha256_file(p) and s.bytes == p.stat().st_size
        assert pq.ParquetFile(p).schema_arrow.field("x").type == pa.string()
        md = pq.ParquetFile(p).metadata
        assert all(md.row_group(g).num_rows <= per_group for g in range(md.num_row_groups))
    assert pq.read_table(tmp_path / "a").equals(pq.read_table(tmp_path / "b"))
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]


def test_nested_null_types_are_widened(tmp_path: Path):
    tables = [batch(0, 2, tags=pa.array([[], None], pa.list_(pa.null()))),
              batch(2, 2, tags=pa.array([["x"], ["y", "z"]]))]
    (s,) = write_all(tmp_path / "o", tmp_path, tables)
    back = pq.read_table(tmp_path / s.path)
    assert back.schema.field("tags").type == pa.list_(pa.string())
    assert back.column("tags").to_pylist() == [[], None, ["x"], ["y", "z"]]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_columns_appearing_and_disappearing_lose_nothing(tmp_path: Path, fmt: str):
    tables = [batch(0, 3, a=pa.array([1, 2, 3])),
              batch(3, 2, a=pa.array([4, 5]), b=pa.array(["x", "y"])),  # b is new
              batch(5, 2, b=pa.array(["z", None]))]  # a is missing
    shards = write_all(tmp_path / "o", tmp_path, tables, fmt=fmt, compression="none",
                       per_file=4, per_group=2)
    assert sum(s.rows for s in shards) == 7
    if fmt == "parquet":
        rows = pq.read_table(tmp_path / "o").to_pylist()
        assert all(pq.ParquetFile(tmp_path / s.path).schema_arrow.names == ["id", "a", "b"]
                   for s in shards)
    else:
        import json
        rows = [json.loads(line) for s in shards
                for line in (tmp_path / s.path).read_text().splitlines()]
    got = {r["id"]: (r.get("a"), r.get("b")) for r in rows}
    assert got == {"d0000": (1, None), "d0001": (2, None), "d0002": (3, None),
                   "d0003": (4, "x"), "d0004": (5, "y"), "d0005": (None, "z"),
                   "d0006": (None, None)}


def test_narrower_int_types_are_cast_as_before(tmp_path: Path):
    tables = [batch(0, 2, k=pa.array([1, 2], pa.int64())),
              batch(2, 2, k=pa.array([3, 4], pa.int32()))]
    (s,) = write_all(tmp_path / "o", tmp_path, tables)
    back = pq.read_table(tmp_path / s.path)
    assert back.schema.field("k").type == pa.int64()
    assert back.column("k").to_pylist() == [1, 2, 3, 4]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_clashing_types_are_one_clear_error(tmp_path: Path, fmt: str):
    cfg = OutputConfig(path=str(tmp_path), format=fmt, rows_per_file=100,
                       rows_per_row_group=2)
    w = make_writer(tmp_path / "o", "part-00000", cfg, tmp_path, final=True)
    w.write(batch(0, 3, score=pa.array(["high", "low", "mid"])))
    with pytest.raises(OutputError) as err:
        w.write(batch(3, 1, score=pa.array([[1, 2]])))
    msg = str(err.value)
    assert "column 'score' is string in earlier documents" in msg and "list<item: int64>" in msg
    assert "\n" not in msg
    w.abort()
    assert list((tmp_path / "o").iterdir()) == []


def _open_fds_to(path_part: str) -> list[str]:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if path_part in target:
            out.append(target)
    return out


@pytest.mark.parametrize("fmt,compression", [("parquet", "zstd"), ("jsonl", "none"),
                                             ("jsonl", "gzip"), ("jsonl", "zstd")])
def test_abort_closes_the_unfinished_file(tmp_path: Path, fmt: str, compression: str):
    out = tmp_path / f"o-{uuid.uuid4().hex}"
    cfg = OutputConfig(path=str(tmp_path), format=fmt, compression=compression,
                       rows_per_file=100, rows_per_row_group=2)
    w = make_writer(out, "part-00000", cfg, tmp_path, final=True)
    w.write(batch(0, 5, x=pa.array(["v"] * 5)))  # row groups flushed: the file is open
    assert _open_fds_to(out.name)
    w.abort()
    assert _open_fds_to(out.name) == []
    assert list(out.iterdir()) == []


# ----------------------------------------------------------------------------- full disk

@pytest.fixture
def tiny_tmpfs(tmp_path: Path):
    """A real 1 MiB tmpfs (mounting needs root, which CI has)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=True)


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_full_disk_is_an_output_error_and_leaves_no_temp_file(tiny_tmpfs: Path, fmt: str):
    cfg = OutputConfig(path=str(tiny_tmpfs), format=fmt, compression="none",
                       rows_per_file=100_000, rows_per_row_group=50)
    w = make_writer(tiny_tmpfs / "data", "part-00000", cfg, tiny_tmpfs, final=True)
    with pytest.raises(OutputError) as err:
        for i in range(200):  # 4 MB of distinct random text: no encoding shrinks it
            w.write(batch(i * 10, 10, text=pa.array([os.urandom(1000).hex() for _ in range(10)])))
        w.close()
    msg = str(err.value)
    assert "No space left on device" in msg and str(tiny_tmpfs / "data") in msg
    w.abort()
    assert list((tiny_tmpfs / "data").iterdir()) == []


# ----------------------------------------------------------------------------- property

@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.tuples(st.integers(1, 6), st.sets(st.sampled_from(["s", "n"])),
                                  st.booleans()), min_size=1, max_size=6),
       per_file=st.integers(1, 9), per_group=st.integers(1, 4))
def test_any_sequence_of_batch_schemas_is_written_whole(tmp_path_factory, batches, per_file,
                                                        per_group):
    """Batches with any subset of columns, some all-null (typed null): every row is
    written once with its values, and all shards share one schema."""
    d = tmp_path_factory.mktemp("w")
    tables, expected, start = [], {}, 0
    for n, cols, all_null in batches:
        data = {}
        for c in sorted(cols):
            vals = [None] * n if all_null else [(f"{c}{start + i}" if c == "s" else start + i)
                                                 for i in range(n)]
            data[c] = pa.nulls(n) if all_null else pa.array(vals)
        t = batch(start, n, **data)
        for r in t.to_pylist():
            expected[r["id"]] = {c: r.get(c) for c in ("s", "n")}
        tables.append(t)
        start += n
    cfg = OutputConfig(path=str(d), rows_per_file=per_file, rows_per_row_group=per_group)
    w = ParquetShardWriter(d / "o", "p", cfg, d)
    for t in tables:
        w.write(t)
    shards = w.close()
    schemas = {pq.ParquetFile(d / s.path).schema_arrow for s in shards}
    assert len(schemas) == 1
    got = {r["id"]: {c: r.get(c) for c in ("s", "n")}
           for r in pq.read_table(d / "o").to_pylist()}
    assert got == expected
