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
    <run>/manifest.json               the snapshot lock (pipelines/manifest.py)

``RunDir`` is also the one reader of a run's JSON and YAML files: every command that
inspects a run (stats, samples, diff, dups, status, report, materialize) loads them
through ``load_stats``, ``load_plan``, ``load_manifest``, ``load_config`` and
``task_records``, which say in one line what is missing or unreadable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.errors import UserError
from pipelines.io.remote_path import RemotePath, run_path

if TYPE_CHECKING:
    from pipelines.config import PipelineConfig
    from pipelines.plan import Plan


@dataclass(frozen=True)
class RunDir:
    root: Path

    @classmethod
    def at(cls, path: str | Path | RemotePath | RunDir) -> RunDir:
        """The run directory at ``path``: a local path (made absolute) or a URL in object
        storage (``RemotePath``); it need not exist yet."""
        if isinstance(path, RunDir):
            return path
        return cls(run_path(path))

    @property
    def is_remote(self) -> bool:
        return isinstance(self.root, RemotePath)

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
        return json.loads(self.task_stats(phase, task).read_bytes())

    def looks_like_run(self) -> bool:
        return self.config.exists() or self.plan.exists()

    # ------------------------------------------------------------------ reading a run

    def _json(self, path: Path, what: str) -> Any:
        try:
            return json.loads(path.read_bytes())
        except FileNotFoundError:
            raise UserError(f"{path} does not exist: {what}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"{path}: cannot read: {e}") from None
        except ValueError as e:
            raise UserError(f"{path}: not valid JSON: {e}") from None

    def load_stats(self) -> dict[str, Any]:
        """stats.json: the merged stats of a finished run."""
        return self._json(self.stats_json, "not a finished thresher run (finish it with "
                                           "`thresher run CONFIG --resume`)")

    def load_plan_json(self) -> dict[str, Any]:
        return self._json(self.plan, "not a thresher run directory")

    def load_plan(self) -> Plan:
        from pipelines.plan import Plan

        if not self.plan.exists():
            raise UserError(f"{self.root} is not a thresher run directory (no plan.json)")
        return Plan.load(self.plan)

    def load_manifest(self) -> dict[str, Any]:
        return self._json(self.manifest, "the run has no manifest (is it finalized? "
                                         "`thresher finalize RUN`)")

    def load_config_dict(self) -> dict[str, Any]:
        """config.yaml as plain data (no validation: a report reads any version's)."""
        import yaml

        try:
            return yaml.safe_load(self.config.read_text()) or {}
        except FileNotFoundError:
            raise UserError(f"{self.config} does not exist: not a thresher run "
                            "directory") from None
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise UserError(f"{self.config}: cannot read: {e}") from None

    def load_config(self) -> PipelineConfig:
        """config.yaml validated, as every task reads it (inputs not globbed again)."""
        from pipelines.config import load_config

        return load_config(self.config, check_inputs=False)

    def task_records(self, phase: str) -> list[dict[str, Any]]:
        """Every done task's stats file of ``phase``, in task order."""
        d = self.root / "stats" / phase
        return [json.loads(p.read_text()) for p in sorted(d.glob("task-*.json"))]
