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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--edges", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-python", action="store_true", help="skip the Python union-find")
    a = ap.parse_args()
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
