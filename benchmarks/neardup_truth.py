"""Exact ground truth and precision/recall for near-duplicate detection.

``exact_pairs`` computes the exact Jaccard similarity of *every* pair of documents
that shares at least one shingle (all other pairs have Jaccard 0), on the same
shingle sets the dedup uses (``minhash_core.shingle_sets``): a sparse
documents x shingles 0/1 matrix X gives every pair's intersection size in
X @ X.T, and |A u B| = |A| + |B| - |A n B|. No sampling, no candidate
generation, so nothing the LSH misses can be missing from the truth. Its cost is
the number of (document, document, shared shingle) triples: a second or two for
20k web documents.

``evaluate`` scores a clustering (a label per document) and a removal decision
against that truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from stages.dedup.minhash_core import MinHashSpec, connected_components, shingle_sets

BINS = ((0.5, 0.7), (0.7, 0.85), (0.85, 1.0))


@dataclass
class Truth:
    """Pairs (a < b) with Jaccard >= min_jaccard, and each document's best match."""

    n_docs: int
    a: np.ndarray
    b: np.ndarray
    jaccard: np.ndarray
    max_jaccard: np.ndarray  # over all other documents (0 if it shares no shingle)

    def summary(self) -> dict:
        edges = [0.3, 0.5, 0.7, 0.85, 0.95, 1.0001]
        hist = np.histogram(self.jaccard, bins=edges)[0].tolist()
        return {
            "pairs_by_jaccard": {f"[{lo:g},{min(hi, 1):g}{']' if hi > 1 else ')'}": n
                                 for lo, hi, n in zip(edges[:-1], edges[1:], hist)},
            "docs_with_match_ge_0.85": int(np.sum(self.max_jaccard >= 0.85)),
            "docs_with_max_lt_0.5": int(np.sum(self.max_jaccard < 0.5)),
        }


def exact_pairs(texts: Sequence[str], spec: MinHashSpec, min_jaccard: float = 0.3) -> Truth:
    """Exact Jaccard of all document pairs (see module doc)."""
    return exact_pairs_of_sets(*shingle_sets(texts, spec), min_jaccard=min_jaccard)


def exact_pairs_of_sets(sh: np.ndarray, sizes: np.ndarray, min_jaccard: float = 0.3) -> Truth:
    """The same from ``shingle_sets`` output: distinct hashes per document, concatenated."""
    n = len(sizes)
    cols = np.unique(sh, return_inverse=True)[1]
    indptr = np.concatenate(([0], np.cumsum(sizes)))
    x = sp.csr_matrix((np.ones(len(sh), np.int32), cols, indptr), shape=(n, cols.max(initial=0)
                                                                       + 1))
    inter = sp.triu(x @ x.T, k=1).tocoo()
    i, j, c = inter.row.astype(np.int64), inter.col.astype(np.int64), inter.data
    jac = c / (sizes[i] + sizes[j] - c)
    best = np.zeros(n)
    np.maximum.at(best, i, jac)
    np.maximum.at(best, j, jac)
    keep = jac >= min_jaccard
    order = np.lexsort((j[keep], i[keep]))
    return Truth(n, i[keep][order], j[keep][order], jac[keep][order], best)


def _pair_counts(x: np.ndarray) -> int:
    _, counts = np.unique(x, return_counts=True)
    return int(np.sum(counts * (counts - 1) // 2))


def evaluate(truth: Truth, labels: np.ndarray, removed: np.ndarray,
             cluster_threshold: float = 0.7) -> dict:
    """Scores of a clustering (``labels``: one per document) and of its removals.

    - ``recall[lo-hi]``: share of true pairs with Jaccard in [lo, hi) put in one cluster;
    - ``pair_precision`` / ``pair_recall`` / ``pair_f1``: pair counting against the
      true clusters, the connected components of pairs with Jaccard >= cluster_threshold
      (a predicted pair is right if both documents are in one true cluster);
    - ``bcubed_precision`` / ``bcubed_recall``: the same per document, averaged;
    - ``false_removal``: share of documents without any match >= 0.5 that were removed;
    - ``groups_collapsed``: share of true clusters at Jaccard >= 0.85 (2+ documents)
      whose members all ended in one predicted cluster.
    """
    labels = np.asarray(labels)
    removed = np.asarray(removed, bool)
    out: dict = {"docs": truth.n_docs, "removed": int(removed.sum()),
                 "clusters": int(len(np.unique(labels)))}
    same = labels[truth.a] == labels[truth.b]
    for lo, hi in BINS:
        sel = (truth.jaccard >= lo) & ((truth.jaccard < hi) if hi < 1 else True)
        out[f"recall[{lo:g}-{hi:g}]"] = float(same[sel].mean()) if sel.any() else float("nan")
        out[f"pairs[{lo:g}-{hi:g}]"] = int(sel.sum())
    true_labels = _true_clusters(truth, cluster_threshold)
    both = _pair_counts(labels.astype(np.int64) * truth.n_docs + true_labels)
    pred, real = _pair_counts(labels), _pair_counts(true_labels)
    p = both / pred if pred else 1.0
    r = both / real if real else 1.0
    out.update(pair_precision=p, pair_recall=r, pair_f1=2 * p * r / (p + r) if p + r else 0.0)
    out.update(_bcubed(labels, true_labels))
    lonely = truth.max_jaccard < 0.5
    out["docs_without_match"] = int(lonely.sum())
    out["false_removal"] = float(removed[lonely].mean()) if lonely.any() else 0.0
    groups = _true_clusters(truth, 0.85)
    size = np.bincount(groups)
    multi = np.flatnonzero(size[groups] > 1)
    one_label = {}
    for g, lab in zip(groups[multi].tolist(), labels[multi].tolist()):
        one_label.setdefault(g, set()).add(lab)
    out["groups_collapsed"] = float(np.mean([len(v) == 1 for v in one_label.values()])) \
        if one_label else 1.0
    return out


def _true_clusters(truth: Truth, threshold: float) -> np.ndarray:
    """Component index (its smallest document) of every document at this threshold."""
    sel = truth.jaccard >= threshold
    edges = np.stack([truth.a[sel], truth.b[sel]], axis=1).astype(np.uint64)
    labels = np.arange(truth.n_docs, dtype=np.int64)
    nodes, comp = connected_components(edges)
    labels[nodes.astype(np.int64)] = comp.astype(np.int64)
    return labels


def _bcubed(pred: np.ndarray, real: np.ndarray) -> dict:
    _, pi = np.unique(pred, return_inverse=True)
    _, ri = np.unique(real, return_inverse=True)
    _, both, cnt = np.unique(pi.astype(np.int64) * (ri.max() + 1) + ri, return_inverse=True,
                             return_counts=True)
    overlap = cnt[both]
    return {"bcubed_precision": float(np.mean(overlap / np.bincount(pi)[pi])),
            "bcubed_recall": float(np.mean(overlap / np.bincount(ri)[ri]))}


def clusters_from_edges(n_docs: int, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(label per document, removed) for document indices 0..n-1 linked by ``edges``:
    each cluster keeps its smallest document, as ``keep: first`` does."""
    labels = np.arange(n_docs, dtype=np.int64)
    nodes, comp = connected_components(edges)
    labels[nodes.astype(np.int64)] = comp.astype(np.int64)
    return labels, labels != np.arange(n_docs)
