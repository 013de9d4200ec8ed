"""Build the end-to-end benchmark input: real HTML pages in WARC files, plus the real WARCs.

    .venv/bin/python benchmarks/make_bench_warc.py [--out benchmarks/data] [--shards 8]
    make bench-data                 # the same, when benchmarks/data is missing or stale

No real crawl with hundreds of HTML pages is small enough to ship, so the real pages of
two extraction sets bundled in benchmarks/pages (ScrapingHub article-extraction-benchmark
181 pages, Mozilla Readability 130; sources in benchmarks/pages/NOTICE.md) are written
as WARC `request` + `response` record pairs, the layout of a Common Crawl WARC (its
`metadata` records are left out: their content would be invented). The page bytes are
the original files, unchanged. `--sources trafilatura` adds the 1,032 pages of
trafilatura's evaluation set, which is not bundled (20 MB): it is read from
$THRESHER_SHARED_DATA/extraction (default ../shared/data beside the checkout) and is
never part of the default input, so a fresh clone builds the same files as any other.

What is synthesized, because none of these sources kept it: the HTTP response headers
(`200 OK`, `Content-Type: text/html`, with the charset of the page's own <meta>
declaration when it has one), the request records, the WARC dates, and the URLs of the
130 Readability pages (and 79 trafilatura pages) that have none (under `.invalid`).
The real WARCs of tests/data/warc (real headers, requests, metadata, non-HTML, 404s,
WARC/0.17 and 0.18) are copied next to the built files unchanged, so the input
also has what a crawl really looks like.

The output is byte-identical on every run: pages are ordered by a hash of their URL (so
the hosts are mixed), record ids are UUID5 of the URL, dates are a fixed start plus the
page index, and warcio's gzip writes no timestamp. `manifest.txt` lists every file with
its sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
PAGES = REPO / "benchmarks" / "pages"  # bundled page sets (NOTICE.md there)
REAL_WARCS = sorted((REPO / "tests" / "data" / "warc").glob("*.warc.gz"))
# optional, never in the default input: the workplace's shared data, for the trafilatura set
SHARED = Path(os.environ.get("THRESHER_SHARED_DATA") or REPO.parent / "shared" / "data")
TRAFILATURA_EVAL = SHARED / "extraction" / "trafilatura-eval.tar.xz"
NAMESPACE = uuid.UUID("5b1c5a2e-6f0e-4a57-9a63-8d1f1b0c7e10")  # fixed: ids stay the same
START = datetime(2024, 5, 1, tzinfo=timezone.utc)
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9_:.\-]+)", re.I)


def trafilatura_pages() -> list[tuple[str, bytes]]:
    """(url, html bytes) of the trafilatura eval set; URLs from its evaldata.json."""
    if not TRAFILATURA_EVAL.exists():
        raise SystemExit(f"--sources trafilatura needs {TRAFILATURA_EVAL} (not bundled; "
                         "set THRESHER_SHARED_DATA to the directory that holds extraction/)")
    pages: dict[str, bytes] = {}
    urls: dict[str, str] = {}
    with tarfile.open(TRAFILATURA_EVAL) as tar:
        for m in tar:
            if not m.isfile():
                continue
            data = tar.extractfile(m).read()
            if m.name.endswith("evaldata.json"):
                urls = {v["file"]: u for u, v in json.loads(data).items()}
            elif m.name.endswith(".html"):
                pages[Path(m.name).name] = data
    # some evaldata keys are labels ("hard::site.html"), not URLs: those get one under .invalid;
    # one has a space, which a WARC-Target-URI cannot hold (warcio would rewrite it as %20)
    return [(u.replace(" ", "%20") if _is_url(u := urls.get(name, ""))
             else f"https://trafilatura-eval.invalid/{name}", data)
            for name, data in pages.items()]


def _is_url(url: str) -> bool:
    s = urlsplit(url)
    return s.scheme in ("http", "https") and bool(s.netloc)


def readability_pages() -> list[tuple[str, bytes]]:
    out = []
    with tarfile.open(PAGES / "readability-test-pages.tar.xz") as tar:
        for m in tar:
            if m.isfile() and m.name.endswith("/source.html"):
                name = Path(m.name).parent.name
                out.append((f"https://readability.invalid/{name}/", tar.extractfile(m).read()))
    return out


def scrapinghub_pages() -> list[tuple[str, bytes]]:
    """(url, html bytes) of the ScrapingHub set; URLs from its ground-truth.json."""
    gold, html = scrapinghub_set()
    return [(gold[pid]["url"], page) for pid, page in sorted(html.items())]


def scrapinghub_set() -> tuple[dict, dict[str, bytes]]:
    """(ground truth by page id, html bytes by page id) of the bundled ScrapingHub set."""
    gold, html = {}, {}
    with tarfile.open(PAGES / "article-extraction-benchmark.tar.xz") as tar:
        for m in tar:
            if m.isfile() and m.name.endswith("/ground-truth.json"):
                gold = json.loads(tar.extractfile(m).read())
            elif m.isfile() and m.name.endswith(".html"):
                html[Path(m.name).name.split(".")[0]] = tar.extractfile(m).read()
    return gold, html


SOURCES = {"trafilatura": trafilatura_pages, "readability": readability_pages,
           "scrapinghub": scrapinghub_pages}
DEFAULT_SOURCES = ("readability", "scrapinghub")  # the bundled ones


def all_pages(sources=tuple(SOURCES)) -> list[tuple[str, bytes]]:
    pages = [p for name in sources for p in SOURCES[name]()]
    # by hash of url then content: hosts mixed, same order on every run
    return sorted(pages, key=lambda p: (hashlib.sha1(p[0].encode()).hexdigest(),
                                        hashlib.sha1(p[1]).hexdigest()))


def http_content_type(html: bytes) -> str:
    m = _META_CHARSET.search(html[:4096])
    return f"text/html; charset={m.group(1).decode('ascii')}" if m else "text/html"


def write_shard(path: Path, pages: list[tuple[str, bytes]], first: int) -> None:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    def warc_headers(kind: str, url: str, i: int) -> dict[str, str]:
        date = (START + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        rid = uuid.uuid5(NAMESPACE, f"{kind}:{i}:{url}")
        return {"WARC-Record-ID": f"<urn:uuid:{rid}>", "WARC-Date": date}

    with open(path, "wb") as fh:
        w = WARCWriter(fh, gzip=True)
        info = w.create_warc_record(
            "", "warcinfo", payload=io.BytesIO(
                b"software: thresher benchmarks/make_bench_warc.py\r\n"
                b"description: real HTML pages of public extraction benchmarks; "
                b"HTTP headers and request records synthesized\r\n"),
            warc_headers_dict={**warc_headers("warcinfo", path.name, first),
                               "WARC-Filename": path.name})
        w.write_record(info)
        for i, (url, html) in enumerate(pages, start=first):
            u = urlsplit(url)
            target = (u.path or "/") + (f"?{u.query}" if u.query else "")
            req = StatusAndHeaders(f"GET {target} HTTP/1.1", [
                ("Host", u.netloc), ("User-Agent", "bench/1.0"), ("Accept", "text/html")],
                is_http_request=True)
            w.write_record(w.create_warc_record(
                url, "request", http_headers=req,
                warc_headers_dict=warc_headers("request", url, i)))
            resp = StatusAndHeaders("200 OK", [
                ("Content-Type", http_content_type(html)), ("Content-Length", str(len(html)))],
                protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(
                url, "response", payload=io.BytesIO(html), length=len(html), http_headers=resp,
                warc_headers_dict={**warc_headers("response", url, i),
                                   "WARC-Identified-Payload-Type": "text/html"}))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(out: Path, shards: int, sources=DEFAULT_SOURCES, real: bool = True) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    pages = all_pages(sources)
    files = []
    per = -(-len(pages) // shards)
    for s in range(shards):
        chunk = pages[s * per:(s + 1) * per]
        path = out / f"bench-pages-{s:02d}.warc.gz"
        tmp = path.with_name(path.name + ".tmp")
        write_shard(tmp, chunk, s * per)
        tmp.replace(path)
        files.append(path)
    for src in REAL_WARCS if real else []:
        dst = out / f"real-{src.name}"
        shutil.copyfile(src, dst)
        files.append(dst)
    for old in {*out.glob("bench-pages-*.warc.gz"), *out.glob("real-*.warc.gz")} - set(files):
        old.unlink()  # from an earlier build with other sources or shards
    lines = [f"{sha256(p)}  {p.name}" for p in files]
    (out / "manifest.txt").write_text("\n".join(lines) + "\n")
    print(f"{len(pages)} real HTML pages in {shards} built WARC files + "
          f"{len(REAL_WARCS) if real else 0} real WARCs -> {out}")
    return files


def ensure(out: Path = REPO / "benchmarks" / "data") -> Path:
    """``out`` with the default input built in it, unless it already holds WARC files."""
    if not any(out.glob("*.warc.gz")):
        build(out, 8)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "data"))
    ap.add_argument("--shards", type=int, default=8, help="built WARC files (tasks per run)")
    ap.add_argument("--sources", nargs="+", choices=list(SOURCES), default=list(DEFAULT_SOURCES),
                    help="page sets to include (default: the bundled ones; trafilatura needs "
                         "$THRESHER_SHARED_DATA)")
    ap.add_argument("--no-real", action="store_true", help="leave out the real WARCs")
    a = ap.parse_args()
    build(Path(a.out), a.shards, a.sources, real=not a.no_real)


if __name__ == "__main__":
    main()
