"""One task of one phase: ``run_task(run_dir, phase, task)``, what every executor calls.

It reads the resolved config and the plan from the run directory (nothing is pickled
across processes), writes its shards under temporary names and commits them, and
writes its stats file last: that file is what marks the task done. A task re-run
after a crash first removes whatever its earlier attempt left behind. Executors import
this module and nothing of the whole-run code (``pipelines.run``).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from pipelines import allocator
from pipelines.config import PipelineConfig
from pipelines.deciders import decider
from pipelines.errors import TaskError, UserError
from pipelines.global_stage import GlobalContext, GlobalStage, doc_keys
from pipelines.io.files import parquet_file, temp_path, write_bytes_atomic, write_json_atomic
from pipelines.io.hashing import InputDigest
from pipelines.io.inputs import count_unreadable, read_input
from pipelines.io.models import model_storage
from pipelines.io.storage import default_storage
from pipelines.io.writers import make_writer
from pipelines.plan import Phase, Plan
from pipelines.rundir import RunDir
from pipelines.samples import TaskSampler
from pipelines.stage import Stage, TaskContext
from pipelines.stats import RunStats, StageStats
from pipelines.version import __version__

log = logging.getLogger(__name__)

# Per-process cache: a phase's stages are built and set up (models loaded) once per
# worker. It holds one phase: a process runs the phases of a run one after another (in
# process with one worker, a Ray worker), so the previous phase's stages (a model, a
# blocklist held as a set) are let go when another phase's first task begins.
_CACHE: dict[tuple[str, str], tuple[PipelineConfig, Plan, list[Stage]]] = {}


def _load(run: RunDir, phase: str) -> tuple[PipelineConfig, Plan, list[Stage]]:
    """Config, plan and the set-up stages of ``phase`` (its collecting stage last)."""
    key = (str(run.root), phase)
    if key not in _CACHE:
        _CACHE.clear()  # another phase's (or run's) stages: not needed again
        cfg = run.load_config()
        plan = run.load_plan()
        ph = plan.phase(phase)
        by_name = {s.name: s for s in cfg.stages}
        names = ph.stages + ([ph.collect] if ph.collect else [])
        stages = [by_name[n].build() for n in names]
        if plan.source is not None:  # a materialized run: they decide from stored columns
            stages = [decider(st, plan.source.roles[st.name]) for st in stages]
        with model_storage(getattr(cfg.input, "storage_options", None)):  # as inputs are read
            for st in stages:
                st.setup()
        _CACHE[key] = (cfg, plan, stages)
    return _CACHE[key]


@dataclass
class TaskResult:
    phase: str
    task: int
    skipped: bool
    docs_out: int = 0


def run_task(run_dir: str | Path, phase: str, task: int) -> TaskResult:
    """Run one task of one phase; a no-op if it is already done."""
    run = RunDir.at(run_dir)
    if run.is_done(phase, task):
        return TaskResult(phase, task, skipped=True)
    cfg, plan, stages = _load(run, phase)
    ph = plan.phase(phase)
    if not 0 <= task < ph.n_tasks:
        raise UserError(f"phase {phase!r} has tasks 0..{ph.n_tasks - 1}, not {task}")
    handler = _task_log(run, phase, task)
    retries_before = default_storage().retries.as_dict()
    allocator.release_free_memory()  # what the process freed before is not the task's
    _reset_peak_rss()  # a reused worker (or the caller, in process) has its own history
    start_rss = _status_mb("VmRSS:")  # what the process holds before the task
    modules = len(sys.modules)
    started = time.time()
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        if ph.kind == "step":
            record = _step_task(run, cfg, plan, ph, task, stages[0])
        else:
            record = _map_task(run, cfg, plan, ph, task, stages)
        record = {
            "phase": phase, "task": task, **record,
            "models": {p: h for st in stages for p, h in st.model_files().items()},
            "thresher_version": __version__, "pid": os.getpid(),
            "wall_s": round(time.perf_counter() - t0, 6),
            "cpu_s": round(time.process_time() - c0, 6),
            "started": round(started, 3), "finished": round(time.time(), 3),
            "max_rss_mb": _peak_rss_mb(),  # of the process while this task ran
            "start_rss_mb": start_rss,  # its RSS when the task began (None: unknown)
            "imported": len(sys.modules) - modules,  # modules this task imported first
            "allocator_tuned": allocator.tuned(),  # pipelines/allocator.py
        }
        run_dir_retries = _retries_since(retries_before)
        if run_dir_retries:  # of this process's run-directory requests (object storage)
            record["run_dir_retries"] = run_dir_retries
        write_json_atomic(run.task_stats(phase, task), record)  # marks the task done
        docs_out = sum(s["rows"] for s in record.get("shards", []))
        log.info("task %d of phase %s done", task, phase)
        return TaskResult(phase, task, skipped=False, docs_out=docs_out)
    except UserError as exc:  # bad input, a full disk...: the message says it all
        log.error("task %d of phase %s failed: %s", task, phase, exc)
        raise
    except Exception:
        log.exception("task %d of phase %s failed", task, phase)
        raise
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
        _upload_task_log(run, phase, task, handler)
        allocator.release_free_memory()  # what the task freed, not kept by an idle worker


def _retries_since(before: dict[str, int]) -> dict[str, int]:
    now = default_storage().retries.as_dict()
    return {k: n - before.get(k, 0) for k, n in now.items() if n > before.get(k, 0)}


def _reset_peak_rss() -> None:
    """Start the process's peak-RSS mark afresh (Linux >= 4.0), so it measures this task."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # not Linux, or not allowed: the peak then includes the process's history


def _status_mb(key: str) -> float | None:
    """A line of /proc/self/status in MB (Linux), None where there is none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return round(int(line.split()[1]) / 1024, 1)  # kB
    except OSError:
        pass
    return None


def _peak_rss_mb() -> float:
    """Peak RSS since ``_reset_peak_rss`` (VmHWM); ru_maxrss (lifetime peak) as fallback."""
    peak = _status_mb("VmHWM:")
    if peak is not None:
        return peak
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def _global_ctx(run: RunDir, cfg: PipelineConfig, plan: Plan, stage: Stage, task: int,
                n_tasks: int) -> GlobalContext:
    return GlobalContext(run.work_dir(stage.name), task, n_tasks, plan.n_shards, cfg.seed)


def _step_task(run: RunDir, cfg: PipelineConfig, plan: Plan, ph: Phase, task: int,
               stage: Stage) -> dict:
    assert isinstance(stage, GlobalStage)
    metrics = stage.run_step(ph.step, _global_ctx(run, cfg, plan, stage, task, ph.n_tasks))
    return {"metrics": dict(metrics), "shards": [], "stages": {}}


def _map_task(run: RunDir, cfg: PipelineConfig, plan: Plan, ph: Phase, task: int,
              stages: list[Stage]) -> dict:
    prefix = f"part-{task:05d}"
    out_dir = run.data if ph.final else run.phase_dir(ph.name)
    _remove_leftovers(out_dir, prefix)
    collector = stages[-1] if ph.collect else None
    stages = stages[:-1] if ph.collect else stages
    sc = cfg.samples
    stats = RunStats(sampler=TaskSampler(cfg.seed, sc.per_reason, sc.max_chars)
                     if sc.per_reason > 0 else None)
    record: dict = {}
    if ph.source:  # re-read the shards the previous map phase wrote for this task
        prev = run.load_task_stats(ph.source, task)
        record["input"] = prev.get("input")
        source = prev.get("input", str(task))
        paths = [run.root / s["path"] for s in prev["shards"]]
        tables = _read_intermediate(paths, cfg.input.batch_size)
    elif plan.source is not None:  # materialized: the annotated run's shards of this task
        source = plan.source.tasks[task]["input"]
        tables = _read_intermediate(plan.source.shard_paths(task), cfg.input.batch_size)
    else:
        inp = plan.inputs[task]
        record["input"] = source = inp.source
        digest = InputDigest()  # filled in as the reader reads the input
        read = stats.stage("read")
        if task == 0:  # only the first phase reads the inputs
            for d in plan.skipped:
                count_unreadable(read, d, "input_is_directory")
        tables = _timed(read_input(cfg.input, inp, read, digest), read)
    ctx = TaskContext(run.root, ph.name, task, source, cfg.seed)
    writer = make_writer(out_dir, prefix, cfg.output, run.root, final=ph.final)
    try:
        _run_map(tables, ctx, stages, collector, writer, stats, final=ph.final,
                 gctx=lambda st: _global_ctx(run, cfg, plan, st, task, ph.n_tasks))
        shards = writer.close()
    except BaseException:
        writer.abort()
        try:  # a failed task leaves no shards (they would fill a full disk further)
            _remove_leftovers(out_dir, prefix)
        except OSError:
            pass  # e.g. read-only: the next attempt removes them
        raise
    _check_balanced(stats, task)
    _check_error_rate(cfg, stats, task, source, out_dir, prefix)
    if not ph.source and plan.source is None:
        record["input_sha256"] = digest.sha256
        record["input_hash_s"] = round(digest.seconds, 6)  # part of the read stage's time
        if digest.retries is not None:  # a remote input: its storage retries by kind
            record["storage_retries"] = digest.retries
    record["shards"] = [s.to_dict() for s in shards]
    record["stages"] = stats.to_dict()
    if stats.sampler is not None:  # before the stats file, which marks the task done
        stats.sampler.write(run.task_samples(ph.name, task))
    return record


def _read_intermediate(paths: list[Path], batch_size: int) -> Iterator[pa.Table]:
    for path in paths:
        pf = parquet_file(path)
        for batch in pf.iter_batches(batch_size=batch_size):
            yield pa.Table.from_batches([batch])


def _run_map(tables: Iterator[pa.Table], ctx: TaskContext, stages: list[Stage],
             collector: Stage | None, writer, stats: RunStats, final: bool, gctx) -> None:
    """Push each batch through the stages (a leading global stage applies its decision),
    let the collecting global stage see what comes out, and write it."""
    read = stats.stages.get("read")
    per_stage = [stats.stage(s.name) for s in stages]
    write = stats.stage("write") if final else StageStats()  # intermediate writes: not counted
    cs = stats.stage(collector.name) if collector is not None else None
    for st in stages:
        if st.kind == "global":
            st.begin_apply(gctx(st))
        else:
            st.begin_task(ctx)
    if collector is not None:
        assert isinstance(collector, GlobalStage)
        collector.begin_collect(gctx(collector))
    applied = collected = 0
    for table in tables:
        if read is not None:
            read.count_out(table)
        for st, st_stats in zip(stages, per_stage):
            st_stats.count_in(table)
            with st_stats.timed():
                if st.kind == "global":
                    keys = doc_keys(ctx.task, applied, table.num_rows)
                    applied += table.num_rows
                    table = st.apply(table, keys, st_stats)
                else:
                    table = st.process(table, st_stats)
            st_stats.count_out(table)
        if collector is not None:
            if final:  # a pass-through stage ending the chain (plan.py): it sees them all
                cs.count_in(table)
                cs.count_out(table)
            with cs.timed():
                collector.collect(table, doc_keys(ctx.task, collected, table.num_rows))
            collected += table.num_rows
        write.count_in(table)
        with write.timed():
            writer.write(table)
        write.count_out(table)
    if collector is not None:
        with cs.timed():
            collector.end_collect()


def _timed(it: Iterator[pa.Table], stats: StageStats) -> Iterator[pa.Table]:
    """Charge the time spent inside the reader's generator to the `read` stats."""
    it = iter(it)
    while True:
        with stats.timed():
            table = next(it, None)
        if table is None:
            return
        yield table


def _check_balanced(stats: RunStats, task: int) -> None:
    for name, st in stats.stages.items():
        if not st.balanced():
            raise RuntimeError(
                f"bug: stage {name!r} in task {task} lost documents: in={st.docs_in} "
                f"added={st.docs_added} out={st.docs_out} dropped={st.n_dropped} "
                f"errors={st.n_errors}")


def _check_error_rate(cfg: PipelineConfig, stats: RunStats, task: int, source: str,
                      out_dir: Path, prefix: str) -> None:
    """Fail the task when a stage's errors exceed ``max_error_rate`` of its documents
    (bad input on a scale that needs a look); its shards go, so nothing looks done."""
    for name, st in stats.stages.items():
        limit = cfg.error_rate_limit(name)
        if limit is None or not st.docs_in or st.n_errors <= limit * st.docs_in:
            continue
        _remove_leftovers(out_dir, prefix)
        worst = sorted(st.errors.items(), key=lambda kv: (-kv[1], kv[0]))
        raise TaskError(
            f"stage {name!r} in task {task} ({source}): {st.n_errors} errors in {st.docs_in} "
            f"documents ({st.n_errors / st.docs_in:.1%}) exceed max_error_rate {limit:g} ("
            + ", ".join(f"{r} {n}" for r, n in worst) + ")")


def _remove_leftovers(out_dir: Path, prefix: str) -> None:
    """Delete shards (and temp files) an earlier, unfinished attempt of this task left."""
    if not out_dir.is_dir():
        return
    for p in out_dir.iterdir():
        if p.name.startswith(prefix + "-") or p.name.startswith(f".{prefix}-"):
            p.unlink()


def _task_log(run: RunDir, phase: str, task: int) -> logging.Handler:
    """A handler appending to the task's log; in object storage, to a local file that
    ``_upload_task_log`` appends to the remote log when the task ends (done or failed)."""
    path = run.task_log(phase, task)
    path.parent.mkdir(parents=True, exist_ok=True)
    if run.is_remote:
        path = temp_path(path)
        path.unlink(missing_ok=True)
    handler = logging.FileHandler(path, mode="a")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    return handler


def _upload_task_log(run: RunDir, phase: str, task: int, handler: logging.Handler) -> None:
    """Append this attempt's local log to the task's log in object storage. A log that
    cannot be uploaded is reported, not raised: it must not fail a finished task."""
    if not run.is_remote:
        return
    local = Path(handler.baseFilename)
    remote = run.task_log(phase, task)
    try:
        earlier = remote.read_bytes() if remote.exists() else b""
        write_bytes_atomic(remote, earlier + local.read_bytes())
    except OSError as exc:
        print(f"thresher: could not upload the log of {phase}/{task}: {exc}", file=sys.stderr)
    finally:
        local.unlink(missing_ok=True)
