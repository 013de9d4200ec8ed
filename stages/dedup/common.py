"""What exact and near-duplicate dedup share: parameters, the keep policy, applying decisions.

Both dedup stages end the same way: a *decisions* table lists every document
that belongs to a duplicate cluster (doc key, cluster id, cluster size, keep),
partitioned by the shard the document came from. The map phase after the stage
loads its shard's part and drops (or annotates) the duplicates; documents not in
the table are singletons. Which member of a cluster is kept is decided by a
keep policy, vectorised with Arrow sorts so it is deterministic and fast.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import Field, field_validator

from pipelines.errors import UserError
from pipelines.global_stage import GlobalContext, GlobalStage, key_task
from pipelines.lazy import lazy_module
from pipelines.partitioned import read_partition, write_partitioned
from pipelines.schema import ID, TEXT
from pipelines.stage import FilterParams, set_column
from pipelines.stats import StageStats

np = lazy_module("numpy")
pa = lazy_module("pyarrow")
pc = lazy_module("pyarrow.compute")


@cache
def decisions_schema() -> pa.Schema:
    """The per-document decisions of a dedup stage (built on first use: loading a config
    imports no Arrow)."""
    return pa.schema([("key", pa.uint64()), ("cluster_id", pa.string()),
                      ("cluster_size", pa.int64()), ("keep", pa.bool_())])


def __getattr__(name: str):
    if name == "DECISIONS":  # the name other modules import
        return decisions_schema()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class DedupParams(FilterParams):
    column: str = Field(TEXT, description="text column to compare")
    scope: str = Field(
        "global", description="global: one pool of documents; or a column name (e.g. "
                              "`language`): documents are only duplicates within one value")
    keep: str = Field(
        "first", description="which member of a cluster survives: first (smallest id), "
                             "longest (most characters), or max:<column> (e.g. a quality "
                             "score); ties go to the smallest id")
    partitions: int = Field(16, ge=1, le=4096,
                            description="tasks of the sharded grouping step (bounds memory)")

    @field_validator("keep")
    @classmethod
    def _check_keep(cls, v: str) -> str:
        if v in ("first", "longest") or (v.startswith("max:") and len(v) > 4):
            return v
        raise ValueError("keep must be first, longest or max:<column>")


class DedupStage(GlobalStage):
    """Shared collect-side bookkeeping and apply side of the dedup stages."""

    params: DedupParams
    drop_reason = "duplicate"
    column_prefix = "dup"

    def input_columns(self) -> tuple[str, ...]:
        p = self.params
        return (p.column, ID, *([p.scope] if p.scope != "global" else []),
                *([p.keep[4:]] if p.keep.startswith("max:") else []))

    def output_columns(self) -> dict[str, pa.DataType | None]:
        out: dict[str, pa.DataType | None] = {f"{self.column_prefix}_cluster_id": "string",
                                              f"{self.column_prefix}_cluster_size": "int64"}
        if self.params.mode == "annotate":
            out[f"{self.name}_reason"] = "string"
        return out

    # ---------------------------------------------------------------- collect side
    def check_columns(self, table: pa.Table) -> None:
        need = [self.params.column, ID]
        if self.params.scope != "global":
            need.append(self.params.scope)
        if self.params.keep.startswith("max:"):
            need.append(self.params.keep[4:])
        missing = [c for c in need if c not in table.schema.names]
        if missing:
            raise UserError(f"stage {self.name!r} needs column(s) {', '.join(missing)}, which "
                            f"its input does not have; columns: {', '.join(table.schema.names)}")

    def scope_values(self, table: pa.Table) -> list[str]:
        if self.params.scope == "global":
            return [""] * table.num_rows
        return ["" if v is None else str(v)
                for v in table.column(self.params.scope).to_pylist()]

    def member_info(self, table: pa.Table, keys: np.ndarray) -> dict[str, pa.Array]:
        """Per-document fields the keep policy needs."""
        text = table.column(self.params.column)
        info = {"key": pa.array(keys, pa.uint64()),
                "id": table.column(ID).combine_chunks().cast(pa.string()),
                "length": pc.fill_null(pc.utf8_length(text), 0).combine_chunks()
                .cast(pa.int64())}
        if self.params.keep.startswith("max:"):
            col = table.column(self.params.keep[4:])
            try:
                info["score"] = col.cast(pa.float64()).combine_chunks()
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise UserError(f"stage {self.name!r}: keep {self.params.keep!r} needs a "
                                f"numeric column, got {col.type}") from exc
        return info

    # ---------------------------------------------------------------- deciding
    def decide(self, members: pa.Table, cluster: str) -> pa.Table:
        """Decisions for ``members`` (key, id, length[, score]) grouped by column ``cluster``.

        Only clusters with more than one member are returned.
        """
        if members.num_rows == 0:
            return decisions_schema().empty_table()
        sizes = members.group_by(cluster).aggregate([(cluster, "count")])
        sizes = sizes.rename_columns([cluster, "cluster_size"])
        sizes = sizes.filter(pc.greater(sizes.column("cluster_size"), 1))
        m = members.join(sizes, cluster, join_type="inner")
        if m.num_rows == 0:
            return decisions_schema().empty_table()
        order = [(cluster, "ascending")]
        if self.params.keep == "longest":
            order.append(("length", "descending"))
        elif self.params.keep.startswith("max:"):
            m = m.set_column(m.schema.get_field_index("score"), "score",
                             pc.fill_null(m.column("score"), -np.inf))
            order.append(("score", "descending"))
        order += [("id", "ascending"), ("key", "ascending")]
        m = m.sort_by(order)
        groups = m.column(cluster).to_numpy(zero_copy_only=False)
        first = np.ones(len(groups), dtype=bool)
        if len(groups) > 1:
            first[1:] = groups[1:] != groups[:-1]
        starts = np.flatnonzero(first)
        run_of = np.cumsum(first) - 1
        keeper_id = m.column("id").take(pa.array(starts[run_of]))
        return pa.table({"key": m.column("key"), "cluster_id": keeper_id,
                         "cluster_size": m.column("cluster_size").cast(pa.int64()),
                         "keep": pa.array(first)}, schema=decisions_schema())

    def write_decisions(self, path: Path, decisions: pa.Table, n_shards: int) -> None:
        """Partition by the shard each document came from, for the apply phase."""
        shard = key_task(decisions.column("key").to_numpy())
        write_partitioned(path, decisions, shard, n_shards)

    # ---------------------------------------------------------------- apply side
    def decision_files(self, ctx: GlobalContext) -> list[Path]:
        raise NotImplementedError

    def begin_apply(self, ctx: GlobalContext) -> None:
        d = read_partition(self.decision_files(ctx), ctx.task, schema=decisions_schema())
        d = d.sort_by("key")
        self._keys = d.column("key").to_numpy()
        self._cluster_id = d.column("cluster_id").combine_chunks()
        self._size = d.column("cluster_size").to_numpy()
        self._keep = d.column("keep").to_numpy(zero_copy_only=False)

    def apply(self, table: pa.Table, keys: np.ndarray, stats: StageStats) -> pa.Table:
        n = table.num_rows
        own_id = table.column(ID).combine_chunks().cast(pa.string())
        if len(self._keys):  # documents not in the decisions are singletons
            pos = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
            found = self._keys[pos] == keys
            keep = ~found | self._keep[pos]
            size = np.where(found, self._size[pos], 1)
            cluster_id = pc.if_else(pa.array(found), self._cluster_id.take(pa.array(pos)),
                                    own_id)
        else:
            keep, size, cluster_id = np.ones(n, bool), np.ones(n, np.int64), own_id
        table = set_column(table, f"{self.column_prefix}_cluster_id", cluster_id, pa.string())
        table = set_column(table, f"{self.column_prefix}_cluster_size", pa.array(size, pa.int64()),
                           pa.int64())
        n_dup = int((~keep).sum())
        if self.params.mode == "annotate":
            reason = pc.if_else(pa.array(keep), pa.scalar(None, pa.string()), self.drop_reason)
            return set_column(table, f"{self.name}_reason", reason, pa.string())
        if n_dup:  # counted, measured and sampled with their cluster
            stats.drop_rows(self.drop_reason, table, ~keep,
                            details=(f"{self.column_prefix}_cluster_id",
                                     f"{self.column_prefix}_cluster_size"))
        return table.filter(pa.array(keep, pa.bool_()))


