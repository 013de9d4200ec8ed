"""Global stages: stages that must see the whole corpus before deciding.

Dedup, global percentile thresholds and rebalancing to corpus-wide targets
cannot decide per shard. A ``GlobalStage`` splits its work across phases that
the planner inserts into the run (see pipelines/plan.py)::

    map phase (before)   collect(table)   per input shard: write what the decision needs
    step phases          run_step(...)    sharded or single tasks over the collected files
    map phase (after)    apply(table)     per shard: apply the decision (drop / annotate)

Every phase is an ordinary sharded job run by ``run_task``, so a global stage
runs unchanged on every executor, resumes task by task, and writes only files
under its own work directory ``<run>/work/<stage name>/`` (``RunDir.work_dir``).

Rows are identified across phases by a *doc key*: ``(task << 32) | row``, where
``row`` counts the documents that reached the stage in that task, in order. The
map phase after the stage reads the intermediate shards of the phase before it
in the same order, so the key of each row is known again without storing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from pipelines.lazy import lazy_module
from pipelines.stage import Stage, TaskContext
from pipelines.stats import StageStats

np = lazy_module("numpy")
pa = lazy_module("pyarrow")


@dataclass(frozen=True)
class Step:
    """One phase of a global stage: ``n_tasks`` independent tasks named ``<stage>.<name>``."""

    name: str
    n_tasks: int


@dataclass(frozen=True)
class GlobalContext:
    """Where a global stage's task reads and writes, and how the run is sharded."""

    work_dir: Path  # <run>/work/<stage name>/ : everything the stage writes lives here
    task: int  # task index within the current phase
    n_tasks: int  # tasks of the current phase
    n_shards: int  # tasks of the map phases around the stage (= input shards)
    seed: int = 0

    def path(self, *parts: str) -> Path:
        p = self.work_dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p


def doc_keys(task: int, start_row: int, n: int) -> np.ndarray:
    """Keys of ``n`` consecutive rows of ``task`` starting at ``start_row``."""
    return (np.uint64(task) << np.uint64(32)) | np.arange(start_row, start_row + n,
                                                          dtype=np.uint64)


def key_task(keys: np.ndarray) -> np.ndarray:
    return (keys >> np.uint64(32)).astype(np.int64)


class GlobalStage(Stage):
    """Base of global stages. Subclasses implement the four hooks below, and declare
    ``input_columns`` / ``output_columns`` (pipelines/stage.py) as every stage does.

    Side files must be written atomically (see ``pipelines.partitioned``): a
    task may be re-run after a crash, and a later phase trusts every file of a
    task whose stats file exists.
    """

    kind: ClassVar[Literal["map", "global"]] = "global"
    #: True when ``apply`` passes every document on unchanged (the stage's product is its
    #: steps' files, as tokenize_export's token files): as the last stage of a chain it
    #: gets no apply phase; the map phase before it writes the output while it collects.
    passes_through: ClassVar[bool] = False

    def steps(self, n_shards: int) -> list[Step]:
        """The step phases between collecting and applying, in order."""
        raise NotImplementedError

    def begin_collect(self, ctx: GlobalContext) -> None:
        """Start collecting for shard ``ctx.task`` (in the map phase before the stage)."""

    def collect(self, table: pa.Table, keys: np.ndarray) -> None:
        """See a batch of documents as they reach the stage; ``keys`` are their doc keys."""
        raise NotImplementedError

    def end_collect(self) -> None:
        """Write the shard's side files (called once, before the task is marked done)."""

    def run_step(self, step: str, ctx: GlobalContext) -> dict[str, float]:
        """Run one task of step ``step``; return metrics that sum across tasks."""
        raise NotImplementedError

    def begin_apply(self, ctx: GlobalContext) -> None:
        """Load what the steps decided for shard ``ctx.task`` (the map phase after)."""

    def apply(self, table: pa.Table, keys: np.ndarray, stats: StageStats) -> pa.Table:
        """Drop or annotate a batch of documents; count every drop in ``stats``."""
        raise NotImplementedError

    # A global stage is not a per-batch map stage: the runner calls the hooks above.
    def begin_task(self, ctx: TaskContext) -> None:  # pragma: no cover - not used
        raise TypeError(f"{self.name} is a global stage; the runner drives it by phases")

    def process(self, table: pa.Table, stats: StageStats) -> pa.Table:  # pragma: no cover
        raise TypeError(f"{self.name} is a global stage; the runner drives it by phases")
