"""keep_top: keep the best share of the corpus by a score, with thresholds set globally.

"Keep the top 10% per language by quality score" needs the score distribution of
the whole corpus, not of one shard. Phases (a global stage, pipelines/global_stage.py):

- collect (in the map phase before): each shard writes a *sketch* of its scores
  per group: counts of scores in fixed buckets;
- ``thresholds`` (one task): adds the sketches and picks each group's threshold;
  writes ``thresholds.json`` and reports it in the run's metrics;
- apply: keeps documents whose score is at or above their group's threshold.

The sketch: a score's bucket is its float64 value with all but the top
``sketch_bits`` mantissa bits cut off (an order-preserving integer key). Counts
per bucket add exactly, so the merged sketch, the thresholds and the kept set
are the same whatever the sharding, order of merging or number of workers (a
sampling sketch like KLL would not be). Memory is one (bucket, count) pair per
distinct bucket: at most min(documents, 2^sketch_bits per power of two spanned).

Error bound: let t* be the exact score of the k-th best document of a group
(k = ceil(fraction x documents)). The threshold t is the lower edge of t*'s
bucket, so t <= t* and t* - t < 2^-sketch_bits x |t*| (for scores in [0, 1],
less than 2^-sketch_bits absolute). Every document the exact rule keeps
(score >= t*) is kept; the only extra documents are those scoring in [t, t*).
The exact number kept per group is known after the merge and reported. Scores that
are float32 values widened to float64 (fastText's probabilities) differ in their top
23 mantissa bits, so ``sketch_bits: 23`` makes the thresholds exact for them, at up
to 8x the memory of the default in the worst case.
"""

from __future__ import annotations

import json
import math
from functools import cache
from typing import ClassVar, Literal

from pydantic import Field

from pipelines.errors import UserError
from pipelines.global_stage import GlobalContext, GlobalStage, Step
from pipelines.io.files import read_table, write_json_atomic, write_table_atomic
from pipelines.lazy import lazy_module
from pipelines.stage import FilterParams, Params, set_column
from pipelines.stats import StageStats

np = lazy_module("numpy")
pa = lazy_module("pyarrow")
pc = lazy_module("pyarrow.compute")


@cache
def sketch_schema() -> pa.Schema:
    """A score sketch's rows (built on first use: loading a config imports no Arrow)."""
    return pa.schema([("group", pa.string()), ("bucket", pa.uint64()), ("count", pa.int64())])


def __getattr__(name: str):
    if name == "SKETCH":  # the name other modules import
        return sketch_schema()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


ALL = "*"  # the group name when `by` is empty


@cache
def _sign() -> np.uint64:
    return np.uint64(1 << 63)


class KeepTopParams(FilterParams):
    column: str = Field("quality_score", description="numeric score column to rank by")
    fraction: float = Field(gt=0, le=1, description="share of each group to keep, e.g. 0.1")
    by: list[str] = Field([], description="group columns, e.g. [language]: one threshold per "
                                          "group; empty: one threshold for the corpus")
    order: Literal["highest", "lowest"] = Field(
        "highest", description="highest: keep the highest scores; lowest: the lowest "
                               "(e.g. perplexity)")
    sketch_bits: int = Field(20, ge=4, le=52,
                             description="mantissa bits kept in the quantile sketch: the "
                                         "threshold is within 2^-bits (relative) of exact; "
                                         "23 is exact for float32 scores (fastText)")


def ordered_keys(scores: np.ndarray) -> np.ndarray:
    """float64 -> uint64 with the same order (-0.0 counted as 0.0; NaN is the caller's)."""
    bits = (np.asarray(scores, dtype=np.float64) + 0.0).view(np.uint64)
    neg = (bits & _sign()) != 0
    return np.where(neg, ~bits, bits | _sign())


def bucket_of(scores: np.ndarray, bits: int) -> np.ndarray:
    return ordered_keys(scores) >> np.uint64(52 - bits)


def bucket_floor(bucket: int, bits: int) -> float:
    """The smallest float64 whose bucket is ``bucket``."""
    key = np.uint64(bucket) << np.uint64(52 - bits)
    raw = key & ~_sign() if key & _sign() else ~key
    value = float(np.array([raw], dtype=np.uint64).view(np.float64)[0])
    return -math.inf if math.isnan(value) else value  # the lowest bucket starts below -inf


def merge_sketches(a: pa.Table, b: pa.Table) -> pa.Table:
    """Sum of two sketches (exact: counts per (group, bucket) add)."""
    both = pa.concat_tables([a, b])
    if both.num_rows == 0:
        return sketch_schema().empty_table()
    s = both.group_by(["group", "bucket"]).aggregate([("count", "sum")])
    s = s.rename_columns(["group", "bucket", "count"]).select(["group", "bucket", "count"])
    return s.cast(sketch_schema()).sort_by([("group", "ascending"), ("bucket", "ascending")])


def thresholds_from_sketch(sketch: pa.Table, fraction: float, bits: int) -> dict[str, dict]:
    """Per group: the bucket holding the k-th best score, its floor, and how many are kept."""
    out = {}
    groups = sketch.column("group").to_pylist()
    buckets = sketch.column("bucket").to_numpy()
    counts = sketch.column("count").to_numpy()
    starts = [i for i in range(len(groups)) if i == 0 or groups[i] != groups[i - 1]]
    for s, e in zip(starts, starts[1:] + [len(groups)]):
        b, c = buckets[s:e], counts[s:e]  # ascending buckets: the best are at the end
        n = int(c.sum())
        k = max(1, math.ceil(fraction * n - 1e-9))
        from_top = np.cumsum(c[::-1])
        j = int(np.searchsorted(from_top, k))  # first bucket (from the top) reaching k
        bucket = int(b[::-1][j])
        out[groups[s]] = {"bucket": bucket, "documents": n, "target": k,
                          "kept": int(from_top[j]), "floor": bucket_floor(bucket, bits)}
    return out


class KeepTop(GlobalStage):
    """Keeps the top `fraction` of documents by `column` per group (global thresholds)."""

    Params: ClassVar[type[Params]] = KeepTopParams
    params: KeepTopParams
    decides_from_columns: ClassVar[bool] = True  # thresher materialize may re-run it

    def input_columns(self) -> tuple[str, ...]:
        return (self.params.column, *self.params.by)

    def output_columns(self) -> dict[str, pa.DataType | None]:
        return {f"{self.name}_reason": "string"} if self.params.mode == "annotate" else {}

    def steps(self, n_shards: int) -> list[Step]:
        return [Step("thresholds", 1)]

    # ------------------------------------------------------------ shared
    def _groups_and_scores(self, table: pa.Table) -> tuple[list[str], np.ndarray]:
        need = [self.params.column, *self.params.by]
        missing = [c for c in need if c not in table.schema.names]
        if missing:
            raise UserError(f"stage {self.name!r} needs column(s) {', '.join(missing)}, which "
                            f"its input does not have; columns: {', '.join(table.schema.names)}")
        col = table.column(self.params.column)
        try:
            scores = pc.fill_null(col.cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise UserError(f"stage {self.name!r}: column {self.params.column!r} must be "
                            f"numeric, got {col.type}") from exc
        if self.params.order == "lowest":
            scores = -scores
        if not self.params.by:
            return [ALL] * table.num_rows, scores
        cols = [table.column(c).to_pylist() for c in self.params.by]
        return ["|".join("" if v is None else str(v) for v in row) for row in zip(*cols)], scores

    # ------------------------------------------------------------ collect
    def begin_collect(self, ctx: GlobalContext) -> None:
        self._ctx = ctx
        self._codes: dict[str, int] = {}
        self._parts: list[tuple[np.ndarray, np.ndarray]] = []

    def collect(self, table: pa.Table, keys: np.ndarray) -> None:
        if table.num_rows == 0:
            return
        groups, scores = self._groups_and_scores(table)
        ok = ~np.isnan(scores)
        codes = np.array([self._codes.setdefault(g, len(self._codes)) for g in groups],
                         dtype=np.int64)
        self._parts.append((codes[ok], bucket_of(scores[ok], self.params.sketch_bits)))

    def end_collect(self) -> None:
        sketch = sketch_schema().empty_table()
        if self._parts:
            codes = np.concatenate([p[0] for p in self._parts])
            buckets = np.concatenate([p[1] for p in self._parts])
            names = np.array(sorted(self._codes, key=self._codes.get), dtype=object)
            t = pa.table({"group": pa.array(names[codes], pa.string()),
                          "bucket": pa.array(buckets, pa.uint64()),
                          "count": pa.array(np.ones(len(codes), dtype=np.int64))})
            sketch = merge_sketches(t, sketch_schema().empty_table())
        write_table_atomic(self._ctx.path("collect", f"part-{self._ctx.task:05d}.parquet"),
                           sketch)
        self._parts = []

    # ------------------------------------------------------------ step `thresholds`
    def run_step(self, step: str, ctx: GlobalContext) -> dict[str, float]:

        merged = sketch_schema().empty_table()
        for s in range(ctx.n_shards):  # one shard at a time: memory is the merged sketch
            part = read_table(ctx.path("collect", f"part-{s:05d}.parquet")).cast(sketch_schema())
            merged = merge_sketches(merged, part)
        found = thresholds_from_sketch(merged, self.params.fraction, self.params.sketch_bits)
        doc = {}
        metrics: dict[str, float] = {"groups": len(found)}
        for g, t in sorted(found.items()):
            thr = -t["floor"] if self.params.order == "lowest" else t["floor"]
            doc[g] = {"threshold": thr, **t}
            metrics[f"threshold:{g}"] = thr
            metrics[f"documents:{g}"] = t["documents"]
            metrics[f"kept:{g}"] = t["kept"]
        write_json_atomic(ctx.path("thresholds.json"),
                          {"column": self.params.column, "by": self.params.by,
                           "order": self.params.order, "fraction": self.params.fraction,
                           "sketch_bits": self.params.sketch_bits, "groups": doc})
        metrics["sketch_buckets"] = merged.num_rows
        return metrics

    # ------------------------------------------------------------ apply
    def begin_apply(self, ctx: GlobalContext) -> None:
        doc = json.loads(ctx.path("thresholds.json").read_text())
        self._bucket = {g: v["bucket"] for g, v in doc["groups"].items()}

    def apply(self, table: pa.Table, keys: np.ndarray, stats: StageStats) -> pa.Table:
        if table.num_rows == 0:
            return table
        groups, scores = self._groups_and_scores(table)
        missing = np.isnan(scores)
        b = bucket_of(np.where(missing, 0.0, scores), self.params.sketch_bits)
        # a group absent from the sketch only had missing scores: nothing to keep there
        floor = np.array([self._bucket.get(g, 0) for g in groups], dtype=np.uint64)
        keep = ~missing & (b >= floor)
        reasons = [None if k else ("missing_score" if m else "below_threshold")
                   for k, m in zip(keep.tolist(), missing.tolist())]
        if self.params.mode == "annotate":
            return set_column(table, f"{self.name}_reason", reasons, pa.string())
        for r in ("below_threshold", "missing_score"):
            n = reasons.count(r)
            if n:
                stats.drop(r, n)
        return table.filter(pa.array(keep, pa.bool_()))
