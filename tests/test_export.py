"""tokenize_export / `thresher export` (#21): token files read back by each format's own
reader give exactly the ids `tokenizers` gives, in the documented order.

Reference readers: megatron-core's ``IndexedDataset`` (.bin/.idx), datatrove's
``DatatroveFolderDataset`` (.ds, nanotron's loader format) and numpy (npy). MosaicML
Streaming cannot be installed beside this venv (it pins numpy<2.2 and needs
torchvision), so MDS is read by ``spec_mds_read`` below: an independent reader written
from the format's published layout, labelled as such.

The tokenizer is the demo one, trained here with `tokenizers` on the bundled WikiText-2
text (stages/export/demo_tokenizer.py); the corpus is bundled WikiText-2 and UDHR lines.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO, thresher

pytest.importorskip("tokenizers")

DATA = REPO / "tests" / "data"


def _lines(name: str) -> list[str]:
    with lzma.open(DATA / "quality" / name, "rt", encoding="utf-8") as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.strip().startswith("=")]


@pytest.fixture(scope="module")
def tok_path(tmp_path_factory) -> Path:
    """The demo tokenizer (stages/export/demo_tokenizer.py: BPE trained on WikiText-2)."""
    from stages.export.demo_tokenizer import build

    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    assert build(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("corpus")
    texts = _lines("wikitext-2-test.txt.xz")[:1200]
    udhr = [json.loads(ln)["text"] for ln in
            (DATA / "multilingual" / "udhr-9lang.jsonl").read_text().splitlines()][:40]
    docs = [(t, "en" if i % 4 else "fr") for i, t in enumerate(texts)] + \
        [(t, "xx") for t in udhr] + [("", "en")]
    for k in range(3):
        with (d / f"part{k}.jsonl").open("w", encoding="utf-8") as f:
            for i, (t, lang) in enumerate(docs[k::3]):
                f.write(json.dumps({"id": f"d{k}-{i}", "text": t, "lang": lang,
                                    "language": lang}) + "\n")
    return d


def _run(corpus: Path, out: Path, stages: list, workers: int = 2, **inp) -> Path:
    from pipelines import config_from_dict, run_pipeline

    cfg = config_from_dict({
        "input": {"format": "jsonl", "paths": [str(corpus / "*.jsonl")], "id_key": "id",
                  "fields": ["lang"], **inp},
        "output": {"path": str(out)}, "executor": {"kind": "local", "workers": workers},
        "stages": stages})
    run_pipeline(cfg, overwrite=True, progress=False)
    return out


REBALANCE = {"stage": "rebalance", "by": "lang", "mapping": {"fr": 2.5, "xx": 0.5}}


@pytest.fixture(scope="module")
def run_dir(corpus, tmp_path_factory) -> Path:
    return _run(corpus, tmp_path_factory.mktemp("run") / "run", [REBALANCE])


def _rows(run: Path) -> list[dict]:
    """Every document of the run's output shards, in run order."""
    stats = json.loads((run / "stats.json").read_text())
    out = []
    for s in stats["output"]["shards"]:
        out += pq.read_table(run / s["path"]).to_pylist()
    return out


def _expected(tok_path: Path, rows: list[dict], eos: bool = True) -> list[list[int]]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tok_path))
    eos_id = tok.token_to_id("<|endoftext|>")
    enc = tok.encode_batch([r["text"] or "" for r in rows], add_special_tokens=False)
    return [e.ids + ([eos_id] if eos else []) for e in enc if e.ids]  # empty: not written


def _export(run: Path, tok: Path, out: Path, workers: int = 1, **params) -> dict:
    from pipelines.registry import get

    cls = get("tokenize_export")
    stage = cls(cls.Params(tokenizer=str(tok), **params), name="export")
    stage.setup()
    return stage.export_run(run, out, workers=workers)


def _hashes(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.iterdir()) if p.is_file()}


# ---------------------------------------------------------------- reference readers
def megatron_read(out: Path) -> list[list[int]]:
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    docs = []
    for prefix in sorted({p.with_suffix("") for p in out.glob("*.bin")}):
        ds = IndexedDataset(str(prefix))
        docs += [ds[i].tolist() for i in range(len(ds))]
    return docs


def datatrove_read(out: Path, token_size: int) -> list[list[int]]:
    from datatrove.utils.dataset import DatatroveFileDataset

    docs = []
    for f in sorted(out.glob("*.ds")):
        n = f.stat().st_size // token_size
        ds = DatatroveFileDataset(str(f), seq_len=n - 1, token_size=token_size,
                                  return_positions=True)
        item = ds[0]
        toks, pos = item["input_ids"].tolist(), item["positions"].tolist()
        starts = [i for i, p in enumerate(pos) if p == 0] + [len(toks)]
        docs += [toks[a:b] for a, b in zip(starts, starts[1:])]
    return docs


def npy_read(out: Path) -> list[list[int]]:
    docs = []
    for f in sorted(out.glob("*.offsets.npy")):
        tokens = np.load(f.with_name(f.name.replace(".offsets.npy", ".npy")), mmap_mode="r")
        off = np.load(f)
        docs += [tokens[a:b].tolist() for a, b in zip(off[:-1], off[1:])]
    return docs


def spec_mds_read(out: Path) -> list[list[int]]:
    """INDEPENDENT READER written from the MDS layout (not MosaicML's code): index.json
    lists shards; a shard is u32 n, u32 offsets[n+1], config JSON, then samples; a
    sample is u32 column size + ndarray encoding (byte ndim<<2|shape-dtype, shape, data)."""
    index = json.loads((out / "index.json").read_text())
    assert index["version"] == 2
    docs = []
    for sh in index["shards"]:
        assert sh["column_names"] == ["tokens"] and sh["format"] == "mds"
        dtype = np.dtype(sh["column_encodings"][0].split(":")[1])
        data = (out / sh["raw_data"]["basename"]).read_bytes()
        assert len(data) == sh["raw_data"]["bytes"]
        n = struct.unpack_from("<I", data)[0]
        assert n == sh["samples"]
        offs = np.frombuffer(data, "<u4", n + 1, 4)
        cfg = json.loads(data[4 + 4 * (n + 1):offs[0]])
        assert cfg["column_encodings"] == sh["column_encodings"]
        for a, b in zip(offs[:-1], offs[1:]):
            size = struct.unpack_from("<I", data, a)[0]
            assert size == b - a - 4
            head = data[a + 4]
            shape_dt = ["<u1", "<u2", "<u4", "<u8"][head & 3]
            ndim = head >> 2
            shape = np.frombuffer(data, shape_dt, ndim, a + 5)
            start = a + 5 + ndim * np.dtype(shape_dt).itemsize
            docs.append(np.frombuffer(data, dtype, int(shape[0]), start).tolist())
    return docs


# ---------------------------------------------------------------- formats
def test_megatron_files_read_by_megatron_core_give_the_tokenizers_ids(run_dir, tok_path,
                                                                      tmp_path):
    pytest.importorskip("megatron.core")
    want = _expected(tok_path, _rows(run_dir))
    s = _export(run_dir, tok_path, tmp_path / "m", shard_tokens=20_000)
    assert s["dtype"] == "uint16" and s["tokens"] == sum(map(len, want))
    assert megatron_read(tmp_path / "m") == want  # run order without shuffle
    longest = max(map(len, want))
    for sh in s["shards"][:-1]:  # whole documents; a file closes once it reaches the target
        assert 20_000 <= sh["tokens"] < 20_000 + longest
    assert len(s["shards"]) > 3


def test_nanotron_ds_read_by_datatrove_gives_the_tokenizers_ids(run_dir, tok_path, tmp_path):
    pytest.importorskip("torch")
    want = _expected(tok_path, _rows(run_dir))
    _export(run_dir, tok_path, tmp_path / "d", format="nanotron", shard_tokens=50_000)
    assert datatrove_read(tmp_path / "d", 2) == want
    meta = (tmp_path / "d" / "part-00000.ds.metadata").read_text().splitlines()
    assert meta[0].endswith("|2") and int(meta[1]) == \
        (tmp_path / "d" / "part-00000.ds").stat().st_size // 2


def test_npy_and_mds(run_dir, tok_path, tmp_path):
    want = _expected(tok_path, _rows(run_dir))
    _export(run_dir, tok_path, tmp_path / "n", format="npy", shard_tokens=30_000)
    assert npy_read(tmp_path / "n") == want
    _export(run_dir, tok_path, tmp_path / "s", format="mds", shard_tokens=30_000)
    assert spec_mds_read(tmp_path / "s") == want


def test_eos_false_and_a_vocabulary_over_uint16_is_int32_for_megatron(run_dir, tmp_path):
    pytest.importorskip("megatron.core")
    from tokenizers import Tokenizer, models, pre_tokenizers

    rows = _rows(run_dir)
    words = sorted({w for r in rows for w in (r["text"] or "").split()})
    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(words)}}
    vocab.update({f"pad{i}": len(vocab) + i for i in range(70_000 - len(vocab))})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    path = tmp_path / "big.json"
    tok.save(str(path))
    want = _expected(path, rows, eos=False)
    s = _export(run_dir, path, tmp_path / "m", eos=False)
    assert s["dtype"] == "int32" and megatron_read(tmp_path / "m") == want
    s = _export(run_dir, path, tmp_path / "d", eos=False, format="nanotron")
    assert s["dtype"] == "uint32" and datatrove_read(tmp_path / "d", 4) == want
    with pytest.raises(Exception, match="EOS"):
        _export(run_dir, path, tmp_path / "x")


# ---------------------------------------------------------------- order and mixture
def _order_key(doc_id: str, rep: int, seed: int) -> int:
    h = hashlib.blake2b(f"{doc_id}\x1f{rep}".encode(), digest_size=8,
                        key=f"order:{seed}".encode())
    return int.from_bytes(h.digest(), "little")


def test_shuffle_is_the_documented_keyed_order_whatever_the_workers(run_dir, tok_path,
                                                                    tmp_path, monkeypatch):
    from stages.export import tokenize_export

    rows = _rows(run_dir)
    monkeypatch.setattr(tokenize_export._Readers, "MAX_OPEN", 1)  # spill files reopened
    a = _export(run_dir, tok_path, tmp_path / "a", workers=1, format="npy",
                shuffle={"seed": 7, "buckets": 8}, shard_tokens=40_000)
    _export(run_dir, tok_path, tmp_path / "b", workers=2, format="npy",
            shuffle={"seed": 7, "buckets": 3}, shard_tokens=40_000, memory_mb=0.02)
    ha, hb = _hashes(tmp_path / "a"), _hashes(tmp_path / "b")
    assert ha.pop("export.json") != hb.pop("export.json")  # its params name the buckets
    assert ha == hb  # workers, buckets, budget: the same token files
    ja, jb = ({k: v for k, v in json.loads((tmp_path / d / "export.json").read_text()).items()
               if k != "params"} for d in "ab")
    assert ja == jb
    order = sorted(range(len(rows)), key=lambda i: (
        _order_key(rows[i]["id"], rows[i].get("repeat_index") or 0, 7), i))
    want = _expected(tok_path, [rows[i] for i in order])
    assert npy_read(tmp_path / "a") == want
    assert a["shuffle_seed"] == 7
    _export(run_dir, tok_path, tmp_path / "c", format="npy", shuffle={"seed": 8})
    assert npy_read(tmp_path / "c") != want and \
        sorted(map(tuple, npy_read(tmp_path / "c"))) == sorted(map(tuple, want))


def test_replicated_documents_appear_as_rebalance_said_and_tokens_per_language(run_dir,
                                                                              tok_path,
                                                                              tmp_path):
    rows = _rows(run_dir)
    copies = Counter(r["id"] for r in rows)
    assert max(copies.values()) == 3  # fr: 2.5 -> 2 or 3 copies
    s = _export(run_dir, tok_path, tmp_path / "n", format="npy", shuffle={"seed": 1})
    got = Counter(map(tuple, npy_read(tmp_path / "n")))
    want = Counter(map(tuple, _expected(tok_path, rows)))
    assert got == want
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tok_path))
    per_lang = Counter()
    for r, e in zip(rows, tok.encode_batch([r["text"] for r in rows], add_special_tokens=False)):
        per_lang[r["lang"]] += len(e.ids) + 1 if e.ids else 0  # + EOS; empty: not written
    assert s["tokens_by"] == {}  # the run has no `dataset` or `language` column
    s2 = _export(run_dir, tok_path, tmp_path / "g", format="npy", group_by=["lang"])
    assert s2["tokens_by"]["lang"] == dict(per_lang)


def test_weight_mode_copies_follow_the_documented_rule(corpus, tok_path, tmp_path):
    run = _run(corpus, tmp_path / "w", [{**REBALANCE, "mode": "weight"}])
    rows = _rows(run)
    s = _export(run, tok_path, tmp_path / "n", format="npy", shuffle={"seed": 5})

    def n_copies(r):
        w = r["weight"]
        u = int.from_bytes(hashlib.blake2b(r["id"].encode(), digest_size=8,
                                           key=b"weight:5").digest(), "little") / 2.0**64
        return int(w) + (u < w - int(w))

    expanded = [r for r in rows for _ in range(n_copies(r))]
    assert Counter(map(tuple, npy_read(tmp_path / "n"))) == \
        Counter(map(tuple, _expected(tok_path, expanded)))
    assert s["documents"] == len(_expected(tok_path, expanded))


# ---------------------------------------------------------------- stage, CLI, resume
def test_stage_in_a_pipeline_matches_the_export_command_and_workers(corpus, tok_path,
                                                                    tmp_path):
    stage = {"stage": "tokenize_export", "tokenizer": str(tok_path), "format": "megatron",
             "shard_tokens": 30_000, "shuffle": {"seed": 2, "buckets": 4}}
    count = {"stage": "count_tokens", "tokenizer": str(tok_path)}
    chain = [count, REBALANCE, {**stage, "group_by": ["lang"]}]
    r1 = _run(corpus, tmp_path / "r1", chain, workers=1)
    r2 = _run(corpus, tmp_path / "r2", chain, workers=2)
    assert _hashes(r1 / "tokens") == _hashes(r2 / "tokens")
    # tokens written per language = the rebalanced n_tokens, plus one EOS a document
    want = Counter()
    for r in _rows(r1):
        want[r["lang"]] += r["n_tokens"] + 1 if r["n_tokens"] else 0
    exp = json.loads((r1 / "tokens" / "export.json").read_text())
    assert exp["tokens_by"]["lang"] == dict(want)
    # resume: the write step (its done mark and its files) lost, the run resumed
    from pipelines import config_from_dict, run_pipeline

    done = list((r1 / "stats").glob("*write*/task-00000.json"))
    assert len(done) == 1
    done[0].unlink()
    for f in (r1 / "tokens").iterdir():
        f.unlink()
    cfg = config_from_dict({
        "input": {"format": "jsonl", "paths": [str(corpus / "*.jsonl")], "id_key": "id",
                  "fields": ["lang"]},
        "output": {"path": str(r1)}, "executor": {"kind": "local", "workers": 2},
        "stages": chain})
    run_pipeline(cfg, resume=True, progress=False)
    assert _hashes(r1 / "tokens") == _hashes(r2 / "tokens")
    plain = _run(corpus, tmp_path / "plain", [REBALANCE])
    thresher("export", str(plain), "--tokenizer", str(tok_path), "--shard-tokens", "30000",
             "--shuffle-seed", "2", "--buckets", "4", "-w", "2", "-o", str(tmp_path / "cli"))
    strip = {"export.json"}
    assert {k: v for k, v in _hashes(r1 / "tokens").items() if k not in strip} == \
        {k: v for k, v in _hashes(tmp_path / "cli").items() if k not in strip}
    manifest = json.loads((r1 / "manifest.json").read_text())
    sha = hashlib.sha256(tok_path.read_bytes()).hexdigest()
    assert {"path": str(tok_path.resolve()), "sha256": sha} in manifest["models"]
    exp = json.loads((r1 / "tokens" / "export.json").read_text())
    assert exp["tokenizer"]["sha256"] == sha
    for sh in exp["shards"]:
        for f in sh["files"]:
            assert hashlib.sha256((r1 / "tokens" / f).read_bytes()).hexdigest() == \
                sh["sha256"][f]
    stats = json.loads((r1 / "stats.json").read_text())
    assert "tokens_written" in json.dumps(stats)


def test_export_resumes_to_the_same_bytes(run_dir, tok_path, tmp_path):
    out = tmp_path / "o"
    full = _export(run_dir, tok_path, out, format="nanotron", shuffle={"seed": 3})
    want = _hashes(out)
    # an interrupted export: some shards spilled, no output yet
    from pipelines.registry import get

    cls = get("tokenize_export")
    stage = cls(cls.Params(tokenizer=str(tok_path), format="nanotron",
                           shuffle={"seed": 3}), name="export")
    stage.setup()
    again = tmp_path / "again"
    stage.export_run(run_dir, again, keep_work=True)
    for f in list(again.iterdir()):
        if f.is_file():
            f.unlink()
    (again / "_work" / "shard-00001.json").unlink()
    stage.export_run(run_dir, again)
    assert _hashes(again) == want and full["tokens"] > 0
    assert not (again / "_work").exists()


def test_export_killed_with_sigkill_resumes_to_the_same_bytes(run_dir, tok_path, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    args = ["export", str(run_dir), "--tokenizer", str(tok_path), "--format", "megatron",
            "--shuffle-seed", "9", "--shard-tokens", "40000"]
    thresher(*args, "-o", str(tmp_path / "clean"))
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", *args, "-o", str(out)],
                            cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (out / "_work" / "shard-00000.json").exists() and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # after the first shard's spill, before the end
    proc.wait()
    thresher(*args, "-o", str(out))
    assert _hashes(out) == _hashes(tmp_path / "clean")
    assert thresher("export", "--verify", str(out)).returncode == 0
    (out / "part-00001.bin").write_bytes(b"\0" + (out / "part-00001.bin").read_bytes()[1:])
    bad = thresher("export", "--verify", str(out), check=False)
    assert bad.returncode == 1 and "part-00001.bin: sha256" in bad.stdout


def test_export_to_s3_gives_the_local_bytes(run_dir, tok_path, tmp_path):
    pytest.importorskip("moto")
    pytest.importorskip("s3fs")
    from s3server import serving

    local = tmp_path / "local"
    _export(run_dir, tok_path, local, format="nanotron", shuffle={"seed": 4},
            shard_tokens=60_000)
    with serving(tmp_path / "moto.log", "tokens") as srv:
        _export(run_dir, tok_path, "s3://tokens/x", format="nanotron", shuffle={"seed": 4},
                shard_tokens=60_000)
        client = srv.client()
        keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="tokens")["Contents"])
        got = {k.split("/")[-1]: hashlib.sha256(
            client.get_object(Bucket="tokens", Key=k)["Body"].read()).hexdigest() for k in keys}
    assert all(k.startswith("x/") and "_work" not in k for k in keys)
    assert {k: v for k, v in got.items() if k != "export.json"} == \
        {k: v for k, v in _hashes(local).items() if k != "export.json"}


def test_export_errors_are_one_line(run_dir, tok_path, tmp_path):
    for args, want in ((["--format", "foo"], "--format: Input should be"),
                       (["--shard-tokens", "0"], "--shard-tokens: Input should be greater"),
                       (["--eos", "<nope>"], "eos token '<nope>' is not in the vocabulary")):
        proc = thresher("export", str(run_dir), "--tokenizer", str(tok_path), *args,
                        "-o", str(tmp_path / "x"), check=False)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and want in lines[0], proc.stderr
    proc = thresher("export", str(run_dir), check=False)
    assert proc.returncode == 2 and "--tokenizer is required" in proc.stderr


# ---------------------------------------------------------------- manifest, verify, reproduce
def _flip_first_byte(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])


def _diff_lines(proc) -> list[str]:
    return [ln for ln in proc.stdout.splitlines() if ln.startswith("DIFF")]


def test_the_manifest_lists_the_token_files_and_verify_and_reproduce_check_them(corpus,
                                                                                tok_path,
                                                                                tmp_path):
    stage = {"stage": "tokenize_export", "tokenizer": str(tok_path), "shard_tokens": 30_000,
             "shuffle": {"seed": 6, "buckets": 4}}
    run = _run(corpus, tmp_path / "r", [REBALANCE, stage])
    manifest = json.loads((run / "manifest.json").read_text())
    sha = hashlib.sha256(tok_path.read_bytes()).hexdigest()
    assert {"path": str(tok_path.resolve()), "sha256": sha} in manifest["models"]
    arts = {a["path"]: a for a in manifest["artifacts"]}
    files = [p for p in sorted((run / "tokens").iterdir()) if p.name != "export.json"]
    assert len(files) >= 4 and set(arts) == {f"tokens/{p.name}" for p in files}
    for p in files:
        a = arts[f"tokens/{p.name}"]
        assert (a["stage"], a["step"], a["bytes"]) == ("tokenize_export", "write",
                                                        p.stat().st_size)
        assert a["sha256"] == hashlib.sha256(p.read_bytes()).hexdigest()
    ok = thresher("verify", str(run / "manifest.json"), str(run))
    assert f"and {len(files)} token file(s)" in ok.stdout
    # reproduce: the run again from its manifest, the same token bytes
    again = tmp_path / "again"
    thresher("reproduce", str(run / "manifest.json"), str(again), "-w", "1")
    assert _hashes(again / "tokens") == _hashes(run / "tokens")
    # one byte of one token file changed: one clear line, exit 1
    _flip_first_byte(run / "tokens" / "part-00001.bin")
    bad = thresher("verify", str(run / "manifest.json"), str(run), check=False)
    want = hashlib.sha256((run / "tokens" / "part-00001.bin").read_bytes()).hexdigest()
    assert bad.returncode == 1 and _diff_lines(bad) == [
        f"DIFF tokens/part-00001.bin (tokenize_export write): sha256 {want[:12]}… != "
        f"expected {arts['tokens/part-00001.bin']['sha256'][:12]}…"], bad.stdout
    (run / "tokens" / "part-00001.bin").unlink()
    bad = thresher("verify", str(run / "manifest.json"), str(again), check=False)
    assert bad.returncode == 0  # the reproduced run is intact


def test_verify_checks_an_export_made_on_a_finished_run(run_dir, tok_path, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    thresher("export", str(run), "--tokenizer", str(tok_path), "--shard-tokens", "40000")
    n = len(export_files := [p for p in (run / "tokens").iterdir() if p.name != "export.json"])
    ok = thresher("verify", str(run / "manifest.json"), str(run))
    assert f"and {n} token file(s) their export.json" in ok.stdout and len(export_files) > 1
    # reproduce makes the export again on the new run, from export.json's parameters
    thresher("reproduce", str(run / "manifest.json"), str(tmp_path / "again"), "-w", "1")
    assert _hashes(tmp_path / "again" / "tokens") == _hashes(run / "tokens")
    exp = json.loads((run / "tokens" / "export.json").read_text())
    exp["shards"][1]["sha256"]["part-00001.idx"] = "0" * 64  # the snapshot says otherwise
    (run / "tokens" / "export.json").write_text(json.dumps(exp))
    bad = thresher("reproduce", str(run / "manifest.json"), str(tmp_path / "again2"),
                   check=False)
    assert bad.returncode == 1 and _diff_lines(bad) == [
        "DIFF tokens/part-00001.idx: sha256 "
        f"{_hashes(tmp_path / 'again' / 'tokens')['part-00001.idx'][:12]}… != the "
        "snapshot's 000000000000…"], bad.stdout
    exp["shards"][1]["sha256"]["part-00001.idx"] = _hashes(run / "tokens")["part-00001.idx"]
    (run / "tokens" / "export.json").write_text(json.dumps(exp))
    _flip_first_byte(run / "tokens" / "part-00000.idx")
    (run / "tokens" / "part-00001.bin").unlink()
    (run / "tokens" / "part-00009.bin").write_bytes(b"\0\0")
    bad = thresher("verify", str(run / "manifest.json"), str(run), check=False)
    lines = _diff_lines(bad)
    assert bad.returncode == 1 and len(lines) == 3, bad.stdout
    assert lines[0].startswith("DIFF tokens/part-00000.idx: sha256 ")
    assert lines[1:] == ["DIFF missing tokens/part-00001.bin",
                         "DIFF unexpected file tokens/part-00009.bin"]


def test_stats_and_report_show_the_tokens_written_per_dataset_and_language(corpus, tok_path,
                                                                           tmp_path):
    import re

    stage = {"stage": "tokenize_export", "tokenizer": str(tok_path), "shard_tokens": 40_000}
    chain = [{"stage": "count_tokens", "tokenizer": str(tok_path)},
             {"stage": "rebalance", "by": "language", "mapping": {"fr": 2.5, "xx": 0.5}},
             stage]
    run = _run(corpus, tmp_path / "r", chain, fields=["language"],
               dataset={"wiki": ["part0.jsonl", "part1.jsonl"], "other": ["part2.jsonl"]})
    want: dict[str, Counter] = {"dataset": Counter(), "language": Counter()}
    for r in _rows(run):  # the rebalanced documents' tokens, plus one EOS each
        for col in want:
            want[col][r[col]] += r["n_tokens"] + 1 if r["n_tokens"] else 0
    assert len(want["dataset"]) == 2 and len(want["language"]) == 3
    stats = json.loads((run / "stats.json").read_text())
    # the last stage: no apply phase copies the documents; the stage still counts them
    assert list(stats["phases"]) == ["main", "tokenize_export.write"]
    st = stats["stages"]["tokenize_export"]
    assert st["docs_in"] == st["docs_out"] == stats["output"]["rows"] == len(_rows(run))
    assert not (run / "phases").exists() or not any((run / "phases").iterdir())
    metrics = stats["phases"]["tokenize_export.write"]["metrics"]
    # the rebalanced stats, to the token: tokens out plus one EOS a document (not for
    # a document without a token, which is not written)
    empty = {col: Counter(r[col] for r in _rows(run) if not r["n_tokens"]) for col in want}
    assert sum(map(sum, (e.values() for e in empty.values()))) == 2  # the empty document
    for col in want:
        reb = stats["stages"]["rebalance"][f"by_{col}"]
        assert {v: g["tokens_out"] + g["docs_out"] - empty[col][v] for v, g in reb.items()} \
            == dict(want[col])
    for col, counts in want.items():
        assert {k.split("=", 1)[1]: v for k, v in metrics.items()
                if k.startswith(f"tokens_written:{col}=")} == dict(counts)
    assert metrics["tokens_written"] == sum(want["language"].values())
    out = thresher("stats", str(run)).stdout
    for col, counts in want.items():
        line = next(ln for ln in out.splitlines() if f"tokens written by {col}:" in ln)
        assert line.split(": ", 1)[1] == ", ".join(f"{v} {n:,}"
                                                   for v, n in counts.most_common()), line
    assert f"export tokens/: {metrics['tokens_written']:,} tokens" in out
    thresher("report", str(run), "-o", str(tmp_path / "r.html"))
    html = (tmp_path / "r.html").read_text()
    for col, counts in want.items():
        cells = re.findall(rf'data-key="export\|tokens\|{col}\|([^|"]*)\|tokens" '
                           rf'data-run="a" data-value="(\d+)"', html)
        assert {v: int(n) for v, n in cells} == dict(counts)


# ---------------------------------------------------------------- executors
EXECUTOR_STAGE = {"stage": "tokenize_export", "shard_tokens": 30_000,
                  "shuffle": {"seed": 11, "buckets": 4}}


@pytest.fixture(scope="module")
def local_export(corpus, tok_path, tmp_path_factory) -> Path:
    """The rebalanced corpus exported by the stage on the local executor (2 workers)."""
    run = _run(corpus, tmp_path_factory.mktemp("local") / "run",
               [REBALANCE, {**EXECUTOR_STAGE, "tokenizer": str(tok_path)}])
    return run / "tokens"


def _executor_run(corpus: Path, tok_path: Path, out: Path, executor: dict, **params) -> Path:
    from pipelines import config_from_dict, run_pipeline

    cfg = config_from_dict({
        "input": {"format": "jsonl", "paths": [str(corpus / "*.jsonl")], "id_key": "id",
                  "fields": ["lang"]},
        "output": {"path": str(out)}, "executor": executor,
        "stages": [REBALANCE, {**EXECUTOR_STAGE, "tokenizer": str(tok_path), **params}]})
    run = run_pipeline(cfg, overwrite=True, progress=False)
    assert run.manifest.exists()
    return Path(run.root)


def test_the_export_on_ray_is_byte_identical_to_local(ray_cluster, corpus, tok_path,
                                                      local_export, tmp_path):
    run = _executor_run(corpus, tok_path, tmp_path / "ray", {"kind": "ray"})
    assert ray_cluster.is_initialized()  # the session's Ray cluster ran it
    assert _hashes(run / "tokens") == _hashes(local_export)  # export.json included
    assert len(_hashes(local_export)) > 4


def test_the_export_on_slurm_is_byte_identical_to_local(corpus, tok_path, local_export,
                                                        tmp_path):
    from test_slurm import _slurm_problem

    problem = _slurm_problem()
    if problem:
        if os.environ.get("THRESHER_REQUIRE_SLURM") == "1":
            pytest.fail(f"THRESHER_REQUIRE_SLURM=1 but {problem}")
        pytest.skip(problem)
    run = _executor_run(corpus, tok_path, tmp_path / "slurm",
                        {"kind": "slurm", "max_parallel": 2})
    jobs = json.loads((run / "slurm" / "jobs.json").read_text())["submissions"][0]["jobs"]
    assert {j["phase"] for j in jobs} >= {"main", "tokenize_export.write"}  # ran as jobs
    assert _hashes(run / "tokens") == _hashes(local_export)


def test_a_tokenize_export_before_other_stages_keeps_its_apply_phase(tok_path):
    from pipelines.plan import plan_phases
    from pipelines.registry import get

    def built(name, **params):
        cls = get(name)
        return cls(cls.Params(**params), name=name)

    export = built("tokenize_export", tokenizer=str(tok_path))
    last = plan_phases([built("length", min_chars=1), export], 3)
    assert [(p.name, p.final, p.collect) for p in last] == [
        ("main", True, "tokenize_export"), ("tokenize_export.write", False, "")]
    middle = plan_phases([export, built("length", min_chars=1)], 3)
    assert [(p.name, p.final, p.stages) for p in middle] == [
        ("main", False, []), ("tokenize_export.write", False, ["tokenize_export"]),
        ("apply-tokenize_export", True, ["tokenize_export", "length"])]


def test_the_stage_writing_to_s3_is_in_the_manifest_and_verified(corpus, tok_path,
                                                                 local_export, tmp_path):
    pytest.importorskip("moto")
    pytest.importorskip("s3fs")
    from s3server import serving

    with serving(tmp_path / "moto.log", "tokens") as srv:
        run = _executor_run(corpus, tok_path, tmp_path / "run", {"kind": "local", "workers": 2},
                            output="s3://tokens/t")
        arts = {a["path"]: a["sha256"] for a in
                json.loads((run / "manifest.json").read_text())["artifacts"]}
        client = srv.client()
        keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="tokens")["Contents"])
        got = {k.split("/")[-1]: hashlib.sha256(
            client.get_object(Bucket="tokens", Key=k)["Body"].read()).hexdigest() for k in keys}
        assert got == _hashes(local_export)  # the local export's bytes, export.json too
        assert arts == {f"s3://tokens/t/{k}": h for k, h in got.items() if k != "export.json"}
        ok = thresher("verify", str(run / "manifest.json"), str(run))
        assert f"and {len(arts)} token file(s)" in ok.stdout
        body = client.get_object(Bucket="tokens", Key="t/part-00000.bin")["Body"].read()
        client.put_object(Bucket="tokens", Key="t/part-00000.bin",
                          Body=bytes([body[0] ^ 1]) + body[1:])
        bad = thresher("verify", str(run / "manifest.json"), str(run), check=False)
    assert bad.returncode == 1 and [ln.split(": sha256")[0] for ln in _diff_lines(bad)] == [
        "DIFF s3://tokens/t/part-00000.bin (tokenize_export write)"], bad.stdout
