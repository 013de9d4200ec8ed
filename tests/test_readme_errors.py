"""The README's example errors are what the CLI prints: each example config below is
validated by the real `thresher` in a directory standing for /tmp/errdemo, and the lines
must equal the README's block, so the block cannot drift from the code (a new stage
changes the list of names, a new parameter the list of keys: regenerate the block with
`python tests/test_readme_errors.py`)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from conftest import REPO
from test_cli_errors import cli

WHERE = "/tmp/errdemo"  # the directory the README pretends the examples ran in

EXAMPLES = {  # file name -> config; each gives the README lines, in this order
    "bad.yaml": """\
name: demo
input:
  format: warc
  paths: [warc/*.warc.gz]
output:
  path: runs/demo
stages:
  - stage: extract
  - stage: langid
    languages: [en]
    min_scor: 0.65
""",
    "bad2.yaml": """\
input:
  format: warc
  paths: [data/*.warc.gz]
output:
  path: runs/demo
stages:
  - stage: extract
""",
    "bad3.yaml": """\
input:
  format: warc
  paths: [warc/*.warc.gz]
output:
  path: runs/demo
executor:
  kind: local
  workers: two
stages:
  - stage: extrct
""",
    "bad4.yaml": """\
input:
  format: warc
  paths: [warc/*.warc.gz]
output:
  path: runs/demo
stages:
  - stage: langid
    min_score: 1.5
  - stage: extract
""",
    "bad5.yaml": """\
input:
  format: warc
  paths: [warc/*.warc.gz]
output:
  path: runs/demo
stages:
  - stage: langid
  - stage: extract
""",
    "bad6.yaml": """\
input:
  format: warc
  paths: [warc/*.warc.gz]
output:
  path: runs/demo
stages:
  - stage: extract
  - stage: minhash_dedup
    scope: language
""",
}


def example_errors(tmp: Path) -> list[str]:
    """Every line `thresher validate` prints for the examples, run in ``tmp``."""
    (tmp / "warc").mkdir(exist_ok=True)
    (tmp / "warc" / "a.warc.gz").write_bytes(b"")  # the globs match (bad2's does not)
    lines = []
    for name, text in EXAMPLES.items():
        (tmp / name).write_text(text)
        proc = cli("validate", name, cwd=tmp)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        for real in {str(tmp.resolve()), str(tmp)}:
            proc.stderr = proc.stderr.replace(real, WHERE)
        lines += proc.stderr.splitlines()
    return lines


def readme_block() -> list[str]:
    """The fenced block after "Mistakes give one line" in the README."""
    text = (REPO / "README.md").read_text()
    m = re.search(r"Mistakes give one line.*?```\n(.*?)```", text, re.S)
    assert m, "README: no example block after 'Mistakes give one line'"
    return m.group(1).splitlines()


def test_readme_error_examples_are_what_the_cli_prints(tmp_path: Path):
    assert readme_block() == example_errors(tmp_path)


def test_examples_cover_the_kinds_of_mistake(tmp_path: Path):
    """A misspelled key, a glob matching nothing, a wrong type, an unknown stage (listing
    every registered one), a value out of range and a chain in the wrong order."""
    from pipelines import registry

    lines = readme_block()
    assert all(line.startswith("thresher: error: bad") for line in lines)
    assert any("unknown stage 'extrct'; expected one of: " + ", ".join(registry.names())
               in line for line in lines)
    for what in ("unknown parameter", "matched no files", "valid integer",
                 "less than or equal to 1", "needs column 'text'", "needs column 'language'"):
        assert any(what in line for line in lines), what


if __name__ == "__main__":  # print the block for the README
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        sys.stdout.write("\n".join(example_errors(Path(d))) + "\n")
