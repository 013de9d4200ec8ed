"""A rich progress bar over a phase's tasks, with documents written and docs/s."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..plan import Phase


class TaskProgress:
    def __init__(self, phase: Phase, total: int, enabled: bool = True):
        self.enabled = enabled and sys.stderr.isatty()
        self.docs = 0
        self.t0 = time.perf_counter()
        self._p = Progress(
            TextColumn(f"[bold]{phase.name}[/]"), BarColumn(), MofNCompleteColumn(),
            TextColumn("tasks  {task.fields[docs]} docs out  {task.fields[rate]} docs/s"),
            TimeElapsedColumn(), console=Console(stderr=True), transient=False,
            disable=not self.enabled)
        self._task = self._p.add_task(phase.name, total=total, docs=0, rate="-")

    def __enter__(self) -> TaskProgress:
        self._p.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._p.__exit__(*exc)

    def advance(self, docs: int) -> None:
        self.docs += docs
        rate = self.docs / max(time.perf_counter() - self.t0, 1e-9)
        self._p.update(self._task, advance=1, docs=self.docs, rate=f"{rate:,.0f}")
