"""minhash_dedup's clustering as sharded steps, for edge lists larger than one task's memory.

Planned when ``cluster_memory`` is set (stages/dedup/minhash.py); every step has a task
count fixed at planning time, so a batch scheduler submits them all ahead::

    buckets          P tasks   candidate edges of a bucket partition, contracted in memory
                               (each local component becomes a star around its smallest
                               node), written as large-star rows partitioned by node
    large-star-RR    P tasks   } up to ``cluster_rounds`` rounds: task p groups the
    small-star-RR    P tasks   } neighbourhoods of the nodes of partition p
    label            P tasks   node partition p: label = the root of its star; joins the
                               members of partition p, repartitions them by cluster label
    cluster          P tasks   keep policy over the clusters of partition q: decisions
                               (by shard) and a sorted part of the clusters table
    clusters         1 task    merges the sorted parts into clusters.parquet, streaming

Budget: before the first round, each task of ``large-star-00`` sums the edge rows from
the Parquet footers (the same figure for every task). Within ``cluster_memory`` (at
``BYTES_PER_EDGE``), task 0 runs the in-memory ``connected_components`` and writes its
star forest; every round is then a no-op. Otherwise the rounds run.

Rounds: ``minhash_core.large_star`` and ``small_star`` (Kiveris et al. 2014) each need
the whole neighbourhood of a node, so their input is partitioned by node. The set of
edges after each operation is a function of the set before, whatever the partitioning,
so the clusters are the ones the single task finds (each labelled by its smallest doc
key) for any ``partitions`` or workers. A large-star task also reports whether every node
it saw is a root or a leaf; when all tasks of a large-star step do, its input is the final
star forest, and every later step only passes that on (a no-op reading P small state
files). The plan stays static: ``cluster_rounds`` rounds are always planned. If the last
round ends unconverged, the label step clusters the remaining edges in memory when they
fit ``cluster_memory`` (each label task keeps its own partition), else it fails with a
message naming ``cluster_rounds``: never a wrong cluster.

Files (under ``work/<stage>/``), each written atomically through pipelines.io:
``cc/II/part-TTTTT.parquet`` the input of star step II (rows ``key, nbr``, partitioned by
the node that groups them) and ``cc/II/state-TTTTT.json``; ``labeled/``, ``decisions/``,
``clusters-parts/`` the per-partition results.
"""

from __future__ import annotations

import heapq
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from pipelines.errors import UserError
from pipelines.global_stage import GlobalContext
from pipelines.io.files import (
    parquet_file,
    read_json,
    read_table,
    write_json_atomic,
    write_table_atomic,
    write_tables_atomic,
)
from pipelines.partitioned import read_partition, write_partitioned
from stages.dedup import minhash_core as core
from stages.dedup.common import DECISIONS

if TYPE_CHECKING:
    from stages.dedup.minhash import MinHashDedup

CLUSTERS_SCHEMA = pa.schema([("cluster_id", pa.string()), ("cluster_size", pa.int64()),
                             ("keep", pa.bool_()), ("id", pa.string()), ("length", pa.int64()),
                             ("url", pa.string()), ("snippet", pa.string())])
CLUSTERS_ORDER = [("cluster_size", "descending"), ("cluster_id", "ascending"),
                  ("keep", "descending"), ("id", "ascending")]
CLUSTERS_ROW_GROUP = 10_000


def clusters_table(clustered: pa.Table | None, decisions: pa.Table) -> pa.Table:
    """The rows of clusters.parquet for ``clustered`` members and their decisions, in its
    order: biggest clusters first, then by cluster id, the survivor first, then by id."""
    if clustered is None:
        return CLUSTERS_SCHEMA.empty_table()
    t = clustered.select(["key", "id", "length", "url", "snippet"]).join(
        decisions, "key", join_type="inner")
    return t.sort_by(CLUSTERS_ORDER).select(CLUSTERS_SCHEMA.names)


def star_steps(rounds: int) -> list[str]:
    """Names of the connected-components steps of ``rounds`` rounds, in order."""
    return [f"{kind}-star-{r:02d}" for r in range(rounds) for kind in ("large", "small")]


ROWS = pa.schema([("key", pa.uint64()), ("nbr", pa.uint64())])
BYTES_PER_EDGE = 100  # connected_components' peak per edge (docs/benchmarks.md, Clustering)


def _cc_dir(ctx: GlobalContext, i: int) -> str:
    return f"cc/{i:02d}"


def _part(ctx: GlobalContext, kind: str, t: int) -> Path:
    return ctx.path(kind, f"part-{t:05d}.parquet")


def _state(ctx: GlobalContext, i: int, t: int) -> Path:
    return ctx.path(_cc_dir(ctx, i), f"state-{t:05d}.json")


def _write_rows(ctx: GlobalContext, i: int, key: np.ndarray, nbr: np.ndarray) -> None:
    """Star-step input ``i`` from this task: rows partitioned by the grouping node."""
    P = ctx.n_tasks
    t = pa.table({"key": np.asarray(key, np.uint64), "nbr": np.asarray(nbr, np.uint64)},
                 schema=ROWS)
    write_partitioned(_part(ctx, _cc_dir(ctx, i), ctx.task), t,
                      core.node_partition(t.column("key").to_numpy(), P), P)


def _rows_total(ctx: GlobalContext, i: int) -> int:
    """Rows of star-step input ``i``, from the Parquet footers alone."""
    return sum(parquet_file(_part(ctx, _cc_dir(ctx, i), t)).metadata.num_rows
               for t in range(ctx.n_tasks))


def _read_rows(ctx: GlobalContext, i: int, p: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Partition ``p`` of star-step input ``i`` (every partition if ``p`` is None)."""
    files = [_part(ctx, _cc_dir(ctx, i), t) for t in range(ctx.n_tasks)]
    if p is None:
        parts = [read_table(f) for f in files]
        t = pa.concat_tables(parts).replace_schema_metadata(None) if parts else \
            ROWS.empty_table()
    else:
        t = read_partition(files, p, schema=ROWS)
    return t.column("key").to_numpy(), t.column("nbr").to_numpy()


# ------------------------------------------------------------------ buckets
def write_first_edges(stage: MinHashDedup, ctx: GlobalContext, edges: np.ndarray
                      ) -> dict[str, float]:
    """The buckets task's edges as the first large-star input. Each local component is
    contracted to a star around its smallest node first (same connectivity, no more
    edges, a much smaller diameter, so fewer rounds)."""
    nodes, labels = core.connected_components(edges)
    leaf = nodes != labels
    key, nbr = core.both_ways(labels[leaf], nodes[leaf])
    _write_rows(ctx, 0, key, nbr)
    return {"star_edges": int(leaf.sum())}


# ------------------------------------------------------------------ steps
def run_sharded_step(stage: MinHashDedup, step: str, ctx: GlobalContext) -> dict[str, float]:
    names = star_steps(stage.params.cluster_rounds)
    if step in names:
        return _star_step(stage, names.index(step), ctx)
    if step == "label":
        return _label_step(stage, len(names), ctx)
    if step == "cluster":
        return _cluster_step(stage, ctx)
    if step == "clusters":
        return _merge_clusters(ctx, stage.params.partitions)
    raise ValueError(f"unknown step {step!r}")


def _final_of(ctx: GlobalContext, i: int) -> int | None:
    """Which star-step input is the final star forest, as the states of step ``i - 1``
    say (None: not known yet). Every task of a step reaches the same conclusion from the
    same files, so task 0's state tells whether it was known; only the large-star flags
    (is every node a root or a leaf?) need the states of all tasks."""
    first = read_json(_state(ctx, i, 0))
    if first.get("final") is not None:
        return first["final"]
    if i % 2 == 0 or not first["stars"]:  # after a small-star step nothing is checked
        return None
    states = [read_json(_state(ctx, i, t)) for t in range(1, ctx.n_tasks)]
    return i - 1 if all(s["stars"] for s in states) else None


def _star_step(stage: MinHashDedup, i: int, ctx: GlobalContext) -> dict[str, float]:
    """Star step ``i`` (even: large-star, odd: small-star): reads input ``i``, writes
    input ``i + 1`` and the state that tells the next step whether to do anything."""
    final = _final_of(ctx, i) if i > 0 else None
    if final is not None:  # converged earlier: pass it on
        write_json_atomic(_state(ctx, i + 1, ctx.task), {"final": final})
        return {"star_noop_tasks": 1}
    if i == 0:
        edges = _rows_total(ctx, 0) // 2
        budget = stage.params.cluster_memory or 0
        if edges * BYTES_PER_EDGE <= budget:  # the same decision in every task
            return _in_memory(ctx, edges)
    key, nbr = _read_rows(ctx, i, ctx.task)
    if i % 2 == 0:
        out_key, out_nbr, stars = core.large_star(key, nbr)
        state = {"stars": stars}
    else:
        out_key, out_nbr = core.small_star(key, nbr)
        state = {}
    _write_rows(ctx, i + 1, out_key, out_nbr)
    write_json_atomic(_state(ctx, i + 1, ctx.task), state)
    return {"star_rows_in": len(key), "star_rows_out": len(out_key)}


def _in_memory(ctx: GlobalContext, edges: int) -> dict[str, float]:
    """Within the budget: task 0 clusters every edge at once and writes the star forest
    (leaf -> root, both ways) as input 1; the other tasks write empty parts."""
    if ctx.task == 0:
        key, nbr = _read_rows(ctx, 0, None)
        low = key < nbr  # each undirected edge once
        nodes, labels = core.connected_components(np.stack([key[low], nbr[low]], axis=1))
        leaf = nodes != labels
        key, nbr = core.both_ways(labels[leaf], nodes[leaf])
    else:
        key = nbr = np.zeros(0, np.uint64)
    _write_rows(ctx, 1, key, nbr)
    write_json_atomic(_state(ctx, 1, ctx.task), {"final": 1})
    return {"in_memory_edges": edges if ctx.task == 0 else 0}


def node_labels(stage: MinHashDedup, n_star: int, ctx: GlobalContext
                ) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """(nodes, labels) of node partition ``ctx.task``, sorted by node, after ``n_star``
    star steps, and metrics."""
    P, p = ctx.n_tasks, ctx.task
    final = _final_of(ctx, n_star)
    metrics: dict[str, float] = {}
    if final is not None:
        nodes, labels = core.star_labels(*_read_rows(ctx, final, p))
    else:  # the round cap was hit: the rest in memory if it fits, else stop
        edges = _rows_total(ctx, n_star) // 2
        budget = stage.params.cluster_memory or 0
        if edges * BYTES_PER_EDGE > budget:
            raise UserError(
                f"stage {stage.name!r}: connected components did not converge in the "
                f"{stage.params.cluster_rounds} rounds of cluster_rounds, and the "
                f"{edges:,} edges left exceed cluster_memory {budget:,} bytes at "
                f"{BYTES_PER_EDGE} bytes an edge; raise cluster_rounds (or cluster_memory)")
        key, nbr = _read_rows(ctx, n_star, None)
        low = key < nbr
        nodes, labels = core.connected_components(np.stack([key[low], nbr[low]], axis=1))
        mine = core.node_partition(nodes, P) == p
        nodes, labels = nodes[mine], labels[mine]
        metrics["fallback_edges"] = edges if p == 0 else 0
    order = np.argsort(nodes)
    return nodes[order], labels[order], metrics


def _label_step(stage: MinHashDedup, n_star: int, ctx: GlobalContext) -> dict[str, float]:
    """Labels of the nodes of partition ``p``; their member rows, repartitioned by label."""
    P, p = ctx.n_tasks, ctx.task
    nodes, labels, metrics = node_labels(stage, n_star, ctx)
    files = [stage._path(ctx, "members", s) for s in range(ctx.n_shards)]
    m = read_partition(files, p, schema=stage._member_schema())
    k = m.column("key").to_numpy()
    pos = np.minimum(np.searchsorted(nodes, k), max(len(nodes) - 1, 0))
    sel = nodes[pos] == k if len(nodes) else np.zeros(len(k), bool)
    m = m.filter(pa.array(sel))
    lab = labels[pos[sel]]
    m = m.append_column("cluster", pa.array(lab, pa.uint64()))
    write_partitioned(_part(ctx, "labeled", p), m, core.node_partition(lab, P), P)
    return {**metrics, "labeled_nodes": len(nodes), "labeled_members": m.num_rows}


def _cluster_step(stage: MinHashDedup, ctx: GlobalContext) -> dict[str, float]:
    """The keep policy over the clusters whose label falls in partition ``q``."""
    q = ctx.task
    files = [_part(ctx, "labeled", p) for p in range(ctx.n_tasks)]
    schema = stage._member_schema().append(pa.field("cluster", pa.uint64()))
    clustered = read_partition(files, q, schema=schema)
    if clustered.num_rows:
        decisions = stage.decide(clustered.drop_columns(["url", "snippet"]), "cluster")
    else:
        clustered, decisions = None, DECISIONS.empty_table()
    stage.write_decisions(_part(ctx, "decisions", q), decisions, ctx.n_shards)
    table = clusters_table(clustered, decisions)
    write_table_atomic(_part(ctx, "clusters-parts", q), table,
                       row_group_size=CLUSTERS_ROW_GROUP)
    n_clusters = int(np.sum(decisions.column("keep").to_numpy(zero_copy_only=False)))
    return {"clusters": n_clusters, "documents_in_clusters": decisions.num_rows,
            "near_duplicates": decisions.num_rows - n_clusters}


def _merge_clusters(ctx: GlobalContext, n_parts: int) -> dict[str, float]:
    """clusters.parquet from the sorted parts, merged a row group at a time (memory: one
    row group a part), in the order ``clusters_table`` sorts."""
    def rows(path: Path):
        for batch in parquet_file(path).iter_batches(batch_size=1024):
            for r in batch.to_pylist():
                yield (-r["cluster_size"], r["cluster_id"], not r["keep"], r["id"]), r

    def batches():
        streams = [rows(_part(ctx, "clusters-parts", q)) for q in range(n_parts)]
        buf: list[dict] = []
        for _, r in heapq.merge(*streams, key=lambda kr: kr[0]):
            buf.append(r)
            if len(buf) == CLUSTERS_ROW_GROUP:
                yield pa.Table.from_pylist(buf, CLUSTERS_SCHEMA)
                buf = []
        yield pa.Table.from_pylist(buf, CLUSTERS_SCHEMA)  # the rest (or an empty table)

    n = write_tables_atomic(ctx.work_dir / "clusters.parquet", CLUSTERS_SCHEMA, batches(),
                            row_group_size=CLUSTERS_ROW_GROUP)
    return {"clustered_documents": n}
