"""The stages of a materialized run: each stage of the new config wrapped so it decides
from the columns the annotated run stored instead of recomputing them.

``pipelines/materialize.py`` assigns each stage its role (``stored``, ``columns``,
``global``, ``applied``) in the plan; the task that builds a materialized run's stages
wraps them here, so the engine runs them like any other stage.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from pipelines.errors import UserError
from pipelines.global_stage import GlobalContext, GlobalStage, Step
from pipelines.schema import arrow_type
from pipelines.stage import Stage, set_column
from pipelines.stats import StageStats


def decider(stage: Stage, role: dict) -> Stage:
    """``stage`` (built from the new config) as it acts in a materialized run."""
    if role["how"] == "global":
        return _DecidesGlobally(stage, tuple(role["drop"]))
    return _Decides(stage, role["how"], tuple(role["drop"]))


def _tidy(stage: Stage, table: pa.Table, drop: tuple[str, ...]) -> pa.Table:
    """What a direct run would not have: the reason column of a stage that now filters,
    and the measurement columns of one that no longer annotates."""
    gone = list(drop)
    if getattr(stage.params, "mode", "filter") == "filter":
        gone.append(f"{stage.name}_reason")
    return table.drop_columns([c for c in gone if c in table.schema.names])


class _Decides(Stage):
    """A map stage that decides from the columns the annotated run stored (``stored``,
    ``columns``), or passes documents through (``applied``: done in that run)."""

    def __init__(self, stage: Stage, how: str, drop: tuple[str, ...]):
        super().__init__(stage.params, stage.name)
        self.stage, self.how, self.drop = stage, how, drop

    def process(self, table: pa.Table, stats: StageStats) -> pa.Table:
        if self.how == "applied":
            return table
        reasons = self._reasons(table)
        if getattr(self.params, "mode", "filter") == "annotate":
            table = set_column(table, f"{self.name}_reason", reasons, pa.string())
        else:
            annotations = _annotations(self.stage)
            score = next((c for c, t in annotations.items()
                          if pa.types.is_floating(arrow_type(t))), None)
            rows: dict[str, list[int]] = {}
            for i, r in enumerate(reasons):
                if r is not None:
                    rows.setdefault(r, []).append(i)
            for r, idx in rows.items():  # counts, characters and samples, as a direct run
                stats.drop_rows(r, table, idx, score=score, details=tuple(annotations))
            table = table.filter(pa.array([r is None for r in reasons], pa.bool_()))
        return _tidy(self, table, self.drop)

    def _reasons(self, table: pa.Table) -> list[str | None]:
        if self.how == "stored":
            column = f"{self.name}_reason"
            if column not in table.schema.names:
                raise UserError(f"the run has no {column!r} column (dropped by "
                                "output.drop_columns?); materialize needs it")
            return table.column(column).to_pylist()
        try:
            return self.stage.decide_from_columns(table)  # type: ignore[attr-defined]
        except KeyError as exc:  # e.g. a column removed by output.drop_columns
            raise UserError(f"stage {self.name!r} cannot decide: the run has no column "
                            f"{exc}; columns: {', '.join(table.schema.names)}") from None


def _annotations(stage: Stage) -> dict[str, pa.DataType]:
    ann = getattr(stage, "annotations", {})
    return dict(ann() if callable(ann) else ann)


class _DecidesGlobally(GlobalStage):
    """A global stage that decides from stored columns (``keep_top``), run as in a direct
    run: collect, steps, apply; then the columns a direct run would not have go."""

    def __init__(self, stage: Stage, drop: tuple[str, ...]):
        super().__init__(stage.params, stage.name)
        assert isinstance(stage, GlobalStage)
        self.stage, self.drop = stage, drop

    def setup(self) -> None:
        self.stage.setup()

    def steps(self, n_shards: int) -> list[Step]:
        return self.stage.steps(n_shards)

    def begin_collect(self, ctx: GlobalContext) -> None:
        self.stage.begin_collect(ctx)

    def collect(self, table: pa.Table, keys: np.ndarray) -> None:
        self.stage.collect(table, keys)

    def end_collect(self) -> None:
        self.stage.end_collect()

    def run_step(self, step: str, ctx: GlobalContext) -> dict[str, float]:
        return self.stage.run_step(step, ctx)

    def begin_apply(self, ctx: GlobalContext) -> None:
        self.stage.begin_apply(ctx)

    def apply(self, table: pa.Table, keys: np.ndarray, stats: StageStats) -> pa.Table:
        return _tidy(self, self.stage.apply(table, keys, stats), self.drop)
