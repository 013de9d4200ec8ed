"""`thresher materialize RUN OUT --set STAGE.PARAM=VALUE`: annotate once, filter many.

A run whose filters ran with ``mode: annotate`` kept every document and stored
each filter's reason and score columns. Materializing it applies those filters
at new thresholds *from the stored columns*: no text is re-extracted, no model is
loaded. The output is what running the pipeline directly, with the annotated
filters in ``mode: filter`` at the new thresholds, would write (same shards, byte
for byte): the new run's config says exactly that, and its manifest names the
raw inputs, so ``thresher reproduce`` on it re-runs from scratch and must match.

How each stage of the annotated run is handled, in chain order:

- ran in filter mode, or a map stage that is not a filter (extract, count_tokens):
  already applied; its parameters cannot change here (its drops are gone);
- an annotate-mode filter with unchanged parameters: its stored
  ``<name>_reason`` column decides;
- an annotate-mode filter with new parameters: ``Filter.decide_from_columns``
  decides (langid, quality_classifier, length, and the heuristic filters from their
  measurement columns). Only the parameters in the stage's ``materialize_params``
  may change; any other (a model, a word list, a tokenizer) is refused by name,
  since the stored columns were computed with its old value;
- a global stage: ``keep_top`` (``decides_from_columns``) is re-run on the stored
  scores of the documents that survive the stages before it, in the same
  collect -> thresholds -> apply order as a run. Any other global stage (dedup,
  rebalancing to targets) after an annotate-mode filter saw documents a direct
  run would not, so materialize refuses it.

Every annotate-mode filter becomes a ``mode: filter`` filter unless the
``--set`` flags say ``STAGE.mode=annotate``; a filter that no longer annotates
loses its annotate-only columns (``Filter.measure_columns``), as in a direct run.
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.config import PipelineConfig, StageSpec, dump_resolved, load_config
from pipelines.errors import UserError
from pipelines.global_stage import GlobalContext, GlobalStage, doc_keys
from pipelines.io.files import sha256_file, write_json_atomic
from pipelines.io.writers import make_writer
from pipelines.manifest import MANIFEST_VERSION, git_state, installed_packages
from pipelines.rundir import RunDir
from pipelines.stage import Filter, Stage, set_column
from pipelines.stats import RunStats, StageStats
from pipelines.version import __version__

TOP_KEYS = ("name", "seed", "input", "output", "executor", "stages")
_SHARD = re.compile(r"^data/part-(\d+)-\d+\.parquet$")


@dataclass
class Decider:
    """How one stage decides in the materialized run."""

    spec: StageSpec
    stage: Stage
    how: str  # "stored": its <name>_reason column; "columns": decide_from_columns; "global"
    mode: str  # "filter" | "annotate" in the new run
    drop: tuple[str, ...] = ()  # annotate-only columns (measurements) the new run has not

    @property
    def reason_column(self) -> str:
        return f"{self.spec.name}_reason"


def _mode(spec: StageSpec) -> str | None:
    return getattr(spec.params, "mode", None)


def _params(spec: StageSpec) -> dict:
    d = spec.params.model_dump(mode="json")
    d.pop("mode", None)
    return d


def _can_decide(stage: Stage) -> bool:
    return isinstance(stage, Filter) and bool(stage.materialize_params)


def _measure_columns(stage: Stage) -> dict:
    return stage.measure_columns() if isinstance(stage, Filter) else {}


def plan_deciders(old: PipelineConfig, new: PipelineConfig) -> list[Decider]:
    """Which stages decide, and how; a clear error for anything materialize cannot do."""
    if [s.stage for s in old.stages] != [s.stage for s in new.stages] or \
            [s.name for s in old.stages] != [s.name for s in new.stages]:
        raise UserError("materialize can change stage parameters, not the stages themselves")
    if new.input != old.input or new.seed != old.seed:
        raise UserError("materialize cannot change `input` or `seed`: re-run the pipeline")
    deciders: list[Decider] = []
    upstream_drops = None  # the first annotate-mode stage that now drops documents
    for o, n in zip(old.stages, new.stages):
        stage = n.build()
        same = _params(o) == _params(n)
        is_global = stage.kind == "global"
        if _mode(o) != "annotate":
            if not same or _mode(o) != _mode(n):
                what = f"mode: {_mode(o)}" if _mode(o) else "a map stage"
                raise UserError(f"stage {n.name!r} ran as {what}, so the documents it dropped "
                                "or the columns it computed cannot change; only stages that "
                                "ran with mode: annotate can be materialized at new parameters")
            if is_global and upstream_drops:
                raise UserError(f"stage {n.name!r} ({n.stage}) ran after annotate-mode stage "
                                f"{upstream_drops!r} and saw documents a direct run would not; "
                                "materialize cannot redo it from columns")
            continue
        if is_global and getattr(stage, "decides_from_columns", False):
            how = "global"
        elif is_global:
            if not same or upstream_drops:
                why = (f"it ran after annotate-mode stage {upstream_drops!r}" if same
                       else "it cannot decide from stored columns")
                raise UserError(f"stage {n.name!r} ({n.stage}) cannot be materialized: {why}; "
                                "re-run the pipeline")
            how = "stored"
        elif same:
            how = "stored"
        else:
            _check_changes(o, n, stage)
            how = "columns"
        keep = _measure_columns(stage) if _mode(n) == "annotate" else {}
        drop = tuple(c for c in _measure_columns(o.build()) if c not in keep)
        deciders.append(Decider(n, stage, how, _mode(n) or "filter", drop))
        if _mode(n) == "filter" and upstream_drops is None:
            upstream_drops = n.name
    return deciders


def _check_changes(old: StageSpec, new: StageSpec, stage: Stage) -> None:
    """Only parameters the stage decides from stored columns may change."""
    changed = sorted(k for k, v in _params(new).items() if _params(old).get(k) != v)
    if not _can_decide(stage):
        raise UserError(
            f"stage {new.name!r} ({new.stage}) cannot decide from stored columns, so "
            f"{', '.join(changed)} cannot change here; materialize supports new "
            f"parameters for: {', '.join(supported_stages())}")
    fixed = [k for k in changed if k not in stage.materialize_params]  # type: ignore[attr-defined]
    if fixed:
        raise UserError(
            f"stage {new.name!r} ({new.stage}): {', '.join(fixed)} cannot change here, as the "
            "stored columns were measured with the old value; re-run the pipeline (materialize "
            f"can change: {', '.join(sorted(stage.materialize_params))})")  # type: ignore
    missing = sorted(set(_measure_columns(stage)) - set(_measure_columns(old.build())))
    if missing:  # e.g. a threshold for an n-gram size the annotated run did not measure
        raise UserError(
            f"stage {new.name!r} ({new.stage}): the new {', '.join(changed)} need(s) column(s) "
            f"{', '.join(missing)}, which the annotated run did not measure; re-run the pipeline")


def supported_stages() -> list[str]:
    """Registered stages whose parameters materialize can change."""
    from pipelines import registry

    out = []
    for name in registry.names():
        try:
            cls = registry.get(name)
        except Exception:  # an optional dependency missing: not listed
            continue
        if getattr(cls, "decides_from_columns", False) or (
                issubclass(cls, Filter) and cls.materialize_params):
            out.append(name)
    return out


def _normalise_set(item: str) -> str:
    """``STAGE.PARAM=V`` is short for ``stages.STAGE.PARAM=V``."""
    key = item.partition("=")[0]
    return item if key.split(".", 1)[0].split("[", 1)[0] in TOP_KEYS else f"stages.{item}"


def source_shards(src: RunDir, stats: dict) -> dict[int, list[dict]]:
    """The annotated run's final shards by task, checked against its stats (sha256, rows)."""
    by_task: dict[int, list[dict]] = {}
    for s in stats["output"]["shards"]:
        m = _SHARD.match(s["path"])
        if not m:
            raise UserError(f"{src.root}: shard {s['path']} is not Parquet; materialize reads "
                            "runs written with output.format: parquet")
        path = src.root / s["path"]
        if not path.is_file():
            raise UserError(f"{src.root}: shard {s['path']} is missing")
        if sha256_file(path) != s["sha256"]:
            raise UserError(f"{src.root}: shard {s['path']} changed since the run "
                            "(sha256 differs from stats.json)")
        by_task.setdefault(int(m.group(1)), []).append(s)
    return by_task


def _read(src: RunDir, shards: list[dict], batch_size: int):
    for s in shards:
        for batch in pq.ParquetFile(src.root / s["path"]).iter_batches(batch_size=batch_size):
            yield pa.Table.from_batches([batch])


def _decide(d: Decider, table: pa.Table, keys: np.ndarray, st: StageStats) -> pa.Table:
    if d.how == "global":
        assert isinstance(d.stage, GlobalStage)
        table = d.stage.apply(table, keys, st)
    else:
        if d.how == "stored":
            if d.reason_column not in table.schema.names:
                raise UserError(f"the run has no {d.reason_column!r} column (dropped by "
                                "output.drop_columns?); materialize needs it")
            reasons = table.column(d.reason_column).to_pylist()
        else:
            try:
                reasons = d.stage.decide_from_columns(table)  # type: ignore[attr-defined]
            except KeyError as exc:  # e.g. a column removed by output.drop_columns
                raise UserError(f"stage {d.spec.name!r} cannot decide: the run has no column "
                                f"{exc}; columns: {', '.join(table.schema.names)}") from None
        if d.mode == "annotate":
            table = set_column(table, d.reason_column, reasons, pa.string())
        else:
            for r in sorted({r for r in reasons if r is not None}):
                st.drop(r, reasons.count(r))
            table = table.filter(pa.array([r is None for r in reasons], pa.bool_()))
    if d.mode == "filter" and d.reason_column in table.schema.names:
        table = table.drop_columns([d.reason_column])
    return table.drop_columns([c for c in d.drop if c in table.schema.names])


class _Pass:
    """One read of a task's shards through the deciders before index ``upto``."""

    def __init__(self, deciders: list[Decider], upto: int, dst: RunDir, n_tasks: int,
                 seed: int):
        self.deciders = deciders[:upto]
        self.dst, self.n_tasks, self.seed = dst, n_tasks, seed

    def run(self, task: int, tables, stats: RunStats | None):
        for d in self.deciders:
            if d.how == "global":
                assert isinstance(d.stage, GlobalStage)
                d.stage.begin_apply(_ctx(self.dst, d.stage, task, self.n_tasks, self.n_tasks,
                                         self.seed))
        applied = [0] * len(self.deciders)
        per = [stats.stage(d.spec.name) if stats else StageStats() for d in self.deciders]
        for table in tables:
            for i, d in enumerate(self.deciders):
                per[i].count_in(table)
                with per[i].timed():
                    keys = doc_keys(task, applied[i], table.num_rows)
                    applied[i] += table.num_rows
                    table = _decide(d, table, keys, per[i])
                per[i].count_out(table)
            yield table


def materialize(run_dir: str | Path, out: str | Path, sets: list[str],
                overwrite: bool = False) -> RunDir:
    """Write a new run: the annotated run ``run_dir`` filtered at the ``sets`` parameters."""
    src = RunDir(Path(run_dir).resolve())
    if not src.stats_json.is_file() or not src.config.is_file():
        raise UserError(f"{src.root} is not a finished thresher run (no stats.json/config.yaml)")
    src_stats = json.loads(src.stats_json.read_text())
    old = load_config(src.config, check_inputs=False)
    if old.output.format != "parquet":
        raise UserError(f"{src.root} was written as {old.output.format}; materialize reads "
                        "runs written with output.format: parquet")
    sets = [_normalise_set(s) for s in sets]
    to_filter = [f"stages.{s.name}.mode=filter" for s in old.stages if _mode(s) == "annotate"]
    new = old.with_overrides(output=str(out), sets=to_filter + sets)
    deciders = plan_deciders(old, new)
    if not deciders:
        raise UserError(f"{src.root} has no stage that ran with mode: annotate; nothing to "
                        "materialize")
    dst = _prepare(Path(out).resolve(), src, overwrite)
    shards = source_shards(src, src_stats)
    n_tasks = _n_tasks(src, shards)
    batch = old.input.batch_size

    phases: dict[str, Any] = {}
    for gi, d in enumerate(deciders):  # one collect pass + steps per global stage
        if d.how != "global":
            continue
        g = d.stage
        assert isinstance(g, GlobalStage)
        g.setup()
        upstream = _Pass(deciders, gi, dst, n_tasks, new.seed)
        for task in range(n_tasks):
            g.begin_collect(_ctx(dst, g, task, n_tasks, n_tasks, new.seed))
            row = 0
            for table in upstream.run(task, _read(src, shards.get(task, []), batch), None):
                g.collect(table, doc_keys(task, row, table.num_rows))
                row += table.num_rows
            g.end_collect()
        for step in g.steps(n_tasks):
            metrics: dict[str, float] = {}
            for t in range(step.n_tasks):
                ctx = _ctx(dst, g, t, step.n_tasks, n_tasks, new.seed)
                for k, v in g.run_step(step.name, ctx).items():
                    metrics[k] = metrics.get(k, 0) + v
            phases[f"{d.spec.name}.{step.name}"] = {"kind": "step", "tasks": step.n_tasks,
                                                    "metrics": dict(sorted(metrics.items()))}

    stats = RunStats()
    read, write = stats.stage("read"), StageStats()
    out_shards = []
    final = _Pass(deciders, len(deciders), dst, n_tasks, new.seed)
    for task in range(n_tasks):
        writer = make_writer(dst.data, f"part-{task:05d}", new.output, dst.root, final=True)
        try:
            tables = _counted(_read(src, shards.get(task, []), batch), read)
            for table in final.run(task, tables, stats):
                write.count_in(table)
                with write.timed():
                    writer.write(table)
                write.count_out(table)
            out_shards += [s.to_dict() for s in writer.close()]
        except BaseException:
            writer.abort()
            raise
    stats.stages["write"] = write
    return _finish(dst, src, old, new, sets, stats, phases, out_shards, shards, n_tasks)


def _counted(tables, read: StageStats):
    for t in tables:
        read.count_in(t)
        read.count_out(t)
        yield t


def _ctx(dst: RunDir, g: Stage, task: int, n_tasks: int, n_shards: int,
         seed: int) -> GlobalContext:
    return GlobalContext(dst.work_dir(g.name), task, n_tasks, n_shards, seed)


def _n_tasks(src: RunDir, shards: dict[int, list[dict]]) -> int:
    if src.plan.is_file():
        plan = json.loads(src.plan.read_text())
        return int(plan["phases"][-1]["n_tasks"])
    return max(shards, default=-1) + 1


def _prepare(root: Path, src: RunDir, overwrite: bool) -> RunDir:
    if root == src.root:
        raise UserError("materialize writes a new run directory; OUT must differ from RUN")
    dst = RunDir(root)
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise UserError(f"{root} already exists; use --overwrite to replace it")
        if not dst.looks_like_run():
            raise UserError(f"{root} is not empty and is not a thresher run directory; "
                            "refusing to delete it")
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    return dst


def _finish(dst: RunDir, src: RunDir, old: PipelineConfig, new: PipelineConfig,
            sets: list[str], stats: RunStats, phases: dict, out_shards: list[dict],
            shards: dict[int, list[dict]], n_tasks: int) -> RunDir:
    (dst.root / "config.yaml").write_text(dump_resolved(new))
    src_manifest = json.loads(src.manifest.read_text()) if src.manifest.is_file() else {}
    source = {
        "run": str(src.root),
        "config_fingerprint": old.fingerprint(),
        "manifest_sha256": sha256_file(src.manifest) if src.manifest.is_file() else None,
        "sets": sets,
        "shards": [s for task in sorted(shards) for s in shards[task]],
    }
    ordered = stats.ordered(["read", *[s.name for s in new.stages], "write"])
    doc = {
        "run": new.name,
        "config_fingerprint": new.fingerprint(),
        "phases": {"materialize": {"kind": "map", "tasks": n_tasks}, **phases},
        "stages": ordered.to_dict(),
        "output": {"rows": sum(s["rows"] for s in out_shards), "shards": out_shards},
        "materialized_from": {k: v for k, v in source.items() if k != "shards"},
    }
    write_json_atomic(dst.stats_json, doc)
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "run": new.name,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config_fingerprint": new.fingerprint(),
        "config": new.to_dict(resolved=True),
        "thresher": {"version": __version__, **git_state(Path(__file__).resolve().parent)},
        "python": {"version": platform.python_version(), "implementation":
                   platform.python_implementation(), "platform": sys.platform},
        "packages": installed_packages(),
        # the raw inputs and models of the annotated run: `thresher reproduce` re-runs
        # the new config on them from scratch and must get these same shards
        "inputs": src_manifest.get("inputs", []),
        "models": src_manifest.get("models", []),
        "outputs": out_shards,
        "stats": doc["stages"],
        "materialized_from": source,
    }
    write_json_atomic(dst.manifest, manifest)
    return dst
