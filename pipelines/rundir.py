"""The run directory: where every file of a run lives, in one place.

    <run>/config.yaml                 resolved config (the contract every task reads)
    <run>/plan.json                   phases, task counts and the input file list
    <run>/data/part-00000-0000.parquet  final shards (task 0, file 0)
    <run>/phases/<phase>/part-...     intermediate shards of a map phase before a global stage
    <run>/work/<stage>/...            a global stage's side files (signatures, buckets, ...)
    <run>/stats/<phase>/task-00000.json  per-task stats; its presence marks the task done
    <run>/stats.json                  merged stats (by stage name)
    <run>/samples/<phase>/task-00000.parquet  per-task samples of dropped documents
    <run>/samples/<stage>.parquet     merged samples: per reason, the N smallest hash(seed, id)
    <run>/logs/<phase>/task-00000.log per-task log
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def plan(self) -> Path:
        return self.root / "plan.json"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def stats_json(self) -> Path:
        return self.root / "stats.json"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    def phase_dir(self, phase: str) -> Path:
        return self.root / "phases" / phase

    def work_dir(self, stage: str) -> Path:
        return self.root / "work" / stage

    def task_stats(self, phase: str, task: int) -> Path:
        return self.root / "stats" / phase / f"task-{task:05d}.json"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    def task_samples(self, phase: str, task: int) -> Path:
        return self.samples / phase / f"task-{task:05d}.parquet"

    def stage_samples(self, stage: str) -> Path:
        return self.samples / f"{stage}.parquet"

    def task_log(self, phase: str, task: int) -> Path:
        return self.root / "logs" / phase / f"task-{task:05d}.log"

    def is_done(self, phase: str, task: int) -> bool:
        return self.task_stats(phase, task).exists()

    def done_tasks(self, phase: str) -> set[int]:
        d = self.root / "stats" / phase
        if not d.is_dir():
            return set()
        return {int(p.stem.split("-")[1]) for p in d.glob("task-*.json")}

    def load_task_stats(self, phase: str, task: int) -> dict:
        return json.loads(self.task_stats(phase, task).read_text())

    def looks_like_run(self) -> bool:
        return self.config.exists() or self.plan.exists()
