"""The skip summary of tests/conftest.py (pytest_terminal_summary): on a fresh clone as a
non-root user, `make test` ends with one line per group of skipped tests, naming the group
and the command that runs it. Checked by running pytest on a generated test file whose
tests use the suite's own fixtures, as they skip on such a machine."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO, SKIP_GROUPS

GENERATED = '''
import os
from pathlib import Path

import pytest

os.geteuid = lambda: 65534  # the fixtures below ask: as a non-root user

import test_report
from conftest import require_shared
from test_reliability_crash import read_only_dir, tmpfs
from test_reliability_writers import tiny_tmpfs
from test_report import chromium
from test_slurm import slurm

test_report.CHROMIUM = Path("/nonexistent/chromium")  # Chromium not installed


def test_slurm_one(slurm):
    pass


def test_slurm_two(slurm):
    pass


def test_report(chromium):
    pass


def test_full_disk(tmpfs):
    pass


def test_read_only(read_only_dir):
    pass


def test_writer_full_disk(tiny_tmpfs):
    pass


def test_shared():
    require_shared(Path("/nonexistent/shared/data/extraction"))


def test_something_else():
    pytest.skip("a reason of its own")


def test_runs():
    pass
'''


def _pytest(tmp: Path, **env: str) -> subprocess.CompletedProcess:
    (tmp / "test_generated.py").write_text(GENERATED)
    (tmp / "test_module_skip.py").write_text(
        "import pytest\npytest.importorskip('thresher_no_such_module')\n")
    (tmp / "pytest.ini").write_text("[pytest]\n")
    (tmp / "bin").mkdir(exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith("THRESHER_REQUIRE_")}
    env = {**base, "PATH": str(tmp / "bin"),  # no sinfo on this PATH: no Slurm
           "PYTHONPATH": str(REPO / "tests"), **env}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "conftest", "-c", str(tmp / "pytest.ini"),
                           "--rootdir", str(tmp), "--basetemp", str(tmp / "basetemp"),
                           str(tmp)],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=300)


def _summary(stdout: str) -> list[str]:
    """The lines of the skip summary."""
    lines = stdout.splitlines()
    start = next(i for i, x in enumerate(lines) if "skipped tests, and how to run them" in x)
    out = []
    for line in lines[start + 1:]:
        if not re.match(r"\w.* \(\d+\) skipped: ", line):
            break
        out.append(line)
    return out


def test_each_group_of_skips_gets_one_line_with_its_command(tmp_path: Path):
    proc = _pytest(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed, 9 skipped" in proc.stdout, proc.stdout
    how = {name: command for name, _, command in SKIP_GROUPS}
    assert _summary(proc.stdout) == [
        f"Slurm tests (2) skipped: {how['Slurm tests']}",
        f"Chromium report tests (1) skipped: {how['Chromium report tests']}",
        "tmpfs and bind-mount reliability tests (3) skipped: "
        f"{how['tmpfs and bind-mount reliability tests']}",
        f"Shared-data tests (1) skipped: {how['Shared-data tests']}",
        f"Reference-library tests (1) skipped: {how['Reference-library tests']}",
        "Other tests (1) skipped: a reason of its own",
    ], proc.stdout


def test_the_commands_named_exist():
    """The scripts the lines name are the repository's; the THRESHER_REQUIRE_* switches
    they name are read by the tests of their group; .ci/run sets each of them."""
    text = " ".join(command for _, _, command in SKIP_GROUPS)
    for script in re.findall(r"bash (\S+\.sh)", text):
        assert (REPO / script).is_file(), script
    switches = dict.fromkeys(re.findall(r"THRESHER_REQUIRE_\w+", text))
    assert list(switches) == ["THRESHER_REQUIRE_SLURM", "THRESHER_REQUIRE_CHROMIUM",
                              "THRESHER_REQUIRE_SHARED"]
    for switch, reader in zip(switches, ("test_slurm.py", "test_report.py", "conftest.py")):
        assert f'os.environ.get("{switch}") == "1"' in (REPO / "tests" / reader).read_text()
        assert f"export {switch}=1" in (REPO / ".ci" / "run").read_text()


def test_require_shared_turns_the_skip_into_a_failure(tmp_path: Path):
    proc = _pytest(tmp_path, THRESHER_REQUIRE_SHARED="1")
    assert proc.returncode == 1
    assert "FAILED test_generated.py::test_shared" in proc.stdout
    assert "THRESHER_REQUIRE_SHARED=1 but shared data missing" in proc.stdout
    assert "1 failed, 1 passed, 8 skipped" in proc.stdout, proc.stdout
    assert not [x for x in _summary(proc.stdout) if x.startswith("Shared-data")]
