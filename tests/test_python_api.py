"""Pipelines built and run from Python; task failure and resume; the stage reference."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from conftest import REPO, WARC_DIR, shard_hashes

from pipelines import config_from_yaml, load_config, registry, run_pipeline, stage
from pipelines.config import JsonlInput, OutputConfig, PipelineConfig, WarcInput
from pipelines.errors import TaskError

SMALL = [str(WARC_DIR / "dolma-wget-2024-sample-000*.warc.gz")]


def test_python_pipeline_equals_yaml_and_runs(tmp_path: Path):
    cfg = PipelineConfig(
        name="nb", input=WarcInput(paths=SMALL), output=OutputConfig(path=str(tmp_path / "py")),
        stages=[stage("extract"), stage("langid", languages=["en"]), stage("gopher_quality")])
    again = config_from_yaml(cfg.to_yaml())
    assert again.to_dict() == cfg.to_dict()
    run = run_pipeline(cfg)
    stats = json.loads(run.stats_json.read_text())
    assert stats["stages"]["read"]["docs_out"] == 37  # the two wget WARCs' HTML responses
    rows = pq.read_table(run.data).num_rows
    assert rows == stats["output"]["rows"] == stats["stages"]["gopher_quality"]["docs_out"] > 0
    # the same pipeline from YAML text writes the same bytes
    text = cfg.to_yaml(resolved=False).replace(str(tmp_path / "py"), str(tmp_path / "yaml"))
    run2 = run_pipeline(config_from_yaml(text))
    assert shard_hashes(run2.root) == shard_hashes(run.root)


def test_jsonl_in_jsonl_out(tmp_path: Path):
    src = REPO / "tests" / "data" / "lid" / "lingua-sentences-12lang.jsonl"
    cfg = PipelineConfig(
        input=JsonlInput(paths=[str(src)], fields=["gold"]),
        output=OutputConfig(path=str(tmp_path / "run"), format="jsonl", compression="gzip"),
        stages=[stage("langid", languages=["fr"])])
    run = run_pipeline(cfg)
    files = sorted(run.data.glob("*.jsonl.gz"))
    import gzip

    rows = [json.loads(line) for f in files for line in gzip.open(f, "rt")]
    assert len(rows) >= 28 and {r["language"] for r in rows} == {"fr"}
    assert all(r["gold"] == "fr" for r in rows)


@pytest.fixture
def flaky_stage(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "tests"))
    registry.register("fail_on_source", "plugins.flaky:FailOnSource")
    yield
    registry._table().pop("fail_on_source", None)


def test_failed_task_is_reported_and_resume_finishes(tmp_path: Path, flaky_stage, monkeypatch):
    lines = (REPO / "tests" / "data" / "lid" / "lingua-sentences-12lang.jsonl").read_text()
    lines = lines.splitlines(keepends=True)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "sample-0000.jsonl").write_text("".join(lines[:180]))
    (tmp_path / "in" / "sample-0001.jsonl").write_text("".join(lines[180:]))

    def cfg(out: str) -> PipelineConfig:
        return PipelineConfig(
            input=JsonlInput(paths=[str(tmp_path / "in" / "*.jsonl")]),
            output=OutputConfig(path=out),
            stages=[stage("fail_on_source"), stage("length", min_chars=40)])

    clean = run_pipeline(cfg(str(tmp_path / "clean")))
    monkeypatch.setenv("THRESHER_TEST_FAIL_SOURCE", "sample-0000")
    run_dir = tmp_path / "run"
    with pytest.raises(TaskError) as err:
        run_pipeline(cfg(str(run_dir)))
    msg = str(err.value)
    assert "task 0 failed: RuntimeError: simulated crash" in msg and "task-00000.log" in msg
    assert "simulated crash" in (run_dir / "logs" / "main" / "task-00000.log").read_text()
    assert (run_dir / "stats" / "main" / "task-00001.json").exists()  # the other task finished
    assert not (run_dir / "stats" / "main" / "task-00000.json").exists()
    assert not (run_dir / "stats.json").exists()
    monkeypatch.delenv("THRESHER_TEST_FAIL_SOURCE")
    run_pipeline(cfg(str(run_dir)), resume=True)
    assert shard_hashes(run_dir) == shard_hashes(clean.root)


def test_stage_reference_is_current():
    from pipelines.reference import render_markdown

    assert (REPO / "docs" / "stages.md").read_text() == render_markdown(), \
        "docs/stages.md is stale: run `make docs`"


def test_every_registered_stage_is_documented_and_tested():
    tests = "".join(p.read_text() for p in (REPO / "tests").glob("test_*.py"))
    for name in registry.names():
        cls = registry.get(name)
        assert cls.__doc__, f"stage {name} has no docstring"
        assert f'"{name}"' in tests, f"no test mentions stage {name!r}"


def test_readme_starts_with_the_two_setup_commands():
    readme = (REPO / "README.md").read_text()
    first_block = readme.split("```")[1]
    assert "make demo" in first_block and "make test" in first_block
    demo = load_config(REPO / "configs" / "demo.yaml", check_inputs=False)
    assert demo.input.paths == yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())[
        "input"]["paths"]


def test_task_peak_rss_is_the_task_own_not_the_callers_history(tmp_path: Path):
    """In process (1 worker) the task's max_rss_mb is the peak while it ran: memory the
    caller held and freed before the run does not count."""
    import resource

    big = bytearray(600 << 20)
    big[::4096] = b"x" * len(big[::4096])  # touch every page: 600 MB resident
    del big
    lifetime_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    src = REPO / "tests" / "data" / "lid" / "lingua-sentences-12lang.jsonl"
    cfg = PipelineConfig(
        input=JsonlInput(paths=[str(src)]), output=OutputConfig(path=str(tmp_path / "run")),
        stages=[stage("length", min_chars=1)])
    cfg.executor.workers = 1
    run = run_pipeline(cfg)
    task = json.loads(next((run.root / "stats" / "main").glob("task-*.json")).read_text())
    assert lifetime_mb > 600
    assert 0 < task["max_rss_mb"] < lifetime_mb - 400
    stats = json.loads(run.stats_json.read_text())
    assert stats["phases"]["main"]["max_rss_mb"] == task["max_rss_mb"]
