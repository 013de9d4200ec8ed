"""Rebalancing: how many times each document appears in the corpus.

A weight per document comes from a rule on a column: FineWeb-2's rehydration
table on ``minhash_cluster_size`` (documents from bigger duplicate clusters were
kept once by dedup, and upsampling them by cluster size improved models), ranges
of a score, or a value -> weight mapping. ``mode: weight`` writes it to a
``weight`` column; ``mode: replicate`` writes the copies (``repeat_index`` 0 is
the original; copies follow in the same shard, so placement depends only on
the input). Fractional weights are rounded per document by a hash of its id:
deterministic, and right in expectation.

With ``targets`` (token shares per group of ``target_by`` columns, e.g.
language) the stage becomes global: each shard reports tokens per group and
weight, one step solves the scale factor per group that meets its share under
the ``max_epochs`` cap (exactly: the token total is piecewise linear in the
factor), and the apply phase scales the weights. A target that cannot be met
even with every document at the cap is reported (``unmet:<group>`` metric, and
the task log) and gets as close as the cap allows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import defaultdict
from typing import Annotated, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pipelines.errors import UserError
from pipelines.global_stage import GlobalContext, GlobalStage, Step
from pipelines.io.files import write_json_atomic
from pipelines.lazy import lazy_module
from pipelines.schema import ID, TEXT
from pipelines.stage import Params, set_column
from pipelines.stats import TOKENS, StageStats

np = lazy_module("numpy")
pa = lazy_module("pyarrow")
pc = lazy_module("pyarrow.compute")

log = logging.getLogger(__name__)


class WeightRange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    min: float | None = Field(None, description="inclusive lower bound (none: unbounded)")
    max: float | None = Field(None, description="inclusive upper bound (none: unbounded)")
    weight: float = Field(ge=0)

    @field_validator("max")
    @classmethod
    def _not_below_min(cls, v: float | None, info: ValidationInfo) -> float | None:
        low = info.data.get("min")
        if v is not None and low is not None and v < low:
            raise ValueError(f"must be at least min ({low:g}), or the range matches nothing")
        return v


PRESETS: dict[str, list[WeightRange]] = {
    # FineWeb-2's rehydration weights by MinHash cluster size (its README).
    "fineweb2": [WeightRange(min=1, max=1, weight=1), WeightRange(min=2, max=2, weight=2),
                 WeightRange(min=3, max=3, weight=3), WeightRange(min=4, max=4, weight=3),
                 WeightRange(min=5, max=99, weight=5), WeightRange(min=100, max=999, weight=8),
                 WeightRange(min=1000, max=None, weight=1)],
}


class RebalanceParams(Params):
    by: str | None = Field(None, description="column the weight rule reads "
                                             "(e.g. minhash_cluster_size); none: weight 1")
    preset: Literal["fineweb2"] | None = Field(
        None, description="fineweb2: cluster size 1→1, 2→2, 3→3, 4→3, 5–99→5, 100–999→8, "
                          "≥1000→1")
    ranges: list[WeightRange] | None = Field(None, min_length=1,
                                             description="numeric ranges -> weight; "
                                                         "first match wins")
    mapping: dict[str, Annotated[float, Field(ge=0)]] | None = Field(
        None, min_length=1, description="column value -> weight")
    default_weight: float = Field(1.0, ge=0, description="weight of documents no rule matches")
    mode: Literal["replicate", "weight"] = Field(
        "replicate", description="replicate: write the copies; weight: add a `weight` column")
    targets: dict[str, float] | None = Field(
        None, description="token share per group (values of `target_by`, joined by '|'); "
                          "groups not listed keep their rule weights")
    target_by: list[str] = Field(["language"], min_length=1,
                                 description="columns that form a group")
    target_tokens: int | None = Field(
        None, gt=0, description="tokens of the listed groups after rebalancing (default: "
                                "their total before)")
    max_epochs: float = Field(4.0, gt=0, description="cap on a document's weight when "
                                                     "meeting targets")
    seed: int = Field(0, description="seed of the per-document rounding of fractional weights")

    @model_validator(mode="after")
    def _check(self):
        rules = [x for x in (self.preset, self.ranges, self.mapping) if x is not None]
        if self.by is not None and len(rules) != 1:
            raise ValueError("with `by`, give exactly one of preset, ranges, mapping")
        if self.by is None and rules:
            raise ValueError("preset/ranges/mapping need `by` (the column they read)")
        if self.targets is not None:
            total = sum(self.targets.values())
            if not self.targets or any(v < 0 for v in self.targets.values()) or \
                    abs(total - 1) > 1e-6:
                raise ValueError(f"targets must be non-negative shares summing to 1 "
                                 f"(got {total:g})")
        return self


class Rebalance(GlobalStage):
    """Up/down-samples documents by a weight rule and optional token-share targets."""

    Params: ClassVar[type[Params]] = RebalanceParams
    params: RebalanceParams

    @property
    def kind(self) -> str:  # type: ignore[override]
        return "global" if self.params.targets else "map"

    def input_columns(self) -> tuple[str, ...]:
        p = self.params
        return (*([p.by] if p.by else []), *(p.target_by if p.targets else []))

    def output_columns(self) -> dict[str, pa.DataType | None]:
        return {"weight": "float64"} if self.params.mode == "weight" else \
            {"repeat_index": "int32"}

    # ------------------------------------------------------------ weights
    def rule_weights(self, table: pa.Table) -> np.ndarray:
        p = self.params
        n = table.num_rows
        if p.by is None:
            return np.ones(n)
        if p.by not in table.schema.names:
            raise UserError(f"stage {self.name!r} needs column {p.by!r}, which its input does "
                            f"not have; columns: {', '.join(table.schema.names)}")
        col = table.column(p.by)
        w = np.full(n, p.default_weight, dtype=np.float64)
        if p.mapping is not None:
            for i, v in enumerate(col.to_pylist()):
                if v is not None and str(v) in p.mapping:
                    w[i] = p.mapping[str(v)]
            return w
        vals = pc.fill_null(col.cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False)
        done = np.isnan(vals)
        for r in PRESETS[p.preset] if p.preset else p.ranges:
            m = ~done
            if r.min is not None:
                m &= vals >= r.min
            if r.max is not None:
                m &= vals <= r.max
            w[m] = r.weight
            done |= m
        return w

    def tokens(self, table: pa.Table) -> np.ndarray:
        if TOKENS in table.schema.names:
            return pc.fill_null(table.column(TOKENS), 0).to_numpy().astype(np.int64)
        text = pc.fill_null(table.column(TEXT), "")  # approx, as count_tokens does
        return (pc.binary_length(text).to_numpy(zero_copy_only=False).astype(np.int64) + 3) // 4

    def groups(self, table: pa.Table) -> list[str]:
        missing = [c for c in self.params.target_by if c not in table.schema.names]
        if missing:
            raise UserError(f"stage {self.name!r}: target_by column(s) {', '.join(missing)} "
                            "are not in its input")
        cols = [table.column(c).to_pylist() for c in self.params.target_by]
        return ["|".join("" if v is None else str(v) for v in row) for row in zip(*cols)]

    # ------------------------------------------------------------ map form (no targets)
    def begin_task(self, ctx) -> None:
        """Nothing to reset: weights depend on the document alone."""

    def process(self, table: pa.Table, stats: StageStats) -> pa.Table:
        return self._emit(table, self.rule_weights(table), stats)

    def _emit(self, table: pa.Table, w: np.ndarray, stats: StageStats) -> pa.Table:
        if self.params.mode == "weight":
            return set_column(table, "weight", pa.array(w, pa.float64()), pa.float64())
        copies = np.floor(w).astype(np.int64)
        frac = w - copies
        if (frac > 0).any():
            copies += (self._uniform(table.column(ID).to_pylist()) < frac).astype(np.int64)
        n_zero = int((copies == 0).sum())
        if n_zero:
            stats.drop_rows("downsampled", table, copies == 0)
        parts = []
        for r in range(int(copies.max()) if len(copies) else 0):
            idx = np.flatnonzero(copies > r)
            part = table.take(pa.array(idx))
            parts.append(set_column(part, "repeat_index", pa.array(np.full(len(idx), r),
                                                                   pa.int32()), pa.int32()))
        stats.docs_added += int(copies.sum()) - (len(copies) - n_zero)
        if not parts:
            return set_column(table.slice(0, 0), "repeat_index", pa.array([], pa.int32()),
                              pa.int32())
        return pa.concat_tables(parts)

    def _uniform(self, ids: list) -> np.ndarray:
        seed = str(self.params.seed).encode()
        out = np.empty(len(ids))
        for i, d in enumerate(ids):
            h = hashlib.blake2b(str(d).encode("utf-8", "surrogatepass"), digest_size=8,
                                key=seed[:64])
            out[i] = int.from_bytes(h.digest(), "little") / 2.0**64
        return out

    # ------------------------------------------------------------ global form (targets)
    def steps(self, n_shards: int) -> list[Step]:
        return [Step("targets", 1)]

    def begin_collect(self, ctx: GlobalContext) -> None:
        self._ctx = ctx
        self._hist: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._docs: dict[str, int] = defaultdict(int)

    def collect(self, table: pa.Table, keys: np.ndarray) -> None:
        if table.num_rows == 0:
            return
        w, t, g = self.rule_weights(table), self.tokens(table), self.groups(table)
        for gi, wi, ti in zip(g, w.tolist(), t.tolist()):
            self._hist[gi][repr(wi)] += ti
            self._docs[gi] += 1

    def end_collect(self) -> None:
        write_json_atomic(self._ctx.path("collect", f"part-{self._ctx.task:05d}.json"),
                          {"tokens": self._hist, "docs": self._docs})

    def run_step(self, step: str, ctx: GlobalContext) -> dict[str, float]:
        hist: dict[str, dict[float, int]] = defaultdict(lambda: defaultdict(int))
        for s in range(ctx.n_shards):
            part = json.loads(ctx.path("collect", f"part-{s:05d}.json").read_text())
            for g, h in part["tokens"].items():
                for w, t in h.items():
                    hist[g][float(w)] += t
        factors, metrics = solve_targets(hist, self.params.targets or {},
                                         self.params.target_tokens, self.params.max_epochs)
        for g, short in metrics.items():
            if g.startswith("unmet:") and short > 0:
                log.warning("stage %s: target of group %r cannot be met under max_epochs=%g: "
                            "%d tokens short", self.name, g[6:], self.params.max_epochs, short)
        write_json_atomic(ctx.path("factors.json"), factors)
        return metrics

    def begin_apply(self, ctx: GlobalContext) -> None:
        self._factors = json.loads(ctx.path("factors.json").read_text())

    def apply(self, table: pa.Table, keys: np.ndarray, stats: StageStats) -> pa.Table:
        w = self.rule_weights(table)
        if table.num_rows:
            alpha = np.array([self._factors.get(g, math.nan) for g in self.groups(table)])
            scaled = np.minimum(alpha * w, np.maximum(self.params.max_epochs, 0))
            w = np.where(np.isnan(alpha), w, scaled)
        return self._emit(table, w, stats)


def solve_targets(hist: dict[str, dict[float, int]], shares: dict[str, float],
                  target_tokens: int | None, cap: float) -> tuple[dict, dict[str, float]]:
    """Scale factor per listed group so that sum(min(a*w, cap) * tokens) = share * total."""
    before = {g: sum(w * t for w, t in h.items()) for g, h in hist.items()}
    total = target_tokens if target_tokens is not None else \
        sum(before.get(g, 0) for g in shares)
    factors, metrics = {}, {}
    for g, share in sorted(shares.items()):
        h = {w: t for w, t in hist.get(g, {}).items() if w > 0 and t > 0}
        goal = share * total

        def f(a: float, h=h) -> float:
            return sum(min(a * w, cap) * t for w, t in h.items())

        reachable = f(math.inf) if h else 0.0
        if goal >= reachable:
            a = cap / min(h) if h else 0.0  # every document at the cap
        else:
            lo, hi = 0.0, 1.0
            while f(hi) < goal:
                hi *= 2
            for _ in range(200):
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if f(mid) < goal else (lo, mid)
            a = hi
        factors[g] = a
        metrics[f"tokens_before:{g}"] = before.get(g, 0)
        metrics[f"tokens_target:{g}"] = round(goal)
        metrics[f"tokens_after:{g}"] = round(f(a)) if h else 0
        metrics[f"unmet:{g}"] = max(0, round(goal - reachable))
    return factors, metrics
