"""Config loading: one-line errors with file, line and key path; overrides; YAML round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import REPO, WARC_DIR, thresher

from pipelines import config_from_yaml, load_config, stage
from pipelines.config import LocalExecutor, OutputConfig, PipelineConfig, WarcInput
from pipelines.errors import UserError

GOOD = f"""\
name: t
input:
  format: warc
  paths: ["{WARC_DIR}/*.warc.gz"]
output:
  path: runs/t
executor:
  kind: local
  workers: 2
stages:
  - stage: extract
  - stage: langid
    languages: [en]
    min_score: 0.65
"""

# (edit of GOOD, expected substring, expected line)
CATALOGUE = [
    (("    min_score: 0.65", "    min_scor: 0.65"),
     "stages[1].min_scor: unknown parameter; expected one of: mode, languages, min_score", 14),
    (("  - stage: extract", "  - stage: extrct"),
     "stages[0].stage: unknown stage 'extrct'; expected one of: extract", 11),
    (("    min_score: 0.65", "    min_score: high"), "stages[1].min_score: ", 14),
    (("  workers: 2", "  workers: two"), "executor.workers: input should be a valid integer", 9),
    (("  workers: 2", "  workers: 0"), "executor.workers: input should be greater than", 9),
    (("  kind: local", "  kind: k8s"),
     "executor: unknown kind 'k8s'; expected one of: local, ray", 7),
    (("  format: warc", "  format: csv"),
     "input: unknown format 'csv'; expected one of: warc, wet, jsonl, parquet", 2),
    (("  path: runs/t", "  pth: runs/t"), "output.pth: unknown key", 6),
    (("output:\n  path: runs/t\n", "output:\n  format: parquet\n"),
     "output.path: required key is missing", 5),
    (("name: t", "name: t\nseeds: 3"), "seeds: unknown key", 2),
    (("  paths: [", "  pathz: ["), "input.pathz: unknown key", 4),
    ((f'["{WARC_DIR}/*.warc.gz"]', '["/nonexistent/*.warc.gz"]'),
     "input.paths[0]: glob '/nonexistent/*.warc.gz' matched no files", 4),
    ((f'["{WARC_DIR}/*.warc.gz"]', f'["{WARC_DIR}"]'),
     "input.paths[0]: glob", 4),
    (("    languages: [en]", "    languages: en"),
     "stages[1].languages: input should be a valid list", 13),
    (("  - stage: extract", "  - stage: extract\n  - stage: extract"),
     "stages[1].name: duplicate stage name 'extract'", 12),
    (("  - stage: extract", "  - stage: extract\n    name: read"),
     "stages[0].name: 'read' is reserved", 12),
    (("  - stage: extract", "  - extract"),
     "stages[0]: expected a mapping with a `stage:` key", 11),
    (("  - stage: extract", "  - stage: extract\n    favor_precision: maybe"),
     "stages[0].favor_precision: input should be a valid boolean", 12),
    (("output:\n  path: runs/t", "output:\n  path: runs/t\n  compression: lz4"),
     "output.compression: input should be 'zstd', 'snappy', 'gzip' or 'none'", 7),
    (("    min_score: 0.65", "    min_score: 0.65\n   bad: [unclosed"), "invalid YAML", None),
    (("  - stage: langid", "  - stage: no.such.module:Cls"),
     "stages[1].stage: stage 'no.such.module:Cls': cannot import", 12),
]


@pytest.mark.parametrize("edit,expected,line", CATALOGUE, ids=[c[1][:40] for c in CATALOGUE])
def test_malformed_config_gives_one_clear_line(tmp_path: Path, edit, expected, line):
    old, new = edit
    assert old in GOOD
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace(old, new, 1))
    with pytest.raises(UserError) as err:
        load_config(path)
    msg = str(err.value)
    assert expected in msg, msg
    assert msg.startswith(str(path))
    hit = [m for m in msg.splitlines() if expected in m][0]  # one line per error
    if line is not None:
        assert hit.startswith(f"{path}:{line}: "), msg
    assert "Traceback" not in msg


def test_good_config_loads():
    cfg = config_from_yaml(GOOD, check_inputs=True)
    assert cfg.executor.workers == 2 and cfg.stages[1].params.languages == ["en"]


def test_cli_errors_are_one_line_without_traceback(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace("    min_score: 0.65", "    min_scor: 0.65"))
    for cmd in ("validate", "run"):
        proc = thresher(cmd, str(path), check=False)
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("thresher: error: ")
        assert f"{path}:14: stages[1].min_scor" in lines[0]
    proc = thresher("validate", str(tmp_path / "missing.yaml"), check=False)
    assert proc.returncode == 2 and "cannot read config" in proc.stderr


def test_cli_overrides(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text(GOOD)
    proc = thresher("validate", str(path), "--print", "--output", "/tmp/elsewhere",
                    "--workers", "5", "--set", "stages.langid.min_score=0.3",
                    "--set", "stages[0].favor_precision=true",
                    "--set", "stages.1.languages=[de, fr]", "--set", "input.batch_size=64")
    cfg = yaml.safe_load(proc.stdout)
    assert cfg["output"]["path"] == "/tmp/elsewhere"
    assert cfg["executor"] == {"kind": "local", "workers": 5}
    assert cfg["stages"][1]["min_score"] == 0.3 and cfg["stages"][1]["languages"] == ["de", "fr"]
    assert cfg["stages"][0]["favor_precision"] is True and cfg["input"]["batch_size"] == 64
    ray = yaml.safe_load(thresher("validate", str(path), "--print", "--executor", "ray").stdout)
    assert ray["executor"]["kind"] == "ray" and ray["executor"]["workers"] == 2
    bad = thresher("validate", str(path), "--set", "stages.nosuch.x=1", check=False)
    assert bad.returncode == 2 and "no stage named 'nosuch'" in bad.stderr
    bad = thresher("validate", str(path), "--executor", "k8s", check=False)
    assert bad.returncode == 2 and "executor: unknown kind 'k8s'" in bad.stderr


def test_yaml_round_trip_and_python_equivalence():
    demo = REPO / "configs" / "demo.yaml"
    cfg = load_config(demo, check_inputs=False)
    assert yaml.safe_load(cfg.to_yaml(resolved=False)) == yaml.safe_load(demo.read_text())
    assert config_from_yaml(cfg.to_yaml()).to_dict() == cfg.to_dict()
    py = PipelineConfig(
        name="demo", input=WarcInput(paths=["tests/data/warc/*.warc.gz"]),
        output=OutputConfig(path="runs/demo", format="parquet"),
        executor=LocalExecutor(workers=2),
        stages=[stage("extract", favor_precision=True),
                stage("langid", languages=["en"], min_score=0.65), stage("gopher_quality")])
    assert py.to_dict() == cfg.to_dict()


def test_fingerprint_covers_output_deciding_keys_only():
    base = config_from_yaml(GOOD)
    assert base.with_overrides(workers=1, output="/x").fingerprint() == base.fingerprint()
    assert base.with_overrides(executor="ray").fingerprint() == base.fingerprint()
    changed = base.with_overrides(sets=["stages.langid.min_score=0.5"])
    assert changed.fingerprint() != base.fingerprint()
