"""The same pipeline on a real Ray cluster: identical bytes, retries after a killed worker."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import WARC_DIR, dedup_chain_config, demo_config, shard_hashes

from pipelines import load_config, run_pipeline, stage
from pipelines.config import OutputConfig, PipelineConfig, RayExecutor, WarcInput
from pipelines.errors import TaskError

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
    """`executor: {kind: ray, address: host:port | auto}` against a head started by the
    `ray` CLI."""
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
        thresher("run", str(demo_config(tmp_path)), "--executor", "ray",
                 "--set", f"executor.address={address}", "--output", str(tmp_path / "run"),
                 "--quiet")
        assert shard_hashes(tmp_path / "run") == shard_hashes(reference_run)
        # address: auto finds the cluster through RAY_ADDRESS (as `ray start` prints it)
        small = PipelineConfig(input=WarcInput(paths=SMALL), stages=[stage("extract")],
                               output=OutputConfig(path=str(tmp_path / "small-local")))
        local = run_pipeline(small)
        (tmp_path / "small.yaml").write_text(small.to_yaml())
        os.environ["RAY_ADDRESS"] = address
        try:
            thresher("run", str(tmp_path / "small.yaml"), "--executor", "ray",
                     "--set", "executor.address=auto", "--output", str(tmp_path / "small"),
                     "--quiet")
        finally:
            del os.environ["RAY_ADDRESS"]
        assert shard_hashes(tmp_path / "small") == shard_hashes(local.root)
    finally:
        head.terminate()  # `ray start --block` stops what it started on SIGTERM
        head.wait(timeout=60)
        shutil.rmtree(temp, ignore_errors=True)


def test_global_stages_on_ray_are_byte_identical_to_local(ray_cluster, tmp_path: Path):
    """The pipeline test_slurm runs too (exact then MinHash dedup, 6 phases): each phase
    waits for the one before (a barrier), and the bytes equal a local run's."""
    from test_exact_dedup import make_corpus

    make_corpus(tmp_path / "in")
    local = run_pipeline(dedup_chain_config(tmp_path / "in", tmp_path / "local",
                                            {"kind": "local"}))
    on_ray = run_pipeline(dedup_chain_config(tmp_path / "in", tmp_path / "ray",
                                             {"kind": "ray"}))
    assert shard_hashes(on_ray.root) == shard_hashes(local.root)
    a, b = (json.loads(r.stats_json.read_text()) for r in (local, on_ray))
    assert a["stages"]["exact_dedup"]["dropped"] and a["stages"]["minhash_dedup"]["dropped"]
    assert {k: v["docs_out"] for k, v in a["stages"].items()} == \
        {k: v["docs_out"] for k, v in b["stages"].items()}
    assert len(b["phases"]) == 6


def test_without_retries_a_killed_worker_fails_the_task_and_resume_finishes(
        ray_cluster, tmp_path: Path):
    """max_retries: 0 reaches Ray: the killed task is not retried but reported with its
    log; the resumed run (retries on) has the bytes of a local run."""
    marker = Path(os.environ["THRESHER_TEST_KILL_MARKER"])
    marker.unlink(missing_ok=True)  # armed: the first task to get there kills its worker

    def cfg(out: str, executor) -> PipelineConfig:
        return PipelineConfig(
            input=WarcInput(paths=SMALL), output=OutputConfig(path=str(tmp_path / out)),
            executor=executor,
            stages=[stage("extract"), stage("plugins.flaky:KillOnce"), stage("langid")])

    with pytest.raises(TaskError, match=r"phase main: task (\d) failed: WorkerCrashedError.*"
                                        r"log: .*/logs/main/task-0000\1\.log; .*--resume"):
        run_pipeline(cfg("ray", RayExecutor(max_retries=0)))
    assert marker.exists() and marker.read_text() != "disarmed", "no worker was killed"
    run = run_pipeline(cfg("ray", RayExecutor()), resume=True)  # marker left: no kill now
    local = run_pipeline(cfg("local", {"kind": "local"}))
    assert shard_hashes(run.root) == shard_hashes(local.root)
    ids = pq.read_table(run.data).column("id").to_pylist()
    assert len(ids) == len(set(ids)) == len(pq.read_table(local.data))


def test_cpus_per_task_is_what_each_ray_task_gets(ray_cluster, tmp_path: Path):
    out = tmp_path / "resources"
    out.mkdir()
    cfg = PipelineConfig(
        input=WarcInput(paths=SMALL), output=OutputConfig(path=str(tmp_path / "run")),
        executor=RayExecutor(cpus_per_task=2),
        stages=[stage("plugins.probe:RecordRayResources", out_dir=str(out)), stage("extract")])
    run = run_pipeline(cfg)
    seen = [json.loads(p.read_text()) for p in sorted(out.iterdir())]
    assert len(seen) == len(run.done_tasks("main")) > 1
    assert all(s["resources"] == {"CPU": 2.0} for s in seen), seen
    assert all(s["pid"] != os.getpid() for s in seen)  # ran in Ray workers, not here


def _marked_processes(mark: str) -> list[int]:
    """Live processes whose environment carries THRESHER_TEST_PROC_MARK=mark."""
    pids = []
    for env in Path("/proc").glob("[0-9]*/environ"):
        try:
            if f"THRESHER_TEST_PROC_MARK={mark}".encode() not in env.read_bytes().split(b"\0"):
                continue
            state = (env.parent / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if state != "Z":
            pids.append(int(env.parent.name))
    return pids


def test_cli_on_a_private_cluster_shows_progress_and_leaves_nothing(
        reference_run: Path, tmp_path: Path, monkeypatch):
    """`thresher run --executor ray` (address: local) starts its own cluster, prints
    progress to a non-terminal stderr, writes the local bytes and stops every Ray
    process it started."""
    import time
    import uuid

    from conftest import thresher

    mark = uuid.uuid4().hex
    monkeypatch.setenv("THRESHER_TEST_PROC_MARK", mark)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    proc = thresher("run", str(demo_config(tmp_path)), "--executor", "ray",
                    "--output", str(tmp_path / "run"))
    n_tasks = json.loads((tmp_path / "run" / "plan.json").read_text())["phases"][0]["n_tasks"]
    assert f"thresher: main {n_tasks}/{n_tasks} tasks, " in proc.stderr, proc.stderr
    assert shard_hashes(tmp_path / "run") == shard_hashes(reference_run)
    for _ in range(80):  # Ray's processes get up to 20 s to exit after the driver
        left = _marked_processes(mark)
        if not left:
            break
        time.sleep(0.25)
    assert not left, f"Ray processes left behind: {left}"


def test_cpus_per_task_above_the_private_cluster_is_one_line_error(tmp_path: Path):
    """Ray would keep such a task pending forever; thresher refuses before submitting."""
    from conftest import thresher

    proc = thresher("run", str(demo_config(tmp_path)), "--executor", "ray", "--workers", "1",
                    "--set", "executor.cpus_per_task=2", "--output", str(tmp_path / "run"),
                    check=False, timeout=180)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("thresher: error:")]
    assert errors == ["thresher: error: executor.cpus_per_task: 2 CPUs per task, but no node "
                      "of the Ray cluster has more than 1; lower it, or raise executor.workers "
                      "(the CPUs of the local cluster)"], proc.stderr
    assert not (tmp_path / "run" / "stats").exists()  # no task ran
