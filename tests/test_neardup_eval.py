"""Near-duplicate detection quality on the generated evaluation set (benchmarks/neardup_set.py).

5,000 documents from real text with logged edits; the truth is the exact Jaccard of
every pair (benchmarks/neardup_truth.py). The detection is the real ``minhash_dedup``
stage with its default parameters, in a pipeline run (JSONL in, Parquet out): its
clusters table and kept shards are scored against the truth.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import REPO

from pipelines import config_from_dict, run_pipeline
from stages.dedup import minhash_core as core

sys.path.insert(0, str(REPO / "benchmarks"))
import neardup_set as ns  # noqa: E402
import neardup_truth as nt  # noqa: E402

N_DOCS = 5000
SPEC = core.MinHashSpec()  # the defaults: word 5-grams, 14 bands x 8 rows


@pytest.fixture(scope="module")
def seeds():
    return ns.load_seeds()


@pytest.fixture(scope="module")
def dataset(seeds):
    rows = ns.generate(N_DOCS, seed=0, seeds=seeds)
    texts = [r["text"] for r in rows]
    flat, sizes = core.shingle_sets(texts, SPEC)
    return rows, texts, nt.exact_pairs_of_sets(flat, sizes), (flat, sizes)


def run_stage(rows: list[dict], tmp, n_files: int = 4, workers: int = 2):
    """The minhash_dedup stage with default parameters on the set, as JSONL files."""
    data = tmp / "in"
    data.mkdir()
    for f in range(n_files):
        with open(data / f"part{f}.jsonl", "w", encoding="utf-8") as fh:
            for r in rows[f::n_files]:
                fh.write(json.dumps({"id": r["id"], "text": r["text"]}, ensure_ascii=False)
                         + "\n")
    cfg = config_from_dict({
        "name": "neardup-eval",
        "input": {"format": "jsonl", "paths": [str(data / "*.jsonl")], "id_key": "id"},
        "output": {"path": str(tmp / "run")},
        "executor": {"kind": "local", "workers": workers},
        "stages": [{"stage": "minhash_dedup"}],
    })
    return run_pipeline(cfg)


def labels_of_run(run, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(cluster label, removed) per document index, from the run's clusters table and shards;
    checks the two agree and that kept documents carry their cluster id and size."""
    index = {d: i for i, d in enumerate(ids)}
    labels = np.arange(len(ids), dtype=np.int64)
    size = np.ones(len(ids), dtype=np.int64)
    table = pq.read_table(run.root / "work" / "minhash_dedup" / "clusters.parquet").to_pylist()
    keep_in_table = np.ones(len(ids), bool)
    for r in table:
        i = index[r["id"]]
        labels[i], size[i], keep_in_table[i] = index[r["cluster_id"]], r["cluster_size"], r["keep"]
    kept = [r for p in sorted(run.data.glob("*.parquet")) for r in pq.read_table(
        p, columns=["id", "minhash_cluster_id", "minhash_cluster_size"]).to_pylist()]
    removed = np.ones(len(ids), bool)
    for r in kept:
        i = index[r["id"]]
        removed[i] = False
        assert (index[r["minhash_cluster_id"]], r["minhash_cluster_size"]) == (labels[i], size[i])
    assert np.array_equal(removed, ~keep_in_table)
    assert np.array_equal(np.bincount(labels, minlength=len(ids))[labels], size)
    return labels, removed


def linked_pair_jaccard(run, ids: list[str], truth: nt.Truth) -> np.ndarray:
    """Exact Jaccard of every pair the stage linked directly (its candidate edges: a
    document and the smallest document of an LSH bucket they share); 0 below 0.3."""
    work = run.root / "work" / "minhash_dedup"
    index = {d: i for i, d in enumerate(ids)}
    members = pq.read_table(work / "members")
    key_index = dict(zip(members.column("key").to_pylist(),
                         (index[i] for i in members.column("id").to_pylist())))
    edges = pq.read_table(work / "edges")
    u = np.array([key_index[k] for k in edges.column("u").to_pylist()], np.int64)
    v = np.array([key_index[k] for k in edges.column("v").to_pylist()], np.int64)
    a, b = np.minimum(u, v), np.maximum(u, v)
    codes = truth.a.astype(np.int64) * truth.n_docs + truth.b  # sorted by (a, b)
    want = a * truth.n_docs + b
    pos = np.minimum(np.searchsorted(codes, want), len(codes) - 1)
    return np.where(codes[pos] == want, truth.jaccard[pos], 0.0)


def test_recall_and_false_removals_of_the_stage_with_default_parameters(dataset, tmp_path):
    rows, texts, truth, _ = dataset
    run = run_stage(rows, tmp_path)
    labels, removed = labels_of_run(run, [r["id"] for r in rows])
    scores = nt.evaluate(truth, labels, removed)
    linked = linked_pair_jaccard(run, [r["id"] for r in rows], truth)
    scores["linked_pairs"] = len(linked)
    scores["linked_precision[J>=0.5]"] = float(np.mean(linked >= 0.5))
    scores["linked_precision[J>=0.7]"] = float(np.mean(linked >= 0.7))
    print("\nminhash_dedup stage, default parameters, 5,000 documents:\n"
          + json.dumps({k: round(v, 4) if isinstance(v, float) else v
                        for k, v in scores.items()}, indent=1))
    st = json.loads(run.stats_json.read_text())
    assert st["stages"]["minhash_dedup"]["dropped"]["near_duplicate"] == int(removed.sum())
    # the set is not trivial: many true pairs on both sides of the threshold
    assert scores["pairs[0.85-1]"] > 500 and scores["pairs[0.5-0.7]"] > 500
    assert 0.2 < scores["docs_without_match"] / len(texts) < 0.8
    assert scores["recall[0.85-1]"] >= 0.95
    assert scores["false_removal"] < 0.01
    assert scores["pair_precision"] > 0.7 and scores["bcubed_precision"] > 0.9
    assert scores["linked_precision[J>=0.5]"] > 0.95


def test_truth_is_exact(dataset):
    rows, texts, truth, (flat, sizes) = dataset
    sets = np.split(flat, np.cumsum(sizes)[:-1])
    rng = np.random.default_rng(0)
    for i in rng.choice(len(texts), 20, replace=False):
        assert np.array_equal(sets[i], core.shingle_hashes(texts[i], SPEC))
    for k in rng.choice(len(truth.a), 300, replace=False):
        a, b = int(truth.a[k]), int(truth.b[k])
        assert truth.jaccard[k] == pytest.approx(core.jaccard(sets[a], sets[b]))
    # a document's best match, by brute force against every other document's set
    order = np.argsort(flat)
    by_hash, doc = flat[order], np.repeat(np.arange(len(texts)), sizes)[order]
    for i in rng.choice(len(texts), 20, replace=False):
        lo, hi = np.searchsorted(by_hash, sets[i], "left"), np.searchsorted(by_hash, sets[i],
                                                                            "right")
        hits = np.concatenate([doc[a:b] for a, b in zip(lo, hi)])
        inter = np.bincount(hits, minlength=len(texts))
        jac = inter / (sizes + sizes[i] - inter)
        jac[i] = 0.0
        assert truth.max_jaccard[i] == pytest.approx(jac.max())


def test_generation_is_deterministic_and_logged(seeds, dataset):
    rows = dataset[0]
    assert ns.generate(400, seed=0, seeds=seeds) == ns.generate(400, seed=0, seeds=seeds)
    assert ns.generate(400, seed=1, seeds=seeds) != ns.generate(400, seed=0, seeds=seeds)
    ids = {r["id"] for r in rows}
    assert len(ids) == len(rows) == N_DOCS
    ops = {e["op"] for r in rows for e in r["edits"]}
    assert {"seed", "tokens", "drop_paragraphs", "move_paragraphs", "truncate",
            "add_boilerplate", "remove_boilerplate", "noise", "splice", "copy", "site_page",
            "whole_page"} <= ops
    for r in rows:
        assert (r["parent"] is None) == (r["edits"][0]["op"] == "seed")
        assert r["parent"] is None or r["parent"] in ids
        assert all(e["from"] in ids for e in r["edits"] if e["op"] == "splice")
    sources = {r["source"].split("-")[0] for r in rows}
    assert {"traf", "sh", "read", "wikitext", "lingua"} <= sources
    langs = {r["source"] for r in rows if r["source"].startswith("lingua-")}
    assert {"lingua-zh", "lingua-ja", "lingua-th"} <= langs


def test_cli_writes_the_set(tmp_path):
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "neardup_set.py"), "--docs", "300",
                    "--seed", "3", "--out", str(tmp_path)], check=True, capture_output=True,
                   cwd=REPO)
    docs = [json.loads(x) for x in (tmp_path / "docs.jsonl").read_text("utf-8").splitlines()]
    pairs = [json.loads(x) for x in (tmp_path / "pairs.jsonl").read_text("utf-8").splitlines()]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(docs) == summary["docs"] == 300 and summary["pairs_written"] == len(pairs) > 0
    text = {d["id"]: d["text"] for d in docs}
    for p in pairs[:20]:
        exact = core.jaccard(core.shingle_hashes(text[p["a"]], SPEC),
                             core.shingle_hashes(text[p["b"]], SPEC))
        assert p["jaccard"] == pytest.approx(exact, abs=1e-6) and p["jaccard"] >= 0.3
