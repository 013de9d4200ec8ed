"""How the ``thresher`` program ends (``pipelines.cli.entry``): the command's exit code,
its whole output, the ``atexit`` handlers run, and no interpreter teardown (where Arrow's
native thread pools can abort a finished command with -6)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO

THRESHER = Path(sys.executable).with_name("thresher")


def run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300, **kw)


def test_the_program_is_entry_and_exits_with_each_commands_code():
    assert "from pipelines.cli import entry" in THRESHER.read_text()
    assert run(str(THRESHER), "--help").returncode == 0
    bad = run(str(THRESHER), "no-such-command")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    missing = run(str(THRESHER), "stats", "/nonexistent/run")
    assert missing.returncode == 2
    assert missing.stderr.startswith("thresher: error:") and "Traceback" not in missing.stderr


def test_output_larger_than_a_pipe_arrives_whole():
    out = run(str(THRESHER), "stages", "--markdown")
    assert out.returncode == 0, out.stderr
    assert len(out.stdout) > 4 * 8192  # several of io's buffers, so the last flush matters
    assert out.stdout == (REPO / "docs" / "stages.md").read_text()


def test_atexit_handlers_and_threads_finish_before_the_exit():
    code = ("import atexit, sys, threading, time\n"
            "atexit.register(lambda: print('atexit ran', flush=False))\n"
            "threading.Thread(target=lambda: (time.sleep(1.0), print('thread done'))).start()\n"
            "sys.argv = ['thresher', 'validate', 'configs/demo.yaml']\n"
            "from pipelines.cli import entry\n"
            "entry()\n"
            "print('not reached')\n")
    out = run(sys.executable, "-c", code, env={**os.environ, "PYTHONUNBUFFERED": ""})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[-2:] == ["thread done", "atexit ran"], out.stdout
    assert "not reached" not in out.stdout


def test_an_unexpected_error_prints_its_traceback_and_exits_1(tmp_path):
    code = ("import sys\n"
            "from pipelines import cli\n"
            "def boom(a): raise RuntimeError('a bug')\n"
            "cli.cmd_stages = boom\n"
            "sys.argv = ['thresher', 'stages']\n"
            "cli.entry()\n")
    out = run(sys.executable, "-c", code)
    assert out.returncode == 1
    assert "Traceback" in out.stderr and "RuntimeError: a bug" in out.stderr
