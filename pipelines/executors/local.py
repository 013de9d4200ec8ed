"""Local executor: a pool of worker processes on this machine.

With ``workers: 1`` tasks run in this process (simplest to debug); otherwise a
``forkserver`` process pool runs them. Workers keep their loaded models across
tasks. The forkserver imports the engine and the run's stage modules once (preload), so
each worker it forks starts with them instead of importing them again per phase. A
failing task does not stop the others; the phase fails at the end with one message
naming the first failed task and its log.
"""

from __future__ import annotations

import multiprocessing
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager

from pipelines.allocator import tune_allocator
from pipelines.config import LocalExecutor as LocalConfig
from pipelines.config import PipelineConfig
from pipelines.errors import TaskError
from pipelines.executors.base import PhaseExecutor, failure_message
from pipelines.executors.progress import TaskProgress
from pipelines.plan import Phase
from pipelines.rundir import RunDir
from pipelines.task import run_task


class LocalExecutor(PhaseExecutor):
    def __init__(self, cfg: LocalConfig, progress: bool = False):
        self.workers = cfg.workers
        self.progress = progress

    def run_phase(self, run: RunDir, phase: Phase, tasks: list[int]) -> None:
        failures: dict[int, BaseException] = {}
        with TaskProgress(phase, len(tasks), enabled=self.progress) as bar:
            if self.workers == 1 or len(tasks) == 1:
                for t in tasks:
                    try:
                        res = run_task(run.root, phase.name, t)
                        bar.advance(res.docs_out)
                    except Exception as exc:
                        failures[t] = exc
                        bar.advance(0)
            else:
                try:
                    self._run_pool(run, phase, tasks, failures, bar)
                except (EOFError, OSError, BrokenProcessPool) as exc:
                    # the pool itself died (e.g. its forkserver was killed), not one task
                    raise TaskError(
                        f"phase {phase.name}: the worker pool failed ({type(exc).__name__}: "
                        f"{exc}); finished tasks are kept, re-run with --resume") from exc
        if failures:
            raise failure_message(run, phase, failures)

    def _run_pool(self, run: RunDir, phase: Phase, tasks: list[int],
                  failures: dict[int, BaseException], bar: TaskProgress) -> None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_preload_modules(run.load_config()))  # when it first starts
        n = min(self.workers, len(tasks))
        with _quiet_pool_teardown(), ProcessPoolExecutor(
                max_workers=n, mp_context=ctx, initializer=tune_allocator) as pool:
            pending = {pool.submit(run_task, str(run.root), phase.name, t): t for t in tasks}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    t = pending.pop(fut)
                    try:
                        bar.advance(fut.result().docs_out)
                    except Exception as exc:
                        failures[t] = exc
                        bar.advance(0)


@contextmanager
def _quiet_pool_teardown() -> Iterator[None]:
    """When a worker dies (OOM killer, SIGKILL), the pool's manager thread may fail while
    tearing the pool down (a queue's pipe already gone) and Python prints its traceback,
    after the phase's own one-line error. Say it in one line instead; every other
    thread's exception is reported as before."""
    from concurrent.futures.process import _ExecutorManagerThread

    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if isinstance(args.thread, _ExecutorManagerThread):
            print(f"thresher: the worker pool's teardown after a dead worker: "
                  f"{args.exc_type.__name__}: {args.exc_value}", file=sys.stderr)
        else:
            previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous


def start_forkserver(cfg: PipelineConfig) -> None:
    """Start the pool's forkserver now, so that its imports (the engine, the stages, a
    remote scheme's client: most of a second) overlap the caller's listing of the inputs
    and planning instead of following them. A no-op for one worker."""
    if cfg.executor.kind != "local" or cfg.executor.workers == 1:
        return
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(_preload_modules(cfg))
    forkserver.ensure_running()


def _preload_modules(cfg: PipelineConfig) -> list[str]:
    """The engine, the modules of the run's stages (a stage that cannot be imported here
    is left to fail in its task, with its own error) and, for remote inputs or run
    directory, the filesystem client of their scheme."""
    from pipelines import registry
    from pipelines.errors import UserError
    from pipelines.io.storage import SCHEMES, scheme

    mods = ["pipelines.task"]
    for url in [*(cfg.input.paths or []), getattr(cfg.input, "paths_file", None) or "",
                str(cfg.output.path)]:
        if scheme(str(url)) in SCHEMES:
            # the client's modules only: parsing S3's models before the fork delays every
            # worker's start by more than it saves them (docs/benchmarks.md, object storage)
            mods += ["pipelines.io.storage", SCHEMES[scheme(str(url))][2]]
            if SCHEMES[scheme(str(url))][0] == "s3":
                mods.append("pipelines.io.s3")
    for spec in cfg.stages:
        try:
            mods.append(registry.get(spec.stage).__module__)
        except UserError:
            pass
    return list(dict.fromkeys(mods))
