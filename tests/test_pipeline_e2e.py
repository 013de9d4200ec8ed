"""The whole pipeline on the real WARCs: accounting, determinism, resume after SIGKILL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import REPO, WARC_DIR, demo_config, kill_inside_a_task, shard_hashes, thresher


def test_every_record_is_accounted_for(reference_run: Path):
    stats = json.loads((reference_run / "stats.json").read_text())
    stages = stats["stages"]
    assert list(stages) == ["read", "extract", "langid", "gopher_quality", "write"]
    read = stages["read"]
    # records read == kept + every drop and error of every stage
    lost = sum(sum(s["dropped"].values()) + sum(s["errors"].values()) for s in stages.values())
    assert read["docs_in"] == stages["write"]["docs_out"] + lost
    for name, s in stages.items():
        assert s["docs_in"] == s["docs_out"] + sum(s["dropped"].values()) + \
            sum(s["errors"].values()), name
    # each stage's input is the previous stage's output
    names = list(stages)
    for a, b in zip(names, names[1:]):
        assert stages[a]["docs_out"] == stages[b]["docs_in"]
    # the reader saw every WARC record that warcio sees
    from warcio.archiveiterator import ArchiveIterator

    n_records = 0
    for f in WARC_DIR.glob("*.warc.gz"):
        with open(f, "rb") as fh:
            n_records += sum(1 for _ in ArchiveIterator(fh, arc2warc=True))
    assert read["docs_in"] == n_records
    # Parquet rows == final docs_out
    files = sorted((reference_run / "data").glob("*.parquet"))
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    assert rows == stages["write"]["docs_out"] == stats["output"]["rows"] > 0
    # every kept document is English, has text and a unique id
    table = pq.read_table(reference_run / "data")
    assert set(table.column("language").to_pylist()) == {"en"}
    assert all(t.strip() for t in table.column("text").to_pylist())
    ids = table.column("id").to_pylist()
    assert len(ids) == len(set(ids))
    assert "html" not in table.schema.names


def test_stats_files_and_resolved_config(reference_run: Path):
    from pipelines.config import load_config

    cfg = load_config(reference_run / "config.yaml", check_inputs=False)
    assert cfg.stages[1].params.min_score == 0.65
    n_inputs = len(list(WARC_DIR.glob("*.warc.gz")))
    assert len(list((reference_run / "stats" / "main").glob("task-*.json"))) == n_inputs
    assert not list(reference_run.rglob(".*.tmp-*"))


def test_one_and_two_workers_identical(reference_run: Path, tmp_path: Path):
    cfg = demo_config(tmp_path, workers=1)
    thresher("run", str(cfg), "--output", str(tmp_path / "run"), "--quiet")
    assert shard_hashes(tmp_path / "run") == shard_hashes(reference_run)


def test_rerun_without_resume_refuses(reference_run: Path, tmp_path: Path):
    cfg = demo_config(tmp_path, workers=1)
    proc = thresher("run", str(cfg), "--output", str(reference_run), check=False)
    assert proc.returncode == 2
    assert "already holds a run" in proc.stderr and "Traceback" not in proc.stderr


def test_resume_refuses_changed_config(reference_run: Path, tmp_path: Path):
    cfg = demo_config(tmp_path, workers=1)
    proc = thresher("run", str(cfg), "--output", str(reference_run), "--resume",
                    "--set", "stages.langid.min_score=0.5", check=False)
    assert proc.returncode == 2
    assert "different config" in proc.stderr and "stages[1].min_score" in proc.stderr


def test_resume_of_finished_run_is_noop(reference_run: Path, tmp_path: Path):
    before = shard_hashes(reference_run)
    records = {p: p.read_bytes() for p in (reference_run / "stats").rglob("task-*.json")}
    cfg = demo_config(tmp_path, workers=1)
    thresher("run", str(cfg), "--output", str(reference_run), "--resume", "--quiet")
    assert shard_hashes(reference_run) == before
    # no task ran again: every task record (with its start time and pid) is untouched
    assert {p: p.read_bytes() for p in (reference_run / "stats").rglob("task-*.json")} == records


@pytest.mark.parametrize("done_before_kill", [1, 3])
def test_sigkill_then_resume_is_byte_identical(reference_run: Path, tmp_path: Path,
                                               done_before_kill: int):
    cfg = demo_config(tmp_path, workers=1)
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "run", str(cfg), "--output", str(run), "--quiet"],
        cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_inside_a_task(proc, run, done_before_kill)
    stats_dir = run / "stats" / "main"
    n_done = len(list(stats_dir.glob("task-*.json")))
    n_tasks = len(list(WARC_DIR.glob("*.warc.gz")))
    assert done_before_kill <= n_done < n_tasks
    assert not (run / "stats.json").exists()

    thresher("run", str(cfg), "--output", str(run), "--resume", "--quiet")
    assert shard_hashes(run) == shard_hashes(reference_run)
    assert not list(run.rglob(".*.tmp-*"))
    ref = json.loads((reference_run / "stats.json").read_text())
    got = json.loads((run / "stats.json").read_text())
    for name, st in ref["stages"].items():
        for key in ("docs_in", "docs_out", "dropped", "errors", "chars_out"):
            assert got["stages"][name][key] == st[key], (name, key)
