"""Shared by the quality-classifier, keep_top and materialize tests: real documents
(tests/data/quality/classifier-docs.jsonl.gz, built by tests/data/make_classifier_docs.py)
and a fastText model trained on them once per test session by the real trainer."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from conftest import DATA

from pipelines.train import FastTextParams, TrainSpec, train_classifier

DOCS_FILE = DATA / "quality" / "classifier-docs.jsonl.gz"
# small and fast (about two seconds on one core), and still well above chance
TEST_FASTTEXT = FastTextParams(epoch=10, lr=0.2, dim=16)
MAX_CHARS = 1000

_MODELS: dict[str, dict] = {}


def load_docs() -> list[dict]:
    with gzip.open(DOCS_FILE, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


def class_files(root: Path) -> tuple[Path, Path]:
    """hq.jsonl and lq.jsonl: the two classes of the fixture, as separate sources."""
    docs = load_docs()
    return (write_jsonl(root / "hq.jsonl", [d for d in docs if d["label"] == "hq"]),
            write_jsonl(root / "lq.jsonl", [d for d in docs if d["label"] == "lq"]))


def trained_model(tmp_path_factory) -> dict:
    """The test model's metadata (``meta["stage"]["model"]`` is its path); trained once."""
    if "model" not in _MODELS:
        root = tmp_path_factory.mktemp("qc-model")
        hq, lq = class_files(root)
        spec = TrainSpec(positive=[str(hq)], negative=[str(lq)], out=str(root / "quality.bin"),
                         max_chars=MAX_CHARS, fasttext=TEST_FASTTEXT)
        _MODELS["model"] = train_classifier(spec, log=lambda m: None)
    return _MODELS["model"]


def corpus(root: Path, n_files: int, every: int = 1) -> list[dict]:
    """Every ``every``-th fixture document, dealt round-robin into ``n_files`` JSONL inputs."""
    docs = load_docs()[::every]
    for f in range(n_files):
        write_jsonl(root / f"part{f:02d}.jsonl", docs[f::n_files])
    return docs
