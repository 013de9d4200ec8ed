"""thresher's engine: config, planning, execution, IO and statistics.

Python use mirrors the YAML::

    from pipelines import PipelineConfig, load_config, run_pipeline, stage
    cfg = load_config("configs/demo.yaml", overrides={"output": "runs/nb"})
    run = run_pipeline(cfg, overwrite=True)

``run_pipeline`` and ``run_task`` are imported on first use (PEP 562), so importing the
stage protocol or the config does not import the executors.
"""

from __future__ import annotations

from importlib import import_module

from pipelines.config import PipelineConfig, config_from_dict, config_from_yaml, load_config, stage
from pipelines.stage import Annotator, Filter, Params, Stage
from pipelines.stats import RunStats, StageStats
from pipelines.version import __version__

_LAZY = {"run_pipeline": "pipelines.run", "run_task": "pipelines.task"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pipelines' has no attribute {name!r}")


__all__ = [
    "Annotator", "Filter", "Params", "PipelineConfig", "RunStats", "Stage", "StageStats",
    "__version__", "config_from_dict", "config_from_yaml", "load_config", "run_pipeline",
    "run_task", "stage",
]
