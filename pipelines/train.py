"""`thresher train-classifier`: a fastText quality classifier from positive and negative text.

There is no one good quality model for every corpus, so thresher trains them:
documents are read from globs of JSONL/Parquet files (the same readers as a
pipeline), sampled and split into train and held-out sets by a keyed hash of
their id (no RNG state, so the same inputs give the same split), written as
fastText lines and trained with one thread and a fixed seed, which makes the
model file byte-identical from run to run. The held-out precision/recall, the
parameters and every input's sha256 go into ``<model>.json`` next to the model,
so a model can be audited and re-trained exactly: ``command`` is the full
``thresher train-classifier`` command that rebuilds it, every option spelled out.
Local paths there, in ``inputs`` and in ``stage.model`` are written relative to the
directory the command ran in when they are inside it (``paths_relative_to``), so the
file names no machine's directories and a model committed to a repository can be
re-trained from a fresh clone's root; paths outside it stay absolute, URLs stay URLs.

The text a model sees is normalised the same way at training time and in the
``quality_classifier`` stage: ``pipelines.fasttext.fasttext_text``.
"""

from __future__ import annotations

import hashlib
import io
import math
import platform
import re
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pipelines.config import JsonlInput, ParquetInput
from pipelines.errors import UserError
from pipelines.fasttext import fasttext_text, positive_scores
from pipelines.io.discovery import resolve_inputs
from pipelines.io.files import atomic_path, sha256_file, write_json_atomic
from pipelines.io.readers import make_reader
from pipelines.io.remote_path import run_path
from pipelines.stats import StageStats
from pipelines.version import __version__

LABEL_PREFIX = "__label__"
EOS = "</s>"
_FT_SPACE = re.compile("[ \n\r\t\v\f\0]+")  # the bytes fastText splits words at


@dataclass(frozen=True)
class FastTextParams:
    """fastText's supervised-training knobs that keep training reproducible.

    Unigram features only: fastText 0.9.2 initialises just ``thread``/10 of its
    input matrix and leaves the rest as uninitialised memory, so with one
    thread a model differs from run to run (or diverges to NaN). thresher
    therefore passes every input row explicitly (``init_vectors``), which covers
    the vocabulary but not hashed word/char n-gram buckets: ``wordNgrams`` stays
    1 and ``minn``/``maxn`` 0.
    """

    epoch: int = 10
    lr: float = 0.2
    dim: int = 32
    min_count: int = 1

    def to_fasttext(self) -> dict:
        # `loss` is not passed: naming fastText's own default "softmax" explicitly
        # changes its code path in 0.9.2
        return {"epoch": self.epoch, "lr": self.lr, "dim": self.dim,
                "minCount": self.min_count, "wordNgrams": 1, "minn": 0, "maxn": 0}


@dataclass(frozen=True)
class TrainSpec:
    positive: list[str]  # globs of JSONL(.gz/.zst) or Parquet files
    negative: list[str]
    out: str  # model path (.bin); metadata goes to <out>.json
    text_key: str = "text"
    max_docs: int | None = None  # per class, sampled by hash of (seed, source, id)
    test_fraction: float = 0.2
    seed: int = 0
    max_chars: int | None = None  # characters of each document the model sees
    positive_label: str = "hq"
    negative_label: str = "lq"
    fasttext: FastTextParams = field(default_factory=FastTextParams)

    def check(self) -> None:
        if not self.positive or not self.negative:
            raise UserError("train-classifier needs at least one --positive and one --negative")
        if not 0 <= self.test_fraction < 1:
            raise UserError(f"--test-fraction must be in [0, 1), got {self.test_fraction}")
        for lab in (self.positive_label, self.negative_label):
            if not lab or any(c.isspace() for c in lab):
                raise UserError(f"label {lab!r} must be a non-empty word without spaces")
        if self.positive_label == self.negative_label:
            raise UserError("--positive-label and --negative-label must differ")
        if self.max_docs is not None and self.max_docs < 1:
            raise UserError(f"--max-docs must be at least 1, got {self.max_docs}")


@dataclass
class Doc:
    key: int  # keyed hash of (source, id): decides sampling order and the split
    text: str


def _unit(key: int) -> float:
    return (key >> 11) / float(1 << 53)


def _key(seed: int, purpose: bytes, source: str, doc_id: str) -> int:
    h = hashlib.blake2b(f"{source}\x00{doc_id}".encode("utf-8", "surrogatepass"),
                        digest_size=8, key=purpose + str(seed).encode())
    return int.from_bytes(h.digest(), "little")


def read_class(globs: list[str], spec: TrainSpec) -> tuple[list[Doc], list[dict]]:
    """Every non-empty document of the files ``globs`` match, with per-file records."""
    docs: list[Doc] = []
    files: list[dict] = []
    for pattern in globs:
        is_parquet = pattern.endswith((".parquet", ".pq"))
        inp = (ParquetInput(paths=[pattern], text_column=spec.text_key) if is_parquet
               else JsonlInput(paths=[pattern], text_key=spec.text_key))
        try:
            found = resolve_inputs(inp)
        except Exception as exc:  # ConfigError from an empty glob: say which flag
            raise UserError(f"training input {pattern!r}: {getattr(exc, 'message', exc)}") \
                from None
        reader = make_reader(inp)
        for path, source in found:  # source: relative to the glob's root, so moving the
            # files elsewhere keeps the sample, the split and the model
            stats = StageStats()
            n = 0
            for table in reader.read(path, source, stats):
                for doc_id, text in zip(table.column("id").to_pylist(),
                                        table.column("text").to_pylist()):
                    if text and text.strip():
                        docs.append(Doc(_key(spec.seed, b"sample", source, doc_id), text))
                        n += 1
            if stats.n_errors:
                raise UserError(f"training input {path}: {stats.n_errors} unreadable record(s) "
                                f"({', '.join(sorted(stats.errors))})")
            files.append({"path": portable(path), "sha256": sha256_file(run_path(path)),
                          "documents": n})
    return docs, files


def portable(path: str | Path) -> str:
    """``path`` relative to the working directory when it is a local path inside it (a
    glob's wildcards kept), else as given (absolute, or a URL)."""
    text = path.as_posix() if isinstance(path, Path) else str(path)
    if "://" in text:
        return text
    p = Path(text)
    if not p.is_absolute():
        return p.as_posix()
    try:
        return p.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return text


def train_command(spec: TrainSpec) -> list[str]:
    """The ``thresher train-classifier`` command that trains the model ``spec`` describes,
    every option explicit (so a later change of a default does not change its meaning)."""
    ft = spec.fasttext
    cmd = ["thresher", "train-classifier"]
    for flag, globs in (("--positive", spec.positive), ("--negative", spec.negative)):
        for g in globs:
            cmd += [flag, portable(g)]
    cmd += ["--out", portable(spec.out), "--text-key", spec.text_key]
    if spec.max_docs is not None:
        cmd += ["--max-docs", str(spec.max_docs)]
    cmd += ["--test-fraction", repr(spec.test_fraction), "--seed", str(spec.seed)]
    if spec.max_chars is not None:
        cmd += ["--max-chars", str(spec.max_chars)]
    cmd += ["--positive-label", spec.positive_label, "--negative-label", spec.negative_label,
            "--epoch", str(ft.epoch), "--lr", repr(ft.lr), "--dim", str(ft.dim),
            "--min-count", str(ft.min_count)]
    return cmd


def split(docs: list[Doc], spec: TrainSpec) -> tuple[list[Doc], list[Doc]]:
    """Sample ``max_docs`` by hash order, then hold out ``test_fraction`` of them."""
    docs = sorted(docs, key=lambda d: d.key)
    if spec.max_docs is not None:
        docs = docs[: spec.max_docs]
    n_test = int(round(len(docs) * spec.test_fraction))
    # the split hash is independent of the sampling hash: sampled docs are not biased
    order = sorted(range(len(docs)),
                   key=lambda i: _key(spec.seed, b"split", "", str(docs[i].key)))
    test_idx = set(order[:n_test])
    train = [d for i, d in enumerate(docs) if i not in test_idx]
    test = [d for i, d in enumerate(docs) if i in test_idx]
    return train, test


def init_vectors(train_file: Path, out: Path, params: FastTextParams, seed: int) -> set[str]:
    """Write a seeded initial vector for every word fastText will keep (see FastTextParams)."""
    counts: Counter = Counter()
    lines = 0
    with open(train_file, encoding="utf-8") as fh:
        for line in fh:
            lines += 1
            counts.update(w for w in _FT_SPACE.split(line) if w)
    words = sorted(w for w, c in counts.items()
                   if c >= params.min_count and not w.startswith(LABEL_PREFIX))
    words.append(EOS)  # fastText's end-of-line word, one per line
    rng = np.random.default_rng(seed)
    vectors = rng.uniform(-1 / params.dim, 1 / params.dim, size=(len(words), params.dim))
    buf = io.StringIO()
    np.savetxt(buf, vectors.astype(np.float32), fmt="%.6g")
    with open(out, "w", encoding="utf-8") as fh:
        fh.write(f"{len(words)} {params.dim}\n")
        for w, row in zip(words, buf.getvalue().splitlines()):
            fh.write(f"{w} {row}\n")
    return set(words)


def evaluate(scores: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Held-out metrics of the positive class at the 0.5 cut, and ROC AUC."""
    pred = scores >= 0.5
    tp = int(np.sum(pred & truth))
    fp = int(np.sum(pred & ~truth))
    fn = int(np.sum(~pred & truth))
    n = len(truth)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"documents": n, "accuracy": float(np.mean(pred == truth)) if n else math.nan,
            "precision": precision, "recall": recall, "f1": f1, "auc": _auc(scores, truth)}


def _auc(scores: np.ndarray, truth: np.ndarray) -> float:
    pos, neg = scores[truth], scores[~truth]
    if not len(pos) or not len(neg):
        return math.nan
    ranks = _average_ranks(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) /
                 (len(pos) * len(neg)))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    sx = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sx[j + 1] == sx[i]:
            j += 1
        ranks[order[i: j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def train_classifier(spec: TrainSpec, log=print) -> dict:
    """Train, evaluate on the held-out split, write the model and ``<model>.json``."""
    import fasttext

    spec.check()
    pos, pos_files = read_class(spec.positive, spec)
    neg, neg_files = read_class(spec.negative, spec)
    if not pos or not neg:
        raise UserError(f"no documents read for the {'positive' if not pos else 'negative'} "
                        f"class (text key {spec.text_key!r})")
    pos_train, pos_test = split(pos, spec)
    neg_train, neg_test = split(neg, spec)
    lp, ln = f"__label__{spec.positive_label}", f"__label__{spec.negative_label}"
    train = sorted([(d.key, lp, d.text) for d in pos_train] +
                   [(d.key, ln, d.text) for d in neg_train])  # classes interleaved by hash
    out = run_path(spec.out)  # a local path or a URL in object storage
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="thresher-train-") as tmp:
        train_file = Path(tmp) / "train.txt"
        with open(train_file, "w", encoding="utf-8") as fh:
            for _, label, text in train:
                fh.write(f"{label} {fasttext_text(text, spec.max_chars)}\n")
        vectors = Path(tmp) / "init.vec"
        vocab = init_vectors(train_file, vectors, spec.fasttext, spec.seed)
        log(f"training on {len(pos_train)} {spec.positive_label} + {len(neg_train)} "
            f"{spec.negative_label} documents ({len(pos_test) + len(neg_test)} held out), "
            f"{len(vocab):,} words")
        model = fasttext.train_supervised(input=str(train_file), thread=1, seed=spec.seed,
                                          verbose=0, pretrainedVectors=str(vectors),
                                          **spec.fasttext.to_fasttext())
    uncovered = set(model.get_words()) - vocab
    if uncovered:  # a tokenisation mismatch would leave rows uninitialised: not reproducible
        raise RuntimeError(f"bug: {len(uncovered)} fastText word(s) without an initial vector, "
                           f"e.g. {sorted(uncovered)[:3]}")
    with atomic_path(out) as tmp_model:
        model.save_model(str(tmp_model))
    test = pos_test + neg_test
    truth = np.array([True] * len(pos_test) + [False] * len(neg_test))
    texts = [fasttext_text(d.text, spec.max_chars) for d in test]
    metrics = evaluate(positive_scores(model, texts, spec.positive_label), truth)
    meta = {
        "model": out.name,
        "command": train_command(spec),
        "paths_relative_to": "the directory the command ran in",
        "sha256": sha256_file(out),
        "bytes": out.stat().st_size,
        "labels": {"positive": spec.positive_label, "negative": spec.negative_label},
        "inputs": {"positive": pos_files, "negative": neg_files},
        "sampling": {"max_docs": spec.max_docs, "test_fraction": spec.test_fraction,
                     "seed": spec.seed, "hash": "blake2b-64 keyed by seed, of (source, id)"},
        "documents": {"train": {spec.positive_label: len(pos_train),
                                spec.negative_label: len(neg_train)},
                      "test": {spec.positive_label: len(pos_test),
                               spec.negative_label: len(neg_test)}},
        "text": {"key": spec.text_key, "max_chars": spec.max_chars,
                 "normalisation": "newlines -> spaces (pipelines.train.fasttext_text)"},
        "fasttext": {**asdict(spec.fasttext), "thread": 1, "seed": spec.seed},
        "metrics": metrics,
        "versions": {"thresher": __version__, "fasttext": _fasttext_version(),
                     "python": platform.python_version()},
        "stage": {"stage": "quality_classifier", "model": portable(out),
                  "model_sha256": sha256_file(out), "positive_label": spec.positive_label,
                  **({"max_chars": spec.max_chars} if spec.max_chars else {})},
    }
    write_json_atomic(metadata_path(out), meta)
    return meta


def metadata_path(model: str | Path) -> Path:
    model = run_path(model)
    return model.with_name(model.name + ".json")


def _fasttext_version() -> str | None:
    """The installed fastText distribution (several forks install the same module)."""
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("fasttext-numpy2-wheel", "fasttext-numpy2", "fasttext", "fasttext-wheel"):
        try:
            return f"{dist} {version(dist)}"
        except PackageNotFoundError:
            continue
    return None


def format_report(meta: dict) -> str:
    m = meta["metrics"]
    d = meta["documents"]
    lines = [
        f"model: {meta['model']}  sha256 {meta['sha256']}  ({meta['bytes']:,} bytes)",
        f"train: {d['train']}   held out: {d['test']}",
        f"held-out {meta['labels']['positive']!r} at p>=0.5: precision {m['precision']:.3f}  "
        f"recall {m['recall']:.3f}  f1 {m['f1']:.3f}  accuracy {m['accuracy']:.3f}  "
        f"auc {m['auc']:.3f}",
        "use it with:",
        "  - stage: quality_classifier",
        f"    model: {meta['stage']['model']}",
        f"    model_sha256: {meta['sha256']}",
        f"    positive_label: {meta['labels']['positive']}",
    ]
    if meta["text"]["max_chars"]:
        lines.append(f"    max_chars: {meta['text']['max_chars']}")
    return "\n".join(lines)
