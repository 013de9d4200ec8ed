"""`thresher diff` between real runs, and `thresher reproduce --remap`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import DATA, shard_hashes, thresher

from pipelines import run_pipeline, stage
from pipelines.config import JsonlInput, OutputConfig, PipelineConfig
from pipelines.errors import UserError
from pipelines.inspection.diff import diff_runs, load_side
from pipelines.reproduce import remap_path, reproduce


def make_inputs(src: Path) -> Path:
    src.mkdir(parents=True)
    lines = (DATA / "lid" / "lingua-sentences-12lang.jsonl").read_text().splitlines(True)
    (src / "a.jsonl").write_text("".join(lines[:200]))
    (src / "b.jsonl").write_text("".join(lines[200:]))
    return src


def langid_run(src: Path, out: Path, min_score: float) -> Path:
    cfg = PipelineConfig(input=JsonlInput(paths=[str(src / "*.jsonl")]),
                         output=OutputConfig(path=str(out)),
                         stages=[stage("langid", languages=["de", "en", "it"],
                                       min_score=min_score)])
    return run_pipeline(cfg).root


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path, Path]:
    """Two runs differing in langid.min_score, and a third on a modified copy of the inputs."""
    tmp = tmp_path_factory.mktemp("diff")
    src = make_inputs(tmp / "inputs")
    a = langid_run(src, tmp / "a", 0.5)
    b = langid_run(src, tmp / "b", 0.9)
    moved = tmp / "inputs2"
    shutil.copytree(src, moved)
    b_jsonl = moved / "b.jsonl"
    b_jsonl.write_text("".join(b_jsonl.read_text().splitlines(True)[:-10]))
    c = langid_run(moved, tmp / "c", 0.5)
    return a, b, c


def test_threshold_change_and_count_deltas(runs):
    a, b, _ = runs
    d = diff_runs(a, b)
    assert d["config"] == [{"key": "stages.langid.min_score", "a": 0.5, "b": 0.9}]
    assert not d["same_fingerprint"]
    assert d["inputs"] == {"added": [], "removed": [], "changed": []}
    assert d["packages"] == [] and d["thresher"] == []
    sa = json.loads((a / "stats.json").read_text())["stages"]
    sb = json.loads((b / "stats.json").read_text())["stages"]
    counts = {(c["stage"], c["kind"], c["reason"]): c for c in d["counts"]}
    low = counts[("langid", "dropped", "low_score")]
    assert (low["a"], low["b"]) == (sa["langid"]["dropped"].get("low_score", 0),
                                    sb["langid"]["dropped"]["low_score"])
    assert low["delta"] == low["b"] - low["a"] > 0
    out = counts[("langid", "docs_out", "")]
    assert out["delta"] == sb["langid"]["docs_out"] - sa["langid"]["docs_out"] < 0
    assert ("read", "docs_in", "") not in counts  # unchanged rows are not listed
    assert d["output_rows"]["delta"] == out["delta"]


def test_modified_input_is_detected(runs):
    a, _, c = runs
    d = diff_runs(a / "manifest.json", c / "manifest.json")
    assert d["inputs"]["added"] == d["inputs"]["removed"] == []
    [changed] = d["inputs"]["changed"]
    assert changed["source"] == "b.jsonl" and changed["a"]["sha256"] != changed["b"]["sha256"]
    assert [x["key"] for x in d["config"]] == ["input.paths"]  # the copy lives elsewhere
    read = {(x["stage"], x["kind"]): x for x in d["counts"]}[("read", "docs_in")]
    assert read["delta"] == -10


def test_identical_runs_have_no_differences(runs):
    a, _, _ = runs
    d = diff_runs(a, a / "manifest.json")
    assert d["same_fingerprint"] and not d["config"] and not d["counts"]
    out = thresher("diff", str(a), str(a)).stdout
    assert "no differences" in out


def test_cli_report_and_json(runs):
    a, b, c = runs
    proc = thresher("diff", str(a), str(b))
    assert proc.returncode == 0
    assert "stages.langid.min_score" in proc.stdout and "0.5" in proc.stdout
    assert "low_score" in proc.stdout and "inputs: identical" in proc.stdout
    js = json.loads(thresher("diff", str(a), str(c), "--json").stdout)
    assert js["inputs"]["changed"][0]["source"] == "b.jsonl"
    out = thresher("diff", str(a), str(c)).stdout
    assert "b.jsonl" in out and "changed" in out and "sha256" in out


def test_unreadable_argument_exits_2(runs, tmp_path: Path):
    a, _, _ = runs
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for other, msg in ((tmp_path / "nope", "no such run"), (bad, "not a JSON manifest"),
                       (tmp_path, "not a finished thresher run")):
        proc = thresher("diff", str(a), str(other), check=False)
        assert proc.returncode == 2 and msg in proc.stderr and "Traceback" not in proc.stderr


def test_run_dir_without_manifest_compares_config_and_counts(runs, tmp_path: Path):
    a, b, _ = runs
    bare = tmp_path / "bare"
    shutil.copytree(b, bare)
    (bare / "manifest.json").unlink()
    d = diff_runs(a, bare)
    assert d["config"] == [{"key": "stages.langid.min_score", "a": 0.5, "b": 0.9}]
    assert d["packages"] == [] and d["inputs"]["changed"] == []  # sizes match; no hashes
    assert d["counts"]


# ----------------------------------------------------------------------------- --remap

def test_remap_path_matches_whole_components():
    remap = [("/data/old", "/mnt/new"), ("/data", "/other")]
    assert remap_path("/data/old/x.jsonl", remap) == "/mnt/new/x.jsonl"
    assert remap_path("/data/older/x.jsonl", remap) == "/other/older/x.jsonl"
    assert remap_path("/data/old", remap) == "/mnt/new"
    assert remap_path("/elsewhere/x", remap) == "/elsewhere/x"
    assert remap_path("/data/old/*.jsonl", [("/data/old/", "/mnt/new/")]) == "/mnt/new/*.jsonl"


def test_reproduce_with_remapped_inputs(tmp_path: Path):
    src = make_inputs(tmp_path / "machine1" / "inputs")
    snap = langid_run(src, tmp_path / "snap", 0.5)
    shutil.move(tmp_path / "machine1", tmp_path / "machine2")
    manifest = snap / "manifest.json"
    with pytest.raises(UserError, match="a.jsonl named in the manifest is missing"):
        reproduce(manifest, str(tmp_path / "x"))
    old, new = str(tmp_path / "machine1"), str(tmp_path / "machine2")
    proc = thresher("reproduce", str(manifest), str(tmp_path / "again"),
                    "--remap", f"{old}={new}")
    assert "every shard matches" in proc.stdout and "fingerprint" not in proc.stderr
    assert shard_hashes(tmp_path / "again") == shard_hashes(snap)
    # hashes are still checked at the new place
    moved = tmp_path / "machine2" / "inputs" / "b.jsonl"
    moved.write_text(moved.read_text().replace("a", "e", 1))
    proc = thresher("reproduce", str(manifest), str(tmp_path / "again2"),
                    "--remap", f"{old}={new}", check=False)
    assert proc.returncode == 2 and f"{new}/inputs/b.jsonl changed" in proc.stderr
    proc = thresher("reproduce", str(manifest), str(tmp_path / "again3"), "--remap", "nonsense",
                    check=False)
    assert proc.returncode == 2 and "expected OLD_PREFIX=NEW_PREFIX" in proc.stderr


def test_package_and_thresher_version_changes(runs, tmp_path: Path):
    """A snapshot made with other package versions (its manifest edited as if)."""
    a, _, _ = runs
    m = json.loads((a / "manifest.json").read_text())
    real = m["packages"]["trafilatura"]
    m["packages"]["trafilatura"] = "0.0.1"
    del m["packages"]["pyarrow"]
    m["packages"]["not-installed-here"] = "1.0"
    m["thresher"]["version"] = "0.0.0"
    other = tmp_path / "manifest.json"
    other.write_text(json.dumps(m))
    d = diff_runs(a, other)
    assert d["packages"] == [
        {"name": "not-installed-here", "a": None, "b": "1.0"},
        {"name": "pyarrow", "a": load_side(a)["packages"]["pyarrow"], "b": None},
        {"name": "trafilatura", "a": real, "b": "0.0.1"}]
    assert [v["name"] for v in d["thresher"]] == ["version"]
    assert d["same_fingerprint"] and not d["counts"] and not d["config"]
    out = thresher("diff", str(a), str(other)).stdout
    assert "trafilatura" in out and "0.0.1" in out and "thresher version" in out


def test_a_changed_model_file(tmp_path: Path):
    """The same blocklist path with other contents, dropping as many documents: only the
    models section tells the runs apart."""
    src = make_inputs(tmp_path / "inputs")
    lines = (src / "a.jsonl").read_text().splitlines(True)
    (src / "a.jsonl").write_text("".join(
        json.dumps({**json.loads(x), "url": f"https://site{i % 4}.example/p{i}"}) + "\n"
        for i, x in enumerate(lines)))
    blocklist = tmp_path / "blocklist.txt"

    def run(out: str, listed: str) -> Path:
        blocklist.write_text(listed + "\n")
        return run_pipeline(PipelineConfig(
            input=JsonlInput(paths=[str(src / "a.jsonl")]), output=OutputConfig(path=str(
                tmp_path / out)), stages=[stage("url_filter", blocklist_file=str(blocklist))])).root

    a, b = run("a", "site1.example"), run("b", "site2.example")
    d = diff_runs(a, b)
    assert not d["config"] and not any(d["inputs"].values()) and not d["counts"]
    [m] = d["models"]
    assert m["path"] == str(blocklist) and m["a"] != m["b"]
    out = thresher("diff", str(a), str(b)).stdout
    assert "models" in out and "blocklist.txt" in out and m["a"][:12] in out
    moved = tmp_path / "elsewhere.txt"
    shutil.copy(blocklist, moved)
    c = run_pipeline(PipelineConfig(
        input=JsonlInput(paths=[str(src / "a.jsonl")]), output=OutputConfig(path=str(
            tmp_path / "c")), stages=[stage("url_filter", blocklist_file=str(moved))])).root
    assert diff_runs(b, c)["models"] == []  # the same bytes at another path


def test_artifacts_differing_and_missing(runs, tmp_path: Path):
    """decontaminate's n-gram index (the manifest's artifacts): runs against evaluation
    files with other items built another index, `changed`; a run without the stage has
    none, `missing in A`/`B`; the same items give the same index, so nothing is listed,
    even with another action; a run dir without a manifest records none."""
    import hashlib

    from test_decontaminate import DOCS, SET

    langid_a, _, _ = runs
    src = tmp_path / "in"
    src.mkdir()
    (src / "docs.jsonl").write_text("".join(json.dumps({"id": d["id"], "text": d["text"]})
                                            + "\n" for d in DOCS[:80]))
    items = (SET / "wiki-passages.jsonl").read_text().splitlines(True)
    evals = tmp_path / "eval.jsonl"

    def run(out: str, lines: list[str], action: str = "drop") -> Path:
        evals.write_text("".join(lines))  # the same path each time: only its bytes change
        return run_pipeline(PipelineConfig(
            input=JsonlInput(paths=[str(src / "docs.jsonl")], id_key="id"),
            output=OutputConfig(path=str(tmp_path / out)),
            stages=[stage("decontaminate", action=action, eval_sets=[
                {"name": "wiki", "path": str(evals), "fields": ["context"],
                 "id_field": "id"}])])).root

    full, fewer = run("full", items), run("fewer", items[:40])
    annotated = run("annotated", items, action="annotate")
    index = "work/decontaminate/index.parquet"
    sha = {r: hashlib.sha256((r / index).read_bytes()).hexdigest()
           for r in (full, fewer, annotated)}
    size = {r: (r / index).stat().st_size for r in (full, fewer, annotated)}
    assert sha[full] != sha[fewer] and sha[full] == sha[annotated]

    d = diff_runs(full, fewer)
    assert d["artifacts"] == [{
        "path": index, "stage": "decontaminate", "step": "index", "change": "changed",
        "a": {"sha256": sha[full], "bytes": size[full]},
        "b": {"sha256": sha[fewer], "bytes": size[fewer]}}]
    out = thresher("diff", str(full), str(fewer)).stdout
    assert "artifacts" in out and index in out and "changed" in out
    assert sha[full][:12] in out and sha[fewer][:12] in out
    js = json.loads(thresher("diff", str(full), str(fewer), "--json").stdout)
    assert js["artifacts"] == d["artifacts"]

    assert diff_runs(full, annotated)["artifacts"] == []  # same index bytes
    assert diff_runs(full, full / "manifest.json")["artifacts"] == []

    gone = diff_runs(langid_a, full)["artifacts"]
    assert [(x["path"], x["change"], x["a"], x["b"]["sha256"]) for x in gone] == \
        [(index, "missing in A", None, sha[full])]
    gone = diff_runs(full, langid_a)["artifacts"]
    assert [(x["path"], x["change"], x["a"]["sha256"], x["b"]) for x in gone] == \
        [(index, "missing in B", sha[full], None)]
    out = thresher("diff", str(full), str(langid_a)).stdout
    assert "missing in B" in out and index in out

    # a manifest-less run dir records no artifacts: nothing compared, nothing reported
    bare = tmp_path / "bare"
    shutil.copytree(fewer, bare)
    (bare / "manifest.json").unlink()
    assert diff_runs(full, bare)["artifacts"] == []
