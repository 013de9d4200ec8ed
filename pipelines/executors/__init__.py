"""Executors run the tasks of a planned run; every one calls ``pipelines.task.run_task``.

``base`` defines the protocol; ``local`` (a process pool), ``ray`` and ``slurm`` (job arrays,
``slurm_queue`` talks to sbatch/squeue) implement it; ``progress`` shows a phase's tasks.
A new executor is a class, a line in ``EXECUTORS``, its config model in
``pipelines.config`` (the ``kind`` it answers to) and a test.
"""

from __future__ import annotations

from importlib import import_module

from pipelines.config import ExecutorConfig
from pipelines.executors.base import Executor

#: executor.kind -> "module:Class"; imported only by runs that use it (Ray is optional)
EXECUTORS: dict[str, str] = {
    "local": "pipelines.executors.local:LocalExecutor",
    "ray": "pipelines.executors.ray:RayExecutor",
    "slurm": "pipelines.executors.slurm:SlurmExecutor",
}


def make_executor(cfg: ExecutorConfig, progress: bool = False) -> Executor:
    module, _, cls = EXECUTORS[cfg.kind].partition(":")
    return getattr(import_module(module), cls)(cfg, progress=progress)


__all__ = ["EXECUTORS", "Executor", "make_executor"]
