"""thresher train-classifier on real text: WikiText-2 and gold article bodies (hq) against
forum/chat text and page boilerplate (lq); see tests/data/make_classifier_docs.py."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import thresher
from qc_helpers import MAX_CHARS, TEST_FASTTEXT, class_files, load_docs, trained_model

from pipelines.errors import UserError
from pipelines.train import TrainSpec, read_class, split, train_classifier


@pytest.fixture(scope="module")
def classes(tmp_path_factory):
    return class_files(tmp_path_factory.mktemp("classes"))


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_cli_trains_reports_and_writes_metadata(classes, tmp_path, tmp_path_factory):
    hq, lq = classes
    out = tmp_path / "m.bin"
    proc = thresher("train-classifier", "--positive", str(hq), "--negative", str(lq),
                    "--out", str(out), "--max-chars", str(MAX_CHARS), "--dim", "16")
    assert "precision" in proc.stdout and "recall" in proc.stdout
    meta = json.loads((tmp_path / "m.bin.json").read_text())
    assert meta["sha256"] == sha256(out) and f"model_sha256: {meta['sha256']}" in proc.stdout
    # same documents and parameters in another process and directory: the same bytes
    assert meta["sha256"] == trained_model(tmp_path_factory)["sha256"]
    assert meta["inputs"]["positive"] == [{"path": hq.as_posix(), "sha256": sha256(hq),
                                           "documents": 581}]
    assert meta["inputs"]["negative"][0]["sha256"] == sha256(lq)
    assert meta["fasttext"]["thread"] == 1 and meta["fasttext"]["dim"] == 16
    docs = load_docs()
    n_hq = sum(d["label"] == "hq" for d in docs)
    n_lq = len(docs) - n_hq
    d = meta["documents"]
    assert d["train"]["hq"] + d["test"]["hq"] == n_hq and d["train"]["lq"] + d["test"]["lq"] == n_lq
    assert d["test"]["hq"] == round(0.2 * n_hq) and d["test"]["lq"] == round(0.2 * n_lq)


def test_held_out_accuracy_beats_the_majority_class(tmp_path_factory):
    meta = trained_model(tmp_path_factory)
    m, d = meta["metrics"], meta["documents"]["test"]
    majority = max(d.values()) / sum(d.values())  # 0.63: always answering "lq"
    assert m["documents"] == sum(d.values())
    assert m["accuracy"] >= 0.88 > majority + 0.2, m
    assert m["precision"] >= 0.8 and m["recall"] >= 0.85 and m["auc"] >= 0.95, m


def test_training_is_deterministic_and_seeded(classes, tmp_path):
    hq, lq = classes

    def train(name: str, seed: int) -> dict:
        spec = TrainSpec(positive=[str(hq)], negative=[str(lq)], out=str(tmp_path / name),
                         seed=seed, max_chars=MAX_CHARS, fasttext=TEST_FASTTEXT)
        return train_classifier(spec, log=lambda m: None)

    a, b, c = train("a.bin", 0), train("b.bin", 0), train("c.bin", 1)
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()
    assert a["sha256"] == b["sha256"] and a["metrics"] == b["metrics"]
    assert c["sha256"] != a["sha256"]  # another seed: another split and initialisation


def test_split_is_disjoint_sampled_and_stable(classes):
    hq, _ = classes
    spec = TrainSpec(positive=[str(hq)], negative=[], out="x", max_docs=300, test_fraction=0.25)
    docs, files = read_class([str(hq)], spec)
    assert files[0]["documents"] == len(docs) == 581
    train, test = split(docs, spec)
    assert len(train) + len(test) == 300 and len(test) == 75
    assert not {d.key for d in train} & {d.key for d in test}
    again = split(list(reversed(docs)), spec)  # input order does not matter
    assert [d.key for d in again[1]] == [d.key for d in test]


def test_bad_inputs_are_one_line_errors(classes, tmp_path):
    hq, lq = classes
    with pytest.raises(UserError, match="matched no files"):
        train_classifier(TrainSpec([str(tmp_path / "none*.jsonl")], [str(lq)],
                                   str(tmp_path / "m.bin")))
    with pytest.raises(UserError, match=r"hq.jsonl: 581 unreadable record\(s\) \(missing_text\)"):
        train_classifier(TrainSpec([str(hq)], [str(lq)], str(tmp_path / "m.bin"),
                                   text_key="body"))
    proc = thresher("train-classifier", "--positive", str(hq), "--negative", str(lq),
                    "--out", str(tmp_path / "m.bin"), "--positive-label", "lq", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == \
        "thresher: error: --positive-label and --negative-label must differ"
