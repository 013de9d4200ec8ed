"""Config loading through the Python API: one-line errors with file, line and key path;
overrides; YAML round trip; fingerprint; stage names. (The CLI side is test_cli_errors.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import DEMO, REPO, WARC_DIR

from pipelines import config_from_dict, config_from_yaml, load_config, stage
from pipelines.config import (
    JsonlInput,
    LocalExecutor,
    OutputConfig,
    PipelineConfig,
    RayExecutor,
    WarcInput,
    read_yaml,
)
from pipelines.errors import ConfigError, ConfigErrors, UserError

WARCS = f"{WARC_DIR}/*.warc.gz"

# line numbers are part of the contract: keep this text's layout in sync with CATALOGUE
GOOD = f"""\
name: t
input:
  format: warc
  paths: ["{WARCS}"]
output:
  path: runs/t
executor:
  kind: local
  workers: 2
stages:
  - stage: extract
  - stage: langid
    languages: [en]
    min_score: 0.65
"""
#  1 name            6   path             11   - stage: extract
#  2 input:          7 executor:          12   - stage: langid
#  3   format        8   kind             13     languages
#  4   paths         9   workers          14     min_score
#  5 output:        10 stages:


def errors_of(err: BaseException) -> list[ConfigError]:
    return err.errors if isinstance(err, ConfigErrors) else [err]


# (id, old text of GOOD, new text, key path, what the message says, line or None)
CATALOGUE = [
    # stages
    ("misspelled_param", "    min_score: 0.65", "    min_scor: 0.65", "stages[1].min_scor",
     "unknown parameter; expected one of: mode, languages, min_score", 14),
    ("unknown_stage", "  - stage: extract", "  - stage: extrct", "stages[0].stage",
     "unknown stage 'extrct'; expected one of: ", 11),  # then every registered name
    ("stage_not_a_string", "  - stage: extract", "  - stage: [extract]", "stages[0].stage",
     "expected a registered stage name or an import path module:Class, got ['extract']", 11),
    ("stage_entry_not_mapping", "  - stage: extract", "  - extract", "stages[0]",
     "expected a mapping with a `stage:` key", 11),
    ("stage_import_path_missing", "  - stage: langid", "  - stage: no.such.module:Cls",
     "stages[1].stage", "stage 'no.such.module:Cls': cannot import", 12),
    ("param_wrong_type_number", "    min_score: 0.65", "    min_score: high", "stages[1].min_score",
     "input should be a valid number, unable to parse string as a number, got 'high'", 14),
    ("param_union_mapping_branch", "    min_score: 0.65", "    min_score: {en: high}",
     "stages[1].min_score.en", "input should be a valid number", 14),
    ("param_wrong_type_list", "    languages: [en]", "    languages: en", "stages[1].languages",
     "input should be a valid list, got 'en'", 13),
    ("param_list_item_type", "    languages: [en]", "    languages: [1]",
     "stages[1].languages[0]", "input should be a valid string, got 1", 13),
    ("param_wrong_type_bool", "  - stage: extract",
     "  - stage: extract\n    favor_precision: maybe", "stages[0].favor_precision",
     "input should be a valid boolean", 12),
    ("duplicate_stage", "  - stage: extract", "  - stage: extract\n  - stage: extract",
     "stages[1].name", "duplicate stage name 'extract' (also stages[0]); give one of them a "
     "distinct `name:`", 12),
    ("duplicate_by_explicit_name", "  - stage: extract", "  - stage: extract\n    name: langid",
     "stages[1].name", "duplicate stage name 'langid' (also stages[0])", 13),
    ("reserved_name_read", "  - stage: extract", "  - stage: extract\n    name: read",
     "stages[0].name", "'read' is reserved for the reader/writer statistics", 12),
    ("reserved_name_write", "  - stage: langid", "  - stage: langid\n    name: write",
     "stages[1].name", "'write' is reserved", 13),
    ("bad_stage_name", "  - stage: extract", "  - stage: extract\n    name: my stage",
     "stages[0].name", "expected a name of letters, digits, _ . -", 12),
    ("stages_not_a_list", "  - stage: extract\n  - stage: langid\n    languages: [en]\n"
     "    min_score: 0.65\n", "  stage: extract\n", "stages", "input should be a valid list", 10),
    # executor
    ("executor_wrong_type", "  workers: 2", "  workers: two", "executor.workers",
     "input should be a valid integer, unable to parse string as an integer, got 'two'", 9),
    ("executor_out_of_range", "  workers: 2", "  workers: 0", "executor.workers",
     "input should be greater than or equal to 1, got 0", 9),
    ("executor_unknown_key", "  workers: 2", "  wrkers: 2", "executor.wrkers", "unknown key", 9),
    ("executor_unknown_kind", "  kind: local", "  kind: k8s", "executor.kind",
     "unknown kind 'k8s'; expected one of: local, ray, slurm", 8),
    ("executor_missing_kind", "  kind: local\n", "", "executor.kind",
     "required key is missing; expected one of: local, ray, slurm", 7),
    ("executor_not_mapping", "executor:\n  kind: local\n  workers: 2", "executor: local",
     "executor", "input should be a valid dictionary", 7),
    # input
    ("input_unknown_format", "  format: warc", "  format: csv", "input.format",
     "unknown format 'csv'; expected one of: warc, wet, jsonl, parquet", 3),
    ("input_missing_format", "  format: warc\n", "", "input.format",
     "required key is missing; expected one of: warc, wet, jsonl, parquet", 2),
    ("input_unknown_key", "  format: warc", "  format: warc\n  pathz: [x]", "input.pathz",
     "unknown key", 4),
    ("input_key_of_other_format", "  format: warc", "  format: wet\n  content_types: [a]",
     "input.content_types", "unknown key", 4),
    ("input_paths_not_list", f'["{WARCS}"]', f'"{WARCS}"', "input.paths",
     "input should be a valid list", 4),
    ("input_paths_empty", f'["{WARCS}"]', "[]", "input.paths",
     "list should have at least 1 item", 4),
    ("input_batch_size", "  format: warc", "  format: warc\n  batch_size: 0", "input.batch_size",
     "input should be greater than 0, got 0", 4),
    ("glob_matches_nothing", f'["{WARCS}"]', '["/nonexistent/*.warc.gz"]', "input.paths[0]",
     "glob '/nonexistent/*.warc.gz' matched no files", 4),
    ("second_glob_matches_nothing", f'["{WARCS}"]', f'["{WARCS}", "/nonexistent/*.gz"]',
     "input.paths[1]", "glob '/nonexistent/*.gz' matched no files", 4),
    ("glob_matches_only_dirs", f'["{WARCS}"]', f'["{WARC_DIR}"]', "input.paths[0]",
     "matched only directories", 4),
    # output
    ("output_missing_path", "  path: runs/t", "  format: parquet", "output.path",
     "required key is missing", 5),
    ("output_unknown_key", "  path: runs/t", "  path: runs/t\n  pth: x", "output.pth",
     "unknown key", 7),
    ("output_bad_literal", "  path: runs/t", "  path: runs/t\n  compression: lz4",
     "output.compression", "input should be 'zstd', 'snappy', 'gzip' or 'none'", 7),
    ("output_missing_section", "output:\n  path: runs/t\n", "", "output",
     "required key is missing", 1),
    # top level
    ("top_unknown_key", "name: t", "name: t\nseeds: 3", "seeds", "unknown key", 2),
    ("top_wrong_type", "name: t", "name: t\nseed: abc", "seed",
     "input should be a valid integer", 2),
    ("top_non_string_key", "name: t", "name: t\n3: x", "", "key 3 is not a string", None),
    # YAML syntax
    ("yaml_bad_dedent", "    min_score: 0.65", "    min_score: 0.65\n   bad: [unclosed", "",
     "invalid YAML: expected <block end>", 15),
    ("yaml_unclosed_flow", "  paths: [", "  paths: [x,\n  oops: [", "",
     "invalid YAML: expected ',' or ']'", 6),
    ("yaml_tab", "  path: runs/t", "\tpath: runs/t", "",
     "invalid YAML: found character '\\t' that cannot start any token", 6),
    ("yaml_bad_indent", "  path: runs/t", "  path: runs/t\n    x: 1", "",
     "invalid YAML: mapping values are not allowed here", 7),
    ("yaml_unknown_alias", "  path: runs/t", "  path: *nowhere", "",
     "invalid YAML: found undefined alias 'nowhere'", 6),
]


@pytest.mark.parametrize("old,new,keypath,message,line", [c[1:] for c in CATALOGUE],
                         ids=[c[0] for c in CATALOGUE])
def test_malformed_config_gives_one_clear_line(tmp_path: Path, old, new, keypath, message, line):
    assert GOOD.count(old) == 1
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace(old, new))
    with pytest.raises(UserError) as info:
        load_config(path)
    assert isinstance(info.value, (ConfigError, ConfigErrors))
    msg = str(info.value)
    assert len(msg.splitlines()) == 1, msg  # one error, one line
    where = f"{path}:{line}" if line is not None else str(path)
    head = f"{where}: {keypath}: " if keypath else f"{where}: "
    assert msg.startswith(head), msg
    assert message in msg, msg
    assert "Traceback" not in msg
    [err] = errors_of(info.value)  # the same facts, structured
    assert (err.file, err.line, err.path) == (str(path), line, keypath)


def test_catalogue_is_big_enough():
    assert len(CATALOGUE) >= 15 and len({c[0] for c in CATALOGUE}) == len(CATALOGUE)


def test_several_errors_one_line_each(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace("  workers: 2", "  workers: two")
                    .replace("  - stage: extract", "  - stage: extrct")
                    .replace("    min_score: 0.65", "    min_scor: 0.65"))
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    lines = str(info.value).splitlines()
    assert len(lines) == len(info.value.errors) == 3
    assert lines[0].startswith(f"{path}:9: executor.workers: ")
    assert lines[1].startswith(f"{path}:11: stages[0].stage: unknown stage 'extrct'")
    assert lines[2].startswith(f"{path}:14: stages[1].min_scor: unknown parameter")


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just a string\n", "42\n"],
                         ids=["empty", "list", "string", "number"])
def test_config_must_be_a_mapping(tmp_path: Path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"expected a mapping with keys input, output, stages"):
        load_config(path)


def test_unreadable_configs(tmp_path: Path):
    with pytest.raises(UserError, match=r"missing\.yaml: cannot read config: No such file"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(UserError, match=r"cannot read config: Is a directory"):
        load_config(tmp_path)
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin1\.yaml: cannot read config: not UTF-8"):
        load_config(path)


def test_error_without_a_file_names_config():
    with pytest.raises(ConfigErrors) as info:
        config_from_yaml(GOOD.replace("  workers: 2", "  workers: 0"))
    assert str(info.value).startswith("<config>:9: executor.workers: ")


def test_relative_glob_is_relative_to_cwd(tmp_path: Path, monkeypatch):
    path = tmp_path / "rel.yaml"
    path.write_text(GOOD.replace(WARCS, "tests/data/warc/*.warc.gz"))
    monkeypatch.chdir(REPO)
    assert len(load_config(path).input_files()) == len(list(WARC_DIR.glob("*.warc.gz")))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}:4: input.paths[0]: glob 'tests/data/warc/*.warc.gz' matched no files "
        f"(relative to {tmp_path}); expected at least one input file")
    assert load_config(path, check_inputs=False).input.paths == ["tests/data/warc/*.warc.gz"]


def test_good_config_loads():
    cfg = config_from_yaml(GOOD, check_inputs=True)
    assert cfg.executor == LocalExecutor(workers=2)
    assert [s.name for s in cfg.stages] == ["extract", "langid"]
    assert cfg.stages[1].params.languages == ["en"] and cfg.stages[1].params.min_score == 0.65
    assert all(p.is_absolute() for p, _ in cfg.input_files())


# ----------------------------------------------------------------------------- overrides

def resolved(path: Path, **overrides) -> dict:
    return load_config(path, overrides=overrides).to_dict()


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    return path


def test_output_workers_executor_overrides(good: Path):
    d = resolved(good, output="/tmp/elsewhere", workers=7)
    assert d["output"]["path"] == "/tmp/elsewhere"
    assert d["executor"] == {"kind": "local", "workers": 7}
    ray = resolved(good, executor="ray")
    assert ray["executor"]["kind"] == "ray" and ray["executor"]["workers"] == 2  # kept
    assert resolved(good, executor="local") == resolved(good)
    back = load_config(good, overrides={"executor": "ray", "sets": ["executor.address=auto"]})
    assert back.executor == RayExecutor(address="auto", workers=2)


def test_workers_override_without_executor_section(tmp_path: Path):
    path = tmp_path / "noexec.yaml"
    path.write_text(GOOD.replace("executor:\n  kind: local\n  workers: 2\n", ""))
    assert load_config(path).executor == LocalExecutor()
    assert resolved(path, workers=3)["executor"] == {"kind": "local", "workers": 3}
    assert resolved(path, sets=["executor.workers=4"])["executor"] == {"kind": "local",
                                                                      "workers": 4}
    assert resolved(path, executor="ray")["executor"]["kind"] == "ray"


@pytest.mark.parametrize("sets,check", [
    (["stages.langid.min_score=0.5"], lambda d: d["stages"][1]["min_score"] == 0.5),
    (["stages[1].min_score=0.5"], lambda d: d["stages"][1]["min_score"] == 0.5),
    (["stages.1.min_score=0.5"], lambda d: d["stages"][1]["min_score"] == 0.5),
    (["stages.langid.languages=[de, fr]"], lambda d: d["stages"][1]["languages"] == ["de", "fr"]),
    (["stages.langid.min_score={en: 0.9, default: 0.5}"],
     lambda d: d["stages"][1]["min_score"] == {"en": 0.9, "default": 0.5}),
    (["stages.extract.favor_precision=true"], lambda d: d["stages"][0]["favor_precision"] is True),
    (["stages[0].favor_precision=yes"], lambda d: d["stages"][0]["favor_precision"] is True),
    (["stages.langid.model=null"], lambda d: d["stages"][1]["model"] is None),
    (["input.batch_size=64"], lambda d: d["input"]["batch_size"] == 64),
    (["seed=7", "name=other"], lambda d: d["seed"] == 7 and d["name"] == "other"),
    (["name='123'"], lambda d: d["name"] == "123"),
    (["output.path=/x/y", "output.format=jsonl"],
     lambda d: d["output"]["path"] == "/x/y" and d["output"]["format"] == "jsonl"),
    ([f"input.paths[0]={WARC_DIR}/dolma*.warc.gz"],
     lambda d: d["input"]["paths"] == [f"{WARC_DIR}/dolma*.warc.gz"]),
    (["stages[1]={stage: length, min_chars: 10}"],
     lambda d: d["stages"][1]["stage"] == "length" and d["stages"][1]["min_chars"] == 10),
    (["stages.langid.min_score=0.1", "stages.langid.min_score=0.2"],  # the last one wins
     lambda d: d["stages"][1]["min_score"] == 0.2),
], ids=lambda v: v[0] if isinstance(v, list) else None)
def test_set_overrides(good: Path, sets, check):
    d = resolved(good, sets=sets)
    assert check(d), d


def test_set_addresses_stages_by_instance_name(tmp_path: Path):
    path = tmp_path / "named.yaml"
    path.write_text(GOOD.replace("  - stage: extract", "  - stage: extract\n    name: ex")
                    .replace("  - stage: langid\n    languages: [en]\n    min_score: 0.65",
                             "  - stage: stages.heuristics.length:LengthFilter"))
    cfg = load_config(path, overrides={"sets": ["stages.ex.fast=true",
                                                "stages.lengthfilter.min_chars=5"]})
    assert [s.name for s in cfg.stages] == ["ex", "lengthfilter"]
    assert cfg.stages[0].params.fast is True and cfg.stages[1].params.min_chars == 5


@pytest.mark.parametrize("sets,message", [
    (["stages.nosuch.x=1"], "--set stages.nosuch.x: no stage named 'nosuch' "
                            "(stages: extract, langid)"),
    (["stages[5].min_score=1"], "--set stages[5].min_score: index 5 out of range"),
    (["min_score"], "--set 'min_score': expected key.path=value"),
    (["=1"], "--set '=1': expected key.path=value"),
    (["name.x=1"], "--set name.x: 'x' is not inside a mapping or list"),
    (["name=[unclosed"], "--set 'name=[unclosed': value is not valid YAML"),
])
def test_bad_set_is_a_clear_error(good: Path, sets, message):
    with pytest.raises(ConfigError) as info:
        load_config(good, overrides={"sets": sets})
    assert str(info.value).startswith(f"{good}: {message}"), str(info.value)


@pytest.mark.parametrize("overrides,keypath,message", [
    ({"executor": "k8s"}, "executor.kind",
     "unknown kind 'k8s'; expected one of: local, ray, slurm"),
    ({"workers": 0}, "executor.workers", "input should be greater than or equal to 1, got 0"),
    ({"sets": ["stages.langid.min_scor=0.5"]}, "stages[1].min_scor", "unknown parameter"),
    ({"sets": ["stages[1].min_score=high"]}, "stages[1].min_score", "valid number"),
    ({"sets": ["input.paths[0]=/nonexistent/*.gz"]}, "input.paths[0]", "matched no files"),
    ({"sets": ["input.format=csv"]}, "input.format", "unknown format 'csv'"),
    ({"output": "/tmp/x", "sets": ["output.compression=lz4"]}, "output.compression",
     "input should be 'zstd'"),
])
def test_errors_from_overrides_name_the_key_not_a_file_line(good: Path, overrides, keypath,
                                                             message):
    with pytest.raises(UserError) as info:
        load_config(good, overrides=overrides)
    [err] = errors_of(info.value)
    assert err.line is None and err.path == keypath
    msg = str(info.value)
    assert msg.startswith(f"{good}: {keypath}: ") and message in msg, msg
    assert msg.endswith("(set by an override)")


def test_file_errors_keep_their_line_when_overrides_are_given(good: Path):
    good.write_text(GOOD.replace("    min_score: 0.65", "    min_scor: 0.65"))
    with pytest.raises(ConfigErrors) as info:
        load_config(good, overrides={"workers": 3, "output": "/tmp/o",
                                     "sets": ["stages.langid.languages=[de]"]})
    assert str(info.value).startswith(f"{good}:14: stages[1].min_scor: unknown parameter")


def test_with_overrides_matches_load_config_overrides(good: Path):
    ov = {"output": "/o", "workers": 3, "sets": ["stages.langid.min_score=0.5"]}
    assert load_config(good).with_overrides(**ov) == load_config(good, overrides=ov)


# ----------------------------------------------------------------------------- round trip

def demo_in_python() -> PipelineConfig:
    return PipelineConfig(
        name="demo",
        input=WarcInput(paths=["tests/data/warc/*.warc.gz"]),
        output=OutputConfig(path="runs/demo", format="parquet"),
        executor=LocalExecutor(workers=2),
        stages=[stage("extract", favor_precision=True),
                stage("langid", languages=["en"], min_score=0.65),
                stage("gopher_quality")])


def test_demo_round_trips_unresolved_and_resolved():
    cfg = load_config(DEMO, check_inputs=False)
    assert yaml.safe_load(cfg.to_yaml(resolved=False)) == yaml.safe_load(DEMO.read_text())
    again = config_from_yaml(cfg.to_yaml(resolved=True))
    assert again.to_dict() == cfg.to_dict()
    assert again == cfg and again.fingerprint() == cfg.fingerprint()
    assert again.to_yaml() == cfg.to_yaml()  # the resolved YAML is a fixed point
    assert config_from_yaml(cfg.to_yaml(resolved=False)).to_dict(resolved=False) == \
        cfg.to_dict(resolved=False)


def test_read_yaml_is_safe_load():
    """libyaml's parser where PyYAML has one (the wheel does: checked, not assumed), the
    same data as the pure-Python loader for every bundled config and its resolved form."""
    assert getattr(yaml, "CSafeLoader", None) is not None, "PyYAML built without libyaml"
    for path in sorted((REPO / "configs").glob("*.yaml")):
        text = path.read_text()
        assert read_yaml(text) == yaml.safe_load(text), path
        resolved = load_config(path, check_inputs=False).to_yaml(resolved=True)
        assert read_yaml(resolved) == yaml.safe_load(resolved), path
    odd = ("a: !!binary aGk=\nb: 2020-01-02\nc: [.inf, ~, 0x1f, 1_000, 'x: y']\n"
           "d: &k {e: 1}\nf: *k\n")
    assert read_yaml(odd) == yaml.safe_load(odd)
    with pytest.raises(yaml.constructor.ConstructorError):  # safe: no Python objects
        read_yaml("a: !!python/object/apply:os.system ['true']\n")


def test_engine_rereads_of_a_resolved_config_are_validated_once(tmp_path: Path):
    path = tmp_path / "config.yaml"
    path.write_text(load_config(DEMO, check_inputs=False).to_yaml(resolved=True))
    first = load_config(path, check_inputs=False)
    assert load_config(path, check_inputs=False) is first  # every phase of a run
    path.write_text(path.read_text().replace("name: demo", "name: changed"))
    again = load_config(path, check_inputs=False)
    assert again is not first and again.name == "changed" and first.name == "demo"
    assert load_config(path, check_inputs=False) is again
    # a user's config (inputs checked) or one with overrides is read every time
    flag = {"sets": ["seed=3"]}
    assert load_config(path, check_inputs=False, overrides=flag) is not again
    assert load_config(path, check_inputs=False, overrides=flag).seed == 3
    assert load_config(path) is not load_config(path)


def test_demo_inputs_resolve_from_the_repo_dir(monkeypatch):
    monkeypatch.chdir(REPO)
    assert len(load_config(DEMO).input_files()) == len(list(WARC_DIR.glob("*.warc.gz")))


def test_python_pipeline_equals_the_yaml_one():
    cfg = load_config(DEMO, check_inputs=False)
    py = demo_in_python()
    assert py.to_dict() == cfg.to_dict()
    assert py.to_dict(resolved=False) == cfg.to_dict(resolved=False)
    assert yaml.safe_load(py.to_yaml(resolved=False)) == yaml.safe_load(DEMO.read_text())
    assert py.fingerprint() == cfg.fingerprint()
    assert py == cfg
    assert config_from_dict(yaml.safe_load(py.to_yaml())).to_dict() == py.to_dict()


def test_everything_round_trips(tmp_path: Path):
    src = REPO / "tests" / "data" / "lid" / "lingua-sentences-12lang.jsonl"
    text = f"""\
name: everything
seed: 3
input:
  format: jsonl
  paths:
  - {src}
  text_key: body
  fields:
  - gold
output:
  path: {tmp_path / 'run'}
  format: jsonl
  compression: gzip
  drop_columns:
  - html
executor:
  kind: ray
  address: auto
  workers: 4
stages:
- stage: langid
  languages:
  - fr
  - de
  min_score:
    fr: 0.5
    default: 0.8
- stage: length
  name: short
  min_chars: 10
- stage: stages.heuristics.length:LengthFilter
  max_chars: 100000
- stage: gopher_quality
  mode: annotate
"""
    path = tmp_path / "everything.yaml"
    path.write_text(text)
    cfg = load_config(path)
    assert [s.name for s in cfg.stages] == ["langid", "short", "lengthfilter", "gopher_quality"]
    assert yaml.safe_load(cfg.to_yaml(resolved=False)) == yaml.safe_load(text)
    assert config_from_yaml(cfg.to_yaml()).to_dict() == cfg.to_dict()
    assert config_from_yaml(cfg.to_yaml()) == cfg
    py = PipelineConfig(
        name="everything", seed=3,
        input=JsonlInput(paths=[str(src)], text_key="body", fields=["gold"]),
        output=OutputConfig(path=str(tmp_path / "run"), format="jsonl", compression="gzip",
                            drop_columns=["html"]),
        executor=RayExecutor(address="auto", workers=4),
        stages=[stage("langid", languages=["fr", "de"], min_score={"fr": 0.5, "default": 0.8}),
                stage("length", name="short", min_chars=10),
                stage("stages.heuristics.length:LengthFilter", max_chars=100000),
                stage("gopher_quality", mode="annotate")])
    assert py.to_dict() == cfg.to_dict() and py.to_dict(False) == cfg.to_dict(False)


def test_stage_helper_errors():
    with pytest.raises(UserError, match=r"unknown stage 'langidd'; expected one of: "):
        stage("langidd")
    with pytest.raises(UserError, match=r"stage 'langid': min_scor: unknown parameter; "
                                         r"expected one of: mode, languages, min_score"):
        stage("langid", min_scor=0.5)
    with pytest.raises(UserError, match=r"stage 'langid': languages: input should be a valid list"):
        stage("langid", languages="en")
    with pytest.raises(UserError, match=r"stage 'langid': min_score\.en: input should be a valid "
                                        r"number"):
        stage("langid", min_score={"en": "high"})


# ----------------------------------------------------------------------------- fingerprint

def test_fingerprint_ignores_executor_and_output_path():
    base = config_from_yaml(GOOD)
    fp = base.fingerprint()
    assert base.with_overrides(workers=1).fingerprint() == fp
    assert base.with_overrides(workers=16, output="/elsewhere").fingerprint() == fp
    assert base.with_overrides(executor="ray").fingerprint() == fp
    assert base.with_overrides(sets=["executor.max_retries=9"], executor="ray").fingerprint() == fp
    no_exec = config_from_yaml(GOOD.replace("executor:\n  kind: local\n  workers: 2\n", ""))
    assert no_exec.fingerprint() == fp
    # spelling out a default does not change what the pipeline does
    assert base.with_overrides(sets=["stages.langid.mode=filter"]).fingerprint() == fp
    assert len(fp) == 64 and fp == config_from_yaml(GOOD).fingerprint()


@pytest.mark.parametrize("sets", [
    ["stages.langid.min_score=0.5"],
    ["stages.langid.languages=[de]"],
    ["stages.extract.favor_precision=true"],
    ["stages[1]={stage: langid, languages: [en], min_score: 0.65, name: lid}"],
    ["stages[1]={stage: length, min_chars: 3}"],
    ["output.format=jsonl"],
    ["output.rows_per_file=10"],
    ["input.batch_size=64"],
    ["seed=1"],
], ids=lambda s: s[0])
def test_fingerprint_changes_with_what_decides_the_output(sets):
    base = config_from_yaml(GOOD)
    assert base.with_overrides(sets=sets).fingerprint() != base.fingerprint()


def test_fingerprint_changes_when_a_stage_is_added():
    base = config_from_yaml(GOOD)
    more = config_from_yaml(GOOD + "  - stage: gopher_quality\n")
    assert more.fingerprint() != base.fingerprint()


# ----------------------------------------------------------------------------- stage names

def test_duplicate_stage_needs_a_distinct_name():
    dup = GOOD.replace("  - stage: extract",  # the first keeps the html the second reads
                       "  - stage: extract\n    keep_html: true\n  - stage: extract")
    with pytest.raises(ConfigErrors, match=r"stages\[1\]\.name: duplicate stage name"):
        config_from_yaml(dup)
    ok = config_from_yaml(dup.replace("keep_html: true\n  - stage: extract\n",
                                      "keep_html: true\n  - stage: extract\n    name: again\n"))
    assert [s.name for s in ok.stages] == ["extract", "again", "langid"]
    assert [s.build().name for s in ok.stages] == ["extract", "again", "langid"]
    # two explicit names that collide are an error too
    with pytest.raises(ConfigErrors, match=r"stages\[2\]\.name: duplicate stage name 'x'"):
        config_from_yaml(GOOD.replace("  - stage: extract", "  - stage: extract\n    name: x")
                         .replace("  - stage: langid", "  - stage: length\n    name: x\n"
                                                       "  - stage: langid\n    name: x"))


def test_duplicate_and_reserved_names_in_python():
    inp, out = WarcInput(paths=[WARCS]), OutputConfig(path="runs/x")
    with pytest.raises(ConfigError, match=r"stages\[1\]\.name: duplicate stage name 'extract'"):
        PipelineConfig(input=inp, output=out, stages=[stage("extract"), stage("extract")])
    ok = PipelineConfig(input=inp, output=out,
                        stages=[stage("extract"), stage("extract", name="extract2")])
    assert [s.name for s in ok.stages] == ["extract", "extract2"]
    for reserved in ("read", "write"):
        with pytest.raises(UserError, match=rf"name '{reserved}': '{reserved}' is reserved"):
            stage("length", name=reserved)
