"""thresher's engine: config, planning, execution, IO and statistics.

Python use mirrors the YAML::

    from pipelines import PipelineConfig, load_config, run_pipeline, stage
    cfg = load_config("configs/demo.yaml", overrides={"output": "runs/nb"})
    run = run_pipeline(cfg, overwrite=True)
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("thresher")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0+unknown"

from .config import PipelineConfig, config_from_dict, config_from_yaml, load_config, stage
from .runner import run_pipeline, run_task
from .stage import Annotator, Filter, Params, Stage
from .stats import RunStats, StageStats

__all__ = [
    "Annotator",
    "Filter",
    "Params",
    "PipelineConfig",
    "RunStats",
    "Stage",
    "StageStats",
    "__version__",
    "config_from_dict",
    "config_from_yaml",
    "load_config",
    "run_pipeline",
    "run_task",
    "stage",
]
