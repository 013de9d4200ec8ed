"""Splitting large inputs (``input.max_task_bytes``): every record read exactly once.

A split input is read by several tasks, each given a piece: a byte range [start, end)
whose records are those that *start* inside it (a JSONL line, a WARC record, a gzip
member), found by resyncing after ``start``; a Parquet piece is a run of row groups.
Tested at every cut point of small files (two pieces cut there) and, with hypothesis, at
random sets of cut points over random files; then through whole runs: the same output
for 1 and 2 workers, the manifest's per-piece hashes, and ``reproduce`` checking them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import WARC_DIR, shard_hashes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipelines import run_pipeline
from pipelines.config import JsonlInput, ParquetInput, WarcInput, config_from_dict
from pipelines.errors import UserError
from pipelines.io.discovery import split_points
from pipelines.io.hashing import InputDigest
from pipelines.io.inputs import read_input
from pipelines.io.readers import JsonlReader
from pipelines.io.warc_stream import iter_warc
from pipelines.manifest import load_manifest, pieces_sha256
from pipelines.plan import InputFile, Plan, make_plan
from pipelines.reproduce import reproduce
from pipelines.stats import StageStats

QUICK = settings(max_examples=300, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cuts_to_spans(cuts, size: int) -> list[tuple[int, int]]:
    edges = [0, *sorted(set(c for c in cuts if 0 < c < size)), size]
    return list(zip(edges, edges[1:]))


# ----------------------------------------------------------------------------- JSONL

def jsonl_rows(data: bytes, spans, limit: int | None = 40) -> tuple[list, StageStats]:
    """(id, text) of every row the pieces ``spans`` of ``data`` yield, and their stats."""
    reader = JsonlReader(JsonlInput(paths=["x"], max_record_bytes=limit, batch_size=7))
    stats, rows = StageStats(), []
    for a, b in spans:
        part = InputFile("x.jsonl", "x.jsonl", len(data), None, a, b)
        for t in reader.read(Path("x.jsonl"), "x.jsonl", stats, io.BytesIO(data), part):
            rows += zip(t.column("id").to_pylist(), t.column("text").to_pylist())
    return rows, stats


def counts(stats: StageStats) -> tuple:
    return stats.docs_in, dict(stats.errors), dict(stats.dropped)


JSONL = b"".join([
    b'{"text": "first"}\n', b"\n", b'{"text": "two", "id": 7}\r\n', b"not json\n",
    b'{"text": "' + b"x" * 60 + b'"}\n',  # over max_record_bytes (40): too_large
    b"\n\n", b'{"text": "caf\xc3\xa9 \\n escaped newline"}\n', b'{"no_text": 1}\n',
    b'{"text": "last, no newline"}',
])


def test_jsonl_every_cut_point_reads_each_line_once():
    whole, whole_stats = jsonl_rows(JSONL, [(0, len(JSONL))])
    assert len(whole) == 4 and [t for _, t in whole][-1] == "last, no newline"
    for c in range(len(JSONL) + 1):
        rows, stats = jsonl_rows(JSONL, cuts_to_spans([c], len(JSONL)))
        assert rows == whole, c
        assert counts(stats) == counts(whole_stats), c


def test_jsonl_piece_ids_are_line_offsets_and_texts_match_the_unsplit_read():
    unsplit = JsonlReader(JsonlInput(paths=["x"], max_record_bytes=40))
    stats = StageStats()
    texts = [r for t in unsplit.read(Path("x.jsonl"), "x.jsonl", stats, io.BytesIO(JSONL))
             for r in zip(t.column("id").to_pylist(), t.column("text").to_pylist())]
    rows, pstats = jsonl_rows(JSONL, [(0, 30), (30, len(JSONL))])
    assert [t for _, t in rows] == [t for _, t in texts]
    assert counts(pstats) == counts(stats)
    assert rows[1][0] == "7"  # an own id is kept; the others depend on the line's offset
    from pipelines.schema import stable_id
    assert rows[0][0] == stable_id("x.jsonl", 0)
    assert rows[-1][0] == stable_id("x.jsonl", JSONL.rindex(b'{"text": "last'))


LINE_PARTS = hst.lists(hst.sampled_from(
    [b'{"text": "a"}', b'{"text": "bb\\nb"}', b"", b"  ", b"{bad", b'{"text": "\xe2\x82\xac"}',
     b'{"text": "' + b"y" * 50 + b'"}']), max_size=25)


@QUICK
@given(LINE_PARTS, hst.booleans(), hst.lists(hst.integers(0, 2000), max_size=8))
def test_jsonl_resync_property(lines, trailing_newline, cuts):
    data = b"\n".join(lines) + (b"\n" if trailing_newline and lines else b"")
    whole, whole_stats = jsonl_rows(data, [(0, len(data))])
    rows, stats = jsonl_rows(data, cuts_to_spans([c % (len(data) + 1) for c in cuts],
                                                 len(data)))
    assert rows == whole
    assert counts(stats) == counts(whole_stats)


# ----------------------------------------------------------------------------- WARC

def make_warc(payloads: list[bytes], gz: bool) -> bytes:
    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=gz)
    for i, body in enumerate(payloads):
        headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html")],
                                   protocol="HTTP/1.1")
        writer.write_record(writer.create_warc_record(
            f"http://example.com/{i}", "response", payload=io.BytesIO(body),
            http_headers=headers))
    return buf.getvalue()


def warc_events(data: bytes, spans, gz: bool) -> list:
    """(offset, record id or problem, payload) of what the pieces read, in order."""
    name = Path("x.warc.gz" if gz else "x.warc")
    out = []
    for a, b in spans:
        for _, offset, record, problem in iter_warc(name, io.BytesIO(data), (a, b)):
            if record is None:
                out.append((offset, problem, None))
                continue
            out.append((offset, record.rec_headers.get_header("WARC-Record-ID"),
                        record.content_stream().read()))
    return out


# payloads that look like the start of a record from inside one: the resync must not
# take them for one (a plain WARC's "WARC/1.0" line with headers but a wrong length)
TRICKY = [
    b"<p>hello</p>",
    b"line\r\nWARC/1.0\r\nWARC-Type: response\r\n\r\nnot a record\r\n",
    b"\nWARC/1.0\r\nContent-Length: 3\r\n\r\nabcdef\r\n\r\n",  # length does not fit
    bytes(range(256)) * 3 + b"\x1f\x8b\x08\x00 gzip magic inside",
    b"<p>last</p>",
]


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_warc_every_cut_point_reads_each_record_once(gz):
    data = make_warc(TRICKY, gz)
    whole = warc_events(data, [(0, len(data))], gz)
    assert len(whole) == len(TRICKY) and all(p is not None for _, _, p in whole)
    assert [p for _, _, p in whole] == TRICKY
    for c in range(len(data) + 1):
        assert warc_events(data, cuts_to_spans([c], len(data)), gz) == whole, c


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_warc_cut_short_file_counts_its_damage_once(gz):
    data = make_warc(TRICKY[:3], gz)[:-25]  # the last record cut short
    whole = warc_events(data, [(0, len(data))], gz)
    assert whole[-1][2] is None or len(whole) == 3  # the damage is seen unsplit...
    for c in range(0, len(data) + 1, 7):
        got = warc_events(data, cuts_to_spans([c], len(data)), gz)
        assert [e for e in got if e[2] is not None] == [e for e in whole if e[2] is not None]


PAYLOAD_PARTS = hst.lists(hst.sampled_from(
    [b"<p>x</p>", b"\r\n", b"\n", b"WARC/1.0\r\n", b"WARC-Type: response\r\n",
     b"\x1f\x8b\x08", b"z" * 300]), max_size=12).map(b"".join)


@QUICK
@given(hst.lists(PAYLOAD_PARTS, min_size=1, max_size=6), hst.booleans(),
       hst.lists(hst.integers(0, 10**6), max_size=6))
def test_warc_resync_property(payloads, gz, cuts):
    data = make_warc(payloads, gz)
    whole = warc_events(data, [(0, len(data))], gz)
    assert [p for _, _, p in whole] == payloads
    got = warc_events(data, cuts_to_spans([c % (len(data) + 1) for c in cuts], len(data)),
                      gz)
    assert got == whole


@QUICK
@given(hst.lists(PAYLOAD_PARTS, min_size=2, max_size=6),
       hst.lists(hst.binary(min_size=1, max_size=40), min_size=1, max_size=3),
       hst.lists(hst.integers(0, 10**6), max_size=6), hst.integers(0, 10**6))
def test_gzip_warc_with_garbage_reads_each_record_once(payloads, garbage, cuts, where):
    """Damage between members: each whole record is still read once, whatever the cuts
    (a damaged region right after a cut may go uncounted: docs/architecture.md)."""
    members = [make_warc([p], gz=True) for p in payloads]
    for g in garbage:
        at = 1 + where % (len(members) - 1)
        members.insert(at, g.replace(b"\x1f\x8b", b"\x1f\x00"))
        where //= 2
    data = b"".join(members)
    whole = [e for e in warc_events(data, [(0, len(data))], True) if e[2] is not None]
    assert [p for _, _, p in whole] == payloads
    got = warc_events(data, cuts_to_spans([c % (len(data) + 1) for c in cuts], len(data)),
                      True)
    assert [e for e in got if e[2] is not None] == whole


def read_pieces(cfg, path: Path, pieces) -> tuple[list, StageStats, list[str]]:
    """Rows (id, first 40 chars) and stats of ``read_input`` over the pieces, and their
    digests."""
    size, stats, rows, digests = path.stat().st_size, StageStats(), [], []
    for a, b, groups in pieces or [(0, None, None)]:
        d = InputDigest()
        inp = InputFile(str(path), path.name, size, None, a, b, groups)
        for t in read_input(cfg, inp, stats, d):
            rows += zip(t.column("id").to_pylist(),
                        [x[:40] for x in t.column(t.schema.names[3]).to_pylist()])
        digests.append(d.sha256)
    return rows, stats, digests


@pytest.mark.parametrize("name", ["dolma-wget-2024-sample-0000.warc.gz",
                                  "resiliparse-clueweb09-ja-quirk.warc.gz"])
@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_real_warcs_split_read_like_whole(tmp_path: Path, name: str, gz: bool):
    path = tmp_path / (name if gz else name[:-3])
    data = (WARC_DIR / name).read_bytes()
    path.write_bytes(data if gz else gzip.decompress(data))
    raw = path.read_bytes()
    base = WarcInput(paths=["x"])
    whole, wstats, [wsha] = read_pieces(base, path, [])
    assert wsha == sha(raw)
    for limit in (4096, 50_000):
        cfg = WarcInput(paths=["x"], max_task_bytes=limit)
        pieces = split_points(cfg, str(path), len(raw))
        assert len(pieces) > 1 and pieces[0][0] == 0 and pieces[-1][1] == len(raw)
        rows, stats, digests = read_pieces(cfg, path, pieces)
        assert rows == whole and counts(stats) == counts(wstats)
        assert digests == [sha(raw[a:b]) for a, b, _ in pieces]  # each its own range


# ----------------------------------------------------------------------------- Parquet

def make_parquet(path: Path, n: int = 500, group: int = 37) -> None:
    rnd = random.Random(1)
    texts = ["".join(rnd.choice("abc d") for _ in range(rnd.randint(1, 80))) for _ in range(n)]
    table = pa.table({"text": texts, "n": list(range(n))})
    pq.write_table(table, path, row_group_size=group)


def test_parquet_split_by_row_groups(tmp_path: Path):
    path = tmp_path / "t.parquet"
    make_parquet(path)
    raw, size = path.read_bytes(), path.stat().st_size
    base = ParquetInput(paths=["x"])
    whole, wstats, [wsha] = read_pieces(base, path, [])
    assert len(whole) == 500 and wsha == sha(raw)
    seen = set()
    for limit in range(200, size + 400, 61):
        cfg = ParquetInput(paths=["x"], max_task_bytes=limit)
        pieces = split_points(cfg, str(path), size)
        if not pieces:
            assert limit >= size or limit > 0
            continue
        groups = [g for _, _, g in pieces]
        assert groups[0][0] == 0 and groups[-1][1] == 14
        assert all(a[1] == b[0] for a, b in zip(groups, groups[1:]))
        assert [p[0] for p in pieces[1:]] == [p[1] for p in pieces[:-1]]  # ranges tile
        seen.add(len(pieces))
        rows, stats, digests = read_pieces(cfg, path, pieces)
        assert rows == whole and counts(stats) == counts(wstats)  # ids by row: the same
        assert digests == [sha(raw[a:b]) for a, b, _ in pieces]
    assert len(seen) >= 4  # from one row group a piece to a few


def test_unsplittable_inputs_stay_whole(tmp_path: Path):
    # (gzip and zstd JSONL of one member or frame: test_compressed_jsonl_splits_only_...)
    assert split_points(JsonlInput(paths=["x"], max_task_bytes=10), "a.jsonl.bz2", 10**6) == []
    assert split_points(WarcInput(paths=["x"], max_task_bytes=10), "a.warc.zst", 10**6) == []
    assert split_points(JsonlInput(paths=["x"]), "a.jsonl", 10**6) == []  # unset
    assert split_points(JsonlInput(paths=["x"], max_task_bytes=100), "a.jsonl", 100) == []
    assert split_points(JsonlInput(paths=["x"], max_task_bytes=40), "a.jsonl", 100) == [
        (0, 40, None), (40, 80, None), (80, 100, None)]
    one = tmp_path / "one.parquet"
    make_parquet(one, n=10, group=100)
    assert split_points(ParquetInput(paths=["x"], max_task_bytes=1), str(one), 10**6) == []


def test_max_task_bytes_takes_units_and_is_omitted_when_unset():
    assert JsonlInput(paths=["x"], max_task_bytes="256MiB").max_task_bytes == 256 * 2**20
    assert JsonlInput(paths=["x"], max_task_bytes="1GB").max_task_bytes == 10**9
    assert JsonlInput(paths=["x"], max_task_bytes="1.5k").max_task_bytes == 1500
    assert "max_task_bytes" not in JsonlInput(paths=["x"]).model_dump()
    with pytest.raises(Exception, match="byte count"):
        JsonlInput(paths=["x"], max_task_bytes="lots")


# ----------------------------------------------------------------------------- whole runs

def write_jsonl(path: Path, n: int = 1500) -> None:
    rnd = random.Random(7)
    words = "the a corpus of web text and more words to fill lines with".split()
    lines = []
    for i in range(n):
        text = " ".join(rnd.choice(words) for _ in range(rnd.randint(3, 60)))
        if i % 50 == 0:
            text = "duplicate line for exact dedup"
        lines.append(json.dumps({"text": text}) if i % 97 else "not json")
    path.write_text("\n".join(lines) + "\n")


def run_cfg(tmp: Path, name: str, src: Path, workers: int, limit: int | None,
            fmt: str = "jsonl"):
    inp = {"format": fmt, "paths": [str(src)]}
    if limit is not None:
        inp["max_task_bytes"] = limit
    return config_from_dict({
        "name": name, "input": inp, "output": {"path": str(tmp / name)},
        "executor": {"kind": "local", "workers": workers},
        "stages": [{"stage": "char_ratio", "max_digit_ratio": 0.5},
                   {"stage": "exact_dedup"}]})


def table_of(run_dir: Path) -> pa.Table:
    return pa.concat_tables(pq.read_table(p) for p in sorted((run_dir / "data").glob("*")))


def test_split_run_same_bytes_for_any_worker_count_and_checked_by_reproduce(tmp_path: Path):
    src = tmp_path / "in" / "big.jsonl"
    src.parent.mkdir()
    write_jsonl(src)
    size = src.stat().st_size
    one = run_pipeline(run_cfg(tmp_path, "w1", src, 1, size // 5)).root
    two = run_pipeline(run_cfg(tmp_path, "w2", src, 2, size // 5)).root
    assert shard_hashes(one) == shard_hashes(two) and len(shard_hashes(one)) >= 5
    plan = Plan.load(one / "plan.json")
    assert len(plan.inputs) == 6 and all(f.is_piece for f in plan.inputs)
    assert plan.phases[0].n_tasks == 6
    # every document once: the texts of the unsplit run (which copy of a duplicate is
    # kept depends on the ids, and a piece's ids are line offsets, not line numbers)
    whole = run_pipeline(run_cfg(tmp_path, "whole", src, 2, None)).root
    assert "start" not in json.loads((whole / "plan.json").read_text())["inputs"][0]
    assert sorted(table_of(one).column("text").to_pylist()) == \
        sorted(table_of(whole).column("text").to_pylist())
    # the manifest: one entry for the file, its pieces' range hashes
    m = load_manifest(one)
    [entry] = m["inputs"]
    raw = src.read_bytes()
    assert entry["split"] and entry["size"] == size
    assert [(p["start"], p["end"]) for p in entry["pieces"]] == [
        (f.start, f.end) for f in plan.inputs]
    assert all(p["sha256"] == sha(raw[p["start"]:p["end"]]) for p in entry["pieces"])
    assert entry["sha256"] == pieces_sha256(entry["pieces"])
    # reproduce checks the pieces, and names one that changed
    again, problems = reproduce(one / "manifest.json", str(tmp_path / "again"))
    assert problems == [] and shard_hashes(again.root) == shard_hashes(one)
    pos = entry["pieces"][3]["start"] + 5
    src.write_bytes(raw[:pos] + (b"X" if raw[pos:pos + 1] != b"X" else b"Y") + raw[pos + 1:])
    with pytest.raises(UserError, match=r"1 of its 6 pieces differs"):
        reproduce(one / "manifest.json", str(tmp_path / "again2"))


def test_split_parquet_run_matches_the_unsplit_one(tmp_path: Path):
    src = tmp_path / "t.parquet"
    make_parquet(src, n=800, group=50)
    split = run_pipeline(run_cfg(tmp_path, "split", src, 2, src.stat().st_size // 4,
                                 "parquet")).root
    whole = run_pipeline(run_cfg(tmp_path, "whole", src, 2, None, "parquet")).root
    assert len(Plan.load(split / "plan.json").inputs) >= 4
    a, b = table_of(split), table_of(whole)
    assert a.column("id").to_pylist() == b.column("id").to_pylist()  # row ids: the same
    assert a.equals(b)


def test_plan_pieces_are_a_pure_function_of_input_and_config(tmp_path: Path):
    src = tmp_path / "big.jsonl"
    write_jsonl(src, 300)
    cfg = run_cfg(tmp_path, "p", src, 2, 1000)
    a, b = make_plan(cfg).to_dict(), make_plan(cfg).to_dict()
    assert a == b and len(a["inputs"]) == -(-src.stat().st_size // 1000)
    assert Plan.from_dict(a).to_dict() == a


def test_changed_piece_size_is_caught(tmp_path: Path):
    src = tmp_path / "x.jsonl"
    write_jsonl(src, 50)
    size = src.stat().st_size
    inp = InputFile(str(src), "x.jsonl", size + 10, None, 100, size + 10)  # planned larger
    with pytest.raises(UserError, match="changed size"):
        list(read_input(JsonlInput(paths=["x"]), inp, StageStats(), InputDigest()))


class CountingFile(io.RawIOBase):
    """A local file seen as a remote stream: counts the bytes read."""

    def __init__(self, path: Path):
        self.f, self.read_bytes = open(path, "rb"), 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=0):
        return self.f.seek(offset, whence)

    def tell(self):
        return self.f.tell()

    def readinto(self, b):
        n = self.f.readinto(b)
        self.read_bytes += n
        return n

    def close(self):
        self.f.close()
        super().close()


class CountingStorage:
    """The storage layer's reading side over one local file, each open a CountingFile
    (appended to ``opened``): what a remote piece's reads cost, without a server."""

    class retries:
        @staticmethod
        def as_dict():
            return {}

    def __init__(self, path: Path, opened: list):
        self.path, self.opened = path, opened

    def open_read(self, url):
        self.opened.append(CountingFile(self.path))
        return self.opened[-1]


def test_remote_piece_seeks_instead_of_reading_the_whole_object(tmp_path: Path, monkeypatch):
    from pipelines.io import discovery

    path = tmp_path / "big.warc"
    one = gzip.decompress((WARC_DIR / "dolma-wget-2024-sample-0000.warc.gz").read_bytes())
    path.write_bytes(one * 4)  # 3 MB; its largest record: 204 kB
    size, opened = path.stat().st_size, []

    monkeypatch.setattr(discovery, "storage_for", lambda inp: CountingStorage(path, opened))
    cfg = WarcInput(paths=["x"], max_task_bytes=size // 8)
    pieces = split_points(cfg, "s3://b/big.warc", size)
    url, local_rows = "s3://b/big.warc", read_pieces(cfg, path, pieces)[0]
    rows = []
    for a, b, _ in pieces:
        d = InputDigest()
        inp = InputFile(url, "big.warc", size, None, a, b)
        for t in read_input(cfg, inp, StageStats(), d):
            rows += zip(t.column("id").to_pylist(), [x[:40] for x in t.column("html")
                                                      .to_pylist()])
        assert d.sha256 == sha(path.read_bytes()[a:b])
        # its range, the rest of its last record, and a few 64 kB blocks around the
        # resync (read twice: to find the first record, then by the reader)
        assert opened[-1].read_bytes <= (b - a) + 204_000 + 5 * 2**16 < size / 2
    assert rows == local_rows


def test_wet_and_fastwarc_pieces_read_like_whole(tmp_path: Path):
    from pipelines.config import WetInput

    wet = WARC_DIR / "cc-main-2024-22-whirlwind.warc.wet.gz"
    cfg = WetInput(paths=["x"], max_task_bytes=700)
    pieces = split_points(cfg, str(wet), wet.stat().st_size)
    assert len(pieces) > 2
    whole, wstats, _ = read_pieces(WetInput(paths=["x"]), wet, [])
    rows, stats, _ = read_pieces(cfg, wet, pieces)
    assert rows == whole and counts(stats) == counts(wstats) and rows
    pytest.importorskip("fastwarc")
    path = WARC_DIR / "dolma-wget-2024-sample-0001.warc.gz"
    fast = WarcInput(paths=["x"], backend="fastwarc", max_task_bytes=30_000)
    pieces = split_points(fast, str(path), path.stat().st_size)
    whole = read_pieces(WarcInput(paths=["x"], max_task_bytes=30_000), path, pieces)[0]
    assert read_pieces(fast, path, pieces)[0] == whole and whole


def test_split_run_resumes_to_the_same_bytes(tmp_path: Path):
    import os

    from pipelines.rundir import RunDir

    src = tmp_path / "big.jsonl"
    write_jsonl(src, 600)
    data = run_cfg(tmp_path, "r", src, 2, src.stat().st_size // 4).to_dict(resolved=True)
    data["stages"] = data["stages"][:1]  # one map phase: its tasks' shards are final
    cfg = config_from_dict(data)
    first = run_pipeline(cfg).root
    want = shard_hashes(first)
    run = RunDir.at(first)
    for task in (1, 3):  # as if killed: tasks not done, their shards gone
        rec = run.load_task_stats("main", task)
        for s in rec["shards"]:
            os.remove(first / s["path"])
        os.remove(first / "stats" / "main" / f"task-{task:05d}.json")
    os.remove(first / "stats.json")
    again = run_pipeline(cfg, resume=True).root
    assert shard_hashes(again) == want


def test_remote_parquet_pieces_read_the_footer_and_their_row_groups(tmp_path: Path,
                                                                     monkeypatch):
    from pipelines.io import discovery

    path = tmp_path / "t.parquet"
    make_parquet(path, n=20000, group=1000)
    size, opened = path.stat().st_size, []

    cfg = ParquetInput(paths=["x"], max_task_bytes=size // 6)
    url = "s3://b/t.parquet"
    pieces = split_points(cfg, url, size, CountingStorage(path, opened))
    assert pieces == split_points(cfg, str(path), size) and len(pieces) >= 5
    assert opened[-1].read_bytes < size / 4  # the footer, not the file
    monkeypatch.setattr(discovery, "storage_for", lambda inp: CountingStorage(path, opened))
    whole = read_pieces(ParquetInput(paths=["x"]), path, [])[0]
    rows = []
    for a, b, groups in pieces:
        d, before = InputDigest(), len(opened)
        inp = InputFile(url, "t.parquet", size, None, a, b, groups)
        for t in read_input(cfg, inp, StageStats(), d):
            rows += zip(t.column("id").to_pylist(),
                        [x[:40] for x in t.column(t.schema.names[3]).to_pylist()])
        assert d.sha256 == sha(path.read_bytes()[a:b])
        # its range twice (hashed, then read), the footer: not the whole file
        assert sum(f.read_bytes for f in opened[before:]) < 2 * (b - a) + 2**17 < size
    assert rows == whole


# ----------------------------------------------------------------------------- compressed JSONL

LID = Path(__file__).parent / "data" / "lid" / "lingua-sentences-12lang.jsonl"
FILTER_DOCS = Path(__file__).parent / "data" / "quality" / "filter-docs.jsonl.gz"


def compress_members(data: bytes, cuts, kind: str) -> bytes:
    """``data`` as one gzip member (zstd frame) per span between ``cuts`` (any byte
    offsets: a member may end mid-line; repeated cuts make empty members)."""
    edges = [0, *sorted(c for c in cuts if 0 <= c <= len(data)), len(data)]
    parts = [data[a:b] for a, b in zip(edges, edges[1:])]
    if kind == "gzip":
        return b"".join(gzip.compress(p, mtime=0) for p in parts)
    import zstandard

    z = zstandard.ZstdCompressor(write_checksum=len(data) % 2 == 0)
    return b"".join(z.compress(p) for p in parts)


def compressed_rows(data: bytes, spans, kind: str, limit: int | None = 40):
    """(id, text) of what the pieces ``spans`` of a compressed JSONL file yield (spans
    None: the file read whole, unsplit), and the stats."""
    name = "x.jsonl.gz" if kind == "gzip" else "x.jsonl.zst"
    reader = JsonlReader(JsonlInput(paths=["x"], max_record_bytes=limit, batch_size=7))
    stats, rows = StageStats(), []
    for a, b in spans or [(0, None)]:
        part = None if b is None else InputFile(name, name, len(data), None, a, b)
        for t in reader.read(Path(name), name, stats, io.BytesIO(data), part):
            rows += zip(t.column("id").to_pylist(), t.column("text").to_pylist())
    return rows, stats


def lid_lines(n: int) -> bytes:
    """``n`` lines of real text (12 languages), with the synthetic lines of ``JSONL``
    (blank, bad JSON, too large, no text, CRLF) among them."""
    real = LID.read_bytes().splitlines(keepends=True)
    return b"".join(real[:n // 2]) + JSONL + b"\n" + b"".join(real[n // 2:n])


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_compressed_jsonl_every_cut_point_reads_each_line_once(kind):
    raw = lid_lines(12)
    # members cut mid-line, at line ends, twice at one place (an empty member)
    member_cuts = [5, 230, 231, raw.index(b"\n", 600) + 1, 900, 900, 1400, len(raw) - 3]
    data = compress_members(raw, member_cuts, kind)
    whole, wstats = compressed_rows(data, None, kind, limit=200)
    texts = [t for _, t in whole]
    assert len(whole) >= 12 and set(texts) <= set(lid_texts(raw))
    assert wstats.dropped["too_large"] and wstats.errors["bad_json"]
    one, ostats = compressed_rows(data, [(0, len(data))], kind, limit=200)
    assert [t for _, t in one] == texts and counts(ostats) == counts(wstats)
    assert len({i for i, _ in one}) == len(one)  # a piece's ids: distinct
    for c in range(len(data) + 1):
        rows, stats = compressed_rows(data, cuts_to_spans([c], len(data)), kind, limit=200)
        assert rows == one, c  # the same ids, however the file is cut
        assert counts(stats) == counts(wstats), c


def lid_texts(raw: bytes) -> list[str]:
    out = []
    for line in raw.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("text"), str):
            out.append(obj["text"])
    return out


@QUICK
@given(LINE_PARTS, hst.booleans(), hst.lists(hst.integers(0, 2000), max_size=6),
       hst.sampled_from(["gzip", "zstd"]), hst.lists(hst.integers(0, 10**6), max_size=8))
def test_compressed_jsonl_resync_property(lines, trailing_newline, member_cuts, kind, cuts):
    raw = b"\n".join(lines) + (b"\n" if trailing_newline and lines else b"")
    data = compress_members(raw, [c % (len(raw) + 1) for c in member_cuts], kind)
    whole, wstats = compressed_rows(data, None, kind)
    one, _ = compressed_rows(data, [(0, len(data))], kind)
    assert [t for _, t in one] == [t for _, t in whole]
    rows, stats = compressed_rows(
        data, cuts_to_spans([c % (len(data) + 1) for c in cuts], len(data)), kind)
    assert rows == one
    assert counts(stats) == counts(wstats)


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_compressed_jsonl_cut_short_reads_whole_lines_at_most_once(kind):
    raw = lid_lines(30)
    data = compress_members(raw, range(0, len(raw), 700), kind)[:-40]
    whole, _ = compressed_rows(data, None, kind)
    for c in range(0, len(data) + 1, 5):
        rows, stats = compressed_rows(data, cuts_to_spans([c], len(data)), kind)
        assert [t for _, t in rows] == [t for _, t in whole][:len(rows)], c
        assert len(whole) - 2 <= len(rows) <= len(whole), c


def test_compressed_jsonl_splits_only_with_a_second_member(tmp_path: Path, caplog):
    import zstandard

    raw = lid_lines(200)
    cfg = JsonlInput(paths=["x"], max_task_bytes=2000)
    cases = {
        "members.jsonl.gz": (compress_members(raw, range(0, len(raw), 3000), "gzip"), True),
        "frames.jsonl.zst": (compress_members(raw, range(0, len(raw), 3000), "zstd"), True),
        "one.jsonl.gz": (gzip.compress(raw), False),
        "one.jsonl.zst": (zstandard.ZstdCompressor().compress(raw), False),
        "x.jsonl.xz": (__import__("lzma").compress(raw), False),
    }
    for name, (data, split) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        caplog.clear()
        with caplog.at_level("WARNING", logger="pipelines.io.discovery"):
            pieces = split_points(cfg, str(path), len(data))
        assert bool(pieces) == split, name
        if split:
            assert pieces == [(a, min(a + 2000, len(data)), None)
                              for a in range(0, len(data), 2000)] and not caplog.records
            texts, digests = [], []
            for a, b, _ in pieces:
                d = InputDigest()
                for t in read_input(cfg, InputFile(str(path), name, len(data), None, a, b),
                                    StageStats(), d):
                    texts += t.column("text").to_pylist()
                digests.append(d.sha256)
            assert texts == lid_texts(raw)
            assert digests == [sha(data[a:b]) for a, b, _ in pieces]
        else:  # one clear line: the file, why, and that it is read as one task
            [rec] = caplog.records
            msg = rec.getMessage()
            assert msg.startswith(f"{path}: not split by input.max_task_bytes, read as one "
                                  "task: ") and "\n" not in msg, msg
            if not name.endswith(".xz"):
                assert ("one gzip member" if name.endswith(".gz") else "one zstd frame") in msg
    # a real single-member file (3.4 MB): scanned in full for a second member, not split
    big = FILTER_DOCS.stat().st_size
    assert split_points(JsonlInput(paths=["x"], max_task_bytes=big // 4), str(FILTER_DOCS),
                        big) == []


def real_members(tmp_path: Path, kind: str, own_ids: bool) -> Path:
    """500 documents of filter-docs.jsonl.gz (real web text) as one gzip member (zstd
    frame) per 64 kB of JSONL, cut anywhere (as bgzip does)."""
    lines = gzip.decompress(FILTER_DOCS.read_bytes()).splitlines(keepends=True)[:500]
    if not own_ids:
        lines = [json.dumps({"text": json.loads(x)["text"]}).encode() + b"\n" for x in lines]
    raw = b"".join(lines)
    path = tmp_path / "in" / ("docs.jsonl.gz" if kind == "gzip" else "docs.jsonl.zst")
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(compress_members(raw, range(0, len(raw), 1 << 16), kind))
    return path


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_split_compressed_run_same_bytes_for_any_worker_count(tmp_path: Path, kind: str):
    src = real_members(tmp_path, kind, own_ids=True)
    limit = -(-src.stat().st_size // 5)
    one = run_pipeline(run_cfg(tmp_path, "w1", src, 1, limit)).root
    two = run_pipeline(run_cfg(tmp_path, "w2", src, 2, limit)).root
    assert shard_hashes(one) == shard_hashes(two)
    plan = Plan.load(one / "plan.json")
    assert len(plan.inputs) == 5 and all(f.is_piece for f in plan.inputs)
    # documents with ids of their own: the same table as the unsplit run, row for row
    whole = run_pipeline(run_cfg(tmp_path, "whole", src, 2, None)).root
    assert len(Plan.load(whole / "plan.json").inputs) == 1
    assert table_of(one).equals(table_of(whole)) and table_of(one).num_rows > 300
    [entry] = load_manifest(one)["inputs"]
    raw = src.read_bytes()
    assert all(p["sha256"] == sha(raw[p["start"]:p["end"]]) for p in entry["pieces"])
    again, problems = reproduce(one / "manifest.json", str(tmp_path / "again"))
    assert problems == [] and shard_hashes(again.root) == shard_hashes(one)


def test_split_compressed_run_without_ids_keeps_every_document(tmp_path: Path):
    src = real_members(tmp_path, "gzip", own_ids=False)
    split = run_pipeline(run_cfg(tmp_path, "s", src, 2, src.stat().st_size // 3)).root
    whole = run_pipeline(run_cfg(tmp_path, "w", src, 2, None)).root
    assert sorted(table_of(split).column("text").to_pylist()) == \
        sorted(table_of(whole).column("text").to_pylist())


def test_validate_counts_files_not_pieces(tmp_path: Path):
    import subprocess
    import sys

    src = real_members(tmp_path, "zstd", own_ids=True)
    gzip_one = tmp_path / "in" / "one.jsonl.gz"
    gzip_one.write_bytes(gzip.compress(src.read_bytes()[:1]))  # small: one task anyway
    single = tmp_path / "in" / "single.jsonl.gz"  # one gzip member, 3.4 MB
    single.write_bytes(FILTER_DOCS.read_bytes())
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({
        "name": "v", "input": {"format": "jsonl", "paths": [str(tmp_path / "in" / "*")],
                               "max_task_bytes": -(-src.stat().st_size // 4)},
        "output": {"path": str(tmp_path / "out")},
        "stages": [{"stage": "char_ratio", "max_digit_ratio": 0.5}]}))
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "validate", str(cfg)],
                          capture_output=True, text=True, check=True)
    assert "ok: 1 stages, 3 input files (6 pieces: input.max_task_bytes), 1 phase(s), " \
        "6 tasks" in proc.stdout, proc.stdout
    [line] = [x for x in proc.stderr.splitlines() if "not split" in x]
    assert f"{single}: not split by input.max_task_bytes, read as one task: one gzip " \
           "member" in line
