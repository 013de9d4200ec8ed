"""manifest.json records inputs, models and outputs; verify and reproduce use it."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from conftest import DATA, REPO, WARC_DIR, shard_hashes, thresher

from pipelines import run_pipeline, stage
from pipelines.config import JsonlInput, OutputConfig, PipelineConfig, WarcInput
from pipelines.errors import UserError
from pipelines.manifest import load_manifest, verify
from pipelines.reproduce import reproduce


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    src = tmp_path / "inputs"
    src.mkdir()
    lines = (DATA / "lid" / "lingua-sentences-12lang.jsonl").read_text().splitlines(True)
    (src / "a.jsonl").write_text("".join(lines[:200]))
    (src / "b.jsonl").write_text("".join(lines[200:]))
    cfg = PipelineConfig(input=JsonlInput(paths=[str(src / "*.jsonl")]),
                         output=OutputConfig(path=str(tmp_path / "run")),
                         stages=[stage("langid", languages=["de", "en", "it"], min_score=0.5)])
    return run_pipeline(cfg).root


def test_manifest_records_everything(snapshot: Path):
    m = load_manifest(snapshot)
    assert m["config_fingerprint"] and m["config"]["stages"][0]["stage"] == "langid"
    assert [i["source"] for i in m["inputs"]] == ["a.jsonl", "b.jsonl"]
    assert all(len(i["sha256"]) == 64 and i["size"] > 0 for i in m["inputs"])
    assert m["models"][0]["sha256"].startswith("8f3472cf")
    assert {"pyarrow", "trafilatura", "pydantic"} <= set(m["packages"])
    assert sum(o["rows"] for o in m["outputs"]) == m["stats"]["write"]["docs_out"] > 0
    assert m["thresher"]["version"]
    assert verify(m, snapshot) == []


def test_verify_detects_changed_missing_and_extra_shards(snapshot: Path):
    m = load_manifest(snapshot)
    first = snapshot / m["outputs"][0]["path"]
    data = bytearray(first.read_bytes())
    data[100] ^= 0xFF
    first.write_bytes(bytes(data))
    shutil.copy(first, snapshot / "data" / "part-99999-0000.parquet")
    (snapshot / m["outputs"][-1]["path"]).unlink()
    problems = verify(m, snapshot)
    assert any("sha256" in p for p in problems)
    assert any(p.startswith("missing shard") for p in problems)
    assert any(p.startswith("unexpected shard") for p in problems)
    proc = thresher("verify", str(snapshot / "manifest.json"), str(snapshot), check=False)
    assert proc.returncode == 1 and "DIFF" in proc.stdout


def test_verify_names_an_unreadable_shard_and_a_row_count_change(snapshot: Path):
    import pyarrow.parquet as pq

    m = load_manifest(snapshot)
    first, last = (snapshot / m["outputs"][i]["path"] for i in (0, -1))
    with first.open("ab") as f:
        f.write(b"x")  # no longer ends with Parquet's magic bytes
    pq.write_table(pq.read_table(last).slice(1), last)
    problems = verify(m, snapshot)
    assert len(problems) == 4
    assert f"{m['outputs'][0]['path']}: not readable as Parquet" in problems[1]
    assert problems[3] == (f"{m['outputs'][-1]['path']}: {m['outputs'][-1]['rows'] - 1} rows "
                           f"!= expected {m['outputs'][-1]['rows']}")


def test_reproduce_is_byte_identical(snapshot: Path, tmp_path: Path):
    run, problems = reproduce(snapshot / "manifest.json", str(tmp_path / "again"), workers=2)
    assert problems == []
    assert shard_hashes(run.root) == shard_hashes(snapshot)


def test_reproduce_warns_about_version_differences(snapshot: Path, tmp_path: Path):
    m = load_manifest(snapshot)
    m["packages"]["pyarrow"] = "0.0.1"
    m["packages"]["not-installed-here"] = "1.0"
    m["thresher"].update(version="0.0.0", commit="0" * 40, dirty=True)
    other = tmp_path / "manifest.json"
    other.write_text(json.dumps(m))
    warnings: list[str] = []
    run, problems = reproduce(other, str(tmp_path / "again"), warn=warnings.append)
    assert problems == []  # the same code made the snapshot: the outputs still match
    pyarrow = load_manifest(snapshot)["packages"]["pyarrow"]
    assert f"package pyarrow {pyarrow} differs from the snapshot's 0.0.1" in warnings
    assert "package not-installed-here missing differs from the snapshot's 1.0" in warnings
    assert any(w.startswith("thresher ") and "differs from the snapshot's 0.0.0" in w
               for w in warnings)
    if load_manifest(snapshot)["thresher"]["commit"]:  # run from a git checkout
        assert any(w.startswith("thresher commit ") and w.endswith("snapshot's 000000000000")
                   for w in warnings)
    assert any("uncommitted changes; their code is in no commit" in w for w in warnings)


def test_reproduce_refuses_a_modified_input(snapshot: Path, tmp_path: Path):
    m = load_manifest(snapshot)
    changed = Path(m["inputs"][1]["path"])
    changed.write_text(changed.read_text().replace("a", "e", 1))
    with pytest.raises(UserError, match=r"b\.jsonl changed since the snapshot"):
        reproduce(snapshot / "manifest.json", str(tmp_path / "again"))
    proc = thresher("reproduce", str(snapshot / "manifest.json"), str(tmp_path / "x"),
                    check=False)
    assert proc.returncode == 2 and "b.jsonl changed" in proc.stderr
    assert json.loads((snapshot / "stats.json").read_text())  # the snapshot itself is untouched


def test_every_file_a_stage_reads_is_in_the_manifest(tmp_path: Path):
    """Blocklists and bad-word lists decide the output like models: hashed, and checked by
    reproduce (a changed one and a missing one are each one error naming the file)."""
    blocklist, words = tmp_path / "blocklist.txt", tmp_path / "bad-words.txt"
    blocklist.write_text("maria-antoniak.github.io\n")
    words.write_text("research\n")
    cfg = PipelineConfig(
        input=WarcInput(paths=[str(WARC_DIR / "dolma-wget-2024-sample-0000.warc.gz")]),
        output=OutputConfig(path=str(tmp_path / "run")),
        stages=[stage("extract"), stage("url_filter", blocklist_file=str(blocklist)),
                stage("langid", min_score=0.0),
                stage("c4", bad_words_file={"default": str(words)}, min_sentences=None)])
    run = run_pipeline(cfg).root
    m = load_manifest(run)
    files = {x["path"]: x["sha256"] for x in m["models"]}
    assert files.pop(str(REPO / "stages" / "models" / "lid.176.ftz")).startswith("8f3472cf")
    assert files == {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in (blocklist, words)}
    assert m["stats"]["url_filter"]["dropped"]["blocked_domain"] == 6
    assert m["stats"]["c4"]["dropped"]["bad_words"] > 0
    blocklist.write_text("maria-antoniak.github.io\nsoldaini.net\n")
    proc = thresher("reproduce", str(run / "manifest.json"), str(tmp_path / "x"), check=False)
    assert proc.returncode == 2
    assert f"model {blocklist} changed since the snapshot" in proc.stderr
    words.unlink()  # and the blocklist is still changed: one error names both
    with pytest.raises(UserError) as err:
        reproduce(run / "manifest.json", str(tmp_path / "y"))
    assert str(err.value) == (f"2 files differ from the snapshot: model {words} named in the "
                              f"manifest is missing; model {blocklist} changed since the "
                              "snapshot (sha256 differs)")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_the_demo_reproduced_from_its_manifest_verifies_clean(reference_run: Path,
                                                               tmp_path: Path):
    manifest = reference_run / "manifest.json"
    proc = thresher("verify", str(manifest), str(reference_run))
    assert "all" in proc.stdout and "match" in proc.stdout
    proc = thresher("reproduce", str(manifest), str(tmp_path / "again"), "--workers", "1")
    assert "every shard matches the manifest byte for byte" in proc.stdout
    assert "package" not in proc.stderr and "fingerprint" not in proc.stderr
    assert shard_hashes(tmp_path / "again") == shard_hashes(reference_run)
    assert load_manifest(tmp_path / "again")["inputs"] == load_manifest(reference_run)["inputs"]


@pytest.mark.parametrize("text", [
    "Name: a\nVersion: 1\n\nName: not-this\nbody", "name:b\nVERSION:  2 \r\nName: c",
    "Metadata-Version: 2.1\nName: x\n  y\n\tz\nVersion: 3", "Version: 1\n", "",
    "Name: a\r\nSummary: s: t\r\nVersion: 1\r\n\r\nbody"])
def test_metadata_header_fields_as_email_reads_them(text):
    """installed_packages reads Name and Version of a metadata header without the email
    parser, as it does."""
    import email

    from pipelines.manifest import _header_fields

    header = email.message_from_string(text.split("\n\n", 1)[0])
    got = _header_fields(text, ("name", "version"))
    assert (got.get("name"), got.get("version")) == (header.get("Name"), header.get("Version"))


def test_installed_packages_as_importlib_metadata_reads_them():
    """Every distribution on sys.path with the version ``importlib.metadata.version`` gives
    (the first of a name: the one imported; a test process may see two, e.g. wheel's)."""
    from importlib.metadata import distributions, version

    from pipelines.manifest import installed_packages

    names = {d.metadata["Name"].lower() for d in distributions() if d.metadata["Name"]}
    got = installed_packages()
    assert len(got) > 100 and sorted(got) == sorted(names)
    assert all(got[n] == version(n) for n in names)
