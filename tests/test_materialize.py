"""Annotate once, filter many: `thresher materialize` must write exactly what filtering
directly at the same thresholds writes (byte for byte), from stored columns alone."""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from conftest import DATA, WARC_DIR, shard_hashes, thresher
from qc_helpers import MAX_CHARS, corpus, trained_model

from pipelines import config_from_dict, run_pipeline
from pipelines import stage as make_spec
from pipelines.errors import UserError
from pipelines.materialize import materialize


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


def dropped(run: Path) -> dict:
    stats = json.loads((run / "stats.json").read_text())["stages"]
    return {k: (v["docs_in"], v["docs_out"], v["dropped"]) for k, v in stats.items()
            if k not in ("read",)}


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
                    "--set", "stages.keep_top.fraction=0.25")
    assert "materialized: mat" in proc.stdout and "below_threshold" in proc.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    src = manifest["materialized_from"]
    assert src["run"] == str(annotated["run"])
    assert src["sets"] == ["stages.quality_classifier.min_score=0.7",
                           "stages.keep_top.fraction=0.25"]
    assert src["manifest_sha256"] and len(src["shards"]) >= 3
    qc = next(s for s in manifest["config"]["stages"] if s["stage"] == "quality_classifier")
    assert qc["min_score"] == 0.7 and qc["mode"] == "filter"
    assert manifest["models"] == json.loads((annotated["run"] / "manifest.json").read_text())[
        "models"]
    thresholds = json.loads((out / "work" / "keep_top" / "thresholds.json").read_text())
    assert thresholds["fraction"] == 0.25
    thresher("verify", str(out / "manifest.json"), str(out))
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
    with pytest.raises(UserError, match="already exists; use --overwrite"):
        materialize(run, tmp_path / "b", [])
    materialize(run, tmp_path / "b", [], overwrite=True)
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
    assert dropped(mat.root)["gopher_quality"] == dropped(direct.root)["gopher_quality"]
    assert dropped(mat.root)["gopher_quality"][2]  # some pages did fail a Gopher rule
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
