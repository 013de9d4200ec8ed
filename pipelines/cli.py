"""The ``thresher`` command line. Each command is a ``cmd_*`` function that imports what
it needs when it runs, so ``thresher validate`` does not import the executors.

Run a pipeline:    run, validate, plan (estimate a run's cost from a sample), stages,
                   status, finalize, run-task (one task, or several in turn: what a Slurm
                   array job or any other scheduler runs)
Read a run:        stats, samples, diff, dups, report, mixture (domain weights for a
                   trainer's data loader)
Snapshots:         verify, reproduce
Derive runs:       materialize (re-filter an annotated run), train-classifier,
                   thresholds (a per-language threshold table from reference text)
To training:       export (token files for Megatron, nanotron, MosaicML Streaming)
"""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import os
import re
import sys
import threading
import traceback
from pathlib import Path

from pipelines.allocator import tune_allocator
from pipelines.errors import UserError


def _add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="pipeline YAML file")
    p.add_argument("--output", "-o", metavar="DIR", help="override output.path (the run dir)")
    p.add_argument("--workers", "-w", type=int, metavar="N", help="override executor.workers")
    p.add_argument("--executor", metavar="KIND", help="override executor.kind")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override any key, e.g. --set stages.langid.min_score=0.5 "
                        "(value parsed as YAML; repeatable)")


def _overrides(a: argparse.Namespace) -> dict:
    return {"output": a.output, "workers": a.workers, "executor": a.executor, "sets": a.sets}


def cmd_validate(a: argparse.Namespace) -> int:
    from pipelines.config import load_config
    from pipelines.plan import make_plan

    cfg = load_config(a.config, overrides=_overrides(a))
    plan = make_plan(cfg)
    if a.print:
        sys.stdout.write(cfg.to_yaml(resolved=True))
    else:
        n_tasks = sum(p.n_tasks for p in plan.phases)
        n_files = len({f.path for f in plan.inputs})  # a split file's pieces: one file
        files = f"{n_files} input files" + (
            f" ({len(plan.inputs)} pieces: input.max_task_bytes)"
            if len(plan.inputs) != n_files else "")
        print(f"{a.config}: ok: {len(cfg.stages)} stages, {files}, "
              f"{len(plan.phases)} phase(s), {n_tasks} tasks, executor {cfg.executor.kind}")
    return 0


def cmd_run(a: argparse.Namespace) -> int:
    from pipelines.config import load_config
    from pipelines.executors.local import start_forkserver

    # the worker pool's forkserver imports while the inputs are listed (2 ms to parse twice)
    start_forkserver(load_config(a.config, overrides=_overrides(a), check_inputs=False))
    cfg = load_config(a.config, overrides=_overrides(a))
    return _launch(a, cfg, title=f"funnel: {cfg.name}")


def _launch(a: argparse.Namespace, cfg, title: str, plan=None) -> int:
    """Run (or, for a scheduler without --wait, submit) a planned run and say what it did:
    the job ids, or the funnel and where the output went."""
    from pipelines.inspection.funnel import make_console, print_funnel
    from pipelines.run import launch_pipeline

    run, launch = launch_pipeline(cfg, resume=a.resume, overwrite=a.overwrite,
                                  progress=not a.quiet, wait=a.wait, plan=plan)
    if not launch.finished:  # a scheduler has the jobs (Slurm without --wait)
        for line in launch.jobs:
            print(line)
        print(f"submitted {len(launch.jobs)} job(s); follow with: thresher status {run.root}")
        return 0
    stats = run.load_stats()
    out = make_console()
    if not a.quiet:
        print_funnel(stats, out, title=title)
    n_shards = len(stats["output"]["shards"])
    try:
        where = run.data.relative_to(Path.cwd())
    except ValueError:
        where = run.data
    out.print(f"wrote {stats['output']['rows']:,} documents in {n_shards} shard(s) to {where}/")
    out.print(f"stats: {run.stats_json}   (thresher stats {run.root})")
    return 0


def cmd_status(a: argparse.Namespace) -> int:
    from pipelines.inspection.funnel import make_console
    from pipelines.inspection.status import print_status, run_status

    status = run_status(a.run)
    if a.json:
        print(json.dumps(status, indent=1))
    else:
        print_status(status, make_console())
    return 1 if status["failed"] else 0


def cmd_run_task(a: argparse.Namespace) -> int:
    """One task, or several one after another in this process (a Slurm array job with
    ``tasks_per_job``): a failed task does not stop the next; the exit is the first
    failure's, once all have run."""
    from pipelines.executors.slurm_queue import expand_ranges
    from pipelines.task import run_task

    if not re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", a.tasks):
        raise UserError(f"run-task: {a.tasks!r} is not a task id or ranges like 0-4,7")
    tasks = expand_ranges(a.tasks)
    first_error: BaseException | None = None
    for task in tasks:
        try:
            res = run_task(a.run, a.phase, task)
        except Exception as exc:
            if len(tasks) == 1:
                raise
            print(f"thresher: {a.phase}/{task}: failed: {exc}", file=sys.stderr, flush=True)
            first_error = first_error or exc
            continue
        print(f"thresher: {a.phase}/{task}: "
              + ("already done" if res.skipped else f"done, {res.docs_out:,} documents out"),
              flush=True)
    if first_error is not None:
        raise first_error
    return 0


def cmd_stages(a: argparse.Namespace) -> int:
    from pipelines.reference import render_markdown, render_text, stage_rows

    if a.json:
        print(json.dumps(stage_rows(), indent=1))
    else:
        sys.stdout.write(render_markdown() if a.markdown else render_text())
    return 0


def cmd_stats(a: argparse.Namespace) -> int:
    from pipelines.inspection.funnel import breakdown_table, make_console, print_funnel
    from pipelines.rundir import RunDir

    stats = RunDir.at(a.run).load_stats()
    if a.json:
        print(json.dumps(stats, indent=1))
        return 0
    if a.csv:
        from pipelines.inspection.funnel import stats_csv

        sys.stdout.write(stats_csv(stats, by=a.by))
        return 0
    console = make_console()
    print_funnel(stats, console, title=f"funnel: {stats.get('run', a.run)}")
    if a.by:
        console.print(breakdown_table(stats, a.by, a.stages.split(",") if a.stages else None))
        from pipelines.inspection.funnel import removed_table

        removed = removed_table(stats, a.by)
        if removed is not None:
            console.print(removed)
    console.print(f"output: {stats['output']['rows']:,} documents in "
                  f"{len(stats['output']['shards'])} shard(s)")
    from pipelines.exports import export_lines  # token exports: tokens written per column

    run = RunDir.at(a.run)
    for line in export_lines(run.root, run.load_config_dict() if run.config.exists() else None):
        console.print(line, highlight=False, soft_wrap=True)
    return 0


def cmd_mixture(a: argparse.Namespace) -> int:
    from pipelines.inspection.mixture import mixture

    doc = mixture(a.run, by=a.by)
    if a.out is None:
        print(json.dumps(doc, indent=1))
        return 0
    from pipelines.io.files import write_json_atomic
    from pipelines.io.remote_path import run_path

    write_json_atomic(run_path(a.out), doc)
    print(f"{a.out}: {len(doc['domains'])} domain(s) by {doc['by']}, weights by {doc['unit']}: "
          + ", ".join(f"{d} {v['weight']:.4f}" for d, v in doc["domains"].items()))
    return 0


def cmd_verify(a: argparse.Namespace) -> int:
    from pipelines.exports import verify_run_exports
    from pipelines.io.remote_path import run_path
    from pipelines.manifest import load_manifest, verify

    manifest = load_manifest(a.manifest)
    problems = verify(manifest, run_path(a.run))
    # token exports in the run (tokenize_export, `thresher export`): against export.json
    export_problems, n_tokens = verify_run_exports(run_path(a.run), manifest)
    problems += export_problems
    for p in problems:
        print(f"DIFF {p}")
    n = len(manifest["outputs"])
    if problems:
        print(f"{a.run}: {len(problems)} difference(s) from {a.manifest}", file=sys.stderr)
        return 1
    tokens = f" and {n_tokens} token file(s) their export.json" if n_tokens else ""
    print(f"{a.run}: all {n} shard(s) match {a.manifest}{tokens} byte for byte")
    return 0


def cmd_samples(a: argparse.Namespace) -> int:
    from pipelines.inspection.funnel import make_console
    from pipelines.samples import load_samples, print_samples

    if a.json:
        rows = load_samples(a.run, a.stage, a.reason)
        print(json.dumps(rows, indent=1))
        return 0
    print_samples(a.run, a.stage, a.reason, n=a.n, chars=a.chars, console=make_console())
    return 0


def cmd_diff(a: argparse.Namespace) -> int:
    from pipelines.inspection.diff import diff_runs, print_diff
    from pipelines.inspection.funnel import make_console

    d = diff_runs(a.a, a.b)
    if a.json:
        print(json.dumps(d, indent=1))
    else:
        print_diff(d, make_console())
    return 0


def cmd_reproduce(a: argparse.Namespace) -> int:
    from pipelines.reproduce import parse_remap, reproduce

    run, problems = reproduce(a.manifest, a.out, workers=a.workers,
                              warn=lambda m: print(f"thresher: warning: {m}", file=sys.stderr),
                              remap=parse_remap(a.remap))
    for p in problems:
        print(f"DIFF {p}")
    if problems:
        print(f"{run.root}: reproduced with {len(problems)} difference(s)", file=sys.stderr)
        return 1
    print(f"{run.root}: reproduced; every shard matches the manifest byte for byte")
    return 0


def cmd_dups(a: argparse.Namespace) -> int:
    from pipelines.inspection.dups import print_dups
    from pipelines.inspection.funnel import make_console

    print_dups(a.run, make_console(), stage=a.stage, top=a.top, per_cluster=a.per_cluster)
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    from pipelines.report.page import write_report

    out = write_report(a.run, a.output, compare=a.compare)
    print(f"wrote {out} ({out.stat().st_size:,} bytes; opens offline in any browser)")
    return 0


def cmd_finalize(a: argparse.Namespace) -> int:
    from pipelines.run import finalize_run

    stats = finalize_run(a.run)
    print(f"{a.run}: finalized: {stats['output']['rows']:,} documents in "
          f"{len(stats['output']['shards'])} shard(s); stats.json and manifest.json written")
    return 0


def cmd_train_classifier(a: argparse.Namespace) -> int:
    from pipelines.train import FastTextParams, TrainSpec, format_report, train_classifier

    ft = FastTextParams(epoch=a.epoch, lr=a.lr, dim=a.dim, min_count=a.min_count)
    spec = TrainSpec(positive=a.positive, negative=a.negative, out=a.out, text_key=a.text_key,
                     max_docs=a.max_docs, test_fraction=a.test_fraction, seed=a.seed,
                     max_chars=a.max_chars, positive_label=a.positive_label,
                     negative_label=a.negative_label, fasttext=ft)
    meta = train_classifier(spec, log=lambda m: print(m, file=sys.stderr))
    print(format_report(meta))
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from pipelines.registry import get

    cls = get("tokenize_export")
    if a.verify:
        problems = cls.verify_export(a.run)
        for line in problems:
            print(f"{a.run}: {line}")
        print(f"{a.run}: " + (f"{len(problems)} problem(s)" if problems else
                              "every token file matches export.json"))
        return 1 if problems else 0
    if not a.tokenizer:
        raise UserError("thresher export: --tokenizer is required (or --verify DIR)")
    params = {"tokenizer": a.tokenizer, "tokenizer_sha256": a.tokenizer_sha256,
              "format": a.format, "dtype": a.dtype, "shard_tokens": a.shard_tokens,
              "weights_from": a.weights_from, "memory_mb": a.memory_mb,
              "eos": {"true": True, "false": False}.get(
                  a.eos.lower(), int(a.eos) if a.eos.isdigit() else a.eos)}
    if a.shuffle_seed is not None:
        params["shuffle"] = {"seed": a.shuffle_seed, "buckets": a.buckets}
    try:
        stage = cls(cls.Params(**params), name="export")
    except ValueError as e:  # pydantic's ValidationError: one line per bad parameter
        errors = e.errors() if hasattr(e, "errors") else None
        raise UserError("thresher export: " + ("; ".join(
            f"--{'.'.join(map(str, x['loc'])).replace('_', '-')}: {x['msg']}"
            for x in errors) if errors else str(e))) from None
    stage.setup()
    s = stage.export_run(a.run, a.output, workers=a.workers, keep_work=a.keep_work)
    print(f"wrote {s['tokens']:,} tokens of {s['documents']:,} documents in "
          f"{len(s['shards'])} {s['format']} file(s) ({s['dtype']}) to "
          f"{a.output or str(a.run).rstrip('/') + '/tokens'}/ (export.json lists them)")
    return 0


def cmd_plan(a: argparse.Namespace) -> int:
    from pipelines.config import load_config
    from pipelines.estimate import estimate, format_table, uncertainty_lines

    if (a.nodes is None) != (a.cores_per_node is None):
        raise UserError("thresher plan: give --nodes and --cores-per-node together")
    if a.nodes is not None and a.workers is not None:
        raise UserError("thresher plan: give --workers or --nodes/--cores-per-node, not both")
    cfg = load_config(a.config, overrides={"sets": a.sets})
    slots = a.nodes * a.cores_per_node if a.nodes is not None else (
        a.workers or getattr(cfg.executor, "workers", None) or 1)
    est = estimate(cfg, sample=a.sample, slots=slots or 1, config_name=a.config,
                   keep=Path(a.keep) if a.keep else None, runs_from=a.runs_from,
                   content_scaling=not a.by_input_bytes)
    if a.json:
        print(json.dumps(est.to_dict(), indent=2))
        for line in uncertainty_lines(est)[1:]:  # the warning, where a reader sees it
            print(line, file=sys.stderr)
    else:
        print(format_table(est))
    return 0


def cmd_thresholds(a: argparse.Namespace) -> int:
    from pipelines.registry import command

    return command("thresholds", "run")(a)


def cmd_materialize(a: argparse.Namespace) -> int:
    from pipelines.materialize import plan_materialize

    cfg, plan = plan_materialize(a.run, a.out, a.sets, workers=a.workers, executor=a.executor)
    return _launch(a, cfg, title=f"materialized: {cfg.name}", plan=plan)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="thresher", description="Turn web crawls into pretraining corpora: YAML pipelines, "
        "sharded runs, per-stage statistics. `thresher COMMAND -h` describes each command.")
    ap.add_argument("-v", "--verbose", action="store_true", help="log INFO messages to stderr")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run a pipeline")
    _add_overrides(p)
    p.add_argument("--resume", action="store_true",
                   help="finish an interrupted run: only tasks not done are run")
    p.add_argument("--overwrite", action="store_true", help="delete an existing run dir first")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or funnel")
    p.add_argument("--wait", action="store_true",
                   help="slurm: wait for the submitted jobs and print the funnel (default: "
                        "print the job ids and return)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("validate", help="check a config (and its input globs) without running")
    _add_overrides(p)
    p.add_argument("--print", action="store_true", help="print the resolved config")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("stages", help="list registered stages with their parameters")
    p.add_argument("--markdown", action="store_true", help="render as docs/stages.md")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stages)

    p = sub.add_parser("stats", help="print the funnel of a finished run")
    p.add_argument("run", help="run directory")
    p.add_argument("--by", choices=["language", "dataset"],
                   help="add a breakdown (dataset: the `dataset` column, see input.dataset)")
    p.add_argument("--stages", metavar="A,B",
                   help="with --by: the stages to compare (default: first and last; "
                        "'all': every stage that saw the column, a funnel per language)")
    p.add_argument("--json", action="store_true", help="print stats.json")
    p.add_argument("--csv", action="store_true",
                   help="CSV for notebooks: stage,kind,reason,docs,chars (with --by language: "
                        "stage,language,docs,chars,tokens; likewise --by dataset)")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("mixture", help="per-domain token counts and sampling weights of a run "
                                       "(after its rebalancing) as JSON for a data loader")
    p.add_argument("run", help="run directory")
    p.add_argument("--by", choices=["dataset", "language"], default="dataset",
                   help="the column whose values are the domains")
    p.add_argument("--out", "-o", metavar="FILE", help="write the JSON here (default: stdout)")
    p.set_defaults(func=cmd_mixture)

    p = sub.add_parser("samples", help="show sampled dropped documents of a stage")
    p.add_argument("run", help="run directory")
    p.add_argument("stage", help="stage name (read for the reader's drops)")
    p.add_argument("reason", nargs="?", help="only this drop or error reason")
    p.add_argument("-n", type=int, default=5, metavar="N", help="samples shown per reason")
    p.add_argument("--chars", type=int, default=600, help="characters of text shown each")
    p.add_argument("--json", action="store_true", help="every stored sample as JSON")
    p.set_defaults(func=cmd_samples)

    p = sub.add_parser("diff", help="compare two runs (run dirs or manifests): config, inputs, "
                                    "versions and per-reason counts; exit 0 either way")
    p.add_argument("a", help="run directory or manifest.json")
    p.add_argument("b", help="run directory or manifest.json")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("verify",
                       help="compare a run's shards with a manifest (exit 1 on any difference)")
    p.add_argument("manifest")
    p.add_argument("run", help="run directory")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("reproduce",
                       help="re-run a manifest's pipeline after checking its inputs and models")
    p.add_argument("manifest")
    p.add_argument("out", help="new run directory")
    p.add_argument("--workers", "-w", type=int, metavar="N")
    p.add_argument("--remap", action="append", default=[], metavar="OLD=NEW",
                   help="inputs and models now live under NEW instead of OLD (path prefix; "
                        "repeatable); their hashes are still checked")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("dups", help="show the largest duplicate clusters of a run")
    p.add_argument("run", help="run directory")
    p.add_argument("--stage", help="only this dedup stage (default: all)")
    p.add_argument("--top", "-n", type=int, default=10, help="clusters to show")
    p.add_argument("--per-cluster", type=int, default=3, help="removed members to show each")
    p.set_defaults(func=cmd_dups)

    p = sub.add_parser("report", help="one self-contained HTML page of a run (funnel, reasons, "
                                      "languages, histograms, time, dedup, samples)")
    p.add_argument("run", help="run directory")
    p.add_argument("--compare", metavar="RUN2", help="second run: both side by side with deltas")
    p.add_argument("--output", "-o", default="report.html", help="HTML file to write")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("finalize", help="merge the stats and write the manifest of a run whose "
                                        "tasks are all done (what a Slurm run's last job does)")
    p.add_argument("run", help="run directory")
    p.set_defaults(func=cmd_finalize)

    p = sub.add_parser("status", help="per phase: tasks done / running / pending / failed, with "
                                      "the log and error of each failed task (exit 1 if any)")
    p.add_argument("run", help="run directory")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("run-task", help="run one task of a planned run (what a Slurm array "
                                        "task runs), or several in turn; a no-op for a "
                                        "task that is done")
    p.add_argument("run", help="run directory")
    p.add_argument("phase")
    p.add_argument("tasks", metavar="TASKS", help="a task id, or ranges: 0-4,7")
    p.set_defaults(func=cmd_run_task)

    p = sub.add_parser("train-classifier",
                       help="train a fastText quality classifier from positive and negative "
                            "JSONL/Parquet files; prints held-out precision/recall")
    p.add_argument("--positive", action="append", required=True, metavar="GLOB",
                   help="files of the positive class (repeatable)")
    p.add_argument("--negative", action="append", required=True, metavar="GLOB",
                   help="files of the negative class (repeatable)")
    p.add_argument("--out", "-o", required=True, help="model file; metadata goes to OUT.json")
    p.add_argument("--text-key", default="text", help="JSON key / Parquet column of the text")
    p.add_argument("--max-docs", type=int, metavar="N", help="sample at most N per class")
    p.add_argument("--test-fraction", type=float, default=0.2, help="held-out share")
    p.add_argument("--seed", type=int, default=0, help="sampling, split and fastText seed")
    p.add_argument("--max-chars", type=int, metavar="N",
                   help="train on the first N characters of each document")
    p.add_argument("--positive-label", default="hq")
    p.add_argument("--negative-label", default="lq")
    p.add_argument("--epoch", type=int, default=10, help="fastText epochs")
    p.add_argument("--lr", type=float, default=0.2, help="fastText learning rate")
    p.add_argument("--dim", type=int, default=32, help="fastText vector size")
    p.add_argument("--min-count", type=int, default=1, help="rarer words are ignored")
    p.set_defaults(func=cmd_train_classifier)

    p = sub.add_parser("thresholds",
                       help="derive a per-language threshold table (for a filter's "
                            "thresholds:) from reference text: each rule's tail quantile, "
                            "langid's score by FineWeb-2's formula")
    from pipelines.registry import command

    command("thresholds", "arguments")(p)
    p.set_defaults(func=cmd_thresholds)

    p = sub.add_parser("materialize",
                       help="re-filter a run whose filters ran with mode: annotate at new "
                            "thresholds, from its stored columns, into a new run directory")
    p.add_argument("run", help="the annotated run directory")
    p.add_argument("out", help="new run directory")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="new parameter, e.g. --set quality_classifier.min_score=0.7 (short "
                        "for stages.quality_classifier.min_score) or samples.per_reason=5 "
                        "(repeatable; STAGE.mode=annotate keeps a stage annotating)")
    p.add_argument("--workers", "-w", type=int, metavar="N", help="override executor.workers")
    p.add_argument("--executor", metavar="KIND",
                   help="override executor.kind (default: the annotated run's)")
    p.add_argument("--resume", action="store_true",
                   help="finish an interrupted materialize: only tasks not done are run")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT run")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or funnel")
    p.add_argument("--wait", action="store_true",
                   help="slurm: wait for the submitted jobs and print the funnel")
    p.set_defaults(func=cmd_materialize)

    p = sub.add_parser("plan", help="estimate a run's tasks, CPU-hours, wall time, peak "
                                    "memory and disk from its chain run on a sample")
    p.add_argument("config", help="pipeline YAML file")
    p.add_argument("--sample", type=int, default=4, metavar="N",
                   help="tasks run to measure (spread over the input sizes; and half of "
                        "them): default 4")
    p.add_argument("--workers", "-w", type=int, metavar="W",
                   help="parallel tasks for the wall time (default: executor.workers)")
    p.add_argument("--nodes", type=int, metavar="K", help="nodes (with --cores-per-node)")
    p.add_argument("--cores-per-node", type=int, metavar="C",
                   help="parallel tasks per node")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override any key, as for run")
    p.add_argument("--keep", metavar="DIR", help="keep the sample runs in DIR")
    p.add_argument("--from", dest="runs_from", action="append", metavar="RUN",
                   help="use a finished run of the same chain (e.g. a pilot on fewer "
                        "inputs) instead of sample runs; repeatable (two sizes fit fixed "
                        "costs)")
    p.add_argument("--by-input-bytes", action="store_true",
                   help="split inputs: scale by input bytes, not by the content the reader "
                        "finds in them (the content pass)")
    p.add_argument("--json", action="store_true", help="print the estimate as JSON")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("export", help="tokenise a finished run into training files (megatron "
                                      ".bin/.idx, nanotron .ds, npy, mds): docs/export.md")
    p.add_argument("run", help="the finished run directory (or URL); with --verify, the "
                               "export's output directory")
    p.add_argument("--tokenizer", help="tokenizer.json (path or URL)")
    p.add_argument("--verify", action="store_true",
                   help="check RUN's token files against its export.json (sha256 of each)")
    p.add_argument("--tokenizer-sha256", metavar="HEX", help="expected sha256 of it")
    p.add_argument("--format", default="megatron", help="megatron | nanotron | npy | mds")
    p.add_argument("--output", "-o", metavar="DIR", help="output directory (default RUN/tokens)")
    p.add_argument("--eos", default="true", help="true (the tokenizer's EOS), false, a token "
                                                 "or an id")
    p.add_argument("--dtype", default="auto", help="auto | uint16 | uint32 | int32")
    p.add_argument("--shard-tokens", type=int, default=1_000_000_000, metavar="N",
                   help="target tokens per output file")
    p.add_argument("--shuffle-seed", type=int, metavar="SEED",
                   help="shuffle documents globally with this seed (default: run order)")
    p.add_argument("--buckets", type=int, default=64, help="shuffle buckets (key ranges)")
    p.add_argument("--weights-from", default="rebalance", help="rebalance | none")
    p.add_argument("--memory-mb", type=float, default=1024, help="sort budget of the write step")
    p.add_argument("--workers", "-w", type=int, default=1, metavar="N",
                   help="shards tokenised in parallel")
    p.add_argument("--keep-work", action="store_true", help="keep the spill files (OUT/_work)")
    p.set_defaults(func=cmd_export)
    return ap


def main(argv: list[str] | None = None) -> int:
    tune_allocator()  # a thresher process runs tasks its own way (allocator.py)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except UserError as e:
        for line in str(e).splitlines():
            print(f"thresher: error: {line}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a read-only or missing path: one line (-v: traceback)
        if args.verbose:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"thresher: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("thresher: interrupted; finish with --resume", file=sys.stderr)
        return 130


def entry() -> None:
    """The ``thresher`` program: ``main``, then an exit that skips the interpreter's teardown.

    By the time ``main`` returns, everything a command writes is committed (atomic renames,
    closed files). What a normal exit adds is the teardown of native libraries, and Arrow's
    thread pools can abort there (``terminate called without an active exception``: -6 after
    a complete run, apache/arrow#34314), which turns a finished ``thresher samples``, or a
    finished Slurm task, into a failure. So: join the threads a normal exit would join, run
    the ``atexit`` handlers (logging, Ray, multiprocessing, finalizers), flush the standard
    streams and ``os._exit`` with the command's code. Callers of ``main``, and a process
    under a profiler or tracer (cProfile, coverage), keep Python's exit.
    """
    try:
        code = main()
    except SystemExit as exc:  # argparse's errors and --help
        code = exc.code
    except BaseException:  # a bug or an interrupt outside main's handlers: as Python reports it
        traceback.print_exc()
        code = 1
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)  # a profiler or coverage tool writes its results at the normal exit
    getattr(threading, "_shutdown", lambda: None)()  # non-daemon threads, as at a normal exit
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`) or stream: nothing to say
            pass
    os._exit(code & 0xFF)


if __name__ == "__main__":
    entry()
