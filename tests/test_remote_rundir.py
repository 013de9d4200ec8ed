"""The run directory in object storage: ``output.path: s3://...``.

Everything goes over HTTP to moto's standalone server (tests/s3server.py), through s3fs
and botocore, as to AWS; the CLI runs as a subprocess. The runs here have inputs, config,
run directory and report all on s3:// and must give the local run's bytes; a run killed
part-way resumes on S3 to the same bytes; two attempts of one task at once leave one
whole output; faults on the run directory's requests are retried and counted; no
secret reaches any object; and a run needs nothing of the local filesystem (an empty
working directory and an empty HOME).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import DEMO, REPO, WARC_DIR, shard_hashes
from s3server import FaultProxy, serving
from test_exact_dedup import make_corpus
from test_remote_inputs import run_cli as cli

BUCKET = "thresher-runs"
WARCS = sorted(WARC_DIR.glob("*.warc.gz"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("corpus")
    make_corpus(corpus)
    with serving(tmp_path_factory.mktemp("moto") / "moto.log", BUCKET) as srv:
        client = srv.client()
        for p in WARCS:
            client.upload_file(str(p), BUCKET, f"in/warc/{p.name}")
        for p in sorted(corpus.glob("*.jsonl")):
            client.upload_file(str(p), BUCKET, f"in/jsonl/{p.name}")
        srv.corpus = corpus
        yield srv


def objects(srv, prefix: str) -> dict[str, bytes]:
    """Every object under ``prefix`` of the bucket: key (relative) -> bytes."""
    client = srv.client()
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET,
                                                                   Prefix=prefix + "/"):
        for o in page.get("Contents", []):
            body = client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
            out[o["Key"][len(prefix) + 1:]] = body
    return out


def remote_shards(srv, prefix: str) -> dict[str, str]:
    return {k: hashlib.sha256(v).hexdigest() for k, v in sorted(objects(srv, prefix).items())
            if k.startswith("data/")}


def demo_yaml(inputs: list[str], workers: int = 2, out: str | None = None) -> str:
    cfg = yaml.safe_load(DEMO.read_text())
    cfg["input"] = {"format": "warc", "paths": inputs}
    cfg["executor"] = {"kind": "local", "workers": workers}
    if out is not None:
        cfg["output"]["path"] = out
    return yaml.safe_dump(cfg)


def chain_yaml(inputs: str, out: str, workers: int = 2, executor: dict | None = None) -> str:
    """The exact + MinHash chain (6 phases) that local, Ray and Slurm run to one result."""
    return yaml.safe_dump({
        "name": "chain",
        "input": {"format": "jsonl", "paths": [inputs], "id_key": "id", "fields": ["lang"]},
        "output": {"path": out, "rows_per_file": 40},
        "executor": executor or {"kind": "local", "workers": workers},
        "stages": [{"stage": "exact_dedup", "partitions": 3},
                   {"stage": "minhash_dedup", "partitions": 3, "n": 3},
                   {"stage": "length", "min_chars": 1}]})


@pytest.fixture(scope="module")
def local_demo(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("local-demo")
    (tmp / "demo.yaml").write_text(demo_yaml([str(WARC_DIR / "*.warc.gz")]))
    cli("run", str(tmp / "demo.yaml"), "-o", str(tmp / "run"), "--quiet")
    return tmp / "run"


@pytest.fixture(scope="module")
def local_chain(server, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("local-chain")
    (tmp / "chain.yaml").write_text(chain_yaml(str(server.corpus / "*.jsonl"),
                                               str(tmp / "run")))
    cli("run", str(tmp / "chain.yaml"), "--quiet")
    return tmp / "run"


def put(srv, key: str, text: str) -> str:
    srv.client().put_object(Bucket=BUCKET, Key=key, Body=text.encode())
    return f"s3://{BUCKET}/{key}"


# ------------------------------------------------------------------ whole runs on S3


def test_demo_all_on_s3_gives_the_local_bytes_and_every_command_reads_it(
        server, local_demo, tmp_path):
    config = put(server, "configs/demo.yaml", demo_yaml([f"s3://{BUCKET}/in/warc/*.warc.gz"]))
    run = f"s3://{BUCKET}/runs/demo"
    cli("run", config, "-o", run, "--quiet")
    assert remote_shards(server, "runs/demo") == shard_hashes(local_demo)
    keys = set(objects(server, "runs/demo"))
    for key in ("config.yaml", "plan.json", "stats.json", "manifest.json",
                "stats/main/task-00000.json", "samples/main/task-00000.parquet",
                "logs/main/task-00000.log", "samples/langid.parquet"):
        assert key in keys, sorted(keys)
    assert not any("/." in k or ".tmp-" in k for k in keys)  # no temporaries up there
    log = objects(server, "runs/demo")["logs/main/task-00000.log"].decode()
    assert "task 0 of phase main done" in log
    # every reader of a run takes the URL
    assert "41 documents" in cli("stats", run).stdout
    assert "match" in cli("verify", f"{run}/manifest.json", run).stdout
    cli("status", run)
    diff = cli("diff", str(local_demo), run).stdout  # the configs differ in input paths
    assert "inputs: identical" in diff and "counts: identical" in diff
    assert cli("samples", run, "gopher_quality", "-n", "1").stdout.strip()
    cli("report", run, "-o", f"{run}/report.html")
    page = objects(server, "runs/demo")["report.html"].decode()
    assert "<html" in page and "gopher_quality" in page
    # reproduce a remote snapshot into another remote run directory
    out = cli("reproduce", f"{run}/manifest.json", f"s3://{BUCKET}/runs/demo-again").stdout
    assert "every shard matches" in out
    assert remote_shards(server, "runs/demo-again") == shard_hashes(local_demo)


def test_dedup_chain_on_s3_gives_the_local_bytes(server, local_chain):
    run = f"s3://{BUCKET}/runs/chain"
    config = put(server, "configs/chain.yaml",
                 chain_yaml(f"s3://{BUCKET}/in/jsonl/*.jsonl", run))
    cli("run", config, "--quiet")
    assert len(shard_hashes(local_chain)) >= 2
    assert remote_shards(server, "runs/chain") == shard_hashes(local_chain)
    stats = json.loads(objects(server, "runs/chain")["stats.json"])
    local = json.loads((local_chain / "stats.json").read_text())
    assert stats["stages"]["exact_dedup"]["dropped"] == local["stages"]["exact_dedup"]["dropped"]
    assert stats["stages"]["minhash_dedup"]["dropped"]
    assert len(stats["phases"]) == 6
    keys = set(objects(server, "runs/chain"))
    assert any(k.startswith("work/exact_dedup/") for k in keys)  # side files up there
    assert not any(k.startswith("phases/") for k in keys)  # intermediates removed
    assert server.client().list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert "cluster" in cli("dups", run).stdout  # read from the remote clusters table


def _stats_objects(srv, prefix: str) -> int:
    page = srv.client().list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/stats/")
    return page.get("KeyCount", 0)


@pytest.mark.parametrize("trial", range(2))
def test_sigkill_part_way_then_resume_on_s3_gives_the_same_bytes(
        server, local_chain, trial):
    prefix = f"runs/killed-{trial}"
    run = f"s3://{BUCKET}/{prefix}"
    config = put(server, f"configs/killed-{trial}.yaml",
                 chain_yaml(f"s3://{BUCKET}/in/jsonl/*.jsonl", run, workers=2))
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", config, "--quiet"],
                            cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    want = 3 + 5 * trial  # tasks done before the kill: in the first or a later phase
    deadline = time.monotonic() + 120
    while _stats_objects(server, prefix) < want and proc.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = _stats_objects(server, prefix)
    assert "manifest.json" not in objects(server, prefix)
    # what a writer killed mid-upload leaves: an unfinished multipart upload of a shard
    server.client().create_multipart_upload(Bucket=BUCKET,
                                            Key=f"{prefix}/data/part-00000-0000.parquet")
    cli("run", config, "--resume", "--quiet")
    assert remote_shards(server, prefix) == shard_hashes(local_chain)
    records = [json.loads(v) for k, v in objects(server, prefix).items()
               if k.startswith("stats/")]
    assert len(records) > done_before  # the resume ran the rest, not everything again
    assert server.client().list_multipart_uploads(Bucket=BUCKET,
                                                  Prefix=prefix).get("Uploads", []) == []


def test_two_attempts_of_one_task_at_once_leave_one_whole_output(server, local_demo):
    """A Ray retry, a Slurm requeue or a straggler: both attempts of a task write the same
    names; each object is committed whole, so whichever lands last, the task's outputs are
    the bytes one attempt alone gives."""
    from pipelines.config import config_from_yaml
    from pipelines.run import finalize_run, prepare_run
    from pipelines.task import run_task

    run = f"s3://{BUCKET}/runs/twice"
    r = prepare_run(config_from_yaml(demo_yaml([f"s3://{BUCKET}/in/warc/*.warc.gz"], out=run)))
    n_tasks = r.load_plan().phase("main").n_tasks
    assert n_tasks > 2
    for task in (0, n_tasks - 1):  # twice at once: the first and the last task
        procs = [subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run-task", run,
                                   "main", str(task)], cwd=REPO, stderr=subprocess.PIPE)
                 for _ in range(2)]
        for p in procs:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err.decode()
    for task in range(1, n_tasks - 1):  # the others once, here
        run_task(run, "main", task)
    finalize_run(run)
    assert remote_shards(server, "runs/twice") == shard_hashes(local_demo)
    assert "match" in cli("verify", f"{run}/manifest.json", run).stdout


def test_faults_on_the_run_directory_are_retried_and_counted(server, local_demo, tmp_path):
    # only the run directory's requests fail: the inputs are local here
    prefix = "runs/faulty"
    (tmp_path / "demo.yaml").write_text(demo_yaml([str(WARC_DIR / "*.warc.gz")], workers=1))
    with FaultProxy(server.port, fraction=0.2, seed=5, kinds=("503", "500"),
                    only=lambda line: f"/{BUCKET}/{prefix}" in line) as proxy:
        cli("run", str(tmp_path / "demo.yaml"), "-o", f"s3://{BUCKET}/{prefix}", "--quiet",
            env={"AWS_ENDPOINT_URL": proxy.endpoint})
        injected = sum(proxy.injected.values())
    assert injected > 0
    assert remote_shards(server, prefix) == shard_hashes(local_demo)
    records = [json.loads(v) for k, v in objects(server, prefix).items()
               if k.startswith("stats/")]
    counted = sum(sum(r.get("run_dir_retries", {}).values()) for r in records)
    assert counted > 0  # the tasks' own requests were retried and counted


def test_no_secret_reaches_the_remote_run_directory(server, local_demo):
    """The credentials are a ${VAR} reference in the config and a value in the
    environment; no object of the run (config, plan, stats, logs, manifest, report,
    samples, shards) holds the value."""
    secret = "s3cr3t-VALUE-6f1d2c"  # moto takes any key pair; this one is ours alone
    cfg = yaml.safe_load(demo_yaml([f"s3://{BUCKET}/in/warc/*.warc.gz"]))
    cfg["input"]["storage_options"] = {"s3": {"secret": "${THRESHER_TEST_SECRET}",
                                              "key": "${AWS_ACCESS_KEY_ID}"}}
    config = put(server, "configs/secret.yaml", yaml.safe_dump(cfg))
    env = {"THRESHER_TEST_SECRET": secret, "AWS_SECRET_ACCESS_KEY": secret}
    run = f"s3://{BUCKET}/runs/secret"
    cli("-v", "run", config, "-o", run, "--quiet", env=env)
    cli("report", run, "-o", f"{run}/report.html", env=env)
    everything = objects(server, "runs/secret")
    assert remote_shards(server, "runs/secret") == shard_hashes(local_demo)
    assert {"config.yaml", "manifest.json", "report.html"} <= set(everything)
    assert b"${THRESHER_TEST_SECRET}" in everything["config.yaml"]
    for key, body in everything.items():
        assert secret.encode() not in body, key


def test_a_remote_run_needs_nothing_of_the_local_filesystem(server, local_demo, tmp_path):
    """From an empty working directory, with HOME an empty directory: config, inputs and
    run directory are on s3://; afterwards both directories are still empty."""
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    config = put(server, "configs/empty.yaml",
                 demo_yaml([f"s3://{BUCKET}/in/warc/*.warc.gz"]))
    run = f"s3://{BUCKET}/runs/empty"
    cli("run", config, "-o", run, "--quiet", cwd=cwd,
        env={"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")})
    cli("verify", f"{run}/manifest.json", run, cwd=cwd, env={"HOME": str(home)})
    assert remote_shards(server, "runs/empty") == shard_hashes(local_demo)
    assert list(cwd.iterdir()) == [] and list(home.iterdir()) == []


# ------------------------------------------------------------------ Ray without a shared disk


def _ray(*args: str, env: dict, cwd: Path, log: Path) -> subprocess.Popen:
    ray_bin = Path(sys.executable).with_name("ray")
    return subprocess.Popen([str(ray_bin), "start", "--block", *args], cwd=cwd, env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def test_ray_with_two_raylets_and_the_run_directory_on_s3(server, local_chain, tmp_path):
    """A head node with no CPUs (it schedules nothing) and a second raylet whose
    processes run in another working directory with another, empty HOME: every task runs
    there, and config, inputs and run directory are only on s3://."""
    import tempfile

    from s3server import free_port

    port = free_port()
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths must fit
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    node_cwd, node_home = tmp_path / "node-cwd", tmp_path / "node-home"
    node_cwd.mkdir()
    node_home.mkdir()
    node_env = {**env, "HOME": str(node_home), "XDG_CACHE_HOME": str(node_home / ".cache")}
    address = f"127.0.0.1:{port}"
    head = _ray("--head", f"--port={port}", "--num-cpus=0", "--include-dashboard=false",
                "--object-store-memory=100000000", f"--temp-dir={temp}",
                env=env, cwd=tmp_path, log=tmp_path / "head.log")
    node = None
    try:
        ray_bin = Path(sys.executable).with_name("ray")
        for _ in range(120):
            if subprocess.run([str(ray_bin), "status", f"--address={address}"], env=env,
                              capture_output=True).returncode == 0:
                break
            assert head.poll() is None, (tmp_path / "head.log").read_text()[-2000:]
            time.sleep(0.5)
        else:
            raise AssertionError("the ray head did not come up")
        node = _ray(f"--address={address}", "--num-cpus=2",
                    "--object-store-memory=100000000", env=node_env, cwd=node_cwd,
                    log=tmp_path / "node.log")
        for _ in range(120):
            st = subprocess.run([str(ray_bin), "status", f"--address={address}"], env=env,
                                capture_output=True, text=True).stdout
            if "2.0 CPU" in st or "0.0/2.0 CPU" in st:
                break
            assert node.poll() is None, (tmp_path / "node.log").read_text()[-2000:]
            time.sleep(0.5)
        else:
            raise AssertionError("the second raylet did not join")
        run = f"s3://{BUCKET}/runs/ray"
        config = put(server, "configs/ray.yaml", chain_yaml(
            f"s3://{BUCKET}/in/jsonl/*.jsonl", run,
            executor={"kind": "ray", "address": address, "max_retries": 0}))
        cli("run", config, "--quiet", env=env)
        assert remote_shards(server, "runs/ray") == shard_hashes(local_chain)
        records = [json.loads(v) for k, v in objects(server, "runs/ray").items()
                   if k.startswith("stats/")]
        assert len(records) == sum(p["tasks"] for p in json.loads(
            objects(server, "runs/ray")["stats.json"])["phases"].values())
    finally:
        for proc in (node, head):
            if proc is not None:
                proc.terminate()  # `ray start --block` stops what it started on SIGTERM
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
        import shutil

        shutil.rmtree(temp, ignore_errors=True)


# ------------------------------------------------------------------ the other commands


def test_train_classifier_from_and_to_s3_gives_the_local_model(server, tmp_path):
    from qc_helpers import MAX_CHARS, class_files

    hq, lq = class_files(tmp_path / "classes")
    client = server.client()
    for p in (hq, lq):
        client.upload_file(str(p), BUCKET, f"classes/{p.name}")
    args = ["--max-chars", str(MAX_CHARS), "--dim", "16"]
    cli("train-classifier", "--positive", str(hq), "--negative", str(lq),
        "--out", str(tmp_path / "m.bin"), *args)
    out = cli("train-classifier", "--positive", f"s3://{BUCKET}/classes/{hq.name}",
              "--negative", f"s3://{BUCKET}/classes/{lq.name}",
              "--out", f"s3://{BUCKET}/models/m.bin", *args).stdout
    model = objects(server, "models")
    local = (tmp_path / "m.bin").read_bytes()
    assert model["m.bin"] == local
    meta = json.loads(model["m.bin.json"])
    assert meta["sha256"] == hashlib.sha256(local).hexdigest()
    assert f"s3://{BUCKET}/models/m.bin" in out  # the stage line names the URL


def test_materialize_a_remote_annotated_run_into_another(server, tmp_path):
    """Annotate once on S3, then filter at other thresholds into a second remote run:
    the same bytes as doing both locally."""
    def annotated_yaml(out: str) -> str:
        cfg = yaml.safe_load(demo_yaml([str(WARC_DIR / "*.warc.gz")], out=out))
        for st in cfg["stages"]:
            if st["stage"] in ("langid", "gopher_quality"):
                st["mode"] = "annotate"
        return yaml.safe_dump(cfg)

    sets = ["--set", "langid.min_score=0.8", "--executor", "local", "--workers", "2"]
    (tmp_path / "a.yaml").write_text(annotated_yaml(str(tmp_path / "annotated")))
    cli("run", str(tmp_path / "a.yaml"), "--quiet")
    cli("materialize", str(tmp_path / "annotated"), str(tmp_path / "mat"), *sets)
    run = f"s3://{BUCKET}/runs/annotated"
    cli("run", put(server, "configs/a.yaml", annotated_yaml(run)), "--quiet")
    cli("materialize", run, f"s3://{BUCKET}/runs/mat", *sets)
    assert remote_shards(server, "runs/mat") == shard_hashes(tmp_path / "mat")
    assert len(shard_hashes(tmp_path / "mat")) >= 2
    m = json.loads(objects(server, "runs/mat")["manifest.json"])
    assert m["materialized_from"]["run"] == run


def test_local_temporaries_of_dead_processes_are_swept(tmp_path, monkeypatch):
    """A task killed mid-upload leaves its local temporaries in <tmp>/thresher-<pid>;
    the next process that writes to object storage removes those of dead processes, and
    a model cache loses temporaries nobody touched for an hour."""
    import tempfile

    from pipelines.io import remote_path
    from pipelines.io.files import sweep_stale_temps

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f"thresher-{dead.pid}").mkdir()
    (tmp_path / f"thresher-{dead.pid}" / "x-part.parquet").write_bytes(b"half")
    (tmp_path / f"thresher-{os.getppid()}").mkdir()  # a live process's: kept
    monkeypatch.setattr(remote_path, "_SPOOL", None)
    spool = remote_path.RemotePath(f"s3://{BUCKET}/x/y.json").local_temp().parent
    assert spool == tmp_path / f"thresher-{os.getpid()}"
    assert not (tmp_path / f"thresher-{dead.pid}").exists()
    assert (tmp_path / f"thresher-{os.getppid()}").exists()
    cache = tmp_path / "cache"
    cache.mkdir()
    old, new = cache / ".lid.bin.tmp-1", cache / ".lid.bin.tmp-2"
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert sweep_stale_temps(cache) == 1
    assert not old.exists() and new.exists()
