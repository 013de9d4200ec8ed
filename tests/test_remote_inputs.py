"""Inputs on object storage: the demo read from s3:// gives the local run's bytes.

Every s3:// call goes over HTTP to moto's standalone server (``tests/s3server.py``: a
subprocess on 127.0.0.1), through s3fs and botocore, as it would to AWS; faults come from
the fault proxy between them. The CLI runs as a subprocess, with the AWS variables of
the server in its environment. Nothing is mocked in-process.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import DEMO, REPO, WARC_DIR, shard_hashes
from s3server import FaultProxy, free_port, serving

from pipelines.config import config_from_dict
from pipelines.errors import ConfigError
from pipelines.io import storage as st
from pipelines.io.discovery import discover
from pipelines.io.hashing import HashingFile
from pipelines.plan import make_plan

BUCKET = "thresher-inputs"
WARCS = sorted(WARC_DIR.glob("*.warc.gz"))
S3_WARC = f"s3://{BUCKET}/warc"
ONE = WARCS[0]  # aut-ia-2008-example.warc.gz: the largest, 2.5 MB


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serving(tmp_path_factory.mktemp("moto") / "moto.log", BUCKET) as srv:
        client = srv.client()
        for p in WARCS:
            client.upload_file(str(p), BUCKET, f"warc/{p.name}")
        yield srv


def run_cli(*args: str, env: dict | None = None, check: bool = True,
            cwd: Path = REPO) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"thresher {' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def write_config(tmp: Path, name: str, workers: int = 2, **inp) -> Path:
    cfg = yaml.safe_load(DEMO.read_text())
    cfg["input"] = {"format": "warc", **inp}
    cfg["executor"] = {"kind": "local", "workers": workers}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run(tmp: Path, name: str, *args: str, env: dict | None = None, workers: int = 2,
        **inp) -> Path:
    out = tmp / name
    run_cli("run", str(write_config(tmp, name, workers, **inp)), "-o", str(out), "--quiet",
            *args, env=env)
    return out


def manifest_inputs(run_dir: Path) -> dict[str, tuple[int, str]]:
    m = json.loads((run_dir / "manifest.json").read_text())
    return {f["source"]: (f["size"], f["sha256"]) for f in m["inputs"]}


def task_records(run_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(run_dir.rglob("task-*.json"))
            if "shards" in p.read_text()]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def local_demo(tmp_path_factory) -> Path:
    """The demo on the bundled WARCs from local disk: the bytes the s3 runs must give."""
    return run(tmp_path_factory.mktemp("local"), "local", paths=[str(WARC_DIR / "*.warc.gz")])


@pytest.fixture(scope="module")
def s3_demo(server, tmp_path_factory) -> Path:
    return run(tmp_path_factory.mktemp("s3"), "s3", paths=[f"{S3_WARC}/*.warc.gz"])


# ------------------------------------------------------------------- globs and reading


def test_demo_from_s3_gives_the_local_bytes_and_hashes(local_demo, s3_demo):
    assert len(shard_hashes(local_demo)) >= 4
    assert shard_hashes(s3_demo) == shard_hashes(local_demo)
    local_inputs = manifest_inputs(local_demo)
    assert manifest_inputs(s3_demo) == local_inputs  # same sources, sizes and sha256s
    assert {src: sha for src, (_, sha) in local_inputs.items()} == {
        p.name: sha256(p) for p in WARCS}
    plan = json.loads((s3_demo / "plan.json").read_text())
    assert [(i["path"], i["source"], i["size"]) for i in plan["inputs"]] == [
        (f"{S3_WARC}/{p.name}", p.name, p.stat().st_size) for p in WARCS]
    m = json.loads((s3_demo / "manifest.json").read_text())
    assert {f["path"] for f in m["inputs"]} == {f"{S3_WARC}/{p.name}" for p in WARCS}
    records = task_records(s3_demo)
    assert len(records) == len(WARCS)
    assert all(r["storage_retries"] == {} for r in records)  # counted, and none needed
    assert all("storage_retries" not in r for r in task_records(local_demo))


def test_hashing_a_remote_stream_equals_hashlib(server):
    url = f"{S3_WARC}/{ONE.name}"
    data = ONE.read_bytes()
    storage = st.Storage(block_size=1 << 18)  # several range requests
    with HashingFile(storage.open_read(url)) as raw:
        assert raw.read(1000) == data[:1000]
        raw.seek(700_000)  # skip ahead: the gap is read through the stream, then put back
        assert raw.read(5000) == data[700_000:705_000]
        raw.seek(10)  # and back: nothing is fed twice
        assert raw.read(100) == data[10:110]
        raw.seek(2_000_000)
        assert raw.read(10) == data[2_000_000:2_000_010]
        digest = raw.hexdigest()  # the unread tail is read here
        assert raw.size == len(data)
    assert digest == hashlib.sha256(data).hexdigest()


# -------------------------------------------------------------------------- listings


@pytest.fixture(scope="module")
def listing(server, tmp_path_factory) -> list[str]:
    """A Common Crawl-style listing: paths relative to the bucket root, newest first;
    gzip on s3, and plain beside the local copy."""
    lines = [f"warc/{p.name}" for p in reversed(WARCS)]
    text = "\n".join(lines) + "\n"
    server.client().put_object(Bucket=BUCKET, Key="listings/warc.paths.gz",
                               Body=gzip.compress(text.encode()))
    local = tmp_path_factory.mktemp("listing") / "warc.paths"
    local.write_text(text)
    return lines


def test_paths_file_on_s3_with_prefix_and_limit_gives_the_local_bytes(listing, tmp_path):
    remote = run(tmp_path, "remote", paths_file=f"s3://{BUCKET}/listings/warc.paths.gz",
                 prefix=f"s3://{BUCKET}/", limit=3)
    local_listing = tmp_path / "warc.paths"
    local_listing.write_text("\n".join(listing) + "\n")
    local = run(tmp_path, "local", paths_file=str(local_listing),
                prefix=str(WARC_DIR.parent) + "/", limit=3)
    plan = json.loads((remote / "plan.json").read_text())
    # the first three of the listing, sources relative to the prefix, sorted by source
    assert [i["source"] for i in plan["inputs"]] == sorted(listing[:3])
    assert [i["path"] for i in plan["inputs"]] == [f"s3://{BUCKET}/{s}"
                                                   for s in sorted(listing[:3])]
    assert len(shard_hashes(remote)) >= 2
    assert shard_hashes(remote) == shard_hashes(local)
    assert manifest_inputs(remote) == manifest_inputs(local)
    assert {s: sha for s, (_, sha) in manifest_inputs(remote).items()} == {
        s: sha256(WARC_DIR.parent / s) for s in listing[:3]}


def test_sample_is_deterministic_and_listing_errors_are_one_line(listing, server):
    def cfg(**inp):
        return config_from_dict({"input": {"format": "warc", **inp},
                                 "output": {"path": "unused"}})

    base = {"paths_file": f"s3://{BUCKET}/listings/warc.paths.gz", "prefix": f"s3://{BUCKET}/"}
    picks = [[f.source for f in discover(cfg(**base, sample={"n": 3, "seed": seed}).input)]
             for seed in (0, 0, 1, 2, 3)]
    assert picks[0] == picks[1] and len(picks[0]) == 3 and set(picks[0]) <= set(listing)
    assert len({tuple(p) for p in picks}) > 1  # the seed decides
    # a listed path that is not there: one line naming it and the listing
    client = server.client()
    client.put_object(Bucket=BUCKET, Key="listings/gone.paths",
                      Body=b"warc/" + WARCS[0].name.encode() + b"\nwarc/nope.warc.gz\n")
    with pytest.raises(ConfigError) as e:
        make_plan(cfg(paths_file=f"s3://{BUCKET}/listings/gone.paths",
                      prefix=f"s3://{BUCKET}/"))
    msg = str(e.value)
    assert f"s3://{BUCKET}/warc/nope.warc.gz: not found" in msg and "\n" not in msg
    assert "listings/gone.paths" in msg
    with pytest.raises(ConfigError) as e:
        make_plan(cfg(paths_file=f"s3://{BUCKET}/listings/missing.paths.gz"))
    assert f"s3://{BUCKET}/listings/missing.paths.gz: not found" in str(e.value)
    with pytest.raises(ConfigError) as e:
        cfg(paths=[f"{S3_WARC}/*.warc.gz"], **base)
    assert "`paths` and `paths_file` exclude each other" in str(e.value)
    with pytest.raises(ConfigError) as e:
        cfg(paths=[f"{S3_WARC}/*.warc.gz"], limit=3)
    assert "input.limit" in str(e.value) and "paths_file" in str(e.value)
    with pytest.raises(ConfigError) as e:
        make_plan(cfg(paths=[f"{S3_WARC}/*.nothing"]))
    assert f"glob '{S3_WARC}/*.nothing' matched no files" in str(e.value)


# ---------------------------------------------------------------------------- faults

# the default 10 attempts with shorter sleeps: the same retries, counted, in a second
FAST_RETRIES = {"THRESHER_STORAGE_RETRY": "base=0.01,cap=0.05"}


def test_thirty_percent_faults_give_identical_bytes_and_counted_retries(
        server, local_demo, tmp_path):
    # one worker: the requests come in one order, so the seed picks the same faults
    with FaultProxy(server.port, fraction=0.3, seed=3) as proxy:
        out = run(tmp_path, "faulty", paths=[f"{S3_WARC}/*.warc.gz"], workers=1,
                  env={"AWS_ENDPOINT_URL": proxy.endpoint, **FAST_RETRIES})
        injected = dict(proxy.injected)
        reads = [ln for ln, _, fault in proxy.log
                 if fault and ln.startswith(("GET /thresher-inputs/warc/",
                                             "HEAD /thresher-inputs/warc/"))]
    assert shard_hashes(out) == shard_hashes(local_demo)
    assert manifest_inputs(out) == manifest_inputs(local_demo)
    counted = sum(sum(r["storage_retries"].values()) for r in task_records(out))
    assert reads, proxy.log  # faults hit the reads of the inputs themselves
    # each retry of a read was counted (a fault on the listing is the planner's, and a
    # cut before any answer may be resent by aiohttp on its own, unseen)
    assert 0 < counted <= sum(injected.values())
    assert counted >= len(reads) - proxy.cut_heads


def test_every_read_failing_fails_the_task_in_one_line_and_resume_completes(
        server, tmp_path):
    glob_one = [f"{S3_WARC}/{ONE.name}"]
    local = run(tmp_path, "local-one", paths=[str(ONE)], workers=1)
    url = f"{S3_WARC}/{ONE.name}"
    cfg = write_config(tmp_path, "one", workers=1, paths=glob_one)
    out = tmp_path / "one"
    # the listing passes, every request about the object itself fails
    with FaultProxy(server.port, fraction=1.0, seed=0, kinds=("503", "500"),
                    only=lambda line: line.startswith((f"GET /{BUCKET}/warc/",
                                                       f"HEAD /{BUCKET}/warc/"))) as proxy:
        proc = run_cli("run", str(cfg), "-o", str(out), "--quiet", check=False,
                       env={"AWS_ENDPOINT_URL": proxy.endpoint, **FAST_RETRIES})
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("thresher: error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert url + ": gave up after 10 attempts" in errors[0], errors
    assert sum(proxy.injected.values()) >= 10
    assert not (out / "manifest.json").exists() and not list((out / "data").glob("*"))
    # the proxy is gone; the server itself answers
    run_cli("run", str(cfg), "-o", str(out), "--quiet", "--resume")
    assert shard_hashes(out) == shard_hashes(local) and shard_hashes(local)
    assert manifest_inputs(out) == manifest_inputs(local)


# ------------------------------------------------------------------------- reproduce


def test_reproduce_remaps_across_schemes(server, s3_demo, local_demo, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for p in WARCS:
        (mirror / p.name).write_bytes(p.read_bytes())
    # s3 -> local mirror
    out = tmp_path / "from-mirror"
    proc = run_cli("reproduce", str(s3_demo / "manifest.json"), str(out),
                   "--remap", f"{S3_WARC}={mirror}")
    assert shard_hashes(out) == shard_hashes(s3_demo), proc.stderr
    assert json.loads((out / "plan.json").read_text())["inputs"][0]["path"].startswith(
        str(mirror))
    # local -> s3 (the reverse)
    out = tmp_path / "from-s3"
    run_cli("reproduce", str(local_demo / "manifest.json"), str(out),
            "--remap", f"{WARC_DIR}={S3_WARC}")
    assert shard_hashes(out) == shard_hashes(local_demo)
    assert json.loads((out / "plan.json").read_text())["inputs"][0]["path"].startswith(
        S3_WARC + "/")
    # an s3 copy with one object changed: named, checked by its sha256 before running
    client = server.client()
    changed = WARCS[1]
    for p in WARCS:
        body = p.read_bytes()
        if p == changed:
            body = body[:-1] + bytes([body[-1] ^ 1])  # same size, other bytes
        client.put_object(Bucket=BUCKET, Key=f"warc-changed/{p.name}", Body=body)
    out = tmp_path / "changed"
    proc = run_cli("reproduce", str(s3_demo / "manifest.json"), str(out),
                   "--remap", f"{S3_WARC}=s3://{BUCKET}/warc-changed", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f"thresher: error: input s3://{BUCKET}/warc-changed/{changed.name} changed since "
        "the snapshot (sha256 differs)")
    assert not out.exists()


# ---------------------------------------------------------------------------- secrets


def test_a_secret_in_storage_options_appears_nowhere_in_the_run_dir(server, tmp_path):
    secret = "planted-" + hashlib.sha256(os.urandom(16)).hexdigest()[:24]
    env = {"THRESHER_TEST_SECRET": secret, "THRESHER_TEST_ENDPOINT": server.endpoint,
           # the standard variable points nowhere: only storage_options can reach the server
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    options = {"s3": {"endpoint_url": "${THRESHER_TEST_ENDPOINT}", "key": "${AWS_ACCESS_KEY_ID}",
                      "secret": "${THRESHER_TEST_SECRET}"}}
    out = run(tmp_path, "secret", paths=[f"{S3_WARC}/*.warc.gz"], env=env,
              storage_options=options)
    assert (out / "manifest.json").exists() and shard_hashes(out)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) > 10
    assert not [p for p in files if secret.encode() in p.read_bytes()]
    config = (out / "config.yaml").read_text()
    assert "${THRESHER_TEST_SECRET}" in config  # the reference, never its value
    # a literal secret is refused: it would be copied into every run directory
    with pytest.raises(ConfigError) as e:
        config_from_dict({"input": {"format": "warc", "paths": ["x"], "storage_options": {
            "s3": {"secret": "hunter2"}}}, "output": {"path": "unused"}})
    assert "input.storage_options.s3.secret" in str(e.value) and "\n" not in str(e.value)
    assert "hunter2" not in str(e.value)
