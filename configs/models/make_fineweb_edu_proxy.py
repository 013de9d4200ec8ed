"""Write the two classes of the FineWeb-Edu proxy classifier (configs/fineweb-edu-like.yaml).

FineWeb-Edu's classifier was trained on 450k FineWeb pages that Llama-3-70B scored 0-5
for educational value; neither the annotations' model nor a labelled set can be
downloaded here. The proxy splits the bundled real texts of
tests/data/quality/classifier-docs.jsonl.gz (built from the shared data by
tests/data/make_classifier_docs.py) by what they are:

- ``edu.jsonl``: the WikiText-2 chunks (encyclopaedic articles: what FineWeb-Edu's
  prompt scores 3 and above);
- ``not-edu.jsonl``: everything else: news and blog article bodies, page boilerplate
  (menus, footers, cookie banners), forum posts, overheard quotes, personal ads, wine
  notes and film scripts (what the prompt scores 0-2).

Usage, from the repository root (the model's training command is in the config header):

    .venv/bin/python configs/models/make_fineweb_edu_proxy.py DIR
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "tests" / "data" / "quality" / \
    "classifier-docs.jsonl.gz"
EDU_KINDS = {"wiki"}


def write_classes(out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    with gzip.open(SOURCE, "rt", encoding="utf-8") as fh:
        docs = [json.loads(line) for line in fh]
    paths = out / "edu.jsonl", out / "not-edu.jsonl"
    for path, edu in zip(paths, (True, False)):
        with open(path, "w", encoding="utf-8") as fh:
            for d in docs:
                if (d["kind"] in EDU_KINDS) == edu:
                    fh.write(json.dumps({"id": d["id"], "kind": d["kind"], "text": d["text"]},
                                        ensure_ascii=False) + "\n")
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.rsplit("Usage", 1)[1].strip())
    for p in write_classes(Path(sys.argv[1])):
        print(p)
