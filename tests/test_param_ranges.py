"""Parameter ranges and impossible combinations are config errors, before anything runs:
a score above 1, a range whose max is below its min, a codec level the codec does not
take. Each is one line naming file, line and key (the line is the key's own); the last
test checks the real CLI prints one `thresher: error:` line per mistake."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import DATA
from test_cli_errors import assert_user_error, cli

from pipelines import config_from_yaml
from pipelines.errors import ConfigError, ConfigErrors

LID = DATA / "lid" / "lingua-sentences-12lang.jsonl"
BASE = f"""\
input:
  format: jsonl
  paths: ['{LID}']
  batch_size: 256
output:
  path: runs/x
samples:
  per_reason: 20
executor:
  kind: local
  workers: 1
stages:
  - stage: langid
"""
LANGID = "  - stage: langid\n"

# (id, old text of BASE, new text, key path, what the message says)
CASES = [
    # probabilities and scores within [0, 1]
    ("langid_min_score", LANGID, LANGID + "    min_score: 1.5\n", "stages[0].min_score",
     "less than or equal to 1, got 1.5"),
    ("langid_min_score_negative", LANGID, LANGID + "    min_score: -0.1\n",
     "stages[0].min_score", "greater than or equal to 0"),
    ("langid_min_score_per_language", LANGID, LANGID + "    min_score: {default: 0.5, en: 1.5}\n",
     "stages[0].min_score.en", "less than or equal to 1, got 1.5"),
    ("quality_min_score", LANGID,
     LANGID + "  - stage: quality_classifier\n    model: m.bin\n    min_score: 2\n",
     "stages[1].min_score", "less than or equal to 1"),
    ("minhash_threshold", LANGID, LANGID + "  - stage: minhash_dedup\n    threshold: 1.0\n",
     "stages[1].threshold", "less than 1"),
    ("error_rate", "samples:", "max_error_rate: 1.5\nsamples:", "max_error_rate",
     "expected a fraction between 0 and 1"),
    # fractions within (0, 1]
    ("keep_top_fraction_zero", LANGID,
     LANGID + "  - stage: keep_top\n    column: language_score\n    fraction: 0\n",
     "stages[1].fraction", "greater than 0"),
    ("keep_top_fraction_above_one", LANGID,
     LANGID + "  - stage: keep_top\n    column: language_score\n    fraction: 1.5\n",
     "stages[1].fraction", "less than or equal to 1"),
    # min <= max, weights and counts
    ("rebalance_range_max_below_min", LANGID,
     LANGID + "  - stage: rebalance\n    by: language_score\n"
              "    ranges: [{min: 0.9, max: 0.5, weight: 2}]\n",
     "stages[1].ranges[0].max", "must be at least min (0.9)"),
    ("rebalance_negative_weight", LANGID,
     LANGID + "  - stage: rebalance\n    by: language\n    mapping: {en: -1}\n",
     "stages[1].mapping.en", "greater than or equal to 0"),
    ("rebalance_no_ranges", LANGID,
     LANGID + "  - stage: rebalance\n    by: language_score\n    ranges: []\n",
     "stages[1].ranges", "at least 1 item"),
    ("rebalance_max_epochs", LANGID, LANGID + "  - stage: rebalance\n    max_epochs: 0\n",
     "stages[1].max_epochs", "greater than 0"),
    ("langid_max_chars", LANGID, LANGID + "    max_chars: 0\n", "stages[0].max_chars",
     "greater than 0"),
    ("dedup_partitions", LANGID, LANGID + "  - stage: exact_dedup\n    partitions: 0\n",
     "stages[1].partitions", "greater than or equal to 1"),
    ("url_filter_no_blocklist", LANGID, LANGID + "  - stage: url_filter\n    blocklist_file: []\n",
     "stages[1].blocklist_file", "at least 1 item"),
    ("batch_size", "  batch_size: 256", "  batch_size: 0", "input.batch_size", "greater than 0"),
    ("max_record_bytes", "  batch_size: 256", "  max_record_bytes: 0",
     "input.max_record_bytes", "greater than 0"),
    ("rows_per_file", "  path: runs/x", "  path: runs/x\n  rows_per_file: 0",
     "output.rows_per_file", "greater than 0"),
    ("rows_per_row_group", "  path: runs/x", "  path: runs/x\n  rows_per_row_group: -5",
     "output.rows_per_row_group", "greater than 0"),
    ("samples_per_reason", "  per_reason: 20", "  per_reason: -1", "samples.per_reason",
     "greater than or equal to 0"),
    ("samples_max_chars", "  per_reason: 20", "  max_chars: 0", "samples.max_chars",
     "greater than 0"),
    ("workers", "  workers: 1", "  workers: 0", "executor.workers",
     "greater than or equal to 1"),
    ("ray_cpus_per_task", "  kind: local\n  workers: 1", "  kind: ray\n  cpus_per_task: 0",
     "executor.cpus_per_task", "greater than 0"),
    ("slurm_max_parallel", "  kind: local\n  workers: 1", "  kind: slurm\n  max_parallel: 0",
     "executor.max_parallel", "greater than or equal to 1"),
    ("empty_dataset_mapping", "  batch_size: 256", "  dataset: {}", "input.dataset",
     "at least 1 item"),
    ("dataset_without_globs", "  batch_size: 256", "  dataset: {web: []}", "input.dataset.web",
     "at least 1 item"),
    # impossible combinations
    ("extract_precision_and_recall", LANGID,
     "  - stage: extract\n    favor_precision: true\n    favor_recall: true\n" + LANGID,
     "stages[0].favor_recall", "favor_precision and favor_recall pull opposite ways"),
    ("minhash_threshold_and_bands", LANGID,
     LANGID + "  - stage: minhash_dedup\n    threshold: 0.8\n    bands: 20\n",
     "stages[1]", "threshold 0.8 with num_perm 112 means bands 9 x rows 12, not bands 20"),
    ("snappy_has_no_level", "  path: runs/x",
     "  path: runs/x\n  compression: snappy\n  compression_level: 3",
     "output.compression_level", "compression snappy takes no level"),
    ("uncompressed_has_no_level", "  path: runs/x",
     "  path: runs/x\n  compression: none\n  compression_level: 3",
     "output.compression_level", "compression none takes no level"),
    ("gzip_level", "  path: runs/x", "  path: runs/x\n  compression: gzip\n  compression_level: 12",
     "output.compression_level", "a gzip level is at most 9"),
    ("zstd_level", "  path: runs/x", "  path: runs/x\n  compression_level: 23",
     "output.compression_level", "a zstd level is at most 22"),
    ("jsonl_snappy", "  path: runs/x", "  path: runs/x\n  format: jsonl\n  compression: snappy",
     "output.compression", "snappy is a Parquet codec"),
    ("jsonl_gzip_level", "  path: runs/x",
     "  path: runs/x\n  format: jsonl\n  compression: gzip\n  compression_level: 6",
     "output.compression_level", "JSONL gzip output is written at gzip's default level"),
    ("warc_no_content_types", "  format: jsonl", "  format: warc\n  content_types: []",
     "input.content_types", "at least 1 item"),
]


def _line_of_key(text: str, line: int, path: str) -> bool:
    """The line named holds the last key of the path (or the `- stage:` of a stage)."""
    here = text.splitlines()[line - 1].strip()
    if path.endswith("]"):
        return here.startswith("- stage:")
    key = re.split(r"[.\]]", path)[-1]
    return here.startswith(key + ":") or f"{key}:" in here


@pytest.mark.parametrize("old,new,path,message", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_one_error_naming_line_and_key(old: str, new: str, path: str, message: str):
    assert BASE.count(old) == 1
    text = BASE.replace(old, new)
    with pytest.raises((ConfigError, ConfigErrors)) as info:
        config_from_yaml(text, file="bad.yaml")
    errors = info.value.errors if isinstance(info.value, ConfigErrors) else [info.value]
    assert len(errors) == 1, str(info.value)
    err = errors[0]
    assert err.path == path, str(err)
    assert message in err.message, str(err)
    assert err.line is not None and _line_of_key(text, err.line, path), str(err)
    assert "\n" not in str(err)


def test_good_values_at_the_edges_pass():
    """The bounds themselves are allowed: a score of exactly 0 or 1, a fraction of 1, a
    range of one value, a zstd level of 22, no samples at all."""
    text = (BASE.replace(LANGID, LANGID + "    min_score: {default: 0, en: 1}\n"
                         "  - stage: keep_top\n    column: language_score\n    fraction: 1\n"
                         "  - stage: rebalance\n    by: language_score\n"
                         "    ranges: [{min: 0.5, max: 0.5, weight: 0}]\n"
                         "  - stage: minhash_dedup\n    threshold: 0.8\n    bands: 9\n")
            .replace("  path: runs/x", "  path: runs/x\n  compression_level: 22")
            .replace("  per_reason: 20", "  per_reason: 0"))
    cfg = config_from_yaml(text)
    assert cfg.stages[3].params.rows == 12
    # the resolved config (every field written out) loads again
    assert config_from_yaml(cfg.to_yaml()) == cfg


def test_cli_prints_one_line_per_mistake(tmp_path: Path):
    text = (BASE.replace("  workers: 1", "  workers: 0")
            .replace("  per_reason: 20", "  per_reason: -1")
            .replace(LANGID, LANGID + "    min_score: 1.5\n"
                     "  - stage: keep_top\n    column: language_score\n    fraction: 0\n"
                     "  - stage: length\n    min_chars: 500\n    max_chars: 100\n"))
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert_user_error(cli("validate", str(path), cwd=tmp_path),
                      f"{path}:8: samples.per_reason: input should be greater than or equal "
                      "to 0, got -1",
                      f"{path}:11: executor.workers: input should be greater than or equal "
                      "to 1, got 0",
                      f"{path}:14: stages[0].min_score: input should be less than or equal "
                      "to 1, got 1.5 (stage 'langid')",
                      f"{path}:17: stages[1].fraction: input should be greater than 0",
                      f"{path}:20: stages[2].max_chars: must be at least min_chars (500)")
