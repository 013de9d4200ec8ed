"""The minhash_dedup clustering step's core: connected components over the edge list.

    .venv/bin/python benchmarks/bench_cluster.py [--edges 1000000 10000000] [--seed 0]

The ``cluster`` step is one task, so it must not be a per-edge Python loop (datatrove's
MinhashDedupCluster is one: a union-find over every duplicate pair, read pair by pair).
thresher's ``minhash_core.connected_components`` is vectorised with numpy
(hook-and-compress with pointer jumping). This times it on edge lists shaped like
dedup output, next to a plain Python union-find (path halving, union by smaller root,
the per-edge loop datatrove's step runs) and scipy's C implementation
(``scipy.sparse.csgraph.connected_components``), and checks all three agree.

Edge lists: document keys as the stage makes them ((task << 32) | row over 64 tasks);
clusters with Zipf-like sizes (most 2-3 documents, a few thousands), each a random
tree over its members, as star edges of overlapping buckets give; plus one chain of
10,000 documents (the worst case for label propagation). Half of the documents are in
no cluster and so not in the edge list.

Sharded (minhash_dedup ``cluster_memory``, stages/dedup/minhash_sharded.py)::

    .venv/bin/python benchmarks/bench_cluster.py --sharded 16 --edges 10000000 \
        --cluster-memory 1GB --rounds 12 --workers 2

runs the stage's own step code on the same edge list: the edges are cut at random into
``P`` pieces as the buckets tasks would find them, then every task of every step (first
edges, large-star/small-star rounds, node labels) runs in a fresh process of a pool of
``--workers``, with the run-directory files on local disk, and its peak RSS (VmHWM) and
wall time are recorded. The labels must equal the single-task labels, which are computed
the same way (a fresh process, peak RSS) for comparison.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components as scipy_components

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stages.dedup.minhash_core import connected_components  # noqa: E402

U64 = np.uint64


def edge_list(n_edges: int, seed: int) -> np.ndarray:
    """(n_edges + chain, 2) uint64 edges between document keys (see module doc)."""
    rng = np.random.default_rng(seed)
    sizes = np.minimum(rng.zipf(2.0, size=n_edges), 5000) + 1
    sizes = sizes[np.cumsum(sizes - 1) <= n_edges]  # a tree of k documents has k-1 edges
    n_docs = int(sizes.sum()) * 2 + 10_000  # half of the documents have no near-duplicate
    keys = (rng.integers(0, 64, n_docs).astype(U64) << U64(32)) | \
        rng.permutation(n_docs).astype(U64)
    keys = np.unique(keys)
    docs = rng.permutation(len(keys))[:int(sizes.sum()) + 10_000]
    start = np.repeat(np.cumsum(sizes) - sizes, sizes - 1)  # first member of each cluster
    rank = np.arange(len(start)) - np.repeat(np.cumsum(sizes - 1) - (sizes - 1), sizes - 1)
    child = start + rank + 1  # member i > 0 links to a random earlier member of its cluster
    parent = start + (rng.random(len(child)) * (rank + 1)).astype(np.int64)
    chain = np.arange(int(sizes.sum()), int(sizes.sum()) + 10_000)
    u = np.concatenate([docs[parent], docs[chain[:-1]]])
    v = np.concatenate([docs[child], docs[chain[1:]]])
    e = np.stack([keys[np.minimum(u, v)], keys[np.maximum(u, v)]], axis=1)
    return e[rng.permutation(len(e))]


def python_union_find(edges: np.ndarray) -> dict[int, int]:
    """Per-edge Python union-find: node -> smallest node of its component."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges.tolist():
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in parent}


def with_scipy(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    nodes, dense = np.unique(edges, return_inverse=True)
    dense = dense.reshape(-1, 2)
    g = sp.coo_matrix((np.ones(len(dense), np.int8), (dense[:, 0], dense[:, 1])),
                      shape=(len(nodes), len(nodes)))
    _, comp = scipy_components(g, directed=False)
    smallest = np.full(comp.max() + 1, len(nodes))
    np.minimum.at(smallest, comp, np.arange(len(nodes)))
    return nodes, nodes[smallest[comp]]


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _stage(P: int, rounds: int, budget: str):
    from stages.dedup.minhash import MinHashDedup, MinHashParams

    return MinHashDedup(MinHashParams(partitions=P, cluster_rounds=rounds,
                                      cluster_memory=budget), name="minhash_dedup")


def _task(work: str, P: int, rounds: int, budget: str, step: str, task: int) -> tuple:
    """One task of the sharded clustering in this (fresh) process: (metrics, seconds,
    peak RSS MB)."""
    from pipelines.global_stage import GlobalContext
    from stages.dedup import minhash_sharded as sh

    st = _stage(P, rounds, budget)
    ctx = GlobalContext(Path(work), task, P, P)
    t = time.perf_counter()
    if step == "buckets":
        piece = np.load(Path(work) / f"piece-{task}.npy")
        out = sh.write_first_edges(st, ctx, piece)
    elif step == "label":
        nodes, labels, out = sh.node_labels(st, 2 * rounds, ctx)
        np.save(Path(work) / f"labels-{task}.npy", np.stack([nodes, labels], axis=1))
    else:
        out = sh.run_sharded_step(st, step, ctx)
    return out, time.perf_counter() - t, _peak_rss_mb()


def _single(path: str) -> tuple:
    edges = np.load(path)
    t = time.perf_counter()
    nodes, labels = connected_components(edges)
    np.save(path + ".labels.npy", np.stack([nodes, labels], axis=1))
    return time.perf_counter() - t, _peak_rss_mb()


def sharded(edges: np.ndarray, P: int, rounds: int, budget: str, workers: int) -> None:
    import multiprocessing as mp
    import tempfile
    from concurrent.futures import ProcessPoolExecutor

    from stages.dedup.minhash_sharded import star_steps

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["numpy", "pyarrow", "pyarrow.parquet", "stages.dedup.minhash",
                                "bench_cluster"])
    with tempfile.TemporaryDirectory() as work:
        np.save(Path(work) / "edges.npy", edges)
        with ProcessPoolExecutor(1, mp_context=ctx, max_tasks_per_child=1) as ex:
            t_single, rss_single = ex.submit(_single, str(Path(work) / "edges.npy")).result()
        ref = np.load(Path(work) / "edges.npy.labels.npy")
        rng = np.random.default_rng(0)
        piece = rng.integers(0, P, len(edges))
        for p in range(P):
            np.save(Path(work) / f"piece-{p}.npy", edges[piece == p])
        del edges, piece
        print(f"single task: {t_single:.2f} s, peak RSS {rss_single:,.0f} MB; sharded over "
              f"{P} partitions, budget {budget}, {workers} workers:")
        print("| step | tasks | elapsed s | task s (sum) | max task RSS MB | metrics |")
        print("|---|---|---|---|---|---|")
        total = 0.0
        pool = ProcessPoolExecutor(workers, mp_context=ctx, max_tasks_per_child=1)
        for step in ["buckets", *star_steps(rounds), "label"]:
            t = time.perf_counter()
            res = list(pool.map(_task, *zip(*[(work, P, rounds, budget, step, k)
                                              for k in range(P)])))
            el = time.perf_counter() - t
            total += el
            metrics: dict = {}
            for m, _, _ in res:
                for k, v in m.items():
                    metrics[k] = metrics.get(k, 0) + v
            print(f"| {step} | {P} | {el:.1f} | {sum(r[1] for r in res):.1f} | "
                  f"{max(r[2] for r in res):,.0f} | {metrics} |", flush=True)
        pool.shutdown()
        got = np.concatenate([np.load(Path(work) / f"labels-{p}.npy") for p in range(P)])
        got = got[np.argsort(got[:, 0])]
        same = np.array_equal(got, ref)
        print(f"sharded total {total:.1f} s; labels identical to the single task: {same}")
        if not same:
            raise SystemExit("labels differ")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--edges", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-python", action="store_true", help="skip the Python union-find")
    ap.add_argument("--sharded", type=int, metavar="P",
                    help="run minhash_dedup's sharded clustering over P partitions instead")
    ap.add_argument("--cluster-memory", default="1GB", help="budget for --sharded")
    ap.add_argument("--rounds", type=int, default=12, help="cluster_rounds for --sharded")
    ap.add_argument("--workers", type=int, default=2, help="processes for --sharded")
    a = ap.parse_args()
    if a.sharded:
        for n in a.edges:
            sharded(edge_list(n, a.seed), a.sharded, a.rounds, a.cluster_memory, a.workers)
        return
    print("| edges | nodes | components | thresher numpy (s) | scipy C (s) "
          "| Python union-find (s) | Python / numpy |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in a.edges:
        edges = edge_list(n, a.seed)
        (nodes, labels), t_np = timed(connected_components, edges)
        (s_nodes, s_labels), t_sp = timed(with_scipy, edges)
        assert np.array_equal(nodes, s_nodes) and np.array_equal(labels, s_labels)
        py, t_py = (None, float("nan")) if a.no_python else timed(python_union_find, edges)
        if py is not None:
            assert len(py) == len(nodes)
            assert all(py[k] == lab for k, lab in zip(nodes[::997].tolist(),
                                                       labels[::997].tolist()))
        print(f"| {len(edges):,} | {len(nodes):,} | {len(np.unique(labels)):,} | {t_np:.2f} "
              f"| {t_sp:.2f} | {t_py:.2f} | {t_py / t_np:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
