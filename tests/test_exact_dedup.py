"""exact_dedup: a global stage run as collect -> group -> apply phases on real sentences.

The corpus is built from the Leipzig sentences in tests/data/lid: every
sentence once, plus repeats of some of them (verbatim, re-cased, re-spaced)
spread over several input files, so the expected survivors can be computed
independently here.
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import DATA, shard_hashes, thresher

from pipelines import PipelineConfig, config_from_dict, run_pipeline
from pipelines.plan import make_plan

SENTENCES = [json.loads(line) for line in
             (DATA / "lid" / "lingua-sentences-12lang.jsonl").read_text().splitlines()]


def make_corpus(root: Path, n_files: int = 4, seed: int = 7) -> list[dict]:
    """Write n_files JSONL files; return every document written, in file order."""
    rng = random.Random(seed)
    docs = []
    for s in SENTENCES:
        docs.append({"id": f"{s['id']}", "text": s["text"], "lang": s["gold"]})
        for r in range(rng.choice([0, 0, 0, 1, 2, 3])):
            variant = rng.choice(["same", "upper", "spaces"])
            text = {"same": s["text"], "upper": s["text"].upper(),
                    "spaces": "  " + s["text"].replace(" ", "   ") + "\n"}[variant]
            docs.append({"id": f"{s['id']}-copy{r}-{variant}", "text": text, "lang": s["gold"]})
    rng.shuffle(docs)
    root.mkdir(parents=True, exist_ok=True)
    for f in range(n_files):
        with open(root / f"part{f}.jsonl", "w") as fh:
            for d in docs[f::n_files]:
                fh.write(json.dumps(d, ensure_ascii=False) + "\n")
    return docs


def config(tmp: Path, data: Path, *, workers: int = 1, partitions: int = 4,
           out: str = "run", **params) -> PipelineConfig:
    return config_from_dict({
        "name": "exact",
        "input": {"format": "jsonl", "paths": [str(data / "*.jsonl")], "id_key": "id",
                  "fields": ["lang"]},
        "output": {"path": str(tmp / out)},
        "executor": {"kind": "local", "workers": workers},
        "stages": [{"stage": "exact_dedup", "partitions": partitions, **params},
                   {"stage": "length", "min_chars": 1}],
    })


def read_rows(run: Path) -> list[dict]:
    rows = []
    for p in sorted((run / "data").glob("*.parquet")):
        rows += pq.read_table(p).to_pylist()
    return rows


def norm(text: str, lowercase: bool) -> str:
    text = re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip()
    return text.lower() if lowercase else text


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("exact")
    docs = make_corpus(root / "in")
    return root, docs


def test_plan_has_collect_group_apply_phases(corpus):
    root, _ = corpus
    plan = make_plan(config(root, root / "in", partitions=5, out="plan"))
    assert [(p.name, p.kind, p.n_tasks) for p in plan.phases] == [
        ("main", "map", 4), ("exact_dedup.group", "step", 5), ("apply-exact_dedup", "map", 4)]
    assert plan.phases[0].collect == "exact_dedup" and not plan.phases[0].final
    assert plan.phases[2].source == "main" and plan.phases[2].stages == ["exact_dedup", "length"]


@pytest.mark.parametrize("lowercase", [False, True])
def test_survivors_are_the_smallest_id_of_each_group(corpus, tmp_path, lowercase):
    root, docs = corpus
    run = run_pipeline(config(tmp_path, root / "in", lowercase=lowercase))
    rows = read_rows(run.root)
    groups: dict[str, list[dict]] = {}
    for d in docs:
        groups.setdefault(norm(d["text"], lowercase), []).append(d)
    expected = {min(g, key=lambda d: d["id"])["id"]: len(g) for g in groups.values()}
    assert {r["id"]: r["exact_cluster_size"] for r in rows} == expected
    for r in rows:
        assert r["exact_cluster_id"] == r["id"]  # the survivor names its cluster
    stats = json.loads((run.root / "stats.json").read_text())
    st = stats["stages"]["exact_dedup"]
    assert st["docs_in"] == len(docs)
    assert st["dropped"] == {"duplicate": len(docs) - len(expected)}
    assert stats["phases"]["exact_dedup.group"]["metrics"]["duplicates"] == \
        len(docs) - len(expected)
    assert stats["output"]["rows"] == len(expected)


def test_same_bytes_whatever_workers_and_partitions(corpus, tmp_path):
    root, _ = corpus
    a = run_pipeline(config(tmp_path, root / "in", workers=1, partitions=1, out="a"))
    b = run_pipeline(config(tmp_path, root / "in", workers=2, partitions=7, out="b"))
    assert shard_hashes(a.root) == shard_hashes(b.root)
    assert len(shard_hashes(a.root)) == 4


def test_same_kept_set_whatever_input_files_and_workers(corpus, tmp_path):
    """The same documents in 2 files instead of 4 (other tasks, other doc keys), 2 workers:
    the shards split rows differently, but the kept documents, their cluster ids and sizes
    and the counts are the same."""
    root, docs = corpus
    two = tmp_path / "in2"
    assert sorted(d["id"] for d in make_corpus(two, n_files=2)) == sorted(d["id"] for d in docs)
    a = run_pipeline(config(tmp_path, root / "in", workers=1, partitions=1, out="a"))
    b = run_pipeline(config(tmp_path, two, workers=2, partitions=5, out="b"))
    assert len(shard_hashes(a.root)) == 4 and len(shard_hashes(b.root)) == 2

    def kept(run):
        return sorted((r["id"], r["exact_cluster_id"], r["exact_cluster_size"])
                      for r in read_rows(run.root))

    assert kept(a) == kept(b) and len(kept(a)) < len(docs)
    stats = [json.loads((r.root / "stats.json").read_text())["stages"]["exact_dedup"]
             for r in (a, b)]
    assert stats[0]["dropped"] == stats[1]["dropped"]


def test_annotate_keeps_all_and_marks_duplicates(corpus, tmp_path):
    root, docs = corpus
    run = run_pipeline(config(tmp_path, root / "in", mode="annotate"))
    rows = read_rows(run.root)
    assert len(rows) == len(docs)
    filtered = {r["id"] for r in read_rows(run_pipeline(config(tmp_path, root / "in",
                                                              out="f")).root)}
    assert {r["id"] for r in rows if r["exact_dedup_reason"] is None} == filtered
    assert {r["exact_dedup_reason"] for r in rows} == {None, "duplicate"}


def test_keep_longest_and_scope(tmp_path):
    data = tmp_path / "in"
    data.mkdir()
    rows = [{"id": "a", "text": "same text", "lang": "en", "q": 0.1},
            {"id": "b", "text": "same  text ", "lang": "en", "q": 0.9},
            {"id": "c", "text": "same text", "lang": "de", "q": 0.5}]
    (data / "x.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = {"name": "k", "input": {"format": "jsonl", "paths": [str(data / "*.jsonl")],
                                   "id_key": "id", "fields": ["lang", "q"]},
            "executor": {"kind": "local", "workers": 1}}

    def run(out, **params):
        cfg = config_from_dict({**base, "output": {"path": str(tmp_path / out)},
                                             "stages": [{"stage": "exact_dedup", **params}]})
        return sorted(r["id"] for r in read_rows(run_pipeline(cfg).root))

    assert run("first") == ["a"]
    assert run("longest", keep="longest") == ["b"]
    assert run("maxq", keep="max:q") == ["b"]
    assert run("scoped", scope="lang") == ["a", "c"]


def test_dups_says_exact_dedup_writes_no_clusters_table(corpus, tmp_path):
    root, _ = corpus
    run = run_pipeline(config(tmp_path, root / "in", out="dups"))
    proc = thresher("dups", str(run.root), check=False)
    assert proc.returncode != 0
    assert "only minhash_dedup writes one" in proc.stderr + proc.stdout
    assert "exact_dedup's counts are in `thresher stats` (exact_dedup)" in \
        proc.stderr + proc.stdout


def test_missing_scope_column_is_a_clear_error(corpus, tmp_path):
    root, _ = corpus
    with pytest.raises(Exception, match="needs column.*nope"):
        run_pipeline(config(tmp_path, root / "in", scope="nope"))


def test_bad_keep_policy_is_a_config_error(corpus, tmp_path):
    root, _ = corpus
    with pytest.raises(Exception, match="keep must be"):
        config(tmp_path, root / "in", keep="biggest")


def test_intermediate_shards_removed_unless_kept(corpus, tmp_path):
    root, _ = corpus
    run = run_pipeline(config(tmp_path, root / "in", out="gone"))
    assert not (run.root / "phases").exists() and (run.root / "work" / "exact_dedup").is_dir()
    cfg = config(tmp_path, root / "in", out="kept")
    cfg = cfg.model_copy(update={"output": cfg.output.model_copy(
        update={"keep_intermediate": True})})
    kept = run_pipeline(cfg)
    assert sorted(p.name for p in (kept.root / "phases" / "main").iterdir()) == [
        f"part-{t:05d}-0000.parquet" for t in range(4)]


@pytest.mark.parametrize("codec", ["zstd", "gzip"])
def test_intermediate_codec_leaves_the_output_unchanged(corpus, tmp_path, codec):
    """``output.intermediate_compression`` (default auto: none locally) codes the shards
    between phases; the final shards are the same bytes whatever it is. Intermediate
    shards are not hashed (nothing reads their sha256), final ones are."""
    from pipelines.io.storage import on_network_filesystem

    root, _ = corpus
    auto = "ZSTD" if on_network_filesystem(tmp_path) else "UNCOMPRESSED"  # none on a local disk
    runs = {}
    for c in ("auto", codec):
        cfg = config(tmp_path, root / "in", out=c)
        cfg = cfg.model_copy(update={"output": cfg.output.model_copy(
            update={"keep_intermediate": True, "intermediate_compression": c})})
        runs[c] = run_pipeline(cfg).root
        shard = pq.ParquetFile(runs[c] / "phases" / "main" / "part-00000-0000.parquet")
        assert shard.metadata.row_group(0).column(0).compression == \
            {"auto": auto}.get(c, c.upper())
        rec = json.loads((runs[c] / "stats" / "main" / "task-00000.json").read_text())
        assert rec["shards"] and all(s["sha256"] is None for s in rec["shards"])
        final = json.loads((runs[c] / "manifest.json").read_text())["outputs"]
        assert final and all(len(s["sha256"]) == 64 for s in final)
        assert pq.ParquetFile(runs[c] / final[0]["path"]).metadata.row_group(0) \
            .column(0).compression == "ZSTD"  # output.compression, untouched
    data = [sorted(p.read_bytes() for p in (r / "data").glob("*.parquet")) for r in runs.values()]
    assert data[0] == data[1] and data[0]
