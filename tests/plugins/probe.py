"""A test-only stage that records what the executor gave the task it runs in."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pipelines.stage import Params, Stage


class RecordRayResources(Stage):
    """Writes the Ray resources assigned to each task to ``<out_dir>/task-<n>.json``."""

    class Params(Params):
        out_dir: str

    def begin_task(self, ctx):
        import ray

        resources = ray.get_runtime_context().get_assigned_resources()
        path = Path(self.params.out_dir) / f"task-{ctx.task}.json"
        path.write_text(json.dumps({"pid": os.getpid(), "resources": resources}))

    def process(self, table, stats):
        return table
