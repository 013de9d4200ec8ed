"""Planning: split the stage chain into phases, and each phase into tasks.

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

from .config import PipelineConfig, StageSpec
from .errors import UserError
from .stats import write_json_atomic


@dataclass(frozen=True)
class InputFile:
    path: str  # absolute
    source: str  # relative to the input root: goes into the `source` column and stable ids
    size: int


@dataclass(frozen=True)
class Phase:
    """A sharded job: ``n_tasks`` independent tasks that run the same code."""

    name: str
    kind: str  # "map": read -> stages -> write
    n_tasks: int
    stages: list[str] = field(default_factory=list)  # stage instance names
    final: bool = True


@dataclass(frozen=True)
class Plan:
    phases: list[Phase]
    inputs: list[InputFile]

    def phase(self, name: str) -> Phase:
        for p in self.phases:
            if p.name == name:
                return p
        raise UserError(f"no phase named {name!r} in this run (have: "
                        f"{', '.join(p.name for p in self.phases)})")

    def to_dict(self) -> dict:
        return {"phases": [asdict(p) for p in self.phases],
                "inputs": [asdict(i) for i in self.inputs]}

    @classmethod
    def from_dict(cls, d: dict) -> Plan:
        return cls([Phase(**p) for p in d["phases"]], [InputFile(**i) for i in d["inputs"]])

    def save(self, path: Path) -> None:
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> Plan:
        return cls.from_dict(json.loads(path.read_text()))


def make_plan(cfg: PipelineConfig) -> Plan:
    files = [InputFile(str(p), src, p.stat().st_size) for p, src in cfg.input_files()]
    specs: list[StageSpec] = cfg.stages
    global_stages = [s.name for s in specs if s.build().kind == "global"]
    if global_stages:
        raise UserError(f"stage {global_stages[0]!r} needs a global phase, "
                        "which this version of the planner does not run yet")
    return Plan([Phase("main", "map", len(files), [s.name for s in specs], final=True)], files)


def check_inputs_unchanged(plan: Plan) -> None:
    """On resume: every planned input must still exist with the same size."""
    for f in plan.inputs:
        p = Path(f.path)
        if not p.exists():
            raise UserError(f"input {f.path} of this run is missing; cannot resume")
        if p.stat().st_size != f.size:
            raise UserError(f"input {f.path} changed size since the run was planned "
                            f"({f.size} -> {p.stat().st_size} bytes); cannot resume")
