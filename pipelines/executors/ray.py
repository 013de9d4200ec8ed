"""Ray executor: one Ray task per shard, each calling the same ``run_task``.

``address: local`` starts a private, small cluster for the run (no dashboard,
100 MB object store, usage stats and token auth off) and stops it afterwards;
``auto`` or ``host:port`` joins a cluster started with ``ray start``. If Ray is
already initialised in this process (a notebook, the test session) that
connection is used as it is. A task whose worker dies (OOM kill, node loss) is
retried up to ``max_retries`` times; a task that raises is not (it would fail
the same way again) and is reported with its log path.
"""

from __future__ import annotations

import os
import sys

from pipelines.allocator import tune_allocator
from pipelines.config import RayExecutor as RayConfig
from pipelines.errors import UserError
from pipelines.executors.base import PhaseExecutor, failure_message
from pipelines.executors.progress import TaskProgress
from pipelines.plan import Phase
from pipelines.rundir import RunDir
from pipelines.task import run_task


def _ray_env() -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")


class RayExecutor(PhaseExecutor):
    def __init__(self, cfg: RayConfig, progress: bool = False):
        self.cfg = cfg
        self.progress = progress
        self._started = False

    def _connect(self):
        _ray_env()
        import ray

        if ray.is_initialized():
            return ray
        if self.cfg.address == "local":
            ray.init(address="local", num_cpus=self.cfg.workers or os.cpu_count(),
                     object_store_memory=self.cfg.object_store_mb * 2**20,
                     include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        else:
            ray.init(address=self.cfg.address, log_to_driver=False, configure_logging=False)
        self._started = True
        return ray

    def _check_fits(self, ray) -> None:
        """A task asking more CPUs than any node has would wait forever (Ray only logs
        that it is infeasible): refuse on the cluster we started, warn on a joined one
        (an autoscaler may still add a bigger node)."""
        need = self.cfg.cpus_per_task
        most = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"]),
                   default=0)
        if most >= need:
            return
        msg = (f"executor.cpus_per_task: {need:g} CPUs per task, but no node of the Ray "
               f"cluster has more than {most:g}")
        if self._started and self.cfg.address == "local":
            raise UserError(f"{msg}; lower it, or raise executor.workers (the CPUs of the "
                            "local cluster)")
        print(f"thresher: warning: {msg}; tasks wait until a node that large joins",
              file=sys.stderr, flush=True)

    def run_phase(self, run: RunDir, phase: Phase, tasks: list[int]) -> None:
        ray = self._connect()
        self._check_fits(ray)
        remote = ray.remote(num_cpus=self.cfg.cpus_per_task,
                            max_retries=self.cfg.max_retries,
                            retry_exceptions=False)(_run_task_tuned)
        limit = self.cfg.workers or len(tasks)
        queue = list(tasks)
        pending: dict = {}
        failures: dict[int, BaseException] = {}
        with TaskProgress(phase, len(tasks), enabled=self.progress) as bar:
            while queue or pending:
                while queue and len(pending) < limit:
                    t = queue.pop(0)
                    pending[remote.remote(str(run.root), phase.name, t)] = t
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    t = pending.pop(ref)
                    try:
                        bar.advance(ray.get(ref).docs_out)
                    except Exception as exc:  # RayTaskError wraps the task's exception
                        failures[t] = getattr(exc, "cause", None) or exc
                        bar.advance(0)
        if failures:
            raise failure_message(run, phase, failures)

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


def _run_task_tuned(run_dir: str, phase: str, task: int):
    """``run_task`` in a Ray worker, a process that runs tasks (pipelines/allocator.py)."""
    tune_allocator()
    return run_task(run_dir, phase, task)
