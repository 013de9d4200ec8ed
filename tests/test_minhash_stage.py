"""minhash_dedup as a pipeline stage: the sharded phases (collect -> buckets -> cluster ->
apply) find exactly the clusters the in-memory core finds on the same texts, whatever
the number of input files, partitions and workers.

Documents are paragraphs of real Leipzig sentences (tests/data/lid); near-duplicate
variants drop, swap or add a sentence, or re-case and re-space the text.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import DATA, shard_hashes, thresher

from pipelines import config_from_dict, run_pipeline
from stages.dedup import minhash_core as core

SENTENCES: dict[str, list[str]] = {}
for line in (DATA / "lid" / "lingua-sentences-12lang.jsonl").read_text().splitlines():
    d = json.loads(line)
    SENTENCES.setdefault(d["gold"], []).append(d["text"])


def make_docs(seed: int = 3) -> list[dict]:
    rng = random.Random(seed)
    docs = []
    for lang, sents in sorted(SENTENCES.items()):
        for k in range(0, 30, 6):  # 5 paragraphs of 6 sentences per language
            para = sents[k:k + 6]
            base = f"{lang}-{k:02d}"
            docs.append({"id": base, "text": " ".join(para), "lang": lang})
            for v in range(rng.choice([0, 1, 2, 3])):
                p = list(para)
                op = rng.choice(["drop", "swap", "add", "noise"])
                if op == "drop":
                    p.pop(rng.randrange(len(p)))
                elif op == "swap":
                    i = rng.randrange(len(p) - 1)
                    p[i], p[i + 1] = p[i + 1], p[i]
                elif op == "add":
                    p.append(rng.choice(sents))
                text = " ".join(p)
                if op == "noise":
                    text = "  " + text.upper().replace(" ", "  ") + " "
                docs.append({"id": f"{base}-v{v}-{op}", "text": text, "lang": lang})
    rng.shuffle(docs)
    return docs


def write_inputs(root: Path, docs: list[dict], n_files: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for f in range(n_files):
        with open(root / f"part{f}.jsonl", "w") as fh:
            for d in docs[f::n_files]:
                fh.write(json.dumps(d, ensure_ascii=False) + "\n")
    return root


def config(tmp: Path, data: Path, out: str, workers: int = 1, **params):
    return config_from_dict({
        "name": "minhash",
        "input": {"format": "jsonl", "paths": [str(data / "*.jsonl")], "id_key": "id",
                  "fields": ["lang"]},
        "output": {"path": str(tmp / out)},
        "executor": {"kind": "local", "workers": workers},
        "stages": [{"stage": "minhash_dedup", **params}],
    })


def reference_clusters(docs: list[dict], spec: core.MinHashSpec) -> set[frozenset[str]]:
    """The core on all texts at once, in memory: clusters of >1 document as id sets."""
    ids = sorted(d["id"] for d in docs)
    text = {d["id"]: d["text"] for d in docs}
    keys = np.arange(len(ids), dtype=np.uint64)
    sigs = core.signatures([text[i] for i in ids], spec)
    band, key, doc = core.band_rows(sigs, keys, spec)
    nodes, labels = core.connected_components(core.candidate_edges(band, key, doc))
    groups: dict[int, set[str]] = {}
    for n, lab in zip(nodes.tolist(), labels.tolist()):
        groups.setdefault(lab, set()).add(ids[n])
    return {frozenset(g) for g in groups.values()}


def run_clusters(run) -> set[frozenset[str]]:
    t = pq.read_table(run.root / "work" / "minhash_dedup" / "clusters.parquet").to_pylist()
    groups: dict[str, set[str]] = {}
    for r in t:
        groups.setdefault(r["cluster_id"], set()).add(r["id"])
    return {frozenset(g) for g in groups.values()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("mh")
    docs = make_docs()
    return root, docs, write_inputs(root / "in3", docs, 3), write_inputs(root / "in5", docs, 5)


def test_sharded_stage_finds_the_in_memory_clusters(corpus, tmp_path):
    root, docs, in3, _ = corpus
    run = run_pipeline(config(tmp_path, in3, "run", partitions=4))
    found = run_clusters(run)
    assert found == reference_clusters(docs, core.MinHashSpec())
    # every family with a variant other than an added sentence is caught
    families = {}
    for d in docs:
        families.setdefault(d["id"][:5], set()).add(d["id"])
    assert sum(len(c) for c in found) >= 0.8 * sum(len(f) for f in families.values()
                                                   if len(f) > 1)
    rows = [r for p in sorted(run.data.glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    kept = {r["id"] for r in rows}
    for c in found:  # one survivor per cluster: the smallest id
        assert kept & c == {min(c)}
    for r in rows:
        size = next((len(c) for c in found if r["id"] in c), 1)
        assert r["minhash_cluster_size"] == size
    st = json.loads(run.stats_json.read_text())
    assert st["stages"]["minhash_dedup"]["dropped"]["near_duplicate"] == \
        sum(len(c) - 1 for c in found)


def kept_rows(run) -> list[tuple]:
    """(id, cluster id, cluster size) of every kept document, sorted."""
    return sorted((r["id"], r["minhash_cluster_id"], r["minhash_cluster_size"])
                  for p in run.data.glob("*.parquet") for r in pq.read_table(p).to_pylist())


def test_same_output_whatever_files_partitions_and_workers(corpus, tmp_path):
    root, docs, in3, in5 = corpus
    a = run_pipeline(config(tmp_path, in3, "a", partitions=1))
    b = run_pipeline(config(tmp_path, in3, "b", workers=2, partitions=7))
    # same input files (tasks), other partitions and workers: the same shard bytes
    assert shard_hashes(a.root) == shard_hashes(b.root)
    # the same documents in 5 files instead of 3 (other tasks, other doc keys), 2 workers:
    # shards differ in how rows are split, but the kept documents, their cluster ids and
    # sizes, the clusters table (bytes) and the counts are the same
    c = run_pipeline(config(tmp_path, in5, "c", workers=2, partitions=3))
    assert len(shard_hashes(c.root)) == 5 and len(shard_hashes(a.root)) == 3
    assert kept_rows(c) == kept_rows(a) == kept_rows(b)
    assert len(kept_rows(a)) < len(docs)
    tables = {(r.root / "work/minhash_dedup/clusters.parquet").read_bytes() for r in (a, b, c)}
    assert len(tables) == 1 and pq.read_table(a.root / "work/minhash_dedup/clusters.parquet"
                                              ).num_rows > 0
    dropped = [json.loads(r.stats_json.read_text())["stages"]["minhash_dedup"]["dropped"]
               for r in (a, b, c)]
    assert dropped[0] == dropped[1] == dropped[2]


def test_scope_and_threshold(corpus, tmp_path):
    root, docs, in3, _ = corpus
    same = [{"id": "a", "text": SENTENCES["en"][0] * 3, "lang": "en"},
            {"id": "b", "text": SENTENCES["en"][0] * 3, "lang": "de"}]
    data = write_inputs(tmp_path / "scope", same, 1)
    assert len(run_clusters(run_pipeline(config(tmp_path, data, "g")))) == 1
    assert run_clusters(run_pipeline(config(tmp_path, data, "s", scope="lang"))) == set()
    cfg = config(tmp_path, in3, "t", threshold=0.9, num_perm=128)
    mh = next(s for s in cfg.stages if s.stage == "minhash_dedup")
    from datasketch.lsh import _optimal_param

    assert (mh.params.bands, mh.params.rows) == _optimal_param(0.9, 128, 0.5, 0.5) == (5, 25)


SPEC_PARAMS = ("unit", "n", "bands", "rows", "seed", "lowercase", "punctuation_as_space",
               "normalize_digits", "unicode", "collapse_whitespace")


@pytest.mark.parametrize("params", [
    {"unit": "char", "n": 9},
    {"n": 3, "bands": 20, "rows": 5, "seed": 7},
    {"lowercase": False, "collapse_whitespace": False},
    {"unicode": "none", "punctuation_as_space": False, "normalize_digits": False, "seed": 2**63},
])
def test_shingling_and_lsh_parameters_reach_the_core(corpus, tmp_path, params):
    """Each parameter changes what the stage finds exactly as it changes the core's result."""
    root, docs, in3, _ = corpus
    run = run_pipeline(config(tmp_path, in3, "p", partitions=3, **params))
    mh = next(s for s in config(tmp_path, in3, "x", **params).stages
              if s.stage == "minhash_dedup")
    spec = core.MinHashSpec(**{k: getattr(mh.params, k) for k in SPEC_PARAMS})
    assert {k: getattr(spec, k) for k in params} == params
    expected = reference_clusters(docs, spec)
    assert run_clusters(run) == expected and expected
    if "lowercase" in params:  # re-cased, re-spaced copies are no longer near-duplicates
        assert expected != reference_clusters(docs, core.MinHashSpec())


def test_keep_policies_and_annotate(corpus, tmp_path):
    root, docs, _, _ = corpus
    rng = random.Random(5)
    scored = [{**d, "q": round(rng.random(), 3)} for d in docs]
    data = write_inputs(tmp_path / "scored", scored, 3)
    by_id = {d["id"]: d for d in scored}

    def survivors(out, **params):
        cfg = config_from_dict({
            "name": "keep", "executor": {"kind": "local", "workers": 1},
            "input": {"format": "jsonl", "paths": [str(data / "*.jsonl")], "id_key": "id",
                      "fields": ["lang", "q"]},
            "output": {"path": str(tmp_path / out)},
            "stages": [{"stage": "minhash_dedup", **params}]})
        run = run_pipeline(cfg)
        return run, [r for p in sorted(run.data.glob("*.parquet"))
                     for r in pq.read_table(p).to_pylist()]

    run, rows = survivors("first")
    clusters = run_clusters(run)
    assert len(clusters) > 5
    for params, best in [({"keep": "longest"}, lambda c: (-len(by_id[c]["text"]), c)),
                         ({"keep": "max:q"}, lambda c: (-by_id[c]["q"], c))]:
        _, rows = survivors(params["keep"].replace(":", "_"), **params)
        kept = {r["id"]: r for r in rows}
        for c in clusters:
            winner = min(c, key=best)
            assert set(kept) & c == {winner}
            assert kept[winner]["minhash_cluster_id"] == winner
            assert kept[winner]["minhash_cluster_size"] == len(c)
    run, rows = survivors("annotate", mode="annotate")
    assert len(rows) == len(docs)
    dropped = {r["id"] for r in rows if r["minhash_dedup_reason"] == "near_duplicate"}
    assert dropped == set().union(*clusters) - {min(c) for c in clusters}
    assert {r["minhash_dedup_reason"] for r in rows} == {None, "near_duplicate"}


def test_dups_command_shows_survivor_and_removed_text(corpus, tmp_path):
    root, docs, in3, _ = corpus
    run = run_pipeline(config(tmp_path, in3, "dups"))
    out = thresher("dups", str(run.root), "--top", "2").stdout
    assert "kept" in out and "removed" in out and "clusters" in out
    clusters = run_clusters(run)
    size = max(len(c) for c in clusters)
    first = min(min(c) for c in clusters if len(c) == size)  # largest first, then by id
    assert f"cluster {first} ({size} documents)" in out
    # the survivor, then removed members with the start of their text
    table = pq.read_table(run.root / "work" / "minhash_dedup" / "clusters.parquet").to_pylist()
    members = [r for r in table if r["cluster_id"] == first]
    assert members[0]["keep"] and members[0]["id"] == first
    block = out.split(f"cluster {first} ")[1].split("\ncluster ")[0]
    lines = block.splitlines()
    for m in members[1:3]:
        at = next(i for i, line in enumerate(lines) if f"removed {m['id']} " in line)
        assert " ".join(m["snippet"].split())[:20] in lines[at + 1]  # fits 80 columns
    assert f"kept    {first} " in block


def test_dups_reads_a_large_clusters_table_batch_by_batch(tmp_path):
    """Clusters that straddle the reader's batches are shown whole, in file order, and the
    totals come from the whole file."""
    from rich.console import Console

    from pipelines.inspection.dups import print_dups
    from pipelines.io.files import write_table_atomic

    sizes = [700, 700, 3, 2] + [2] * 1000  # the first two clusters cross batch boundaries
    rows = []
    for c, size in enumerate(sizes):
        for m in range(size):
            rows.append({"cluster_id": f"c{c:04d}", "cluster_size": size, "keep": m == 0,
                         "id": f"c{c:04d}-{m:03d}", "length": 10 + m, "url": None,
                         "snippet": f"text of member {m} of cluster {c}"})
    path = tmp_path / "work" / "minhash_dedup" / "clusters.parquet"
    write_table_atomic(path, pa.Table.from_pylist(rows), row_group_size=500)
    console = Console(record=True, width=200)
    print_dups(tmp_path, console, top=3, per_cluster=2)
    out = console.export_text()
    assert f"{len(sizes):,} clusters, {len(rows):,} documents in them, " \
           f"{len(rows) - len(sizes):,} removed; the 3 largest" in out
    shown = [line.split()[1] for line in out.splitlines() if line.startswith("cluster ")]
    assert shown == ["c0000", "c0001", "c0002"]
    assert out.count("... and 697 more") == 2  # 700 members: 3 shown
    assert "kept    c0001-000 " in out and "removed c0001-002 " in out


def test_old_name_strip_punctuation_still_works_with_one_warning(corpus, tmp_path):
    """minhash_dedup's ``strip_punctuation`` counted punctuation as a space (exact_dedup's
    deletes it): it is now ``punctuation_as_space``. The old name gives the same run, one
    warning naming the new key, the new name in the run's config.yaml, and the
    fingerprint the old name had, so runs made before the rename still resume."""
    import yaml

    from stages.dedup import minhash

    root, docs, in3, _ = corpus

    def write(name: str, **params) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({
            "input": {"format": "jsonl", "paths": [str(in3 / "*.jsonl")], "id_key": "id"},
            "output": {"path": str(tmp_path / name)},
            "stages": [{"stage": "minhash_dedup", **params}]}))
        return path

    minhash._WARNED.clear()
    old, new = write("old", strip_punctuation=False), write("new", punctuation_as_space=False)
    proc = thresher("run", str(old), "-q")
    warned = [line for line in proc.stderr.splitlines() if "strip_punctuation" in line]
    assert len(warned) == 1 and "`punctuation_as_space`" in warned[0], proc.stderr
    assert "strip_punctuation" not in thresher("run", str(new), "-q").stderr
    assert shard_hashes(tmp_path / "old") == shard_hashes(tmp_path / "new")
    for run in ("old", "new"):
        written = yaml.safe_load((tmp_path / run / "config.yaml").read_text())
        assert written["stages"][0]["punctuation_as_space"] is False
        assert "strip_punctuation" not in written["stages"][0]
    # no longer near-duplicates once punctuation glues words together
    assert run_clusters(run_pipeline(config(tmp_path, in3, "d"))) != run_clusters(
        run_pipeline(config(tmp_path, in3, "s", strip_punctuation=False)))

    from pipelines.config import load_config

    fingerprints = {load_config(p).fingerprint() for p in (old, new)}
    assert len(fingerprints) == 1
    # hashed under the old name: what the same config hashed to before the rename
    cfg = load_config(new)
    d = cfg.to_dict(resolved=True)
    for key in ("executor", "samples", "max_error_rate"):
        d.pop(key)
    d["output"] = {k: v for k, v in d["output"].items() if k not in ("path", "keep_intermediate")}
    d["stages"][0]["strip_punctuation"] = d["stages"][0].pop("punctuation_as_space")
    assert fingerprints == {hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()}

    both = write("both", strip_punctuation=False, punctuation_as_space=False)
    proc = thresher("validate", str(both), check=False)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("thresher: error:")]
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr
    assert "give only `punctuation_as_space`" in errors[0]
