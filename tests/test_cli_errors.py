"""The real `thresher` console script on bad configs and overrides: exit code 2, one
`thresher: error:` line per problem on stderr, never a traceback. (Most cases are checked
through the Python API in test_config.py; each subprocess here costs about half a second.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import DEMO, REPO, WARC_DIR
from test_config import GOOD

from pipelines import config_from_yaml, load_config


def _console_script() -> list[str]:
    exe = Path(sys.executable).with_name("thresher")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("thresher")
    return [found] if found else [sys.executable, "-m", "pipelines.cli"]


THRESHER = _console_script()


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*THRESHER, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def assert_user_error(proc: subprocess.CompletedProcess, *expected_lines: str) -> list[str]:
    """Exit 2, no traceback, and stderr is exactly one `thresher: error:` line per error."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = proc.stderr.splitlines()
    assert lines and all(line.startswith("thresher: error: ") for line in lines), proc.stderr
    assert len(lines) == len(expected_lines), proc.stderr
    for line, expected in zip(lines, expected_lines):
        assert expected in line, (expected, line)
    return lines


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# (id, old text of GOOD, new text, expected `file:line: key.path: message` after the file name)
CLI_CASES = [
    ("misspelled_param", "    min_score: 0.65", "    min_scor: 0.65",
     ":14: stages[1].min_scor: unknown parameter; expected one of: mode, languages, min_score"),
    ("unknown_stage", "  - stage: extract", "  - stage: extrct",
     ":11: stages[0].stage: unknown stage 'extrct'; expected one of: "),
    ("wrong_type", "  workers: 2", "  workers: two",
     ":9: executor.workers: input should be a valid integer"),
    ("unknown_format", "  format: warc", "  format: warcz",
     ":3: input.format: unknown format 'warcz'; expected one of: warc, wet, jsonl, parquet"),
    ("missing_output_path", "  path: runs/t", "  format: jsonl",
     ":5: output.path: required key is missing"),
    ("invalid_yaml", "  path: runs/t", "  path: runs/t\n    x: 1",
     ":7: invalid YAML: mapping values are not allowed here"),
    ("glob_no_match", f"{WARC_DIR}/*.warc.gz", "/nonexistent/*.warc.gz",
     ":4: input.paths[0]: glob '/nonexistent/*.warc.gz' matched no files"),
]


@pytest.mark.parametrize("old,new,expected", [c[1:] for c in CLI_CASES],
                         ids=[c[0] for c in CLI_CASES])
def test_validate_reports_one_line(tmp_path: Path, old, new, expected):
    assert GOOD.count(old) == 1
    path = write(tmp_path, GOOD.replace(old, new))
    proc = cli("validate", str(path), cwd=tmp_path)
    assert_user_error(proc, f"thresher: error: {path}{expected}")
    assert proc.stdout == ""


@pytest.mark.parametrize("old,new,expected", [CLI_CASES[0][1:], CLI_CASES[-1][1:]],
                         ids=[CLI_CASES[0][0], CLI_CASES[-1][0]])
def test_run_reports_one_line_and_creates_nothing(tmp_path: Path, old, new, expected):
    path = write(tmp_path, GOOD.replace(old, new))
    out = tmp_path / "run"
    proc = cli("run", str(path), "--output", str(out), "--quiet", cwd=tmp_path)
    assert_user_error(proc, f"thresher: error: {path}{expected}")
    assert not out.exists()


def test_several_errors_one_line_each(tmp_path: Path):
    path = write(tmp_path, GOOD.replace("  workers: 2", "  workers: 0")
                 .replace("  kind: local", "  kind: local\n  wrkers: 2")
                 .replace("    min_score: 0.65", "    min_score: 0.65\n  - stage: extract"))
    assert_user_error(cli("validate", str(path), cwd=tmp_path),
                      f"{path}:10: executor.workers: input should be greater than or equal to 1",
                      f"{path}:9: executor.wrkers: unknown key",
                      f"{path}:16: stages[2].name: duplicate stage name 'extract' "
                      "(also stages[0])")


def test_unreadable_config_files(tmp_path: Path):
    missing = tmp_path / "nope.yaml"
    assert_user_error(cli("validate", str(missing), cwd=tmp_path),
                      f"{missing}: cannot read config: No such file or directory")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"name: \xff\xfe\x00\n")
    assert_user_error(cli("run", str(binary), cwd=tmp_path),
                      f"{binary}: cannot read config: not UTF-8 text")


def test_good_config_validates(tmp_path: Path):
    path = write(tmp_path, GOOD)
    proc = cli("validate", str(path), cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""
    n = len(list(WARC_DIR.glob("*.warc.gz")))
    assert proc.stdout.strip() == (f"{path}: ok: 2 stages, {n} input files, 1 phase(s), "
                                   f"{n} tasks, executor local")


def test_demo_validates_from_the_repo_dir():
    proc = cli("validate", "configs/demo.yaml", cwd=REPO)
    assert proc.returncode == 0 and proc.stdout.startswith("configs/demo.yaml: ok: 3 stages")


def test_overrides_in_printed_resolved_config(tmp_path: Path):
    path = write(tmp_path, GOOD)
    args = ["--output", str(tmp_path / "elsewhere"), "--workers", "5",
            "--set", "stages.langid.min_score=0.5",
            "--set", "stages[0].favor_precision=true",
            "--set", "stages.1.languages=[de, fr]",
            "--set", "input.batch_size=64",
            "--set", "output.drop_columns=[html, url]",
            "--set", "seed=11"]
    proc = cli("validate", str(path), "--print", *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    printed = yaml.safe_load(proc.stdout)
    assert printed["output"]["path"] == str(tmp_path / "elsewhere")
    assert printed["executor"] == {"kind": "local", "workers": 5}
    assert printed["stages"][1]["min_score"] == 0.5
    assert printed["stages"][1]["languages"] == ["de", "fr"]
    assert printed["stages"][0]["favor_precision"] is True
    assert printed["input"]["batch_size"] == 64 and printed["seed"] == 11
    assert printed["output"]["drop_columns"] == ["html", "url"]
    # the printed YAML is the resolved config the Python API gives for the same overrides
    api = load_config(path, overrides={
        "output": str(tmp_path / "elsewhere"), "workers": 5,
        "sets": [a for a in args[4:] if a != "--set"]})
    assert config_from_yaml(proc.stdout) == api
    assert proc.stdout == api.to_yaml(resolved=True)


def test_executor_override(tmp_path: Path):
    path = write(tmp_path, GOOD)
    proc = cli("validate", str(path), "--print", "--executor", "ray", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    ex = yaml.safe_load(proc.stdout)["executor"]
    assert ex["kind"] == "ray" and ex["workers"] == 2  # workers survive a change of kind
    # there is no such executor: the error names executor.kind, not a line of the file
    assert_user_error(cli("validate", str(path), "--executor", "k8s", cwd=tmp_path),
                      f"thresher: error: {path}: executor.kind: unknown kind 'k8s'; expected "
                      "one of: local, ray, slurm (set by an override)")


def test_bad_overrides(tmp_path: Path):
    path = write(tmp_path, GOOD)
    assert_user_error(cli("validate", str(path), "--workers", "0", "--set", "stages.lid.x=1",
                          cwd=tmp_path),
                      f"{path}: --set stages.lid.x: no stage named 'lid' "
                      "(stages: extract, langid)")
    assert_user_error(cli("run", str(path), "--set", "stages[1].min_scor=0.5",
                          "--set", "name=[oops", cwd=tmp_path),
                      f"{path}: --set 'name=[oops': value is not valid YAML")


def test_wrong_flag_type_is_an_argparse_error(tmp_path: Path):
    path = write(tmp_path, GOOD)
    proc = cli("validate", str(path), "--workers", "two", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "argument --workers/-w: invalid int value: 'two'" in proc.stderr


def test_validate_does_not_touch_the_config(tmp_path: Path):
    before = DEMO.read_text()
    proc = cli("validate", str(DEMO), "--print", "--set", "stages.langid.min_score=0.9", cwd=REPO)
    assert proc.returncode == 0 and yaml.safe_load(proc.stdout)["stages"][1]["min_score"] == 0.9
    assert DEMO.read_text() == before
