"""Input hashes are taken while the readers read: always the sha256 of the file's bytes.

Whatever the reader does (seek back to re-read, jump over garbage, stop at a truncated
gzip stream, hand the file from fastwarc to warcio), the digest read_input records must
equal hashlib's sha256 of the file, and reading must give what it gives without hashing.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from conftest import DATA, WARC_DIR

from pipelines import run_pipeline, stage
from pipelines.config import (
    InputBase,
    JsonlInput,
    OutputConfig,
    ParquetInput,
    PipelineConfig,
    WarcInput,
    WetInput,
)
from pipelines.errors import UserError
from pipelines.io.hashing import HashingFile, InputDigest
from pipelines.io.inputs import read_input
from pipelines.manifest import load_manifest
from pipelines.plan import InputFile
from pipelines.stats import StageStats

CC = WARC_DIR / "cc-main-2024-22-whirlwind.warc.gz"
WET = WARC_DIR / "cc-main-2024-22-whirlwind.warc.wet.gz"
DOLMA = WARC_DIR / "dolma-wget-2024-sample-0000.warc.gz"
SENTENCES = DATA / "lid" / "lingua-sentences-12lang.jsonl"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read(cfg: InputBase, path: Path, digest: InputDigest | None):
    stats = StageStats()
    inp = InputFile(str(path), path.name, path.stat().st_size)
    tables = list(read_input(cfg, inp, stats, digest))
    return (pa.concat_tables(tables) if tables else None), stats


def assert_hashed(cfg: InputBase, path: Path) -> StageStats:
    """The digest is the file's sha256, and hashing changed nothing the reader yields."""
    digest = InputDigest()
    table, stats = read(cfg, path, digest)
    assert digest.sha256 == sha(path)
    plain, plain_stats = read(cfg, path, None)
    assert stats == plain_stats
    assert (table is None and plain is None) or table.equals(plain)
    return stats


def cut(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[:int(len(data) * fraction)])
    return dst


def with_garbage(src: Path, dst: Path, at: float, n: int = 5000) -> Path:
    data = src.read_bytes()
    k = int(len(data) * at)
    dst.write_bytes(data[:k] + random.Random(k).randbytes(n) + data[k:])
    return dst


# ----------------------------------------------------------------------------- the file


def test_any_sequence_of_reads_and_seeks_hashes_the_whole_file():
    data = CC.read_bytes()
    want = hashlib.sha256(data).hexdigest()
    rng = random.Random(8)
    for _ in range(200):
        with HashingFile(CC) as raw:
            fh = io.BufferedReader(raw) if rng.random() < 0.5 else raw
            for _ in range(rng.randrange(8)):
                if rng.random() < 0.4:
                    fh.seek(rng.randrange(len(data) + 10))
                got = fh.read(rng.choice([1, 3, 100, 8192, 1 << 17, -1]))
                assert got == data[fh.tell() - len(got):fh.tell()]
            assert raw.hexdigest() == want


# ----------------------------------------------------------------------------- WARC, WET


@pytest.mark.parametrize("backend", ["warcio", "fastwarc"])
@pytest.mark.parametrize("path", sorted(WARC_DIR.glob("*.warc.gz")), ids=lambda p: p.name)
def test_real_warcs(path: Path, backend: str):
    assert assert_hashed(WarcInput(paths=["x"], backend=backend), path).docs_in > 0


@pytest.mark.parametrize("backend", ["warcio", "fastwarc"])
@pytest.mark.parametrize("fraction", [0.37, 0.999])
def test_truncated_warc(tmp_path: Path, backend: str, fraction: float):
    stats = assert_hashed(WarcInput(paths=["x"], backend=backend),
                          cut(CC, tmp_path / "cut.warc.gz", fraction))
    assert stats.errors["corrupt_warc"] == 1


@pytest.mark.parametrize("backend", ["warcio", "fastwarc"])
def test_garbage_between_gzip_members(tmp_path: Path, backend: str):
    """The reader jumps forward over the garbage and seeks back to probe member starts."""
    path = with_garbage(DOLMA, tmp_path / "bad.warc.gz", 0.4)
    stats = assert_hashed(WarcInput(paths=["x"], backend=backend), path)
    assert stats.errors["corrupt_warc"] >= 1


def test_plain_warc_damaged_and_truncated(tmp_path: Path):
    plain = tmp_path / "cc.warc"
    plain.write_bytes(gzip.decompress(CC.read_bytes()))
    assert_hashed(WarcInput(paths=["x"]), plain)
    stats = assert_hashed(WarcInput(paths=["x"]),
                          with_garbage(plain, tmp_path / "bad.warc", 0.5))
    assert stats.errors["corrupt_warc"] >= 1
    assert assert_hashed(WarcInput(paths=["x"]),
                         cut(plain, tmp_path / "cut.warc", 0.6)).errors["corrupt_warc"] == 1


def test_wet_whole_and_truncated(tmp_path: Path):
    assert assert_hashed(WetInput(paths=["x"]), WET).docs_in > 0
    stats = assert_hashed(WetInput(paths=["x"]), cut(WET, tmp_path / "cut.warc.wet.gz", 0.5))
    assert stats.errors["corrupt_warc"] == 1


# ----------------------------------------------------------------------------- JSONL


def jsonl_files(tmp: Path) -> dict[str, Path]:
    data = SENTENCES.read_bytes()
    files = {"plain": tmp / "s.jsonl", "gz": tmp / "s.jsonl.gz", "zst": tmp / "s.jsonl.zst"}
    files["plain"].write_bytes(data)
    files["gz"].write_bytes(gzip.compress(data))
    files["zst"].write_bytes(zstandard.ZstdCompressor().compress(data))
    return files


@pytest.mark.parametrize("kind", ["plain", "gz", "zst"])
def test_jsonl_whole_truncated_and_corrupt(tmp_path: Path, kind: str):
    src = jsonl_files(tmp_path)[kind]
    assert assert_hashed(JsonlInput(paths=["x"]), src).docs_in > 0
    short = cut(src, tmp_path / f"cut-{src.name}", 0.5)
    stats = assert_hashed(JsonlInput(paths=["x"]), short)
    if kind != "plain":  # the stream ends inside compressed data: the reader stops there
        assert stats.errors["corrupt_file"] == 1
    data = bytearray(src.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0x5A
    bad = tmp_path / f"bad-{src.name}"
    bad.write_bytes(bytes(data))
    stats = assert_hashed(JsonlInput(paths=["x"]), bad)
    assert stats.n_errors >= 1


def test_jsonl_reader_that_stops_early_still_hashes_the_rest(tmp_path: Path):
    """A gzip file followed by junk: the reader gives up at the junk, the hash does not."""
    good = gzip.compress(SENTENCES.read_bytes())
    path = tmp_path / "junk.jsonl.gz"
    path.write_bytes(good + b"\x00not gzip at all" * 1000)
    stats = assert_hashed(JsonlInput(paths=["x"]), path)
    assert stats.errors["corrupt_file"] == 1


# ----------------------------------------------------------------------------- Parquet, empty


def test_parquet_whole_and_damaged(tmp_path: Path):
    rows = [json.loads(x) for x in SENTENCES.read_text().splitlines()]
    path = tmp_path / "s.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=100)
    assert assert_hashed(ParquetInput(paths=["x"]), path).docs_in == len(rows)
    data = bytearray(path.read_bytes())
    data[len(data) // 2:len(data) // 2 + 200] = bytes(200)
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(bytes(data))
    assert assert_hashed(ParquetInput(paths=["x"]), bad).n_errors > 0
    assert assert_hashed(ParquetInput(paths=["x"]),
                         cut(path, tmp_path / "cut.parquet", 0.5)).n_errors == 1


def test_a_file_that_changed_size_since_planning_fails_the_task(tmp_path: Path):
    path = cut(WET, tmp_path / "growing.warc.wet.gz", 1.0)
    planned = InputFile(str(path), path.name, path.stat().st_size - 10)
    for cfg in (WetInput(paths=["x"]), ParquetInput(paths=["x"])):
        with pytest.raises(UserError, match="changed size while the run read it"):
            list(read_input(cfg, planned, StageStats(), InputDigest()))


def test_empty_file(tmp_path: Path):
    path = tmp_path / "empty.warc.gz"
    path.write_bytes(b"")
    assert assert_hashed(WarcInput(paths=["x"]), path).errors["empty_file"] == 1


# ----------------------------------------------------------------------------- a whole run


def test_manifest_records_the_file_hashes(tmp_path: Path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(CC, src)
    cut(DOLMA, src / "cut.warc.gz", 0.5)
    cfg = PipelineConfig(input=WarcInput(paths=[str(src / "*.warc.gz")]),
                         output=OutputConfig(path=str(tmp_path / "run")),
                         stages=[stage("extract")])
    run = run_pipeline(cfg).root
    m = load_manifest(run)
    assert {i["source"]: i["sha256"] for i in m["inputs"]} == {
        p.name: sha(p) for p in src.iterdir()}
    task = json.loads((run / "stats" / "main" / "task-00000.json").read_text())
    assert task["input_hash_s"] > 0
