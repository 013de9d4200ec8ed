"""The chain check through the real CLI: `thresher validate` (and `run`) refuse a stage that
needs a column no earlier stage writes and the reader does not give, in one line naming
file, line, key and both stages, before any model is loaded; what cannot be proved
missing (Parquet inputs, a datatrove step's own columns) passes to the run-time guard."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import DATA, REPO, WARC_DIR
from test_cli_errors import assert_user_error, cli

from pipelines import config_from_yaml
from pipelines.errors import ConfigErrors

LID = DATA / "lid" / "lingua-sentences-12lang.jsonl"


def warc(stages: str) -> str:
    return (f"input:\n  format: warc\n  paths: ['{WARC_DIR}/dolma*.warc.gz']\n"
            f"output:\n  path: runs/x\nstages:\n{stages}")


def jsonl(stages: str, extra: str = "") -> str:
    return (f"input:\n  format: jsonl\n  paths: ['{LID}']\n{extra}"
            f"output:\n  path: runs/x\nstages:\n{stages}")


def parquet(stages: str, extra: str = "") -> str:
    return (f"input:\n  format: parquet\n  paths: ['{WARC_DIR}/*.parquet']\n{extra}"
            f"output:\n  path: runs/x\nstages:\n{stages}")


def validate(tmp_path: Path, text: str, *args: str):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path, cli("validate", str(path), *args, cwd=tmp_path)


# (id, config, expected text after `bad.yaml`): one line each, line = the key named
REFUSED = [
    ("langid_before_extract", warc("  - stage: langid\n  - stage: extract\n"),
     ":7: stages[0].stage: stage 'langid' needs column 'text', which no earlier stage writes "
     "and the warc reader does not provide (move 'extract' before it)"),
    ("filter_without_extract", warc("  - stage: gopher_quality\n"),
     ":7: stages[0].stage: stage 'gopher_quality' needs column 'text', which no earlier stage "
     "writes and the warc reader does not provide (put 'extract' before it)"),
    ("minhash_scope_language", jsonl("  - stage: minhash_dedup\n    scope: language\n"),
     ":8: stages[0].scope: stage 'minhash_dedup' needs column 'language', which no earlier "
     "stage writes and the jsonl reader does not provide (put 'langid' before it or list it "
     "in input.fields)"),
    ("exact_scope_language",
     warc("  - stage: extract\n  - stage: exact_dedup\n    scope: language\n"),
     ":9: stages[1].scope: stage 'exact_dedup' needs column 'language', which no earlier "
     "stage writes and the warc reader does not provide (put 'langid' before it)"),
    ("dedup_keep_max_score", jsonl("  - stage: exact_dedup\n    keep: max:quality_score\n"),
     ":8: stages[0].keep: stage 'exact_dedup' needs column 'quality_score', which no earlier "
     "stage writes and the jsonl reader does not provide (put 'quality_classifier' before it "
     "or list it in input.fields)"),
    ("rebalance_targets_by_language",
     jsonl("  - stage: rebalance\n    targets: {en: 0.5, de: 0.5}\n"),
     ":7: stages[0].stage: stage 'rebalance' needs column 'language', which no earlier stage "
     "writes and the jsonl reader does not provide (put 'langid' before it or list it in "
     "input.fields)"),
    ("rebalance_by_cluster_size",
     jsonl("  - stage: rebalance\n    by: minhash_cluster_size\n    preset: fineweb2\n"
           "  - stage: minhash_dedup\n"),
     ":8: stages[0].by: stage 'rebalance' needs column 'minhash_cluster_size', which no "
     "earlier stage writes and the jsonl reader does not provide (move 'minhash_dedup' "
     "before it)"),
    ("keep_top_by_language",
     jsonl("  - stage: quality_classifier\n    model: nowhere.bin\n"
           "  - stage: keep_top\n    fraction: 0.1\n    by: [language]\n"),
     ":11: stages[1].by: stage 'keep_top' needs column 'language', which no earlier stage "
     "writes and the jsonl reader does not provide (put 'langid' before it or list it in "
     "input.fields)"),
    ("keep_top_without_a_score", jsonl("  - stage: keep_top\n    fraction: 0.1\n"),
     ":7: stages[0].stage: stage 'keep_top' needs column 'quality_score', which no earlier "
     "stage writes and the jsonl reader does not provide (put 'quality_classifier' before it "
     "or list it in input.fields)"),
    ("count_tokens_column", jsonl("  - stage: count_tokens\n    column: body\n"),
     ":8: stages[0].column: stage 'count_tokens' needs column 'body', which no earlier stage "
     "writes and the jsonl reader does not provide (list it in input.fields)"),
    ("second_extract_lost_the_html", warc("  - stage: extract\n  - stage: extract\n"
                                          "    name: again\n"),
     ":8: stages[1].stage: stage 'again' needs column 'html', which stage 'extract' before "
     "it drops"),
    ("c4_bad_words_by_language",
     warc("  - stage: extract\n  - stage: c4\n    bad_words_file: {en: en.txt}\n"),
     ":8: stages[1].stage: stage 'c4' needs column 'language', which no earlier stage "
     "writes and the warc reader does not provide (put 'langid' before it)"),
    ("parquet_with_listed_columns",
     parquet("  - stage: minhash_dedup\n    scope: language\n", "  columns: [url]\n"),
     ":9: stages[0].scope: stage 'minhash_dedup' needs column 'language', which no earlier "
     "stage writes and the parquet reader does not provide (put 'langid' before it or list "
     "it in input.columns)"),
    ("datatrove_with_declared_columns",
     jsonl("  - stage: datatrove\n    step: datatrove.pipeline.filters:LanguageFilter\n"
           "    columns: {language_score: float64}\n"
           "  - stage: minhash_dedup\n    scope: language\n"),
     ":11: stages[1].scope: stage 'minhash_dedup' needs column 'language', which no earlier "
     "stage writes and the jsonl reader does not provide (put 'langid' before it or list it "
     "in input.fields)"),
    ("dataset_targets_without_input_dataset",
     jsonl("  - stage: rebalance\n    targets: {a: 1}\n    target_by: [dataset]\n"),
     ":9: stages[0].target_by: stage 'rebalance' needs column 'dataset', which no earlier "
     "stage writes and the jsonl reader does not provide (list it in input.fields)"),
]


@pytest.mark.parametrize("text,expected", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_validate_refuses_the_chain_in_one_line(tmp_path: Path, text: str, expected: str):
    path, proc = validate(tmp_path, text)
    assert_user_error(proc, f"thresher: error: {path}{expected}")
    line, key = expected[1:].split(": ")[0], expected.split(": ")[1].rsplit(".", 1)[1]
    # the line named is the line of the key named
    assert text.splitlines()[int(line) - 1].strip().removeprefix("- ").startswith(key + ":")


ACCEPTED = [
    ("langid_gives_language", jsonl("  - stage: langid\n  - stage: minhash_dedup\n"
                                    "    scope: language\n")),
    ("jsonl_fields_give_language",
     jsonl("  - stage: exact_dedup\n    scope: language\n", "  fields: [language]\n")),
    ("input_dataset_gives_dataset",
     jsonl("  - stage: rebalance\n    targets: {a: 1}\n    target_by: [dataset]\n",
           "  dataset: a\n")),
    ("parquet_may_have_any_column", parquet("  - stage: minhash_dedup\n    scope: language\n"
                                            "  - stage: keep_top\n    fraction: 0.5\n")),
    ("datatrove_may_write_any_column",
     jsonl("  - stage: datatrove\n    step: datatrove.pipeline.filters:LanguageFilter\n"
           "  - stage: minhash_dedup\n    scope: language\n")),
    ("extract_keep_html", warc("  - stage: extract\n    keep_html: true\n  - stage: extract\n"
                               "    name: again\n")),
    ("wet_has_text", warc("  - stage: langid\n").replace("format: warc", "format: wet")
     .replace("dolma*.warc.gz", "*.warc.wet.gz")),
    ("copy_pipeline", warc("  []\n").replace("stages:\n  []", "stages: []")),
]


@pytest.mark.parametrize("text", [c[1] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_what_cannot_be_proved_missing_passes(text: str):
    if "format: parquet" in text:  # no parquet input is bundled: the chain is what counts
        cfg = config_from_yaml(text)
    else:
        cfg = config_from_yaml(text, check_inputs=True)
    assert cfg.stages is not None


def test_bundled_configs_validate():
    for name, n in (("demo", 3), ("fineweb2-like", 9)):
        proc = cli("validate", f"configs/{name}.yaml", cwd=REPO)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f"configs/{name}.yaml: ok: {n} stages"), proc.stdout


def test_one_line_per_mistake_without_a_cascade(tmp_path: Path):
    """langid and gopher both lack `text`: one line, at the first stage that needs it (the
    fix, extract before langid, fixes both); minhash's `language` comes from langid, but
    its `dataset` from nowhere: a second line."""
    path, proc = validate(tmp_path, warc("  - stage: langid\n  - stage: gopher_quality\n"
                                         "  - stage: minhash_dedup\n    scope: language\n"
                                         "  - stage: exact_dedup\n    scope: dataset\n"))
    assert_user_error(proc, f"{path}:7: stages[0].stage: stage 'langid' needs column 'text'",
                      f"{path}:12: stages[3].scope: stage 'exact_dedup' needs column "
                      "'dataset', which no earlier stage writes and the warc reader does not "
                      "provide")


def test_run_refuses_before_creating_the_run(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text(warc("  - stage: langid\n"))
    out = tmp_path / "run"
    proc = cli("run", str(path), "--output", str(out), "--quiet", cwd=tmp_path)
    assert_user_error(proc, f"{path}:7: stages[0].stage: stage 'langid' needs column 'text'")
    assert not out.exists()


def test_an_override_that_breaks_the_chain_is_named(tmp_path: Path):
    path, proc = validate(tmp_path, jsonl("  - stage: minhash_dedup\n"),
                          "--set", "stages.minhash_dedup.scope=language")
    assert_user_error(proc, f"{path}: stages[0].scope: stage 'minhash_dedup' needs column "
                            "'language', which no earlier stage writes and the jsonl reader "
                            "does not provide (put 'langid' before it or list it in "
                            "input.fields) (set by an override)")


def test_stages_declare_before_setup():
    """Declarations come from the params alone: a quality classifier whose model does not
    exist still says what it reads and writes (setup would fail)."""
    cfg = config_from_yaml(jsonl("  - stage: quality_classifier\n    model: nowhere.bin\n"
                                 "    column: q\n    mode: annotate\n"))
    st = cfg.stages[0].build()
    assert st.input_columns() == ("text",)
    assert set(st.output_columns()) == {"q", "quality_classifier_reason"}


def test_python_api_leaves_the_chain_to_run_time():
    """config_from_dict builds what a program asks for; the YAML path refuses it."""
    from pipelines import config_from_dict

    data = {"input": {"format": "jsonl", "paths": [str(LID)]}, "output": {"path": "runs/x"},
            "stages": [{"stage": "minhash_dedup", "scope": "language"}]}
    assert config_from_dict(data).stages[0].params.scope == "language"
    with pytest.raises(ConfigErrors, match="needs column 'language'"):
        config_from_yaml(jsonl("  - stage: minhash_dedup\n    scope: language\n"))


def test_empty_chain_copies_and_reshards(tmp_path: Path):
    """`stages: []` is a copy/re-shard pipeline: JSONL in, Parquet shards of at most
    `rows_per_file` rows out, every record once, in order, with the reader's columns."""
    import json

    import pyarrow.parquet as pq

    path = tmp_path / "copy.yaml"
    path.write_text(f"input:\n  format: jsonl\n  paths: ['{LID}']\n  fields: [gold]\n"
                    f"output:\n  path: {tmp_path / 'run'}\n  rows_per_file: 100\nstages: []\n")
    proc = cli("run", str(path), "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    shards = sorted((tmp_path / "run" / "data").glob("*.parquet"))
    tables = [pq.read_table(p) for p in shards]
    assert [t.num_rows for t in tables] == [100, 100, 100, 60]
    rows = [r for t in tables for r in t.to_pylist()]
    src = [json.loads(line) for line in LID.read_text().splitlines()]
    assert [(r["id"], r["text"], r["gold"]) for r in rows] == \
        [(d["id"], d["text"], d["gold"]) for d in src]
    assert tables[0].schema.names == ["id", "text", "url", "source", "gold", "metadata"]
