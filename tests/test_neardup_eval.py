"""Near-duplicate detection quality on the generated evaluation set (benchmarks/neardup_set.py).

5,000 documents from real text with logged edits; the truth is the exact Jaccard of
every pair (benchmarks/neardup_truth.py). The detection runs through the core
functions the way the minhash stage does: signatures per task, band rows
partitioned by hash, star edges per partition, one connected-components pass.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from stages import minhash_core as core

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


def detect(texts: list[str], tasks: int, partitions: int) -> np.ndarray:
    """Candidate edges between document indices, computed as the stage would."""
    bounds = np.linspace(0, len(texts), tasks + 1).astype(int)
    rows = []
    for t in range(tasks):  # "collect": one task's documents, keys (task << 32) | row
        part = texts[bounds[t]:bounds[t + 1]]
        keys = (np.uint64(t) << np.uint64(32)) | np.arange(len(part), dtype=np.uint64)
        sigs = np.concatenate([core.signatures(part[i:i + 700], SPEC)
                               for i in range(0, len(part), 700)])
        rows.append(core.band_rows(sigs, keys, SPEC))
    band, key, doc = (np.concatenate(x) for x in zip(*rows))
    where = core.bucket_partition(key, partitions)
    edges = np.concatenate([core.candidate_edges(band[where == p], key[where == p],
                                                 doc[where == p]) for p in range(partitions)])
    index = bounds[(edges >> np.uint64(32)).astype(np.int64)] + \
        (edges & np.uint64(0xFFFFFFFF)).astype(np.int64)  # back to document indices
    return index.astype(np.uint64)


def test_recall_and_false_removals_with_default_parameters(dataset):
    rows, texts, truth, _ = dataset
    edges = detect(texts, tasks=3, partitions=4)
    labels, removed = nt.clusters_from_edges(len(texts), edges)
    scores = nt.evaluate(truth, labels, removed)
    print("\nnear-duplicate detection, 5,000 documents, default parameters:\n"
          + json.dumps({k: round(v, 4) if isinstance(v, float) else v
                        for k, v in scores.items()}, indent=1))
    # the set is not trivial: many true pairs on both sides of the threshold
    assert scores["pairs[0.85-1]"] > 500 and scores["pairs[0.5-0.7]"] > 500
    assert 0.2 < scores["docs_without_match"] / len(texts) < 0.8
    assert scores["recall[0.85-1]"] >= 0.95
    assert scores["false_removal"] < 0.01
    assert scores["pair_precision"] > 0.7 and scores["bcubed_precision"] > 0.9
    # the same edges whatever the tasks and partitions
    again = detect(texts, tasks=1, partitions=1)
    assert np.array_equal(np.unique(again, axis=0), np.unique(edges, axis=0))


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
