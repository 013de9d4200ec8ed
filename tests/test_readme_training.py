"""README "To training" (#21): its commands and its Python snippet run as written, and
print what the README shows, so the section cannot drift from the code.

The section's blocks are taken from README.md in order: the commands (bash), the export's
output, the snippet (Python, megatron-core's own reader) and its output. They run in a
fresh directory that stands for the checkout (``configs``, ``tests`` and ``.venv``
linked), so ``runs/demo`` is the test's own. ``make demo`` is run as the Makefile's
``demo`` recipe says (its ``install`` prerequisite is this venv already; re-running it
could rebuild the shared venv).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

SECTION = "## To training"


def section_blocks() -> list[tuple[str, str]]:
    """(language, text) of every fenced block of the README's "To training" section."""
    text = (REPO / "README.md").read_text()
    assert text.count(SECTION + "\n") == 1, "README.md has no (single) To training section"
    body = text.split(SECTION + "\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```(\w*)\n(.*?)^```$", body, re.M | re.S)


def demo_recipe() -> list[str]:
    """The commands of the Makefile's ``demo`` target, $(BIN) as .venv/bin."""
    lines = (REPO / "Makefile").read_text().splitlines()
    i = next(i for i, ln in enumerate(lines) if ln.startswith("demo:"))
    cmds = []
    for ln in lines[i + 1:]:
        if not ln.startswith("\t"):
            break
        cmds.append(ln.strip().replace("$(BIN)", ".venv/bin"))
    assert cmds, "the Makefile's demo target has no commands"
    return cmds


def test_the_readme_to_training_section_runs_as_written(tmp_path):
    pytest.importorskip("megatron.core")
    blocks = section_blocks()
    assert [lang for lang, _ in blocks] == ["bash", "", "python", ""], blocks
    (_, commands), (_, export_out), (_, snippet), (_, snippet_out) = blocks
    for name in ("configs", "tests", ".venv"):
        (tmp_path / name).symlink_to(REPO / name)
    script = []
    for ln in commands.splitlines():
        script += demo_recipe() if ln.split("#")[0].strip() == "make demo" else [ln]
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(script)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout.splitlines()
    for line in export_out.strip().splitlines():  # the README's output block, as printed
        assert line in out, f"README shows {line!r}; the commands printed:\n{proc.stdout}"
    assert "runs/demo/tokens: every token file matches export.json" in out
    exp = json.loads((tmp_path / "runs/demo/tokens/export.json").read_text())
    snip = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert snip.returncode == 0, snip.stderr
    assert snip.stdout.strip() == snippet_out.strip(), snip.stdout
    # what the snippet read is what the export wrote, shard by shard
    got = [re.match(r"(\S+): (\d+) documents, ([\d,]+) tokens", ln).groups()
           for ln in snip.stdout.strip().splitlines()]
    assert got == [(s["name"], str(s["documents"]), f"{s['tokens']:,}") for s in exp["shards"]]
    tok = Path(tmp_path / "runs/demo/tokenizer.json").read_bytes()
    assert exp["tokenizer"]["sha256"] == hashlib.sha256(tok).hexdigest()
