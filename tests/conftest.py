"""Shared fixtures: paths to the real test data and a helper to run the real CLI."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests draw the same examples on every run (CI must not pass or fail by luck);
# HYPOTHESIS_PROFILE=explore draws new ones, to hunt for bugs locally.
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
WARC_DIR = DATA / "warc"
# ../shared/data beside the checkout, else $THRESHER_SHARED_DATA (set by .ci/run)
SHARED = Path(os.environ.get("THRESHER_SHARED_DATA") or REPO.parent / "shared" / "data")


def require_shared(path: Path) -> Path:
    """``path`` in the shared data; a test skips when it is missing, or fails instead with
    THRESHER_REQUIRE_SHARED=1 (set by .ci/run)."""
    if not path.exists():
        msg = (f"shared data missing: {path} (a checkout beside the workplace's shared "
               "folder has it at ../shared/data; else set THRESHER_SHARED_DATA)")
        if os.environ.get("THRESHER_REQUIRE_SHARED") == "1":
            pytest.fail(f"THRESHER_REQUIRE_SHARED=1 but {msg}")
        pytest.skip(msg)
    return path


# ----------------------------------------------------------------------------- skip summary

# Groups of skipped tests, told apart by their skip reason, and what runs them. A fresh
# clone as a non-root user skips all of these; `make test` ends with one line per group.
SKIP_GROUPS: list[tuple[str, re.Pattern, str]] = [
    ("Slurm tests", re.compile(r"slurm|sinfo|MaxArraySize", re.I),
     "start a one-node Slurm as root, `sudo env SLURM_MAX_ARRAY_SIZE=5 bash slurm/slurm-up.sh`"
     ", then `make test`; or set THRESHER_REQUIRE_SLURM=1 to fail instead"),
    ("Chromium report tests", re.compile(r"chromium", re.I),
     "install Debian's chromium as root, `sudo bash scripts/install-system-deps.sh`, "
     "then `make test`; or set THRESHER_REQUIRE_CHROMIUM=1 to fail instead"),
    ("tmpfs and bind-mount reliability tests", re.compile(r"tmpfs|bind mount", re.I),
     "they mount file systems, which needs root: `sudo make test`"),
    ("Shared-data tests", re.compile(r"shared data", re.I),
     "put the workplace's shared data at ../shared/data beside the checkout, or "
     "`THRESHER_SHARED_DATA=/path/to/shared/data make test`; "
     "or set THRESHER_REQUIRE_SHARED=1 to fail instead"),
    ("Reference-library tests", re.compile(r"could not import|no module named", re.I),
     "`make install` (requirements.lock installs every library the tests compare with)"),
]


def skip_groups(skips: list[tuple[str, str]]) -> list[str]:
    """One line per group of skips, from (nodeid, reason) pairs: the groups above in their
    order, then one line per other reason."""
    known: dict[str, int] = {}
    other: dict[str, int] = {}
    for _, reason in skips:
        reason = reason.removeprefix("Skipped: ")
        name = next((g[0] for g in SKIP_GROUPS if g[1].search(reason)), None)
        if name:
            known[name] = known.get(name, 0) + 1
        else:
            other[reason] = other.get(reason, 0) + 1
    return ([f"{name} ({known[name]}) skipped: {command}"
             for name, _, command in SKIP_GROUPS if name in known]
            + [f"Other tests ({n}) skipped: {reason}" for reason, n in sorted(other.items())])


def pytest_terminal_summary(terminalreporter):
    skips = []
    for rep in terminalreporter.stats.get("skipped", []):
        longrepr = rep.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else ""
        skips.append((rep.nodeid, str(reason)))
    if skips:
        terminalreporter.section("skipped tests, and how to run them", sep="-")
        for line in skip_groups(skips):
            terminalreporter.write_line(line)


# ----------------------------------------------------------------------------- parallel runs

# `make test` runs the suite on two pytest-xdist workers (`--dist loadgroup`). A test
# module is one group, so its module-scoped fixtures are built once; every test that runs
# on Ray or Slurm joins one "clusters" group instead, so that only one worker starts Ray
# clusters and submits to the one-node Slurm, one test at a time, as in a serial run.
CLUSTER_FIXTURES = {"ray_cluster", "slurm"}
CLUSTER_NAME = re.compile(r"(^|_)(ray|slurm|raylets?)(_|$)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        on_cluster = (CLUSTER_FIXTURES & set(getattr(item, "fixturenames", ()))
                      or CLUSTER_NAME.search(item.name.split("[")[0])
                      or item.path.name in ("test_ray.py", "test_slurm.py"))
        item.add_marker(pytest.mark.xdist_group("clusters" if on_cluster else item.path.name))


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def warc_dir() -> Path:
    return WARC_DIR


def thresher(*args: str, cwd: Path | None = None, check: bool = True,
             timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real `thresher` CLI (this interpreter's install) as a subprocess."""
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", *args], cwd=cwd or REPO,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if check and proc.returncode != 0:
        raise AssertionError(f"thresher {' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def shard_hashes(run_dir: Path) -> dict[str, str]:
    """sha256 of every final shard, by relative path."""
    return {p.relative_to(run_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((run_dir / "data").glob("*")) if p.is_file()}


DEMO = REPO / "configs" / "demo.yaml"


def kill_inside_a_task(proc: subprocess.Popen, run: Path, done: int, phase: str = "main",
                       timeout: float = 300) -> None:
    """SIGKILL the process group of a local run once `done` tasks of `phase` are done and
    another has begun (its log exists, its record does not), however fast the machine.
    Logs are listed before records, so a task begun and not done was still running when
    the records were listed."""
    stats, logs = run / "stats" / phase, run / "logs" / phase
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        begun = {p.stem for p in logs.glob("task-*.log")}
        finished = {p.stem for p in stats.glob("task-*.json")}
        if len(finished) >= done and begun - finished:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return
        time.sleep(0.005)
    raise AssertionError(f"the run ended ({proc.poll()}) or timed out before it was killed")


def demo_config(tmp: Path, **executor) -> Path:
    """configs/demo.yaml on all bundled WARCs (absolute paths), with the given executor."""
    import yaml

    cfg = yaml.safe_load(DEMO.read_text())
    cfg["input"]["paths"] = [str(WARC_DIR / "*.warc.gz")]
    cfg["executor"] = {"kind": "local", **executor}
    path = tmp / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def dedup_chain_config(corpus: Path, out: Path, executor: dict):
    """Exact then MinHash dedup (6 phases; steps of 3 and 1 tasks) on a corpus written by
    test_exact_dedup.make_corpus: the global-stage pipeline that local, Ray and Slurm
    must all run to the same bytes."""
    from pipelines import config_from_dict

    return config_from_dict({
        "input": {"format": "jsonl", "paths": [str(corpus / "*.jsonl")], "id_key": "id",
                  "fields": ["lang"]},
        "output": {"path": str(out)},
        "executor": executor,
        "stages": [{"stage": "exact_dedup", "partitions": 3},
                   {"stage": "minhash_dedup", "partitions": 3, "n": 3},
                   {"stage": "length", "min_chars": 1}]})


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory) -> Path:
    """The demo pipeline with 2 local workers, uninterrupted: the bytes others must match."""
    tmp = tmp_path_factory.mktemp("ref")
    cfg = demo_config(tmp, workers=2)
    thresher("run", str(cfg), "--output", str(tmp / "run"), "--quiet")
    return tmp / "run"


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """One real local Ray cluster for the whole test session, torn down at the end."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # workers must import test-only stages (tests/plugins) and see the kill marker
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "tests"), *filter(None, [os.environ.get("PYTHONPATH")])])
    os.environ["THRESHER_TEST_KILL_MARKER"] = str(tmp_path_factory.mktemp("ray") / "killed")
    import ray

    # Ray's socket paths must stay under 108 bytes: a short directory of its own, not one
    # under pytest's base temp (longer with an xdist worker's name in it)
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    ray.init(address="local", num_cpus=2, object_store_memory=100 * 2**20,
             include_dashboard=False, log_to_driver=False, _temp_dir=temp)
    yield ray
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)
