"""minhash_dedup's sharded clustering (``cluster_memory``, stages/dedup/minhash_sharded.py).

The large-star / small-star operations are checked against the in-memory connected
components on random graphs, long paths and dedup-shaped edge lists, run whole and
split into node partitions. The stage is run on the near-duplicate evaluation set
(benchmarks/neardup_set.py: real text with logged edits) with the budget forced small, so
the rounds really run, and must write the single-task run's clusters table and
byte-identical output shards with 1 or 2 workers, through the in-memory path within the
budget, through the fallback after a round cap, after a SIGKILL and --resume, and with
the run directory on S3. A round cap hit with the rest over the budget fails naming
``cluster_rounds``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import REPO, shard_hashes, thresher

from pipelines import config_from_dict, run_pipeline
from stages.dedup import minhash_core as core

sys.path.insert(0, str(REPO / "benchmarks"))
import bench_cluster  # noqa: E402
import neardup_set as ns  # noqa: E402

STAGE = "minhash_dedup"
U64 = np.uint64


# ------------------------------------------------------------------ the operations
def _random_graph(rng: np.random.Generator, n_nodes: int, n_edges: int) -> np.ndarray:
    keys = np.unique(rng.integers(0, 2**63, n_nodes, dtype=np.int64).astype(U64))
    a, b = keys[rng.integers(0, len(keys), n_edges)], keys[rng.integers(0, len(keys), n_edges)]
    a, b = a[a != b], b[a != b]
    return np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1)


def _path(rng: np.random.Generator, n: int) -> np.ndarray:
    keys = np.sort(rng.choice(2**40, n, replace=False)).astype(U64)[rng.permutation(n)]
    return np.stack([np.minimum(keys[:-1], keys[1:]), np.maximum(keys[:-1], keys[1:])], 1)


def _edge_set(key: np.ndarray, nbr: np.ndarray) -> set[tuple[int, int]]:
    return {(min(a, b), max(a, b)) for a, b in zip(key.tolist(), nbr.tolist())}


def _partitioned(op, key: np.ndarray, nbr: np.ndarray, P: int):
    """``op`` run per node partition, as the step tasks run it, outputs concatenated."""
    part = core.node_partition(key, P)
    outs = [op(key[part == p], nbr[part == p]) for p in range(P)]
    return [np.concatenate([o[i] for o in outs]) for i in range(2)], \
        [o[2] for o in outs if len(o) > 2]


GRAPHS = {"random sparse": lambda r: _random_graph(r, 3000, 2000),
          "random dense": lambda r: _random_graph(r, 500, 3000),
          "path": lambda r: _path(r, 2000),
          "dedup-shaped": lambda r: bench_cluster.edge_list(5000, int(r.integers(100)))}


@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_star_rounds_find_the_connected_components_whatever_the_partitioning(graph):
    rng = np.random.default_rng(7)
    edges = GRAPHS[graph](rng)
    nodes, labels = core.connected_components(edges)
    s_nodes, s_labels, rounds = core.star_components(edges)
    assert np.array_equal(nodes, s_nodes) and np.array_equal(labels, s_labels)
    assert rounds >= 1
    # each operation split over node partitions gives the same edge set, never more edges
    key, nbr = core.both_ways(edges[:, 0], edges[:, 1])
    n_edges = len(edges)
    for _ in range(rounds):
        sk, sn, stars = core.large_star(key, nbr)
        (pk, pn), flags = _partitioned(core.large_star, key, nbr, 3)
        assert _edge_set(pk, pn) == _edge_set(sk, sn) and all(flags) == stars
        assert not stars and len(sk) <= n_edges and np.all(sk > sn)
        key, nbr = core.small_star(sk, sn)
        (pk, pn), _ = _partitioned(core.small_star, sk, sn, 3)
        assert _edge_set(pk, pn) == _edge_set(key, nbr)
        assert len(key) <= 2 * n_edges
        n_edges = len(key) // 2
    assert core.large_star(key, nbr)[2]  # a star forest now: every node a root or a leaf
    got_nodes, got_labels = core.star_labels(key, nbr)
    assert np.array_equal(got_nodes, nodes) and np.array_equal(got_labels, labels)


def test_small_star_refuses_rows_that_are_not_node_then_smaller_neighbour():
    with pytest.raises(ValueError, match="smaller"):
        core.small_star(np.array([1], U64), np.array([2], U64))


# ------------------------------------------------------------------ the stage
@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    rows = ns.generate(1500, seed=0, seeds=ns.load_seeds())
    data = tmp_path_factory.mktemp("neardup")
    for f in range(4):
        with open(data / f"part{f}.jsonl", "w", encoding="utf-8") as fh:
            for r in rows[f::4]:
                fh.write(json.dumps({"id": r["id"], "text": r["text"]}, ensure_ascii=False)
                         + "\n")
    return data


def config_dict(data: Path, out: str, workers: int = 1, **params) -> dict:
    return {"name": "sharded", "input": {"format": "jsonl", "paths": [str(data / "*.jsonl")],
                                         "id_key": "id"},
            "output": {"path": out}, "executor": {"kind": "local", "workers": workers},
            "stages": [{"stage": STAGE, "partitions": 4, **params}]}


def run(data: Path, out: Path, workers: int = 1, **params):
    return run_pipeline(config_from_dict(config_dict(data, str(out), workers, **params)))


def clusters(run_dir: Path):
    return pq.read_table(run_dir / "work" / STAGE / "clusters.parquet")


def metrics(run_dir: Path) -> dict[str, dict]:
    phases = json.loads((run_dir / "stats.json").read_text())["phases"]
    return {k.split(".", 1)[1]: v.get("metrics", {}) for k, v in phases.items()
            if k.startswith(STAGE + ".")}


@pytest.fixture(scope="module")
def single(corpus, tmp_path_factory) -> Path:
    """Today's single-task clustering."""
    out = tmp_path_factory.mktemp("single") / "run"
    run(corpus, out)
    assert clusters(out).num_rows > 100
    return out


def test_rounds_give_the_single_task_clusters_and_shard_bytes(corpus, single, tmp_path):
    """2 workers here, 1 in the single-task run and in the fallback test below."""
    out = tmp_path / "run"
    run(corpus, out, 2, cluster_memory=1, cluster_rounds=3)  # 1 byte: rounds
    m = metrics(out)
    assert m["large-star-00"]["star_rows_in"] > 0 and "in_memory_edges" not in m["large-star-00"]
    assert m["small-star-00"]["star_rows_in"] > 0  # more than one round ran ...
    assert m["small-star-02"] == {"star_noop_tasks": 4}  # ... and it converged before the cap
    assert "fallback_edges" not in m["label"]
    assert shard_hashes(out) == shard_hashes(single)
    assert clusters(out).equals(clusters(single))
    assert m["cluster"]["clusters"] == metrics(single)["cluster"]["clusters"]
    assert len(list((out / "work" / STAGE / "decisions").glob("part-*.parquet"))) == 4


def test_within_the_budget_one_task_clusters_in_memory(corpus, single, tmp_path):
    out = tmp_path / "run"
    run(corpus, out, cluster_memory="1GB", cluster_rounds=2)
    m = metrics(out)
    assert m["large-star-00"]["in_memory_edges"] > 0
    assert m["small-star-01"] == {"star_noop_tasks": 4}
    assert shard_hashes(out) == shard_hashes(single) and clusters(out).equals(clusters(single))


def test_round_cap_fails_loudly_over_the_budget_and_falls_back_within_it(corpus, single,
                                                                         tmp_path):
    with pytest.raises(Exception, match="cluster_rounds"):
        run(corpus, tmp_path / "capped", cluster_memory=1, cluster_rounds=1)
    assert not (tmp_path / "capped" / "data").exists() or \
        not list((tmp_path / "capped" / "data").glob("*.parquet"))
    cc = tmp_path / "capped" / "work" / STAGE / "cc"

    def rows(i: int) -> int:
        return sum(pq.ParquetFile(p).metadata.num_rows for p in (cc / f"{i:02d}").glob("*.parquet"))

    first, left = rows(0) // 2, rows(2) // 2
    assert 0 < left < first  # a budget between: rounds run, then the rest fits
    out = tmp_path / "fallback"
    run(corpus, out, cluster_memory=left * 100, cluster_rounds=1)
    m = metrics(out)
    assert "in_memory_edges" not in m["large-star-00"] and m["label"]["fallback_edges"] == left
    assert shard_hashes(out) == shard_hashes(single) and clusters(out).equals(clusters(single))


def _done(run_dir: Path, phase: str) -> int:
    d = run_dir / "stats" / phase
    return len(list(d.glob("task-*.json"))) if d.is_dir() else 0


def test_sigkill_in_a_round_then_resume_gives_the_same_bytes(corpus, single, tmp_path):
    out = tmp_path / "run"
    cfg = tmp_path / "sharded.yaml"
    cfg.write_text(yaml.safe_dump(config_dict(corpus, str(out), workers=2, cluster_memory=1,
                                              cluster_rounds=3)))
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", str(cfg), "--quiet"],
                            cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _done(out, f"{STAGE}.small-star-00") < 1 and proc.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.002)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "stats.json").exists() and _done(out, f"{STAGE}.label") == 0
    thresher("run", str(cfg), "--resume", "--quiet")
    assert shard_hashes(out) == shard_hashes(single) and clusters(out).equals(clusters(single))
    assert _done(out, f"{STAGE}.small-star-02") == 4


def test_sharded_clustering_with_the_run_directory_on_s3(corpus, single, tmp_path):
    from s3server import serving

    bucket = "thresher-sharded"
    with serving(tmp_path / "moto.log", bucket) as srv:
        run_url = f"s3://{bucket}/runs/sharded"
        cfg = tmp_path / "s3.yaml"
        cfg.write_text(yaml.safe_dump(config_dict(corpus, run_url, workers=1, cluster_memory=1,
                                                  cluster_rounds=2, partitions=2)))
        thresher("run", str(cfg), "--quiet")
        client = srv.client()
        keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix="runs/sharded/") for o in page.get("Contents", [])]
        assert any("/work/minhash_dedup/cc/" in k for k in keys)
        local = tmp_path / "copy"
        for k in keys:
            if "/data/" in k or k.endswith("clusters.parquet"):
                dest = local / k[len("runs/sharded/"):]
                dest.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, k, str(dest))
    assert shard_hashes(local) == shard_hashes(single) and clusters(local).equals(clusters(single))


def test_cluster_memory_is_a_byte_size_and_sets_the_planned_steps():
    from pipelines.config import stage
    from pipelines.errors import UserError
    from pipelines.plan import plan_phases

    assert stage(STAGE, cluster_memory="2GB").params.cluster_memory == 2_000_000_000
    assert stage(STAGE, cluster_memory="512MiB").params.cluster_memory == 512 * 2**20
    with pytest.raises(UserError, match="cluster_memory.*byte count"):
        stage(STAGE, cluster_memory="lots")
    single = plan_phases([stage(STAGE, partitions=3).build()], 5)
    assert [(p.name, p.n_tasks) for p in single] == [
        ("main", 5), (f"{STAGE}.buckets", 3), (f"{STAGE}.cluster", 1), (f"apply-{STAGE}", 5)]
    sharded = plan_phases([stage(STAGE, partitions=3, cluster_memory="1GB",
                                 cluster_rounds=2).build()], 5)
    assert [(p.name, p.n_tasks) for p in sharded] == [
        ("main", 5), (f"{STAGE}.buckets", 3),
        *((f"{STAGE}.{kind}-star-{r:02d}", 3) for r in range(2) for kind in ("large", "small")),
        (f"{STAGE}.label", 3), (f"{STAGE}.cluster", 3), (f"{STAGE}.clusters", 1),
        (f"apply-{STAGE}", 5)]
