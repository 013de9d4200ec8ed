"""Planning: split the stage chain into phases, and each phase into tasks.

A chain without global stages is one map phase, ``main``. Each global stage G
cuts the chain: the map phase before G also *collects* for G, then come G's
step phases (``G.<step>``), then a map phase ``apply-G`` that re-reads the
previous map phase's intermediate shards, applies G and runs the stages after
it; a G that passes documents through unchanged (``passes_through``: tokenize_export)
and ends the chain gets none: the map phase collecting for it writes the output. Map
phases have one task per input shard. Every phase depends on all the phases before it;
each phase's task count is fixed here, before anything runs, so a batch scheduler can
submit the whole run at once.

A materialized run (``thresher materialize``, pipelines/materialize.py) is planned the
same way, from a ``SourceRun``: its tasks read an annotated run's final shards instead of
raw inputs (one task per task of that run), and its stages are the ones that decide.

Sharding is by input, never by worker: task ``i`` of a phase depends only on
its input and the resolved config, which is what makes the output identical
whatever the executor or the number of workers. The plan (phases, task counts,
the sorted input file list with sizes) is written to ``plan.json`` once, so a
resumed run sees the same tasks even if the input globs would now match more.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipelines.config import PipelineConfig
from pipelines.errors import UserError
from pipelines.io.files import write_json_atomic
from pipelines.stage import Stage


@dataclass(frozen=True)
class InputFile:
    """One task's input: a whole file, or one piece of a file split by
    ``input.max_task_bytes`` (pipelines/io/discovery.py ``split_points``)."""

    path: str  # absolute local path, or URL (s3://..., gs://...)
    source: str  # relative to the input root: goes into the `source` column and stable ids
    size: int  # the whole file's
    dataset: str | None = None  # input.dataset of this file: the `dataset` column
    # a piece: the records starting in bytes [start, end) are its; end None: whole file
    start: int = 0
    end: int | None = None
    row_groups: tuple[int, int] | None = None  # a Parquet piece: row groups [first, last)

    def __post_init__(self) -> None:
        if isinstance(self.row_groups, list):  # from plan.json
            object.__setattr__(self, "row_groups", tuple(self.row_groups))

    @property
    def is_piece(self) -> bool:
        return self.end is not None

    @property
    def length(self) -> int:
        """The bytes this task is planned to read (hashes): the file's, or its range's."""
        return self.size if self.end is None else self.end - self.start

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.end is None:  # a whole file: plan.json as before splitting existed
            for key in ("start", "end", "row_groups"):
                del d[key]
        elif self.row_groups is None:
            del d["row_groups"]
        return d


@dataclass(frozen=True)
class Phase:
    """A sharded job: ``n_tasks`` independent tasks that run the same code."""

    name: str
    kind: str  # "map": read -> stages -> write; "step": one step of a global stage
    n_tasks: int
    stages: list[str] = field(default_factory=list)  # stage instance names, in order
    final: bool = True  # a map phase writing the run's output shards to data/
    source: str = ""  # map: phase whose intermediate shards it reads ("" = the inputs)
    collect: str = ""  # map: global stage whose collect() sees this phase's output
    step: str = ""  # step: the global stage's step name (stages[0] is the stage)


@dataclass(frozen=True)
class SourceRun:
    """What a materialized run reads instead of raw inputs: the annotated run's final
    shards per task, how each of its stages decides there, the counts it carries over
    from that run (so its funnel starts at the records read), and what its manifest says
    of that run. Kept in plan.json, so every task, a resume and finalize see the same."""

    run: str  # the annotated run directory (absolute)
    tasks: list[dict]  # per task: {"input": that task's input, "shards": [ShardInfo dicts]}
    roles: dict[str, dict]  # stage -> {"how": stored|columns|global|applied, "drop": [...]}
    carried: dict[str, dict]  # stage -> its counts in the annotated run, carried over
    manifest: dict  # materialized_from (without shards), inputs, models: for manifest.json

    def shard_paths(self, task: int) -> list[Path]:
        from pipelines.io.remote_path import run_path

        return [run_path(self.run) / s["path"] for s in self.tasks[task]["shards"]]


@dataclass(frozen=True)
class Plan:
    phases: list[Phase]
    inputs: list[InputFile]
    # what the input globs matched that cannot be read (directories): counted as errors
    # of the `read` stage by task 0 of the first phase, so the funnel shows them
    skipped: list[InputFile] = field(default_factory=list)
    source: SourceRun | None = None  # a materialized run: what it reads instead of inputs

    @property
    def n_shards(self) -> int:
        """Tasks of every map phase: one per input (per task of the source run)."""
        return len(self.source.tasks) if self.source is not None else len(self.inputs)

    def _sizes(self) -> list[int]:
        if self.source is not None:
            return [sum(s["bytes"] for s in t["shards"]) for t in self.source.tasks]
        return [f.length for f in self.inputs]

    def phase(self, name: str) -> Phase:
        for p in self.phases:
            if p.name == name:
                return p
        raise UserError(f"no phase named {name!r} in this run (have: "
                        f"{', '.join(p.name for p in self.phases)})")

    def largest_first(self, phase: Phase, tasks: list[int]) -> list[int]:
        """The order to start ``tasks`` in: a map phase's tasks by input size, largest
        first (ties by task id), so a large input does not start last and leave the other
        workers idle at the end; step phases as given. Output depends on the task id
        only, never on this order."""
        sizes = self._sizes()
        if phase.kind != "map" or len(sizes) < phase.n_tasks:
            return list(tasks)
        return sorted(tasks, key=lambda t: (-sizes[t], t))

    def to_dict(self) -> dict:
        d = {"phases": [asdict(p) for p in self.phases],
             "inputs": [i.to_dict() for i in self.inputs],
             "skipped": [i.to_dict() for i in self.skipped]}
        if self.source is not None:
            d["source"] = asdict(self.source)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Plan:
        return cls([Phase(**p) for p in d["phases"]], [InputFile(**i) for i in d["inputs"]],
                   [InputFile(**i) for i in d.get("skipped", [])],
                   SourceRun(**d["source"]) if d.get("source") else None)

    def save(self, path: Path) -> None:
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> Plan:
        return cls.from_dict(json.loads(path.read_text()))


def make_plan(cfg: PipelineConfig) -> Plan:
    """With ``input.max_task_bytes``, a file larger than it is cut into pieces, one task
    each (``split_points``: byte ranges, or Parquet row groups); else one task a file."""
    from pipelines.io.discovery import discover, split_points, storage_for

    dirs: list[tuple[str, str]] = []
    files: list[InputFile] = []
    storage = storage_for(cfg.input)
    for f in discover(cfg.input, dirs, storage):
        dataset = cfg.input.dataset_of(f.source)
        pieces = split_points(cfg.input, f.path, f.size, storage)
        if not pieces:
            files.append(InputFile(f.path, f.source, f.size, dataset))
        files += [InputFile(f.path, f.source, f.size, dataset, start, end, groups)
                  for start, end, groups in pieces]
    skipped = [InputFile(p, src, 0) for p, src in dirs]
    return Plan(plan_phases([s.build() for s in cfg.stages], len(files)), files, skipped)


def plan_phases(stages: list[Stage], n_shards: int) -> list[Phase]:
    """The phases of a chain of (built, not set up) stages over ``n_shards`` shards."""
    phases: list[Phase] = []
    current: list[str] = []  # stages of the map phase being built
    name, source = "main", ""
    for i, stage in enumerate(stages):
        if stage.kind != "global":
            current.append(stage.name)
            continue
        # a pass-through stage ending the chain: the phase collecting for it writes the
        # output, and no apply phase would copy it unchanged
        last = i == len(stages) - 1 and getattr(stage, "passes_through", False)
        phases.append(Phase(name, "map", n_shards, current, final=last, source=source,
                            collect=stage.name))
        for st in stage.steps(n_shards):  # type: ignore[attr-defined]
            phases.append(Phase(f"{stage.name}.{st.name}", "step", st.n_tasks, [stage.name],
                                final=False, step=st.name))
        if last:
            return phases
        source, name, current = name, f"apply-{stage.name}", [stage.name]
    phases.append(Phase(name, "map", n_shards, current, final=True, source=source))
    return phases


def check_inputs_unchanged(plan: Plan, storage_options: dict | None = None) -> None:
    """On resume: every planned input (or source shard) must still exist with the same
    size; remote inputs are asked through the storage layer (with ``storage_options``)."""
    from pipelines.io import storage as st

    files = list(dict.fromkeys((f.path, f.size) for f in plan.inputs))  # pieces: once
    if plan.source is not None:
        files += [(str(Path(plan.source.run) / s["path"]), s["bytes"])
                  for t in plan.source.tasks for s in t["shards"]]
    storage = st.Storage(storage_options or None)
    for path, size in files:
        if st.is_remote(path):
            try:
                now = storage.size(path)
            except st.StorageNotFound:
                raise UserError(f"input {path} of this run is missing; cannot resume") \
                    from None
            except st.StorageError as exc:
                raise UserError(f"input {exc}; cannot resume") from None
        else:
            p = Path(path)
            if not p.exists():
                raise UserError(f"input {path} of this run is missing; cannot resume")
            now = p.stat().st_size
        if now != size:
            raise UserError(f"input {path} changed size since the run was planned "
                            f"({size} -> {now} bytes); cannot resume")
