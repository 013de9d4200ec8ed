"""A task process keeps its freed work arrays for reuse (pipelines/allocator.py).

Each check runs in a fresh interpreter and counts the minor page faults of the MinHash
kernel over the bundled quality documents in batches of 500: glibc's default maps,
faults in and unmaps work arrays batch after batch. The same count on the
20,000-document MinHash run: 313-334 k faults default, 35 k tuned (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="glibc's mallopt: Linux only")

PROBE = """
import gzip, json, resource
from pipelines.allocator import tune_allocator
tuned = tune_allocator()
from stages.dedup import minhash_core as core
texts = [json.loads(line)["text"]
         for line in gzip.open("tests/data/quality/filter-docs.jsonl.gz", "rt")]
spec = core.MinHashSpec()
core.signatures(texts[:50], spec)  # numpy's and the tables' first-use allocations
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for lo in range(0, len(texts), 500):  # batches, as the stage streams them
    core.signatures(texts[lo:lo + 500], spec)
print(json.dumps({"tuned": tuned,
                  "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _probe(code: str = PROBE, **env: str) -> dict:
    """Run ``code`` in a fresh interpreter with only ``env``'s allocator settings."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("MALLOC_") and k != "THRESHER_ALLOCATOR"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**clean, **env},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_a_tuned_process_reuses_freed_work_arrays():
    tuned, default = _probe(), _probe(THRESHER_ALLOCATOR="default")
    assert tuned["tuned"] is True and default["tuned"] is False
    # measured: 1,093 against 15,341 faults with the compiled kernel (the numpy path: 4,474
    # against 22,851)
    assert tuned["faults"] * 2 < default["faults"], (tuned, default)


def test_a_users_malloc_variable_wins():
    # glibc read MALLOC_MMAP_THRESHOLD_ at start: the value here must not replace it
    default = _probe(THRESHER_ALLOCATOR="default")
    fixed_small = _probe(MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    assert fixed_small["faults"] > default["faults"], (fixed_small, default)  # 271 k


def _pipeline(tmp_path: Path, workers: int) -> Path:
    for i in range(2):  # two inputs: two tasks, run by the pool when workers > 1
        with open(tmp_path / f"in-{i}.jsonl", "w") as f:
            for j in range(30):
                f.write(json.dumps({"text": f"document {j % 20} of the set, " * 8}) + "\n")
    cfg = tmp_path / f"w{workers}.yaml"
    cfg.write_text(f"""
name: allocator
input: {{format: jsonl, paths: ["{tmp_path}/in-*.jsonl"]}}
output: {{path: "{tmp_path}/run-w{workers}"}}
executor: {{kind: local, workers: {workers}}}
stages:
  - {{stage: length, min_words: 3}}
  - {{stage: exact_dedup}}
""")
    return cfg


def _tuned_by_task(run: Path) -> list[bool]:
    return [json.loads(p.read_text())["allocator_tuned"]
            for p in sorted(run.glob("stats/*/task-*.json"))]


def test_thresher_processes_tune_and_an_api_caller_keeps_its_own(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "THRESHER_ALLOCATOR"}
    cfg = _pipeline(tmp_path, workers=2)  # the command: in-process and pool tasks
    subprocess.run([sys.executable, "-m", "pipelines.cli", "run", str(cfg), "--quiet"],
                   cwd=REPO, env=env, check=True, capture_output=True)
    tuned = _tuned_by_task(tmp_path / "run-w2")
    assert len(tuned) >= 5 and all(tuned), tuned
    cfg = _pipeline(tmp_path, workers=1)  # a program of the user's, all tasks in it
    subprocess.run([sys.executable, "-c", "import sys; from pipelines import load_config, "
                    "run_pipeline; run_pipeline(load_config(sys.argv[1]))", str(cfg)],
                   cwd=REPO, env=env, check=True, capture_output=True)
    tuned = _tuned_by_task(tmp_path / "run-w1")
    assert len(tuned) >= 5 and not any(tuned), tuned


RELEASE_PROBE = """
import ctypes, json
from pipelines import allocator
tuned = allocator.tune_allocator()
import pyarrow as pa

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
base = rss()
buf = pa.allocate_buffer(95 << 20)  # Arrow's pool keeps it for reuse once freed
ctypes.memset(buf.address, 1, buf.size)
blocks = [libc.malloc(1 << 20) for _ in range(120)]  # on the heap below the mmap threshold
for b in blocks:
    ctypes.memset(b, 1, 1 << 20)
top = libc.malloc(1 << 20)  # in use above the blocks: freeing them cannot shrink the heap
held = rss() - base
del buf
for b in blocks:
    libc.free(b)
freed = rss() - base
allocator.release_free_memory()
print(json.dumps({"tuned": tuned, "held": held, "freed": freed, "released": rss() - base}))
"""


def test_the_memory_a_task_freed_goes_back_to_the_kernel():
    """run_task calls release_free_memory before and after each task: Arrow's pool's freed
    blocks (either allocator setting) and the tuned heap's free pages are handed back."""
    for env, kept in (({}, 95 + 120), ({"THRESHER_ALLOCATOR": "default"}, 95)):
        out = _probe(RELEASE_PROBE, **env)
        assert out["tuned"] is not bool(env), out
        assert out["held"] >= 200 and out["freed"] >= kept - 15, out  # freed, still held
        assert out["released"] < 15, out
