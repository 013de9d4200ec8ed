"""`thresher validate`, `thresher stages` and `thresher --help` import no heavy library
(issue #20: validate in under 0.3 s). pyarrow and numpy are bound lazily
(pipelines/lazy.py) and built-in stages declare column types by Arrow alias, so loading
a config, checking its chain and planning it import neither; extractors, models,
object-store clients and Ray are imported where a stage or reader uses them. Each check
runs in a fresh interpreter; a heavy top-level import added back to any module on that
path fails it. The one exception, asserted as such: a `minhash_dedup` with `threshold:`
turns it into bands and rows by numerical integration, with numpy (no pyarrow).

The output of validate is checked too: the same lines as before the imports were made
lazy, errors of the chain check included."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
HEAVY = ["pyarrow", "numpy", "trafilatura", "lxml", "resiliparse", "fasttext", "tokenizers",
         "warcio", "datasketch", "s3fs", "fsspec", "botocore", "ray", "datatrove", "spacy",
         "torch", "sklearn", "regex"]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))

PROBE = """
import json, sys
from pipelines.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:  # --help
    code = e.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def probe(*argv: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=REPO,
                          capture_output=True, text=True)
    got = json.loads(proc.stdout.splitlines()[-1])
    got["stdout"] = "\n".join(proc.stdout.splitlines()[:-1])
    got["stderr"] = proc.stderr
    return got


def heavy(modules: list[str]) -> list[str]:
    return sorted({m.split(".")[0] for m in modules} & set(HEAVY))


def minhash_threshold(config: Path) -> bool:
    stages = yaml.safe_load(config.read_text())["stages"]
    return any(s.get("stage") == "minhash_dedup" and "threshold" in s for s in stages)


def bench_minhash_config(tmp_path: Path) -> Path:
    """The MinHash config of benchmarks/bench_startup.py (its `minhash_config`)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from bench_startup import minhash_config
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"id": "a", "text": "one"}\n')
    return minhash_config(docs, tmp_path / "validate")


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_validate_imports_no_heavy_library(config):
    got = probe("validate", str(config.relative_to(REPO)))
    assert got["code"] == 0, got["stderr"]
    allowed = ["numpy"] if minhash_threshold(config) else []
    assert heavy(got["modules"]) == allowed


def test_validate_of_the_benchmarked_minhash_config(tmp_path):
    cfg = bench_minhash_config(tmp_path)
    got = probe("validate", str(cfg))
    assert got["code"] == 0, got["stderr"]
    assert heavy(got["modules"]) == []
    assert "stages.dedup.minhash" in got["modules"]  # the stage was really loaded
    assert got["stdout"] == (f"{cfg}: ok: 1 stages, 1 input files, 4 phase(s), 19 tasks, "
                             "executor local")


@pytest.mark.parametrize("config, summary", [
    ("demo", "3 stages, 6 input files, 1 phase(s), 6 tasks"),
    ("fineweb", "9 stages, 6 input files, 4 phase(s), 29 tasks"),
    ("slimpajama", "2 stages, 4 input files, 4 phase(s), 25 tasks"),
])
def test_validate_prints_what_it_printed_before(config, summary):
    got = probe("validate", f"configs/{config}.yaml")
    assert got["stdout"] == f"configs/{config}.yaml: ok: {summary}, executor local"


def test_chain_errors_are_unchanged_without_arrow(tmp_path):
    """The chain check's errors, with column types declared as aliases: langid before
    extract on WARC input is one line naming the stage, the column and the fix."""
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    cfg["stages"] = [cfg["stages"][1], cfg["stages"][0], *cfg["stages"][2:]]  # langid first
    cfg["input"]["paths"] = [str(REPO / p) if not Path(p).is_absolute() else p
                             for p in cfg["input"]["paths"]]
    path = tmp_path / "swapped.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    got = probe("validate", str(path))
    assert got["code"] != 0
    assert "stage 'langid' needs column 'text'" in got["stderr"]
    assert "(move 'extract' before it)" in got["stderr"]
    assert heavy(got["modules"]) == []


@pytest.mark.parametrize("argv", [["stages", "--markdown"], ["stages"], ["--help"]])
def test_stage_table_and_help_load_without_heavy_libraries(argv):
    """Every built-in stage's module and parameters, as `thresher stages` prints them."""
    got = probe(*argv)
    assert got["code"] == 0, got["stderr"]
    assert heavy(got["modules"]) == []


def test_every_registered_stage_params_import_without_heavy_libraries():
    """Each registered stage, by itself: its class, its Params' JSON schema (what
    docs/stages.md is generated from)."""
    code = """
import json, sys
from pipelines import registry
out = {}
for name in registry.names():
    cls = registry.get(name)
    cls.Params.model_json_schema()
    out[name] = sorted(m for m in sys.modules if m.split(".")[0] in %r)
print(json.dumps(out))
""" % (HEAVY,)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, check=True)
    got = json.loads(proc.stdout)
    assert len(got) > 20  # the built-in library, really iterated
    assert {name: mods for name, mods in got.items() if mods} == {}


def test_lazy_module_imports_on_first_read_then_hands_over_the_module():
    """The stand-in imports at the first attribute read and puts the real module in its
    owner's globals, so later reads there cost nothing extra; it pickles by name."""
    import pickle
    import types

    from pipelines.lazy import LazyModule

    owner = types.ModuleType("owner_of_a_lazy_module")
    exec("from pipelines.lazy import lazy_module\nmod = lazy_module('json')", owner.__dict__)
    assert isinstance(owner.mod, LazyModule)
    assert owner.mod.dumps([1]) == "[1]"  # the first read imports
    assert owner.mod is json  # and the owner now holds the module itself
    copy = pickle.loads(pickle.dumps(LazyModule("json")))
    assert isinstance(copy, LazyModule) and copy.loads("2") == 2
