"""Progress over a phase's tasks, with documents written and docs/s.

On a terminal it is a rich progress bar. Otherwise (output sent to a file, a CI log,
a batch job) it prints a plain ``thresher: <phase> n/N tasks ...`` line when the
phase ends and at most every ``PLAIN_EVERY_S`` seconds before that, so a long Ray or
local run still shows how far it got without filling the log with redraws. rich is
imported only for the bar (about 0.02 s of every run's start-up otherwise).
"""

from __future__ import annotations

import sys
import time

from pipelines.plan import Phase

PLAIN_EVERY_S = 10.0


class TaskProgress:
    def __init__(self, phase: Phase, total: int, enabled: bool = True):
        self.plain = enabled and not sys.stderr.isatty()
        self.enabled = enabled and not self.plain
        self.name, self.total, self.done = phase.name, total, 0
        self.docs = 0
        self.t0 = self._shown = time.perf_counter()
        self._p = self._task = None
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._p = Progress(
                TextColumn(f"[bold]{phase.name}[/]"), BarColumn(), MofNCompleteColumn(),
                TextColumn("tasks  {task.fields[docs]} docs out  {task.fields[rate]} docs/s"),
                TimeElapsedColumn(), console=Console(stderr=True), transient=False)
            self._task = self._p.add_task(phase.name, total=total, docs=0, rate="-")

    def __enter__(self) -> TaskProgress:
        if self._p is not None:
            self._p.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._p is not None:
            self._p.__exit__(*exc)

    def advance(self, docs: int) -> None:
        self.docs += docs
        self.done += 1
        now = time.perf_counter()
        rate = self.docs / max(now - self.t0, 1e-9)
        if self._p is not None:
            self._p.update(self._task, advance=1, docs=self.docs, rate=f"{rate:,.0f}")
        if self.plain and (self.done == self.total or now - self._shown >= PLAIN_EVERY_S):
            self._shown = now
            print(f"thresher: {self.name} {self.done}/{self.total} tasks, {self.docs:,} docs "
                  f"out, {rate:,.0f} docs/s, {now - self.t0:.0f} s", file=sys.stderr,
                  flush=True)
