"""A small real tokenizer.json for the demo and the tests, built here from bundled text.

    .venv/bin/python -m stages.export.demo_tokenizer runs/demo/tokenizer.json

A byte-level BPE (GPT-2 style pre-tokenizer, vocabulary 8,000 with ``<|endoftext|>``)
trained with the ``tokenizers`` library on the WikiText-2 text bundled in
tests/data/quality (CC BY-SA 3.0, see tests/data/NOTICE.md). Training is deterministic:
the same ``tokenizers`` version gives the same file; its sha256 is printed, and recorded
in every export that uses it (export.json, the run's manifest).
"""

from __future__ import annotations

import argparse
import hashlib
import lzma
from pathlib import Path

from pipelines.io.files import atomic_path

TEXT = Path(__file__).resolve().parents[2] / "tests" / "data" / "quality"
FILES = ("wikitext-2-valid.txt.xz", "wikitext-2-test.txt.xz")


def lines() -> list[str]:
    out = []
    for name in FILES:
        with lzma.open(TEXT / name, "rt", encoding="utf-8") as f:
            out += [ln.strip() for ln in f if ln.strip()]
    return out


def build(path: Path, vocab_size: int = 8000) -> str:
    """Train the tokenizer, write it to ``path``; return its sha256."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(lines(), trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    text = tok.to_str()
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return hashlib.sha256(text.encode()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description="build the demo tokenizer.json")
    ap.add_argument("out", type=Path)
    ap.add_argument("--vocab-size", type=int, default=8000)
    a = ap.parse_args()
    print(f"{a.out}: sha256 {build(a.out, a.vocab_size)}")


if __name__ == "__main__":
    main()
