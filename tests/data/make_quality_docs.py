"""Build tests/data/quality/filter-docs.jsonl.gz: real extracted web text for filter tests.

Run once (about a minute), from the repository root:

    .venv/bin/python tests/data/make_quality_docs.py [--shared ../shared/data]

The heuristic filters are compared with datatrove's on this file
(tests/test_datatrove_parity.py) and timed on it (benchmarks/bench_filters.py).
Extraction costs ~45 s, so its output is committed rather than recomputed.

What goes in, in this order (all real pages; see tests/data/NOTICE.md):

- ``traf-main``: trafilatura 2.x main text of the trafilatura evaluation pages
  (mostly German news and blogs, some en/es/fr/pl), and ``traf-full``: the
  whole-page text of every third of them;
- ``read-main`` / ``read-full``: main text and *whole-page* text (``html2txt``:
  menus, footers, cookie banners) of Mozilla Readability's test pages;
- ``sh-gold`` / ``sh-full``: the gold article text and the whole-page text of
  the ScrapingHub article-extraction benchmark;
- ``cc-head``: 20 CCNet "head" Common Crawl documents from dolma's tests.

The whole-page texts are the low-quality side: they trigger the line-level rules
(short lines, no terminal punctuation, repeated lines, policy/javascript lines).
Documents are capped at ``MAX_CHARS`` characters (cut at a line break) to keep
the file small; ids are ``<kind>:<file name>``, so the file is reproducible.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import tarfile
from pathlib import Path

import trafilatura

MAX_CHARS = 12_000
OUT = Path(__file__).resolve().parent / "quality" / "filter-docs.jsonl.gz"


def _cap(text: str) -> str:
    if len(text) <= MAX_CHARS:
        return text
    cut = text.rfind("\n", 0, MAX_CHARS)
    return text[: cut if cut > MAX_CHARS // 2 else MAX_CHARS]


def _main_text(html: str) -> str:
    return trafilatura.extract(html, include_comments=False, deduplicate=False) or ""


def _full_text(html: str) -> str:
    return trafilatura.html2txt(html) or ""


def _trafilatura_eval(shared: Path):
    with tarfile.open(shared / "extraction" / "trafilatura-eval.tar.xz") as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile()}
        urls = {v["file"]: url for url, v in
                json.load(tar.extractfile(members["tests/evaldata.json"])).items()}
        for i, name in enumerate(sorted(n for n in members if n.endswith(".html"))):
            html = tar.extractfile(members[name]).read().decode("utf-8", "replace")
            base = name.rsplit("/", 1)[1]
            yield "traf-main", base, urls.get(base), _main_text(html)
            if i % 3 == 0:
                yield "traf-full", base, urls.get(base), _full_text(html)


def _readability(shared: Path):
    with tarfile.open(shared / "extraction" / "readability-test-pages.tar.xz") as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile()}
        for name in sorted(n for n in members if n.endswith("/source.html")):
            html = tar.extractfile(members[name]).read().decode("utf-8", "replace")
            page = name.split("/")[-2]
            yield "read-main", page, None, _main_text(html)
            yield "read-full", page, None, _full_text(html)


def _scrapinghub(shared: Path):
    root = shared / "extraction" / "article-extraction-benchmark"
    gold = json.loads((root / "ground-truth.json").read_text())
    for key in sorted(gold):
        url = gold[key].get("url")
        yield "sh-gold", key, url, gold[key].get("articleBody") or ""
        html = gzip.decompress((root / "html" / f"{key}.html.gz").read_bytes())
        yield "sh-full", key, url, _full_text(html.decode("utf-8", "replace"))


def _cc_head(shared: Path):
    for path in sorted((shared / "quality").glob("dolma-cc_en_head-*.jsonl.gz")):
        for i, line in enumerate(gzip.open(path, "rt", encoding="utf-8")):
            row = json.loads(line)
            yield "cc-head", f"{path.name}:{i}", row["metadata"].get("url"), row["text"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path,
                    default=Path(__file__).resolve().parents[3] / "shared" / "data")
    args = ap.parse_args()
    rows = []
    for gen in (_trafilatura_eval, _readability, _scrapinghub, _cc_head):
        for kind, name, url, text in gen(args.shared):
            text = _cap(text.strip())
            if text:
                rows.append({"id": f"{kind}:{name}", "text": text, "url": url, "kind": kind})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0) as gz:
        for row in rows:
            gz.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
    OUT.write_bytes(buf.getvalue())
    print(f"wrote {len(rows)} documents, {OUT.stat().st_size:,} bytes to {OUT}")


if __name__ == "__main__":
    main()
