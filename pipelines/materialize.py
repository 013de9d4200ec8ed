"""`thresher materialize RUN OUT --set KEY=VALUE`: annotate once, filter many.

A run whose filters ran with ``mode: annotate`` kept every document and stored each
filter's reason and score columns. Materializing it applies those filters at new
thresholds *from the stored columns*: no text is re-extracted, no model is loaded. The
new run's config is the pipeline run directly, with the annotated filters in ``mode:
filter`` at the new thresholds, and its shards are what that direct run writes, byte
for byte; its manifest names the raw inputs, so ``thresher reproduce`` on it re-runs
from scratch and must match.

Materialize only *plans*; the engine runs the plan like any other (``launch_pipeline``:
the configured executor and workers, ``--resume``, stats, samples, manifest)::

    cfg, plan = plan_materialize("runs/x", "runs/y", ["quality_classifier.min_score=0.8"])
    run = run_pipeline(cfg, plan=plan)

The plan's tasks read the annotated run's final shards, one task per task of that run
(so the shard layout is a direct run's), and its stages are those from the first
annotate-mode stage on, each in one role:

- ``stored``: an annotate-mode filter with unchanged parameters; its stored
  ``<name>_reason`` column decides;
- ``columns``: an annotate-mode filter with new parameters; ``Filter.decide_from_columns``
  decides (langid, quality_classifier, length, the heuristic filters). Only parameters
  in its ``materialize_params`` may change; any other (a model, a word list, a tokenizer)
  is refused by name, since the stored columns were computed with its old value;
- ``global``: ``keep_top`` (``decides_from_columns``) re-planned as the global stage it
  is, on the stored scores of the documents that survive the stages before it. Any other
  global stage (dedup, rebalancing to targets) after an annotate-mode filter saw
  documents a direct run would not, so materialize refuses it;
- ``applied``: a stage that ran in filter mode, or a map stage that is not a filter;
  its work is in the shards already and its parameters cannot change.

Every annotate-mode filter becomes a ``mode: filter`` filter unless ``--set
STAGE.mode=annotate`` says otherwise; one that no longer annotates loses its
annotate-only columns (``Filter.measure_columns``), as in a direct run.

The funnel accounts for every record of the annotated run: the stages before the first
annotate-mode stage (read, extract, ...) are carried over whole, and after it, what
that run removed for good (a filter-mode stage's drops, an annotate-mode stage's
errors) is carried into the same stage; stats.json marks them with ``carried_from``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pipelines.config import PipelineConfig, StageSpec
from pipelines.deciders import decider
from pipelines.errors import UserError
from pipelines.io.files import sha256_file
from pipelines.plan import Plan, SourceRun, plan_phases
from pipelines.rundir import RunDir
from pipelines.stage import Filter, Stage
from pipelines.stats import StageStats

_SHARD = re.compile(r"^data/part-(\d+)-\d+\.parquet$")


# ----------------------------------------------------------------------------- what may change

@dataclass(frozen=True)
class Role:
    """How one stage of the annotated run acts in the materialized run."""

    how: str  # "stored" | "columns" | "global" | "applied" (see the module docstring)
    drop: tuple[str, ...] = ()  # annotate-only columns (measurements) the new run has not


def _mode(spec: StageSpec) -> str | None:
    return getattr(spec.params, "mode", None)


def _params(spec: StageSpec) -> dict:
    d = spec.params.model_dump(mode="json")
    d.pop("mode", None)
    return d


def _measure_columns(stage: Stage) -> dict:
    return stage.measure_columns() if isinstance(stage, Filter) else {}


def stage_roles(old: PipelineConfig, new: PipelineConfig) -> dict[str, Role]:
    """The role of every stage from the first annotate-mode one on (the stages before it
    are carried over); one clear error for anything materialize cannot do."""
    if [s.stage for s in old.stages] != [s.stage for s in new.stages] or \
            [s.name for s in old.stages] != [s.name for s in new.stages]:
        raise UserError("materialize can change stage parameters, not the stages themselves")
    if new.input != old.input or new.seed != old.seed:
        raise UserError("materialize cannot change `input` or `seed`: re-run the pipeline")
    roles: dict[str, Role] = {}
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
            if roles:  # after the first annotate-mode stage
                roles[n.name] = Role("applied")
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
        roles[n.name] = Role(how, drop)
        if _mode(n) == "filter" and upstream_drops is None:
            upstream_drops = n.name
    return roles


def _check_changes(old: StageSpec, new: StageSpec, stage: Stage) -> None:
    """Only parameters the stage decides from stored columns may change."""
    changed = sorted(k for k, v in _params(new).items() if _params(old).get(k) != v)
    allowed = getattr(stage, "materialize_params", frozenset())
    if not (isinstance(stage, Filter) and allowed):
        raise UserError(
            f"stage {new.name!r} ({new.stage}) cannot decide from stored columns, so "
            f"{', '.join(changed)} cannot change here; materialize supports new "
            f"parameters for: {', '.join(supported_stages())}")
    fixed = [k for k in changed if k not in allowed]
    if fixed:
        raise UserError(
            f"stage {new.name!r} ({new.stage}): {', '.join(fixed)} cannot change here, as the "
            "stored columns were measured with the old value; re-run the pipeline (materialize "
            f"can change: {', '.join(sorted(allowed))})")
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
    """``STAGE.PARAM=V`` is short for ``stages.STAGE.PARAM=V``; a key that starts with a
    top-level config key (``samples.per_reason=5``) is taken as it is."""
    head = item.partition("=")[0].split(".", 1)[0].split("[", 1)[0]
    return item if head in PipelineConfig.model_fields else f"stages.{item}"


# ----------------------------------------------------------------------------- the plan

def plan_materialize(run_dir: str | Path, out: str | Path, sets: list[str],
                     workers: int | None = None,
                     executor: str | None = None) -> tuple[PipelineConfig, Plan]:
    """The config and plan of a new run: the annotated run ``run_dir`` filtered at the
    ``sets`` parameters. Nothing is written; ``launch_pipeline(cfg, plan=plan)`` runs it."""
    src = RunDir.at(run_dir)
    if not src.stats_json.is_file() or not src.config.is_file():
        raise UserError(f"{src.root} is not a finished thresher run (no stats.json/config.yaml)")
    if RunDir.at(out).root == src.root:
        raise UserError("materialize writes a new run directory; OUT must differ from RUN")
    src_stats = src.load_stats()
    old = src.load_config()
    if old.output.format != "parquet":
        raise UserError(f"{src.root} was written as {old.output.format}; materialize reads "
                        "runs written with output.format: parquet")
    sets = [_normalise_set(s) for s in sets]
    to_filter = [f"stages.{s.name}.mode=filter" for s in old.stages if _mode(s) == "annotate"]
    new = old.with_overrides(output=str(out), workers=workers, executor=executor,
                             sets=to_filter + sets)
    roles = stage_roles(old, new)
    if not roles:
        raise UserError(f"{src.root} has no stage that ran with mode: annotate; nothing to "
                        "materialize")
    tasks = _source_tasks(src, src_stats)
    as_json = {name: {"how": r.how, "drop": list(r.drop)} for name, r in roles.items()}
    deciders = [decider(s.build(), as_json[s.name]) for s in new.stages if s.name in roles]
    manifest = src.load_manifest() if src.manifest.is_file() else {}
    source = SourceRun(
        run=str(src.root), tasks=tasks, roles=as_json,
        carried=_carried(src_stats["stages"], old, roles),
        manifest={
            "materialized_from": {
                "run": str(src.root),
                "config_fingerprint": old.fingerprint(),
                "manifest_sha256": sha256_file(src.manifest) if src.manifest.is_file() else None,
                "sets": sets,
            },
            # the raw inputs and models of the annotated run: `thresher reproduce` re-runs
            # the new config on them from scratch and must get these same shards
            "inputs": manifest.get("inputs", []),
            "models": manifest.get("models", []),
        })
    return new, Plan(plan_phases(deciders, len(tasks)), [], [], source)


def _source_tasks(src: RunDir, stats: dict) -> list[dict]:
    """The annotated run's final shards by task, checked against its stats (sha256)."""
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
    src_plan = src.load_plan() if src.plan.is_file() else None
    n_tasks = next(p for p in src_plan.phases if p.final).n_tasks if src_plan else \
        max(by_task, default=-1) + 1
    inputs = [f.source for f in src_plan.inputs] if src_plan else []
    if src_plan and src_plan.source is not None:  # itself materialized: the inputs of its own
        inputs = [t["input"] for t in src_plan.source.tasks]
    return [{"input": inputs[t] if t < len(inputs) else str(t), "shards": by_task.get(t, [])}
            for t in range(n_tasks)]


def _carried(src: dict[str, dict], old: PipelineConfig, roles: dict[str, Role]) -> dict:
    """The annotated run's counts the new run does not make itself: whole stages before
    the first annotate-mode stage; after it, the documents a stage removed for good (all
    of an applied stage's drops and errors, a deciding stage's errors)."""
    first = next(i for i, s in enumerate(old.stages) if s.name in roles)
    whole = ["read", *[s.name for s in old.stages[:first]]]
    carried = {name: src[name] for name in whole if name in src}
    for name, role in roles.items():
        st = StageStats.from_dict(src[name]) if name in src else StageStats()
        dropped = st.dropped if role.how == "applied" else {}
        if not dropped and not st.errors:
            continue
        gone = [*dropped, *st.errors]
        part = StageStats(dropped=Counter(dropped), errors=st.errors,
                          chars_by_reason=Counter({r: st.chars_by_reason[r] for r in gone
                                                   if r in st.chars_by_reason}))
        part.docs_in = part.n_dropped + part.n_errors
        part.chars_in = sum(part.chars_by_reason.values())
        carried[name] = part.to_dict()
    return carried
