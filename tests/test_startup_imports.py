"""`thresher validate` and `thresher stages` import no heavy library (issue #20: validate
in under 0.3 s): pyarrow.compute, pyarrow.parquet, the extractors, the models, the
object-store clients and Ray are imported where a stage or reader uses them, never by
loading a config. Each check runs in a fresh interpreter; a heavy top-level import added
back to any module on that path fails it. (pyarrow itself and numpy stay: the chain check
declares columns with Arrow types.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ["pyarrow.compute", "pyarrow.parquet", "pyarrow.dataset", "pyarrow.fs", "trafilatura",
         "lxml", "resiliparse", "fasttext", "tokenizers", "warcio", "datasketch", "s3fs",
         "fsspec", "botocore", "ray", "datatrove", "spacy", "torch", "sklearn", "regex"]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))

PROBE = """
import json, sys
from pipelines.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def probe(*argv: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[-1])


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_validate_imports_no_heavy_library(config):
    got = probe("validate", str(config.relative_to(REPO)))
    assert got["code"] == 0
    assert [m for m in HEAVY if m in got["modules"]] == []


def test_every_stage_loads_without_heavy_libraries():
    """The stage table (every built-in stage's module and parameters) as `thresher stages`
    prints it, in a fresh interpreter."""
    got = probe("stages", "--markdown")
    assert got["code"] == 0
    assert [m for m in HEAVY if m in got["modules"]] == []
    assert "stages.extraction.extract" in got["modules"]  # the stages were really loaded
    assert "stages.dedup.minhash" in got["modules"]
