"""configs/fineweb-edu-like.yaml: FineWeb's chain on the bundled WARCs, then an educational
score (a proxy classifier committed in configs/models/), a score threshold and keep_top
per language.

The proxy model must be the file the config pins, and the training command written in
the config's header must rebuild it byte for byte. The cut is checked against the scores
of every page that reaches it (the same config with both cuts in `mode: annotate`).
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from conftest import REPO, thresher
from test_cli_errors import THRESHER

CONFIG = REPO / "configs" / "fineweb-edu-like.yaml"
MODEL = REPO / "configs" / "models" / "fineweb-edu-proxy.bin"
CHAIN = ["read", "extract", "langid", "gopher_repetition", "gopher_quality", "c4",
         "fineweb_quality", "minhash_dedup", "pii", "quality_classifier", "keep_top", "write"]


def stage(name: str) -> dict:
    return next(s for s in yaml.safe_load(CONFIG.read_text())["stages"] if s["stage"] == name)


def rows(run: Path) -> list[dict]:
    return [r for p in sorted((run / "data").glob("*.parquet"))
            for r in pq.read_table(p).to_pylist()]


def header_commands() -> list[str]:
    """The retraining commands of the config's header, continuation lines joined."""
    lines = CONFIG.read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if "checked by the test):" in ln) + 1
    cmds: list[str] = []
    for ln in lines[start:]:
        body = ln.removeprefix("#").strip()
        if not body.startswith(".venv/") and not (cmds and cmds[-1].endswith("\\")):
            break
        cmds.append(cmds.pop()[:-1] + " " + body if cmds and cmds[-1].endswith("\\")
                    else body)
    return cmds


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fineweb-edu") / "run"
    thresher("run", str(CONFIG), "--output", str(out), "--quiet")
    return out


@pytest.fixture(scope="module")
def annotated(tmp_path_factory) -> Path:
    """The same run with both cuts annotating instead of dropping: every page's score."""
    out = tmp_path_factory.mktemp("fineweb-edu-annotated") / "run"
    thresher("run", str(CONFIG), "--output", str(out), "--quiet",
             "--set", "stages.quality_classifier.mode=annotate",
             "--set", "stages.keep_top.mode=annotate")
    return out


def test_the_proxy_model_is_pinned_and_its_training_command_rebuilds_it(tmp_path):
    sha = hashlib.sha256(MODEL.read_bytes()).hexdigest()
    meta = json.loads(MODEL.with_name(MODEL.name + ".json").read_text())
    assert sha == stage("quality_classifier")["model_sha256"] == meta["sha256"]
    assert meta["labels"] == {"positive": "edu", "negative": "other"}
    m = meta["metrics"]  # the held-out figures the header quotes
    assert (round(m["precision"], 3), round(m["recall"], 3), round(m["auc"], 3)) == \
        (0.939, 0.963, 0.996)
    cmds = header_commands()
    assert len(cmds) == 2 and "train-classifier" in cmds[1]
    for cmd in cmds:
        cmd = (cmd.replace("runs/fineweb-edu-proxy", str(tmp_path / "classes"))
               .replace("configs/models/fineweb-edu-proxy.bin", str(tmp_path / "m.bin"))
               .replace(".venv/bin/python", sys.executable)
               .replace(".venv/bin/thresher", f"{sys.executable} -m pipelines.cli"))
        subprocess.run(cmd, shell=True, cwd=REPO, check=True, capture_output=True)
    again = json.loads((tmp_path / "m.bin.json").read_text())
    assert again["documents"] == meta["documents"]
    assert [f["sha256"] for f in again["inputs"]["positive"] + again["inputs"]["negative"]] \
        == [f["sha256"] for f in meta["inputs"]["positive"] + meta["inputs"]["negative"]]
    if platform.machine() in ("x86_64", "AMD64"):  # where the committed file was trained
        assert again["sha256"] == sha
    else:  # fastText's float arithmetic may differ on other CPUs: the same quality, then
        assert abs(again["metrics"]["auc"] - m["auc"]) < 0.01


def strings(value) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) else []


def test_the_model_metadata_is_portable_and_its_command_rebuilds_it(tmp_path):
    """configs/models/fineweb-edu-proxy.bin.json names no directory of the machine it was
    made on, and its recorded command, run from another root that holds its inputs (as a
    fresh clone would after the header's first command), writes the same metadata and
    model."""
    meta = json.loads(MODEL.with_name(MODEL.name + ".json").read_text())
    paths = [s for s in strings(meta) if "/" in s and " " not in s]
    assert "configs/models/fineweb-edu-proxy.bin" in paths
    assert not [s for s in paths if s.startswith(("/", "~")) or ":\\" in s], paths
    assert meta["stage"]["model"] == stage("quality_classifier")["model"]
    cmd = meta["command"]
    assert cmd[:2] == ["thresher", "train-classifier"]
    # the header's command, with the defaults it leaves out spelled out
    header = header_commands()[1].split()
    assert header[1] == "train-classifier"
    given = dict(zip(header[2::2], header[3::2]))
    recorded = dict(zip(cmd[2::2], cmd[3::2]))
    assert len(cmd) == 2 + 2 * len(recorded) and len(header) == 2 + 2 * len(given)
    assert {k: recorded[k] for k in given} == given
    assert {k: v for k, v in recorded.items() if k not in given} == {
        "--text-key": "text", "--test-fraction": "0.2", "--seed": "0", "--epoch": "10",
        "--lr": "0.2"}
    root = tmp_path / "clone"
    (root / "configs" / "models").mkdir(parents=True)
    make = [sys.executable, str(MODEL.parent / "make_fineweb_edu_proxy.py"),
            "runs/fineweb-edu-proxy"]
    subprocess.run(make, cwd=root, check=True, capture_output=True)
    subprocess.run([*THRESHER, *cmd[1:]], cwd=root, check=True, capture_output=True)
    again = json.loads((root / "configs" / "models" / (MODEL.name + ".json")).read_text())
    if platform.machine() in ("x86_64", "AMD64"):  # where the committed file was trained
        assert (root / "configs" / "models" / MODEL.name).read_bytes() == MODEL.read_bytes()
        assert {k: v for k, v in again.items() if k != "versions"} == \
            {k: v for k, v in meta.items() if k != "versions"}
    else:
        assert again["inputs"] == meta["inputs"] and again["command"] == cmd


def test_the_funnel_is_fineweb_then_the_educational_cut(run):
    stats = json.loads((run / "stats.json").read_text())["stages"]
    assert list(stats) == CHAIN
    for a, b in zip(CHAIN, CHAIN[1:]):
        assert stats[a]["docs_out"] == stats[b]["docs_in"], (a, b)
    for name in ("gopher_repetition", "gopher_quality", "fineweb_quality"):
        assert stats[name]["docs_in"] > stats[name]["docs_out"] > 0, name
    qc, top = stats["quality_classifier"], stats["keep_top"]
    assert qc["dropped"] == {"low_quality": qc["docs_in"] - qc["docs_out"]}
    assert qc["docs_in"] > 2 * qc["docs_out"] > 0  # most FineWeb pages are not educational
    assert top["dropped"] == {"below_threshold": top["docs_in"] - top["docs_out"]}
    groups = json.loads((run / "work" / "keep_top" / "thresholds.json").read_text())["groups"]
    assert set(groups) == {"en"}
    assert groups["en"]["documents"] == top["docs_in"]
    assert groups["en"]["kept"] == top["docs_out"] == math.ceil(0.25 * top["docs_in"])
    out = rows(run)
    assert len(out) == stats["write"]["docs_out"]
    for r in out:
        assert r["language"] == "en" and r["edu_score"] >= groups["en"]["threshold"] >= 0.1


def test_the_cut_keeps_the_best_quarter_of_the_pages_over_the_threshold(run, annotated):
    pages = rows(annotated)  # every page that reached the classifier, with its score
    stats = json.loads((run / "stats.json").read_text())["stages"]
    assert len(pages) == stats["quality_classifier"]["docs_in"]
    over = sorted((r for r in pages if r["edu_score"] >= 0.1),
                  key=lambda r: (-r["edu_score"], r["id"]))
    assert len(over) == stats["quality_classifier"]["docs_out"]
    best = over[:math.ceil(0.25 * len(over))]
    assert {r["id"] for r in rows(run)} == {r["id"] for r in best}
    # the scores are the model's on what it was trained to read (first 2,000 characters)
    import fasttext

    from pipelines.fasttext import fasttext_text, positive_scores

    fasttext.FastText.eprint = lambda *a, **k: None
    model = fasttext.load_model(str(MODEL))
    want = positive_scores(model, [fasttext_text(r["text"], 2000) for r in pages], "edu")
    assert [round(r["edu_score"], 6) for r in pages] == [round(float(w), 6) for w in want]
    # and they order pages as the header says: article-like prose above navigation pages
    by_url = {r["url"]: r["edu_score"] for r in pages}
    nav = [s for u, s in by_url.items() if re.search(r"archive\.org/(about|web)/", u)]
    assert nav and max(nav) < min(r["edu_score"] for r in best)
