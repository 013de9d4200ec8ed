"""Shared fixtures: paths to the real test data and a helper to run the real CLI."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
WARC_DIR = DATA / "warc"
SHARED = REPO.parent / "shared" / "data"


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
