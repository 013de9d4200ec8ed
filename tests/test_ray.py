"""The same pipeline on a real Ray cluster: identical bytes, retries after a killed worker."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
from conftest import WARC_DIR, demo_config, shard_hashes

from pipelines import load_config, run_pipeline, stage
from pipelines.config import OutputConfig, PipelineConfig, RayExecutor, WarcInput

SMALL = [str(WARC_DIR / "dolma-wget-2024-sample-000*.warc.gz"),
         str(WARC_DIR / "resiliparse-*.warc.gz")]


def test_demo_on_ray_is_byte_identical_to_local(ray_cluster, reference_run: Path,
                                                tmp_path: Path):
    cfg = load_config(demo_config(tmp_path), overrides={
        "executor": "ray", "output": str(tmp_path / "ray")})
    assert cfg.executor.kind == "ray"
    run = run_pipeline(cfg)
    assert shard_hashes(run.root) == shard_hashes(reference_run)
    assert ray_cluster.is_initialized()  # the session's cluster was used, not stopped


def test_killed_worker_is_retried_without_loss_or_duplicates(ray_cluster, tmp_path: Path):
    marker = Path(os.environ["THRESHER_TEST_KILL_MARKER"])
    marker.write_text("disarmed")  # KillOnce is a no-op while the marker exists

    def cfg(out: str, executor) -> PipelineConfig:
        return PipelineConfig(
            input=WarcInput(paths=SMALL), output=OutputConfig(path=out), executor=executor,
            stages=[stage("extract"), stage("plugins.flaky:KillOnce"), stage("langid")])

    local = run_pipeline(cfg(str(tmp_path / "local"), {"kind": "local"}))  # in this process
    marker.unlink()  # arm it: the first Ray task to get there kills its worker
    run = run_pipeline(cfg(str(tmp_path / "ray"), RayExecutor(max_retries=2)))
    assert marker.exists() and marker.read_text() != "disarmed", "no worker was killed"
    assert shard_hashes(run.root) == shard_hashes(local.root)
    ids = pq.read_table(run.data).column("id").to_pylist()
    assert len(ids) == len(set(ids))
    stats = json.loads(run.stats_json.read_text())
    assert stats["stages"]["langid"]["docs_out"] == len(ids)
