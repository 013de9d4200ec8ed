"""A test-only stage that fails a whole task (not one document) when told to."""

from __future__ import annotations

import os

from pipelines.stage import Stage


class FailOnSource(Stage):
    """Raises in `process` for the task whose source contains $THRESHER_TEST_FAIL_SOURCE."""

    def begin_task(self, ctx):
        self._fail = bool(os.environ.get("THRESHER_TEST_FAIL_SOURCE")) and \
            os.environ["THRESHER_TEST_FAIL_SOURCE"] in ctx.source

    def process(self, table, stats):
        if self._fail:
            raise RuntimeError("simulated crash in a stage")
        return table


class KillOnce(Stage):
    """SIGKILLs its own worker process, once per $THRESHER_TEST_KILL_MARKER, mid-task.

    Simulates an OOM kill or a lost node: the executor must retry the task and the
    output must have no lost or duplicated document.
    """

    def process(self, table, stats):
        marker = os.environ.get("THRESHER_TEST_KILL_MARKER")
        if marker and not os.path.exists(marker):
            with open(marker, "w") as f:
                f.write(str(os.getpid()))
            os.kill(os.getpid(), 9)
        return table
