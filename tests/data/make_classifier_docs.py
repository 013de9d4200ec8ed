"""Build tests/data/quality/classifier-docs.jsonl.gz: real text for quality-classifier tests.

Run once (about ten seconds), from the repository root:

    .venv/bin/python tests/data/make_classifier_docs.py [--shared ../shared/data]

There is no labelled web-quality corpus offline, so the two classes are
stand-ins (see ../shared/notes/offline-data.md, section 4). Every text is real:

- label ``hq``: ``wiki`` WikiText-2 valid+test articles (detokenised, cut into
  chunks of whole paragraphs) and ``sh-gold`` the gold article bodies of the
  ScrapingHub article-extraction benchmark;
- label ``lq``: ``web-<file>`` chunks of nltk webtext (Firefox support forum,
  overheard quotes, singles ads, wine notes, two film scripts) and ``sh-boiler``
  the boilerplate of the same ScrapingHub pages: the lines of trafilatura's
  whole-page text (``html2txt``) that are not in the gold body (menus, footers,
  cookie and share banners).

The classifier this trains separates style and domain, not "quality"; the tests
use it for plumbing, determinism and thresholds, not as a quality benchmark.
Ids are ``<kind>:<name>:<chunk>``, so the file is reproducible.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import lzma
import re
import zipfile
from pathlib import Path

import trafilatura

OUT = Path(__file__).resolve().parent / "quality" / "classifier-docs.jsonl.gz"
CHUNK_CHARS = 2_000  # a chunk ends at the first paragraph/line break past this
MAX_PER_KIND = 400

_WT_HEADER = re.compile(r"^ = [^=].* = $")
_WT_SUBHEADER = re.compile(r"^ (= )+.*( =)+ $")


def _detok(line: str) -> str:
    """Undo WikiText's tokenisation well enough to read like prose."""
    s = line.strip().replace(" @-@ ", "-").replace(" @,@ ", ",").replace(" @.@ ", ".")
    s = re.sub(r"\s{2,}", " ", s.replace("<unk>", ""))
    s = s.replace(" 's", "'s").replace(" n't", "n't")
    s = re.sub(r" ([,.;:!?%)\]])", r"\1", s)
    s = re.sub(r"([(\[]) ", r"\1", s)
    s = re.sub(r'" (.*?) "', r'"\1"', s)
    return re.sub(r"\s{2,}", " ", s).strip()


def _chunks(units: list[str], sep: str) -> list[str]:
    out, cur = [], []
    for u in units:
        cur.append(u)
        if sum(len(x) for x in cur) >= CHUNK_CHARS:
            out.append(sep.join(cur))
            cur = []
    if cur and sum(len(x) for x in cur) >= CHUNK_CHARS // 4:
        out.append(sep.join(cur))
    return out


def _wikitext(shared: Path):
    for split in ("valid", "test"):
        text = lzma.decompress((shared / "quality" / f"wikitext-2-{split}.txt.xz").read_bytes())
        title, paras = None, []
        articles = []
        for line in text.decode("utf-8").splitlines():
            if _WT_HEADER.match(line):
                if title:
                    articles.append((title, paras))
                title, paras = line.strip(" ="), []
            elif line.strip() and not _WT_SUBHEADER.match(line) and title:
                paras.append(_detok(line))
        if title:
            articles.append((title, paras))
        for a, (title, paras) in enumerate(articles):
            name = re.sub(r"\W+", "_", title.replace("<unk>", "")).strip("_")[:40]
            for i, chunk in enumerate(_chunks(paras, "\n\n")):
                yield "hq", "wiki", f"{split}-{a:03d}-{name}:{i}", chunk


def _scrapinghub(shared: Path):
    root = shared / "extraction" / "article-extraction-benchmark"
    gold = json.loads((root / "ground-truth.json").read_text())
    for key in sorted(gold):
        body = (gold[key].get("articleBody") or "").strip()
        if body:
            yield "hq", "sh-gold", key[:16], body[: CHUNK_CHARS * 2]
        html = gzip.decompress((root / "html" / f"{key}.html.gz").read_bytes())
        full = trafilatura.html2txt(html.decode("utf-8", "replace")) or ""
        gold_lines = {x.strip() for x in body.splitlines() if x.strip()}
        rest = [x.strip() for x in full.splitlines()
                if x.strip() and x.strip() not in gold_lines and x.strip() not in body]
        boiler = "\n".join(rest)[: CHUNK_CHARS * 2]
        if len(boiler) >= 200:
            yield "lq", "sh-boiler", key[:16], boiler


def _webtext(shared: Path):
    with zipfile.ZipFile(shared / "quality" / "nltk-webtext.zip") as z:
        for name in sorted(n for n in z.namelist() if n.endswith(".txt")):
            lines = [x.strip() for x in z.read(name).decode("utf-8", "replace").splitlines()
                     if x.strip()]
            base = name.rsplit("/", 1)[1].removesuffix(".txt")
            for i, chunk in enumerate(_chunks(lines, "\n")):
                yield "lq", f"web-{base}", f"{base}:{i}", chunk


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path,
                    default=Path(__file__).resolve().parents[3] / "shared" / "data")
    args = ap.parse_args()
    rows, per_kind, seen = [], {}, set()
    for gen in (_wikitext, _scrapinghub, _webtext):
        for label, kind, name, text in gen(args.shared):
            assert f"{kind}:{name}" not in seen, f"duplicate id {kind}:{name}"
            seen.add(f"{kind}:{name}")
            n = per_kind.get(kind, 0)
            if n >= MAX_PER_KIND:
                continue
            per_kind[kind] = n + 1
            rows.append({"id": f"{kind}:{name}", "text": text, "label": label, "kind": kind})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", fileobj=buf, mode="wb", compresslevel=9, mtime=0) as gz:
        for row in rows:
            gz.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
    OUT.write_bytes(buf.getvalue())
    print(f"wrote {len(rows)} documents ({per_kind}), {OUT.stat().st_size:,} bytes to {OUT}")


if __name__ == "__main__":
    main()
