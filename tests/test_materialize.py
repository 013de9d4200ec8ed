"""Annotate once, filter many: `thresher materialize` must write exactly what filtering
directly at the same thresholds writes (byte for byte), from stored columns alone."""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from conftest import DATA, REPO, WARC_DIR, shard_hashes, thresher
from qc_helpers import MAX_CHARS, corpus, trained_model

from pipelines import config_from_dict, run_pipeline
from pipelines import stage as make_spec
from pipelines.errors import UserError
from pipelines.materialize import plan_materialize
from pipelines.rundir import RunDir


def materialize(run: Path, out: Path, sets: list[str], overwrite: bool = False,
                resume: bool = False, **over) -> RunDir:
    """What `thresher materialize` does: plan, then run the plan like any run."""
    cfg, plan = plan_materialize(run, out, sets, **over)
    return run_pipeline(cfg, overwrite=overwrite, resume=resume, plan=plan)


def chain(model: dict, mode: str, **over) -> list[dict]:
    """langid -> length -> quality_classifier -> keep_top, all in ``mode``."""
    stages = [
        {"stage": "langid", "min_score": 0.5},
        {"stage": "length", "min_chars": 200},
        {"stage": "quality_classifier", "model": model["stage"]["model"],
         "model_sha256": model["sha256"], "max_chars": MAX_CHARS, "min_score": 0.1},
        {"stage": "keep_top", "fraction": 0.5, "by": ["language"]},
    ]
    for st in stages:
        st["mode"] = mode
        st.update(over.get(st["stage"], {}))
    return stages


def config(data: Path, out: Path, stages: list[dict], fmt: str = "parquet"):
    return config_from_dict({
        "name": "mat",
        "input": {"format": "jsonl", "paths": [str(data / "*.jsonl")], "fields": ["label"]},
        "output": {"path": str(out), "rows_per_file": 150, "format": fmt},
        "stages": stages,
    })


def sets_of(over: dict) -> list[str]:
    return [f"{st}.{k}={json.dumps(v)}" for st, params in over.items() for k, v in params.items()]


def stages_of(run: Path) -> dict:
    return json.loads((run / "stats.json").read_text())["stages"]


def lost(stages: dict) -> int:
    """Every drop and error of every stage."""
    return sum(sum(s["dropped"].values()) + sum(s["errors"].values()) for s in stages.values())


def dropped(run: Path) -> dict:
    """Per stage, in order: documents in and out, drops and errors per reason (read, carried
    from the annotated run into a materialized one, included)."""
    return [(k, v["docs_in"], v["docs_out"], v["dropped"], v["errors"])
            for k, v in stages_of(run).items()]


@pytest.fixture(scope="module")
def annotated(tmp_path_factory):
    model = trained_model(tmp_path_factory)
    root = tmp_path_factory.mktemp("mat")
    docs = corpus(root / "in", 3, every=2)
    run = run_pipeline(config(root / "in", root / "annotated", chain(model, "annotate")))
    return {"model": model, "root": root, "data": root / "in", "run": run.root,
            "n_docs": len(docs)}


NEW_THRESHOLDS = [
    {"langid": {"min_score": 0.8}, "length": {"min_chars": 600},
     "quality_classifier": {"min_score": 0.5}, "keep_top": {"fraction": 0.3}},
    {"langid": {"languages": ["en"]}, "keep_top": {"fraction": 0.1, "by": []}},
    {},  # the annotated thresholds themselves
]


@pytest.mark.parametrize("over", NEW_THRESHOLDS, ids=["all", "lang+top", "same"])
def test_materialize_equals_filtering_directly(annotated, tmp_path, over):
    direct = run_pipeline(config(annotated["data"], tmp_path / "direct",
                                 chain(annotated["model"], "filter", **over)))
    mat = materialize(annotated["run"], tmp_path / "mat", sets_of(over))
    assert shard_hashes(mat.root) == shard_hashes(direct.root)
    assert len(shard_hashes(mat.root)) >= 3  # 3 tasks, at most 150 rows per file
    assert dropped(mat.root) == dropped(direct.root)
    total = sum(pq.ParquetFile(p).metadata.num_rows for p in (annotated["run"] / "data").glob("*"))
    assert total == annotated["n_docs"]  # annotate kept every document
    cfg = yaml.safe_load((mat.root / "config.yaml").read_text())
    assert cfg == yaml.safe_load((direct.root / "config.yaml").read_text()) | \
        {"output": cfg["output"]}  # the new run says what it is: the direct pipeline


def test_keep_annotating_a_stage(annotated, tmp_path):
    """STAGE.mode=annotate: documents stay, the reason column is recomputed at the new
    threshold; the same as a direct run with that stage annotating."""
    over = {"quality_classifier": {"min_score": 0.9, "mode": "annotate"}}
    direct = run_pipeline(config(annotated["data"], tmp_path / "direct",
                                 chain(annotated["model"], "filter", **over)))
    mat = materialize(annotated["run"], tmp_path / "mat", sets_of(over))
    assert shard_hashes(mat.root) == shard_hashes(direct.root)
    rows = pq.read_table(mat.root / "data").to_pylist()
    assert {r["quality_classifier_reason"] for r in rows} == {None, "low_quality"}


def test_cli_records_source_and_reproduces(annotated, tmp_path):
    out = tmp_path / "mat"
    proc = thresher("materialize", str(annotated["run"]), str(out),
                    "--set", "quality_classifier.min_score=0.7",
                    "--set", "stages.keep_top.fraction=0.25", "--set", "samples.per_reason=3",
                    "--workers", "2", "--executor", "local")
    assert "materialized: mat" in proc.stdout and "below_threshold" in proc.stdout
    assert "read*" in proc.stdout and f"* carried from {annotated['run']}: read" in proc.stdout
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["samples"]["per_reason"] == 3 and cfg["executor"]["workers"] == 2
    samples = pq.read_table(out / "samples" / "quality_classifier.parquet").to_pylist()
    assert 0 < len(samples) <= 3 and {r["reason"] for r in samples} == {"low_quality"}
    manifest = json.loads((out / "manifest.json").read_text())
    src = manifest["materialized_from"]
    assert src["run"] == str(annotated["run"])
    assert src["sets"] == ["stages.quality_classifier.min_score=0.7",
                           "stages.keep_top.fraction=0.25", "samples.per_reason=3"]
    assert src["manifest_sha256"] and len(src["shards"]) >= 3
    qc = next(s for s in manifest["config"]["stages"] if s["stage"] == "quality_classifier")
    assert qc["min_score"] == 0.7 and qc["mode"] == "filter"
    assert manifest["models"] == json.loads((annotated["run"] / "manifest.json").read_text())[
        "models"]
    thresholds = json.loads((out / "work" / "keep_top" / "thresholds.json").read_text())
    assert thresholds["fraction"] == 0.25
    thresher("verify", str(out / "manifest.json"), str(out))
    # an ordinary run directory: every phase done, a report, a diff against the source
    status = json.loads(thresher("status", str(out), "--json").stdout)
    assert not status["failed"]
    assert [p["name"] for p in json.loads((out / "plan.json").read_text())["phases"]] == \
        ["main", "keep_top.thresholds", "apply-keep_top"]
    thresher("report", str(out), "-o", str(tmp_path / "report.html"))
    assert "quality_classifier" in (tmp_path / "report.html").read_text()
    diff = json.loads(thresher("diff", str(annotated["run"]), str(out), "--json").stdout)
    assert "stages.quality_classifier.min_score" in json.dumps(diff)
    # the manifest names the raw inputs: reproducing runs the direct pipeline from scratch
    proc = thresher("reproduce", str(out / "manifest.json"), str(tmp_path / "again"))
    assert "every shard matches the manifest byte for byte" in proc.stdout


def test_what_cannot_be_materialized_is_refused(annotated, tmp_path):
    run = annotated["run"]
    with pytest.raises(UserError, match="no stage named 'qualty'"):
        materialize(run, tmp_path / "a", ["qualty.min_score=0.5"])
    with pytest.raises(UserError, match="cannot change `input`"):
        materialize(run, tmp_path / "a", ["input.batch_size=7"])
    with pytest.raises(UserError, match="must differ from RUN"):
        materialize(run, run, [])
    materialize(run, tmp_path / "b", [])
    with pytest.raises(UserError, match="already holds a run; use --resume to finish it or "
                                        "--overwrite to start over"):
        materialize(run, tmp_path / "b", [])
    materialize(run, tmp_path / "b", [], overwrite=True)
    # the direct run has the same config, but did not read these shards: not resumed
    run_pipeline(config(annotated["data"], tmp_path / "d", chain(annotated["model"], "filter")))
    with pytest.raises(UserError, match="holds a run planned from other inputs"):
        materialize(run, tmp_path / "d", [], resume=True)
    with pytest.raises(UserError, match="not a finished thresher run"):
        materialize(tmp_path / "nowhere", tmp_path / "c", [])


def test_filter_mode_and_global_stages_after_annotate_are_refused(annotated, tmp_path):
    model, data = annotated["model"], annotated["data"]
    stages = chain(model, "annotate")[:3]
    stages[1]["mode"] = "filter"  # length dropped its documents for good
    stages.append({"stage": "exact_dedup"})  # saw documents annotate-mode filters flagged
    run = run_pipeline(config(data, tmp_path / "run", stages))
    with pytest.raises(UserError, match="stage 'length' ran as mode: filter"):
        materialize(run.root, tmp_path / "a", ["length.min_chars=10"])
    with pytest.raises(UserError, match="stage 'exact_dedup' \\(exact_dedup\\) ran after "
                                        "annotate-mode stage 'langid'"):
        materialize(run.root, tmp_path / "a", [])


def test_a_filter_mode_stage_between_annotated_ones_is_carried(annotated, tmp_path):
    """langid (annotate) -> length (filter) -> quality_classifier (annotate): length's drops
    are in the annotated run's shards already, so they are carried into the materialized
    run's funnel, which accounts for every record read; the shards are a direct run's."""
    model, data = annotated["model"], annotated["data"]
    stages = chain(model, "annotate")[:3]
    stages[1] |= {"mode": "filter", "min_chars": 900}
    run = run_pipeline(config(data, tmp_path / "run", stages)).root
    over = {"langid": {"min_score": 0.9}, "quality_classifier": {"min_score": 0.5}}
    mat = materialize(run, tmp_path / "mat", sets_of(over))
    direct_stages = chain(model, "filter", **over)[:3]
    direct_stages[1]["min_chars"] = 900
    direct = run_pipeline(config(data, tmp_path / "direct", direct_stages)).root
    assert shard_hashes(mat.root) == shard_hashes(direct)
    ours, theirs, source = stages_of(mat.root), stages_of(direct), stages_of(run)
    assert ours["read"] == source["read"] | {"carried_from": str(run),
                                             "carried_docs": source["read"]["docs_in"]}
    assert ours["read"]["docs_in"] == ours["write"]["docs_out"] + lost(ours) == \
        theirs["write"]["docs_out"] + lost(theirs)
    assert ours["length"]["carried_docs"] == sum(source["length"]["dropped"].values()) > 0
    assert ours["length"]["dropped"] == source["length"]["dropped"]
    assert "carried_from" not in ours["quality_classifier"]
    for st in ours.values():
        assert st["docs_in"] + st["docs_added"] == \
            st["docs_out"] + sum(st["dropped"].values()) + sum(st["errors"].values())
    # what was dropped for good can still be looked at: length's samples came along
    samples = pq.read_table(mat.root / "samples" / "length.parquet").to_pylist()
    assert samples and {r["reason"] for r in samples} == {"too_short"}


def test_what_an_annotate_mode_stage_failed_on_is_carried(annotated):
    """Documents a filter failed on (errors) are gone even in annotate mode: the annotated
    run's error counts are carried into that stage, and nothing else of it."""
    from pipelines.config import load_config
    from pipelines.materialize import _carried, stage_roles

    stats = stages_of(annotated["run"])
    stats["length"] = stats["length"] | {"errors": {"exception:ValueError": 2},
                                         "docs_in": stats["length"]["docs_in"] + 2,
                                         "chars_by_reason": {"exception:ValueError": 70}}
    old = load_config(annotated["run"] / "config.yaml", check_inputs=False)
    new = old.with_overrides(sets=["stages.length.min_chars=600"])
    carried = _carried(stats, old, stage_roles(old, new))
    assert set(carried) == {"read", "length"}
    assert carried["read"] == stats["read"]
    assert (carried["length"]["docs_in"], carried["length"]["docs_out"]) == (2, 0)
    assert carried["length"]["errors"] == {"exception:ValueError": 2}
    assert carried["length"]["dropped"] == {} and carried["length"]["chars_in"] == 70


def test_killed_materialize_resumes_to_the_same_bytes(tmp_path):
    """SIGKILL a materialize (30 tasks, keep_top ranking by what length measured) once a
    task is done, then --resume: the same shards and counts as one not interrupted."""
    rows = [json.loads(line) for line in gzip.open(DATA / "quality" / "filter-docs.jsonl.gz",
                                                   "rt", encoding="utf-8")]
    (tmp_path / "in").mkdir()
    for i in range(30):
        (tmp_path / "in" / f"part-{i:02d}.jsonl").write_text(
            "".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n"
                    for r in rows[i::30]), encoding="utf-8")
    stages = [{"stage": "length", "min_words": 20, "mode": "annotate"},
              {"stage": "keep_top", "column": "length_chars", "fraction": 0.5,
               "mode": "annotate"}]
    ann = run_pipeline(config_from_dict({
        "input": {"format": "jsonl", "paths": [str(tmp_path / "in" / "*.jsonl")]},
        "output": {"path": str(tmp_path / "ann")},
        "executor": {"kind": "local", "workers": 1},
        "stages": stages})).root
    args = [str(ann), str(tmp_path / "mat"), "--set", "length.min_words=100",
            "--set", "keep_top.fraction=0.3", "--set", "length.mode=annotate", "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "materialize", *args],
                            cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    done = tmp_path / "mat" / "stats" / "main"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if done.is_dir() and list(done.glob("task-*.json")):
            break
        time.sleep(0.01)
    assert proc.poll() is None, "materialize finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 1 <= len(list(done.glob("task-*.json"))) < 30
    assert not (tmp_path / "mat" / "stats.json").exists()
    proc = thresher("materialize", *args, check=False)
    assert proc.returncode == 2 and "use --resume to finish it" in proc.stderr
    thresher("materialize", *args, "--resume")
    whole = materialize(ann, tmp_path / "whole", args[3:8:2])
    assert shard_hashes(tmp_path / "mat") == shard_hashes(whole.root)
    assert len(shard_hashes(whole.root)) == 30
    assert dropped(tmp_path / "mat") == dropped(whole.root)
    assert not list((tmp_path / "mat").rglob(".*.tmp-*"))
    thresher("verify", str(tmp_path / "mat" / "manifest.json"), str(tmp_path / "mat"))


def test_tampered_or_jsonl_runs_are_refused(annotated, tmp_path):
    model, data = annotated["model"], annotated["data"]
    run = run_pipeline(config(data, tmp_path / "jsonl", chain(model, "annotate")[1:2], "jsonl"))
    with pytest.raises(UserError, match="output.format: parquet"):
        materialize(run.root, tmp_path / "a", [])
    run = run_pipeline(config(data, tmp_path / "pq", chain(model, "annotate")[1:2]))
    shard = sorted((run.root / "data").glob("*.parquet"))[0]
    shard.write_bytes(shard.read_bytes()[:-1] + b"\0")
    with pytest.raises(UserError, match=f"shard data/{shard.name} changed since the run"):
        materialize(run.root, tmp_path / "b", [])


def test_real_pages_with_gopher_thresholds_from_columns(tmp_path):
    """extract -> langid -> gopher_quality on real WARCs: langid's and Gopher's thresholds
    change together, Gopher deciding from its measurement columns."""
    stages = [{"stage": "extract"}, {"stage": "langid", "min_score": 0.3, "mode": "annotate"},
              {"stage": "gopher_quality", "mode": "annotate"}]
    base = {"name": "warc", "input": {"format": "warc",
                                      "paths": [str(WARC_DIR / "dolma-*-0000.warc.gz")]},
            "output": {"path": str(tmp_path / "ann")}, "stages": stages}
    ann = run_pipeline(config_from_dict(base))
    over = {"langid": {"min_score": 0.9},
            "gopher_quality": {"min_doc_words": 100, "min_stop_words": 4}}
    direct_cfg = copy.deepcopy(base)
    direct_cfg["output"]["path"] = str(tmp_path / "direct")
    for st in direct_cfg["stages"][1:]:
        st["mode"] = "filter"
        st.update(over.get(st["stage"], {}))
    direct = run_pipeline(config_from_dict(direct_cfg))
    mat = materialize(ann.root, tmp_path / "mat", sets_of(over))
    assert shard_hashes(mat.root) == shard_hashes(direct.root)
    assert stages_of(mat.root)["gopher_quality"]["dropped"]  # some pages failed a Gopher rule
    # the funnel starts at the records read, as the direct run's does, stage by stage:
    # read and extract carried from the annotated run, the rest decided here
    ours, theirs = stages_of(mat.root), stages_of(direct.root)
    assert list(ours) == list(theirs) == ["read", "extract", "langid", "gopher_quality",
                                          "write"]
    for name in theirs:
        for key in ("docs_in", "docs_out", "dropped", "errors"):
            assert ours[name][key] == theirs[name][key], (name, key)
    assert ours["read"]["docs_in"] == stages_of(ann.root)["read"]["docs_in"] == \
        ours["write"]["docs_out"] + lost(ours)
    assert ours["langid"]["dropped"] and ours["read"]["dropped"]  # both ends drop something
    carried = {n for n, st in ours.items() if st.get("carried_from") == str(ann.root)}
    assert carried == {"read", "extract"}
    assert ours["extract"]["carried_docs"] == ours["extract"]["docs_in"]
    with pytest.raises(UserError, match="stage 'gopher_quality' \\(gopher_quality\\): stop_words "
                                        "cannot change here, as the stored columns were "
                                        "measured with the old value; re-run the pipeline "
                                        "\\(materialize can change: max_avg_word_length, "):
        materialize(ann.root, tmp_path / "x", ["gopher_quality.stop_words=[the, a]"])
    with pytest.raises(UserError, match="stage 'extract' ran as a map stage"):
        materialize(ann.root, tmp_path / "x", ["extract.favor_precision=true"])


# ----------------------------------------------------------------------------- heuristic filters
# The heuristic filters annotate 1,200 real extracted documents (of every kind in the file)
# at their default thresholds; materializing at other thresholds must write what filtering
# directly does.

N_REAL_DOCS = 1200

HEURISTICS = ["length", "char_ratio", "gopher_quality", "gopher_repetition", "c4",
              "fineweb_quality"]  # c4 rewrites the text the two before it measured
BAD_WORDS = ["sex", "porn", "nude", "naked", "shit", "fuck", "damn", "crap", "bitch",
             "bastard", "hell", "scheiße", "arsch", "verdammt", "nackt"]


def heuristic_stages(mode: str, bad_words: Path, over: dict | None = None) -> list[dict]:
    stages = [{"stage": name} for name in HEURISTICS]
    stages[0] |= {"min_words": 20}
    stages[1] |= {"min_letter_ratio": 0.5, "max_digit_ratio": 0.3}
    stages[4]["bad_words_file"] = str(bad_words)
    for st in stages:
        st["mode"] = mode
        st.update((over or {}).get(st["stage"], {}))
    return stages


def heuristic_config(root: Path, out: Path, stages: list[dict]):
    return config_from_dict({
        "name": "heuristics",
        "input": {"format": "jsonl", "paths": [str(root / "in" / "*.jsonl")]},
        "output": {"path": str(out), "rows_per_file": 400},
        "stages": stages,
    })


@pytest.fixture(scope="module")
def heuristic_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("heuristics")
    rows = [json.loads(line) for line in gzip.open(DATA / "quality" / "filter-docs.jsonl.gz",
                                                   "rt", encoding="utf-8")]
    rows = sorted(rows, key=lambda r: hashlib.sha1(r["id"].encode()).digest())[:N_REAL_DOCS]
    (root / "in").mkdir()
    for i in range(2):  # two tasks
        (root / "in" / f"part-{i}.jsonl").write_text(
            "".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in rows[i::2]),
            encoding="utf-8")
    bad = root / "bad-words.txt"
    bad.write_text("\n".join(BAD_WORDS) + "\n", encoding="utf-8")
    run = run_pipeline(heuristic_config(root, root / "annotated",
                                        heuristic_stages("annotate", bad)))
    return {"root": root, "run": run.root, "bad": bad, "n_docs": len(rows)}


HEURISTIC_THRESHOLDS = {
    "gopher_quality": {"gopher_quality": {
        "min_doc_words": 150, "max_avg_word_length": 7, "max_symbol_word_ratio": 0.02,
        "min_alpha_words_ratio": 0.9, "min_stop_words": 4}},
    "gopher_quality_loose": {"gopher_quality": {
        "min_doc_words": 10, "min_alpha_words_ratio": None, "min_stop_words": None,
        "max_bullet_lines_ratio": 0.3, "max_ellipsis_lines_ratio": 0.05}},
    "gopher_repetition": {
        "gopher_quality": {"min_stop_words": None, "min_alpha_words_ratio": None},
        "gopher_repetition": {
            "max_dup_line_ratio": 0.1, "max_dup_para_char_ratio": 0.05,
            "max_top_ngram_char_ratio": {2: 0.1, 3: 0.08, 4: 0.06},
            "max_dup_ngram_char_ratio": {5: 0.05, 6: 0.05, 7: 0.04, 8: 0.04, 9: 0.03, 10: 0.03}}},
    "gopher_repetition_loose": {
        "gopher_quality": {"min_stop_words": None, "min_alpha_words_ratio": None},
        "gopher_repetition": {
            "max_dup_line_ratio": None, "max_dup_para_ratio": 0.6,
            "max_top_ngram_char_ratio": {2: 0.4, 4: 0.3}, "max_dup_ngram_char_ratio": {5: 0.3}}},
    "c4": {"gopher_quality": {"min_stop_words": None},
           "c4": {"min_sentences": 12, "drop_curly_bracket": False,
                  "bad_words_keep_fraction": 0.5}},
    "c4_loose": {"gopher_quality": {"min_stop_words": None, "min_alpha_words_ratio": None},
                 "c4": {"min_sentences": None, "drop_lorem_ipsum": False,
                        "bad_words_keep_fraction": 0.3, "bad_words_seed": 7}},
    "fineweb_quality": {"fineweb_quality": {
        "min_terminal_punct_line_ratio": 0.5, "max_short_line_ratio": 0.3,
        "max_dup_line_char_ratio": 0.001, "max_newline_word_ratio": 0.05}},
    "fineweb_quality_loose": {
        "gopher_quality": {"min_stop_words": None, "min_alpha_words_ratio": None},
        "c4": {"min_sentences": 1},
        "fineweb_quality": {"min_terminal_punct_line_ratio": None, "max_short_line_ratio": 0.9,
                            "max_newline_word_ratio": None}},
    "length_char_ratio": {"length": {"min_words": 300, "max_chars": 20000},
                          "char_ratio": {"min_letter_ratio": 0.75, "max_uppercase_ratio": 0.1,
                                         "max_digit_ratio": None}},
    "keep_annotating": {"c4": {"mode": "annotate", "min_sentences": 8},
                        "gopher_repetition": {"max_dup_line_ratio": 0.2}},
    "same": {},
}


@pytest.mark.parametrize("name", list(HEURISTIC_THRESHOLDS))
def test_heuristic_filters_materialize_equals_filtering_directly(heuristic_run, tmp_path, name):
    over = HEURISTIC_THRESHOLDS[name]
    direct = run_pipeline(heuristic_config(heuristic_run["root"], tmp_path / "direct",
                                           heuristic_stages("filter", heuristic_run["bad"], over)))
    mat = materialize(heuristic_run["run"], tmp_path / "mat", sets_of(over))
    ours, theirs = pq.read_table(mat.root / "data"), pq.read_table(direct.root / "data")
    assert ours.column("id").to_pylist() == theirs.column("id").to_pylist()
    assert ours.column("text").to_pylist() == theirs.column("text").to_pylist()
    assert ours.column_names == theirs.column_names
    assert dropped(mat.root) == dropped(direct.root)  # docs in/out and drops per reason
    assert shard_hashes(mat.root) == shard_hashes(direct.root)
    annotated = pq.read_table(heuristic_run["run"] / "data")
    assert annotated.num_rows == heuristic_run["n_docs"]  # annotate kept every document
    for stage, params in over.items():  # the new thresholds decide otherwise than the defaults
        params = next(s for s in heuristic_stages("annotate", heuristic_run["bad"],
                                                  {stage: params}) if s["stage"] == stage)
        st = make_spec(params.pop("stage"), **params).build()
        new = st.decide_from_columns(annotated)
        old = annotated.column(f"{stage}_reason").to_pylist()
        assert sum(a != b for a, b in zip(new, old)) >= 5, stage


@pytest.mark.parametrize("item,message", [
    ("gopher_quality.tokenizer=whitespace", "tokenizer cannot change here"),
    ("gopher_quality.bullets=['*']", "bullets cannot change here"),
    ("gopher_repetition.max_dup_ngram_char_ratio={5: 0.1, 11: 0.1}",
     "the new max_dup_ngram_char_ratio need\\(s\\) column\\(s\\) "
     "gopher_repetition_dup_11gram_ratio, which the annotated run did not measure"),
    ("c4.min_words_per_line=2", "min_words_per_line cannot change here"),
    ("c4.split=sentences", "split cannot change here"),
    ("c4.bad_words_file=other.txt", "bad_words_file cannot change here"),
    ("fineweb_quality.short_line_length=20", "short_line_length cannot change here"),
])
def test_heuristic_params_that_change_measurements_are_refused(heuristic_run, tmp_path, item,
                                                               message):
    with pytest.raises(UserError, match=message):
        materialize(heuristic_run["run"], tmp_path / "x", [item])
    assert not (tmp_path / "x").exists()  # refused before anything is written
