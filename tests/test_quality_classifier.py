"""quality_classifier (a real fastText model trained in the session on real text) and
keep_top (global percentile thresholds from a mergeable sketch)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import fasttext
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import shard_hashes
from qc_helpers import MAX_CHARS, corpus, trained_model

from pipelines import config_from_dict, run_pipeline, stage
from pipelines.errors import UserError
from pipelines.fasttext import fasttext_text, positive_scores
from stages.model_filters.keep_top import (
    SKETCH,
    bucket_floor,
    bucket_of,
    merge_sketches,
    thresholds_from_sketch,
)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> dict:
    return trained_model(tmp_path_factory)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    """The same real documents as 1 and as 4 JSONL files."""
    root = tmp_path_factory.mktemp("qc-in")
    docs = corpus(root / "one", 1)
    corpus(root / "four", 4)
    return {"root": root, "docs": docs, "one": root / "one", "four": root / "four"}


def qc(model: dict, **params) -> dict:
    return {"stage": "quality_classifier", "model": model["stage"]["model"],
            "model_sha256": model["sha256"], "max_chars": MAX_CHARS, **params}


def config(data: Path, out: Path, stages: list[dict], workers: int = 1):
    return config_from_dict({
        "name": "qc",
        "input": {"format": "jsonl", "paths": [str(data / "*.jsonl")], "fields": ["label", "kind"]},
        "output": {"path": str(out), "rows_per_file": 400},
        "executor": {"kind": "local", "workers": workers},
        "stages": stages,
    })


def rows(run: Path) -> list[dict]:
    out = []
    for p in sorted((run / "data").glob("*.parquet")):
        out += pq.read_table(p).to_pylist()
    return out


@pytest.fixture(scope="module")
def scored(model, inputs, tmp_path_factory) -> list[dict]:
    """Every document with its quality score (nothing dropped)."""
    out = tmp_path_factory.mktemp("scored") / "run"
    run_pipeline(config(inputs["four"], out, [qc(model)]))
    return rows(out)


# ---------------------------------------------------------------- quality_classifier

def test_scores_are_the_models_probability_of_the_positive_label(model, scored, inputs):
    assert len(scored) == len(inputs["docs"])
    ft = fasttext.load_model(model["stage"]["model"])
    texts = {d["id"]: d["text"] for d in inputs["docs"]}
    ids = [r["id"] for r in scored]
    expect = positive_scores(ft, [fasttext_text(texts[i], MAX_CHARS) for i in ids], "hq")
    got = np.array([r["quality_score"] for r in scored])
    assert np.array_equal(got, expect)
    assert ((got >= 0) & (got <= 1)).all()
    hq = got[[r["label"] == "hq" for r in scored]]
    lq = got[[r["label"] == "lq" for r in scored]]
    assert np.median(hq) > 0.8 and np.median(lq) < 0.2  # the classes are told apart


def test_min_score_drops_low_quality_and_counts_it(model, scored, inputs, tmp_path):
    run = run_pipeline(config(inputs["four"], tmp_path / "run", [qc(model, min_score=0.6)]))
    expect = {r["id"] for r in scored if r["quality_score"] >= 0.6}
    assert {r["id"] for r in rows(run.root)} == expect
    stats = json.loads((run.root / "stats.json").read_text())
    assert stats["stages"]["quality_classifier"]["dropped"] == \
        {"low_quality": len(scored) - len(expect)}
    manifest = json.loads((run.root / "manifest.json").read_text())
    assert {"path": str(Path(model["stage"]["model"]).resolve()),
            "sha256": model["sha256"]} in manifest["models"]


def test_model_hash_and_label_are_checked_at_setup(model):
    bad = stage("quality_classifier", model=model["stage"]["model"], model_sha256="0" * 64)
    with pytest.raises(UserError, match="has sha256 .*expected 0000"):
        bad.build().setup()
    wrong = stage("quality_classifier", model=model["stage"]["model"], positive_label="edu")
    with pytest.raises(UserError, match="has no label 'edu'; its labels: (hq, lq|lq, hq)"):
        wrong.build().setup()
    with pytest.raises(UserError, match="does not exist"):
        stage("quality_classifier", model="/nonexistent.bin").build().setup()


def test_custom_column_and_annotate_mode(model, scored, inputs, tmp_path):
    st = qc(model, column="edu_score", min_score=0.6, mode="annotate", name="edu")
    run = run_pipeline(config(inputs["one"], tmp_path / "run", [st]))
    out = rows(run.root)
    assert len(out) == len(scored)
    by_id = {r["id"]: r["quality_score"] for r in scored}
    for r in out:
        assert r["edu_score"] == by_id[r["id"]]
        assert r["edu_reason"] == (None if r["edu_score"] >= 0.6 else "low_quality")


# ---------------------------------------------------------------- keep_top

def exact_kept(scored: list[dict], fraction: float, by: str | None) -> set[str]:
    """The exact rule: per group, every document scoring >= the k-th best score."""
    groups: dict[str, list[dict]] = {}
    for r in scored:
        groups.setdefault(r[by] if by else "*", []).append(r)
    kept = set()
    for g in groups.values():
        s = sorted((r["quality_score"] for r in g), reverse=True)
        t = s[max(1, math.ceil(fraction * len(s) - 1e-9)) - 1]
        kept |= {r["id"] for r in g if r["quality_score"] >= t}
    return kept


@pytest.mark.parametrize("by", ["kind", None])
def test_keep_top_matches_exact_quantiles_within_the_bound(model, scored, inputs, tmp_path, by):
    kt = {"stage": "keep_top", "fraction": 0.2, "by": [by] if by else []}
    run = run_pipeline(config(inputs["four"], tmp_path / "run", [qc(model), kt]))
    kept = {r["id"] for r in rows(run.root)}
    exact = exact_kept(scored, 0.2, by)
    assert exact <= kept  # never fewer than the exact rule
    th = json.loads((run.root / "work" / "keep_top" / "thresholds.json").read_text())["groups"]
    for r in scored:  # any extra document scores within 2^-20 below its group's exact cut
        if r["id"] in kept - exact:
            assert r["quality_score"] >= th[r[by] if by else "*"]["threshold"]
    for g in th.values():
        assert g["kept"] >= g["target"] == max(1, math.ceil(0.2 * g["documents"] - 1e-9))
    assert len(kept) == sum(g["kept"] for g in th.values())
    share = len(kept) / len(scored)
    assert abs(share - len(exact) / len(scored)) <= 0.002, share
    stats = json.loads((run.root / "stats.json").read_text())
    m = stats["phases"]["keep_top.thresholds"]["metrics"]
    assert m["groups"] == len(th) and stats["stages"]["keep_top"]["dropped"] == \
        {"below_threshold": len(scored) - len(kept)}


def test_coarse_sketch_error_stays_within_its_bound(scored):
    """With 6 mantissa bits buckets are wide: extra documents appear, all within the bound;
    with 23 the sketch is exact for float32 scores."""
    scores = np.array([r["quality_score"] for r in scored])
    for bits in (6, 10, 20, 23):
        uniq, counts = np.unique(bucket_of(scores, bits), return_counts=True)
        half = len(uniq) // 2  # two partial sketches, merged
        parts = [pa.table({"group": ["*"] * len(u), "bucket": u, "count": c}, schema=SKETCH)
                 for u, c in ((uniq[:half], counts[:half]), (uniq[half:], counts[half:]))]
        sketch = merge_sketches(*parts)
        for fraction in (0.01, 0.1, 0.5, 0.9):
            t = thresholds_from_sketch(sketch, fraction, bits)["*"]
            k = max(1, math.ceil(fraction * len(scores) - 1e-9))
            exact_cut = np.sort(scores)[::-1][k - 1]
            assert t["floor"] <= exact_cut and exact_cut - t["floor"] < 2.0 ** -bits * exact_cut
            assert t["kept"] == int((scores >= t["floor"]).sum()) >= k
            if bits == 23:  # fastText's scores are float32: 23 bits tell them all apart
                assert t["floor"] == exact_cut and t["kept"] == int((scores >= exact_cut).sum())
            assert bucket_floor(t["bucket"], bits) == t["floor"]


def test_keep_top_is_independent_of_shards_and_workers(model, inputs, tmp_path):
    stages = [qc(model), {"stage": "keep_top", "fraction": 0.3, "by": ["kind"]}]
    one = run_pipeline(config(inputs["one"], tmp_path / "one", stages))
    four = run_pipeline(config(inputs["four"], tmp_path / "four", stages))
    four2 = run_pipeline(config(inputs["four"], tmp_path / "four2", stages, workers=2))
    assert {r["id"] for r in rows(one.root)} == {r["id"] for r in rows(four.root)}
    th = [json.loads((r.root / "work" / "keep_top" / "thresholds.json").read_text())
          for r in (one, four)]
    assert th[0] == th[1]
    assert shard_hashes(four.root) == shard_hashes(four2.root)


def test_keep_top_lowest_and_missing_scores(inputs, tmp_path):
    """order: lowest on a column some documents lack (no model needed: the text length)."""
    data = tmp_path / "in"
    docs = inputs["docs"][:200]
    data.mkdir()
    with open(data / "a.jsonl", "w") as fh:
        for i, d in enumerate(docs):
            row = {"id": d["id"], "text": d["text"]}
            if i % 10:
                row["n"] = len(d["text"])
            fh.write(json.dumps(row) + "\n")
    cfg = config_from_dict({
        "input": {"format": "jsonl", "paths": [str(data / "*.jsonl")], "fields": ["n"]},
        "output": {"path": str(tmp_path / "run")},
        "stages": [{"stage": "keep_top", "column": "n", "fraction": 0.25, "order": "lowest"}]})
    run = run_pipeline(cfg)
    have = sorted(len(d["text"]) for i, d in enumerate(docs) if i % 10)
    cut = have[math.ceil(0.25 * len(have)) - 1]
    kept = rows(run.root)
    assert sorted(int(r["n"]) for r in kept) == [n for n in have if n <= cut]
    st = json.loads((run.root / "stats.json").read_text())["stages"]["keep_top"]
    assert st["dropped"] == {"missing_score": 20, "below_threshold": 180 - len(kept)}


def test_keep_top_needs_its_columns(inputs, tmp_path):
    cfg = config(inputs["one"], tmp_path / "run",
                 [{"stage": "keep_top", "fraction": 0.5, "by": ["language"]}])
    with pytest.raises(Exception, match="needs column\\(s\\) quality_score, language"):
        run_pipeline(cfg)
