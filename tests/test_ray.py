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


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_joins_a_cluster_started_with_ray_start(reference_run: Path, tmp_path: Path):
    """`executor: {kind: ray, address: auto}` against a head started by the `ray` CLI."""
    import shutil
    import subprocess
    import sys
    import tempfile
    import time

    from conftest import thresher

    port = _free_port()
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths must fit
    log = tmp_path / "ray-start.log"
    ray_bin = Path(sys.executable).with_name("ray")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    head = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=false", "--object-store-memory=100000000",
         f"--temp-dir={temp}"],
        stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    try:
        address = f"127.0.0.1:{port}"
        for _ in range(120):
            ok = subprocess.run([str(ray_bin), "status", f"--address={address}"], env=env,
                                capture_output=True).returncode == 0
            if ok:
                break
            assert head.poll() is None, f"ray start exited: {log.read_text()[-2000:]}"
            time.sleep(0.5)
        else:
            raise AssertionError("the ray head did not come up")
        os.environ["RAY_ADDRESS"] = address
        try:
            thresher("run", str(demo_config(tmp_path)), "--executor", "ray",
                     "--set", "executor.address=auto", "--output", str(tmp_path / "run"),
                     "--quiet")
        finally:
            del os.environ["RAY_ADDRESS"]
        assert shard_hashes(tmp_path / "run") == shard_hashes(reference_run)
    finally:
        head.terminate()  # `ray start --block` stops what it started on SIGTERM
        head.wait(timeout=60)
        shutil.rmtree(temp, ignore_errors=True)


def test_global_stage_on_ray_is_byte_identical_to_local(ray_cluster, tmp_path: Path):
    from test_exact_dedup import config, make_corpus

    make_corpus(tmp_path / "in")
    local = run_pipeline(config(tmp_path, tmp_path / "in", workers=2, out="local"))
    cfg = config(tmp_path, tmp_path / "in", out="ray")
    on_ray = run_pipeline(cfg.model_copy(update={"executor": RayExecutor()}))
    assert shard_hashes(on_ray.root) == shard_hashes(local.root)
    assert json.loads(on_ray.stats_json.read_text())["stages"]["exact_dedup"]["dropped"]
