"""Executors run a phase's tasks; all of them call ``runner.run_task``."""

from __future__ import annotations

from ..config import ExecutorConfig
from .base import Executor
from .local import LocalExecutor


def make_executor(cfg: ExecutorConfig, progress: bool = False) -> Executor:
    if cfg.kind == "local":
        return LocalExecutor(cfg, progress=progress)
    if cfg.kind == "ray":
        from .ray import RayExecutor

        return RayExecutor(cfg, progress=progress)
    if cfg.kind == "slurm":
        from .slurm import SlurmExecutor

        return SlurmExecutor(cfg, progress=progress)
    raise ValueError(f"unknown executor kind {cfg.kind!r}")


__all__ = ["Executor", "LocalExecutor", "make_executor"]
