"""Executors run the tasks of a planned run; every one calls ``pipelines.task.run_task``.

``base`` defines the protocol; ``local`` (a process pool), ``ray`` and ``slurm`` (job arrays,
``slurm_queue`` talks to sbatch/squeue) implement it; ``progress`` shows a phase's tasks.
"""

from __future__ import annotations

from pipelines.config import ExecutorConfig
from pipelines.executors.base import Executor
from pipelines.executors.local import LocalExecutor


def make_executor(cfg: ExecutorConfig, progress: bool = False) -> Executor:
    if cfg.kind == "local":
        return LocalExecutor(cfg, progress=progress)
    if cfg.kind == "ray":
        from pipelines.executors.ray import RayExecutor

        return RayExecutor(cfg, progress=progress)
    if cfg.kind == "slurm":
        from pipelines.executors.slurm import SlurmExecutor

        return SlurmExecutor(cfg, progress=progress)
    raise ValueError(f"unknown executor kind {cfg.kind!r}")


__all__ = ["Executor", "LocalExecutor", "make_executor"]
