"""The fastwarc back-end gives what the warcio back-end gives: rows, counts, reasons, bytes.

Every case compares the two back-ends on the same file, so it checks the promise itself
(`backend` changes the speed, never the output) on the real WARCs and on damaged copies
of them: truncated anywhere, garbage inside or after, not a WARC at all.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from pipelines import run_pipeline, stage
from pipelines.config import LocalExecutor, OutputConfig, PipelineConfig, WarcInput
from pipelines.io.readers import make_reader
from pipelines.stats import StageStats

pytest.importorskip("fastwarc")

WARC_DIR = Path(__file__).parent / "data" / "warc"
WARCS = sorted(WARC_DIR.glob("*.warc.gz"))
CC2020 = WARC_DIR / "resiliparse-cc-main-2020-34-warcfile.warc.gz"
AUT = WARC_DIR / "aut-ia-2008-example.warc.gz"


def read(path: Path, backend: str, **kw) -> tuple[pa.Table | None, StageStats]:
    cfg = WarcInput(paths=["x"], backend=backend, **kw)
    stats = StageStats()
    tables = list(make_reader(cfg).read(path, "src", stats))
    table = pa.concat_tables(tables) if tables else None
    n = table.num_rows if table is not None else 0
    assert stats.docs_in == n + stats.n_dropped + stats.n_errors
    return table, stats


def assert_same(path: Path, **kw) -> tuple[pa.Table | None, StageStats]:
    ta, sa = read(path, "warcio", **kw)
    tb, sb = read(path, "fastwarc", **kw)
    assert sb == sa  # every count, reason and character total
    assert (ta is None and tb is None) or ta.equals(tb)
    return tb, sb


def test_the_config_chooses_the_fastwarc_reader():
    from pipelines.io.fastwarc_reader import FastWarcReader

    assert isinstance(make_reader(WarcInput(paths=["x"], backend="fastwarc")), FastWarcReader)
    assert not isinstance(make_reader(WarcInput(paths=["x"])), FastWarcReader)


@pytest.mark.parametrize("path", WARCS, ids=lambda p: p.name)
def test_real_warcs_read_the_same(path: Path):
    table, stats = assert_same(path)
    assert stats.docs_in > 0


def test_fastwarc_reads_the_real_files_itself(monkeypatch):
    """The real files must not quietly go through the warcio fallback."""
    from pipelines.io import fastwarc_reader

    def no_fallback(*a, **k):
        raise AssertionError("warcio fallback used")

    monkeypatch.setattr(fastwarc_reader, "_warc_records", no_fallback)
    for path in WARCS:
        read(path, "fastwarc")


def test_large_records_are_dropped_alike():
    table, stats = assert_same(AUT, max_record_bytes=20_000)
    assert stats.dropped["too_large"] > 0


@pytest.mark.parametrize("frac", (0.07, 0.31, 0.5, 0.77, 0.93, 0.999))
@pytest.mark.parametrize("path", [CC2020, AUT], ids=lambda p: p.name)
def test_truncated_files_count_the_same(tmp_path: Path, path: Path, frac: float):
    cut = tmp_path / path.name
    cut.write_bytes(path.read_bytes()[: int(path.stat().st_size * frac)])
    table, stats = assert_same(cut)
    assert stats.errors["corrupt_warc"] == 1


def test_garbage_inside_and_after_and_non_warc_files(tmp_path: Path):
    data = CC2020.read_bytes()
    cases = {
        "trailing.warc.gz": data + b"garbage, not gzip",
        "middle.warc.gz": data[:40_000] + b"\x00garbage\x1f" + data[40_000:],
        "text.warc.gz": b"hello, not gzip at all",
        "gz-text.warc.gz": gzip.compress(b"just some text\n" * 10),
        "empty.warc.gz": b"",
        "plain.warc": gzip.decompress(data),  # not gzip: warcio reads it
    }
    for name, blob in cases.items():
        p = tmp_path / name
        p.write_bytes(blob)
        assert_same(p)


def test_a_member_of_garbage_between_records(tmp_path: Path):
    """A whole gzip member that is not a WARC record, between two good ones."""
    from pipelines.io.warc_stream import iter_warc

    offsets = [off for _, off, rec, _ in iter_warc(CC2020) if rec is not None]
    data = CC2020.read_bytes()
    cut = offsets[10]
    p = tmp_path / "member.warc.gz"
    p.write_bytes(data[:cut] + gzip.compress(b"not a warc record\r\n\r\n") + data[cut:])
    table, stats = assert_same(p)
    assert stats.errors["corrupt_warc"] == 1


def test_pipeline_output_and_samples_are_byte_identical(tmp_path: Path):
    src = tmp_path / "in"
    src.mkdir()
    for p in (CC2020, WARC_DIR / "dolma-wget-2024-sample-0000.warc.gz"):
        shutil.copy(p, src / p.name)
    hashes = {}
    for backend in ("warcio", "fastwarc"):
        cfg = PipelineConfig(
            name="fw", input=WarcInput(paths=[str(src / "*.warc.gz")], backend=backend),
            output=OutputConfig(path=str(tmp_path / backend)),
            executor=LocalExecutor(workers=1),
            stages=[stage("extract"), stage("langid")])
        run = run_pipeline(cfg)
        hashes[backend] = {str(p.relative_to(run.root)): hashlib.sha256(p.read_bytes()).hexdigest()
                           for d in ("data", "samples") for p in sorted((run.root / d).rglob("*"))
                           if p.is_file()}
    assert "samples/read.parquet" in hashes["warcio"]  # dropped records are described alike
    assert hashes["fastwarc"] == hashes["warcio"]
