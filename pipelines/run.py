"""A whole run: ``prepare_run`` (run directory, resolved config, plan), ``run_pipeline``
(hand the plan to the executor) and ``finalize_run`` (merge stats and samples, write the
manifest). Tasks themselves live in ``pipelines.task``; executors never import this.
A caller may bring its own plan (``thresher materialize``: pipelines/materialize.py);
everything else about the run is the same.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from pipelines.config import PipelineConfig, dump_resolved
from pipelines.errors import UserError
from pipelines.executors.base import Launch
from pipelines.io.files import write_json_atomic, write_text_atomic
from pipelines.io.remote_path import remove_tree
from pipelines.io.storage import default_storage
from pipelines.plan import Plan, check_inputs_unchanged, make_plan
from pipelines.rundir import RunDir
from pipelines.samples import carried_samples, merge_samples
from pipelines.stats import RunStats


def prepare_run(cfg: PipelineConfig, resume: bool = False, overwrite: bool = False,
                plan: Plan | None = None) -> RunDir:
    """Create (or reopen, with ``resume``) the run directory; write config and plan
    (``plan``, or one made from the config's inputs)."""
    run = RunDir.at(cfg.output.path)
    if resume and run.looks_like_run() and not (run.config.exists() and run.plan.exists()):
        # killed while the run was being set up: no task can have run; set it up anew
        for p in [run.plan, run.config, *run.root.glob(".*.tmp-*")]:
            p.unlink(missing_ok=True)
    if run.root.exists() and any(run.root.iterdir()):
        if resume and run.looks_like_run():
            old = run.load_config()
            if old.fingerprint() != cfg.fingerprint():
                raise UserError(
                    f"{run.root} was made with a different config ({_first_difference(old, cfg)}); "
                    "resume it with the same config, or use --overwrite to start over")
            stored = run.load_plan()
            if plan is not None and _source_of(stored) != _source_of(plan):
                raise UserError(f"{run.root} holds a run planned from other inputs (or "
                                "other shards of the annotated run); resume it as it was "
                                "started, or use --overwrite to start over")
            check_inputs_unchanged(stored, cfg.input.storage_options)
            if run.is_remote:  # what killed writers left: invisible, never counted, billed
                default_storage().abort_uploads(str(run.root) + "/")
            # the executor block may change between attempts; record the latest one
            write_text_atomic(run.config, dump_resolved(cfg))
            return run
        if overwrite and run.looks_like_run():
            remove_tree(run.root)
        elif overwrite:
            raise UserError(f"{run.root} is not empty and is not a thresher run directory; "
                            "refusing to delete it")
        elif resume:
            raise UserError(f"{run.root} holds no thresher run to resume")
        else:
            raise UserError(f"{run.root} already holds a run; use --resume to finish it "
                            "or --overwrite to start over")
    plan = plan or make_plan(cfg)
    run.root.mkdir(parents=True, exist_ok=True)
    plan.save(run.plan)
    write_text_atomic(run.config, dump_resolved(cfg))
    return run


def _source_of(plan: Plan) -> tuple:
    return (plan.source.run, plan.source.tasks) if plan.source is not None else (None, None)


def launch_pipeline(cfg: PipelineConfig, resume: bool = False, overwrite: bool = False,
                    progress: bool = False, wait: bool = True,
                    plan: Plan | None = None) -> tuple[RunDir, Launch]:
    """Plan the run and give its undone tasks to the configured executor; finalize it
    once they ran, unless the executor's own jobs do (Slurm). ``wait=False`` lets a
    submit-everything executor return once the jobs are queued."""
    from pipelines.executors import make_executor

    executor = make_executor(cfg.executor, progress=progress)
    try:
        executor.check(RunDir.at(cfg.output.path))  # before touching the run
        run = prepare_run(cfg, resume=resume, overwrite=overwrite, plan=plan)
        plan = run.load_plan()
        todo = {p.name: [t for t in range(p.n_tasks) if not run.is_done(p.name, t)]
                for p in plan.phases}
        if not any(todo.values()):  # every task was done by an earlier attempt
            finalize_run(run)
            return run, Launch(finished=True)
        launch = executor.execute(run, plan, todo, wait=wait)
    finally:
        executor.close()
    if launch.finished and not executor.finalizes:
        finalize_run(run)
    return run, launch


def run_pipeline(cfg: PipelineConfig, resume: bool = False, overwrite: bool = False,
                 progress: bool = False, plan: Plan | None = None) -> RunDir:
    """Plan and run every phase with the configured executor; merge the stats."""
    return launch_pipeline(cfg, resume=resume, overwrite=overwrite, progress=progress,
                           plan=plan)[0]


def finalize_run(run_dir: str | Path | RunDir) -> dict:
    """Once every task of every phase is done: merge stats, write the manifest.

    Idempotent, and reads only the run dir, so a Slurm job can run it
    (``thresher finalize RUN``) after the last phase's array.
    """
    from pipelines.manifest import build_manifest

    run = RunDir.at(run_dir)
    cfg = run.load_config()
    plan = run.load_plan()
    missing = [f"{p.name}/{t}" for p in plan.phases for t in range(p.n_tasks)
               if not run.is_done(p.name, t)]
    if missing:
        raise UserError(f"{run.root}: {len(missing)} task(s) not done (first: {missing[0]}); "
                        "finish them with --resume before finalizing")
    _sweep_temp_files(run)
    stats = merge_stats(run, cfg, plan)
    merge_samples(run, [(p.name, p.n_tasks) for p in plan.phases if p.kind == "map"],
                  cfg.samples.per_reason,
                  carried_samples(plan.source) if plan.source is not None else [])
    manifest = build_manifest(run, cfg, plan, stats)
    if plan.source is not None:  # the annotated run's raw inputs and models, and its shards
        manifest.update(plan.source.manifest)
        manifest["materialized_from"] = {**manifest["materialized_from"], "shards": [
            s for t in plan.source.tasks for s in t["shards"]]}
    write_json_atomic(run.manifest, manifest)
    if not cfg.output.keep_intermediate and (run.root / "phases").is_dir():
        remove_tree(run.root / "phases")  # a full copy of the corpus; nothing reads it now
    return stats


def _sweep_temp_files(run: RunDir) -> None:
    """Delete temporary files that killed attempts left (``.<name>.tmp-<pid>``, in
    side-file, sample and stats directories too); every task is done, none is writing.
    In object storage, a killed writer leaves an unfinished multipart upload instead:
    invisible, but billed, so those are aborted."""
    if run.is_remote:
        default_storage().abort_uploads(str(run.root) + "/")
        return
    for p in run.root.rglob(".*.tmp-*"):
        if p.is_file():
            p.unlink(missing_ok=True)


def merge_stats(run: RunDir, cfg: PipelineConfig, plan: Plan) -> dict:
    """Sum every task's stats by stage name into stats.json."""
    phases = {}
    total = RunStats()
    shards = []
    for phase in plan.phases:
        ph_stats = RunStats()
        metrics: Counter = Counter()
        recs = [run.load_task_stats(phase.name, t) for t in range(phase.n_tasks)]
        for rec in recs:
            ph_stats = ph_stats + RunStats.from_dict(rec["stages"])
            metrics.update(rec.get("metrics", {}))
            if phase.final:
                shards += rec["shards"]
        starts = [r["started"] for r in recs if "started" in r]
        ends = [r["finished"] for r in recs if "finished" in r]
        phases[phase.name] = {
            "kind": phase.kind, "tasks": phase.n_tasks,
            # first start to last end (spans executor gaps of a resumed run)
            "elapsed_s": round(max(ends) - min(starts), 3) if starts and ends else None,
            "task_wall_s": round(sum(r.get("wall_s", 0) for r in recs), 3),
            "max_rss_mb": max((r.get("max_rss_mb", 0) for r in recs), default=0),
        }
        if metrics:
            phases[phase.name]["metrics"] = dict(sorted(metrics.items()))
        total = total + ph_stats
    carried = plan.source.carried if plan.source is not None else {}
    total = total + RunStats.from_dict(carried)
    order = ["read", *[s.name for s in cfg.stages], "write"]
    stages = total.ordered(order).to_dict()
    for name, st in carried.items():  # counts of the run this one was materialized from
        stages[name] |= {"carried_from": plan.source.run, "carried_docs": st["docs_in"]}
    doc = {
        "run": cfg.name,
        "config_fingerprint": cfg.fingerprint(),
        "phases": phases,
        "stages": stages,
        "output": {"rows": sum(s["rows"] for s in shards), "shards": shards},
    }
    if plan.source is not None:
        doc["materialized_from"] = plan.source.manifest["materialized_from"]
    write_json_atomic(run.stats_json, doc)
    return doc


def _first_difference(a: PipelineConfig, b: PipelineConfig) -> str:
    da, db = a.to_dict(), b.to_dict()
    for d in (da, db):
        d.pop("executor")
        d["output"].pop("path")

    def walk(x, y, path):
        if type(x) is not type(y):
            return path or "<root>"
        if isinstance(x, dict):
            for k in list(x) + [k for k in y if k not in x]:
                if k not in x or k not in y:
                    return f"{path}.{k}".lstrip(".")
                r = walk(x[k], y[k], f"{path}.{k}")
                if r:
                    return r.lstrip(".")
            return None
        if isinstance(x, list):
            if len(x) != len(y):
                return f"{path} (length)"
            for i, (u, v) in enumerate(zip(x, y)):
                r = walk(u, v, f"{path}[{i}]")
                if r:
                    return r
            return None
        return None if x == y else path.lstrip(".")

    where = walk(da, db, "")
    return f"first difference at {where}" if where else "differs"
