"""Extraction quality and speed: trafilatura and resiliparse against the ScrapingHub gold text.

    .venv/bin/python benchmarks/bench_extraction.py [--write-doc]

The 181 pages of the ScrapingHub article-extraction-benchmark (../shared/data/extraction,
MIT) come with the full gold article text. Each extractor runs through thresher's own
`extract` stage (the code path of a pipeline, pages decoded by the WARC reader's charset
rules), in this process, on one core. Quality is token-level: both texts are lowercased
and split into Unicode word tokens (`\\w+`); precision and recall count the tokens the
two bags share (with multiplicity); F1 per page, averaged over pages (a page with no
output scores 0). Speed is pages per CPU second of the stage (load on other cores does
not change it much) and per wall second.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
GOLD = REPO.parent / "shared" / "data" / "extraction" / "article-extraction-benchmark"

CONFIGS = {  # label -> extract parameters
    "trafilatura": {},
    "trafilatura favor_precision": {"favor_precision": True},
    "trafilatura favor_precision fast": {"favor_precision": True, "fast": True},
    "resiliparse": {"extractor": "resiliparse"},
}
_TOKEN = re.compile(r"\w+")


def tokens(text: str) -> Counter:
    return Counter(_TOKEN.findall(text.lower()))


def prf(pred: str, gold: str) -> tuple[float, float, float]:
    p, g = tokens(pred), tokens(gold)
    common = sum((p & g).values())
    if not common:
        return 0.0, 0.0, 0.0
    prec, rec = common / sum(p.values()), common / sum(g.values())
    return prec, rec, 2 * prec * rec / (prec + rec)


def load_pages():
    """(ids, pyarrow table with id/url/html, gold texts) of the benchmark pages."""
    import pyarrow as pa

    from pipelines.io.html_charset import decode_html

    gold = json.loads((GOLD / "ground-truth.json").read_text())
    ids, urls, htmls = [], [], []
    for path in sorted((GOLD / "html").glob("*.html.gz")):
        pid = path.name.split(".")[0]
        ids.append(pid)
        urls.append(gold[pid]["url"])
        htmls.append(decode_html(gzip.decompress(path.read_bytes()), None)[0])
    table = pa.table({"id": ids, "url": urls, "html": htmls})
    return ids, table, {i: gold[i]["articleBody"] for i in ids}


def run(label: str, params: dict, table) -> tuple[dict[str, str], float, float]:
    from pipelines.stats import StageStats
    from stages.extract import Extract, ExtractParams

    st = Extract(ExtractParams(**params))
    st.setup()
    st.begin_task(None)
    stats = StageStats()
    t0, c0 = time.perf_counter(), time.process_time()
    out = st.process(table, stats)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return dict(zip(out.column("id").to_pylist(), out.column("text").to_pylist())), wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write-doc", action="store_true", help="update docs/benchmarks.md")
    a = ap.parse_args()
    ids, table, gold = load_pages()
    rows = []
    for label, params in CONFIGS.items():
        texts, wall, cpu = run(label, params, table)
        scores = [prf(texts.get(i) or "", gold[i]) for i in ids]
        p, r, f = (statistics.mean(s[k] for s in scores) for k in range(3))
        rows.append((label, f, p, r, statistics.median(s[2] for s in scores),
                     len(ids) - len(texts), len(ids) / cpu, len(ids) / wall))
        print(f"{label:34s} F1 {f:.3f}  P {p:.3f}  R {r:.3f}  {len(ids) / cpu:6.1f} pages/cpu-s",
              flush=True)
    import os

    lines = [
        f"Command: `.venv/bin/python benchmarks/bench_extraction.py --write-doc`. Gold: the "
        f"{len(ids)} "
        "pages of the ScrapingHub article-extraction-benchmark (full article text). Each "
        "extractor runs through thresher's `extract` stage on one core; token-level "
        "precision/recall/F1 (lowercased `\\w+` tokens, bags with multiplicity), averaged "
        f"over pages; a page with no output scores 0. Machine: {os.cpu_count()} cores, load "
        f"average {os.getloadavg()[0]:.2f} (pages/s per CPU second is the steadier figure).",
        "",
        "| extractor | F1 | precision | recall | median F1 | no output | pages/CPU s "
        "| pages/s wall |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, f, p, r, med, empty, per_cpu, per_wall in rows:
        lines.append(f"| {label} | {f:.3f} | {p:.3f} | {r:.3f} | {med:.3f} | {empty} | "
                     f"{per_cpu:.1f} | {per_wall:.1f} |")
    report = "\n".join(lines)
    print("\n" + report)
    if a.write_doc:
        from bench_e2e import DOC, write_section

        write_section(DOC, "Extraction", report, "bench_extraction.py")
        print(f"wrote the section to {DOC}")


if __name__ == "__main__":
    main()
