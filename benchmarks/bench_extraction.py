"""Extraction quality and speed: trafilatura and resiliparse against the ScrapingHub gold text.

    .venv/bin/python benchmarks/bench_extraction.py [--write-doc]

The 181 pages of the ScrapingHub article-extraction-benchmark (bundled in
benchmarks/pages, MIT) come with the full gold article text. Each extractor runs
through thresher's own `extract` stage (the code path of a pipeline, pages decoded by
the WARC reader's charset rules), in this process, on one core. Quality is token-level:
both texts are lowercased and split into Unicode word tokens (`\\w+`); precision and
recall count the tokens the two bags share (with multiplicity); F1 per page, averaged
over pages (a page with no output scores 0). Speed is pages per CPU second of the stage
(load on other cores does not change it much) and per wall second.

Every extractor runs ``--repeats`` times (default 3), each time in a fresh process
(imports and set-up untimed), alternating with the others, the order rotating each
repetition; each run must give the same texts as that extractor's first (the script
fails otherwise). The table gives the median speed and its range over the runs.

Reference rows: the same stage calling plain ``trafilatura.extract`` instead of its
byte-identical fast path (stages/extraction/extract_fast.py), and, when
benchmarks/.venv-datatrove exists (`make bench` builds it), datatrove's own
``Trafilatura`` extractor object on the same decoded pages, in that venv, twice: with
thresher's trafilatura version (the trafilatura-same overlay of bench_e2e.py) and with
the 1.11 its processing extra pins. For each, the report counts the pages whose text
equals thresher's stage with the same options.
"""

from __future__ import annotations

import argparse
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

CONFIGS = {  # label -> extract parameters
    "trafilatura": {},
    "trafilatura favor_precision": {"favor_precision": True},
    # the same stage calling plain trafilatura.extract instead of stages/extraction/extract_fast.py
    "trafilatura favor_precision, plain trafilatura.extract": {"favor_precision": True},
    # datatrove's Trafilatura step's options (and the end-to-end recipe's)
    "trafilatura favor_precision deduplicate": {"favor_precision": True, "deduplicate": True},
    "trafilatura favor_precision fast": {"favor_precision": True, "fast": True},
    "resiliparse": {"extractor": "resiliparse"},
}
SAME_OPTIONS = "trafilatura favor_precision deduplicate"  # what the datatrove rows compare to
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
    from make_bench_warc import scrapinghub_set

    from pipelines.io.html_charset import decode_html

    gold, pages = scrapinghub_set()
    ids, urls, htmls = [], [], []
    for pid in sorted(pages):
        ids.append(pid)
        urls.append(gold[pid]["url"])
        htmls.append(decode_html(pages[pid], None)[0])
    table = pa.table({"id": ids, "url": urls, "html": htmls})
    return ids, table, {i: gold[i]["articleBody"] for i in ids}


def run(label: str, params: dict, table) -> tuple[dict[str, str], float, float]:
    import os

    from pipelines.stats import StageStats
    from stages.extraction.extract import Extract, ExtractParams
    from stages.extraction.extract_fast import REFERENCE_ENV

    if "plain trafilatura.extract" in label:
        os.environ[REFERENCE_ENV] = "1"
    else:
        os.environ.pop(REFERENCE_ENV, None)

    st = Extract(ExtractParams(**params))
    st.setup()
    st.begin_task(None)
    stats = StageStats()
    t0, c0 = time.perf_counter(), time.process_time()
    out = st.process(table, stats)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    os.environ.pop(REFERENCE_ENV, None)
    return dict(zip(out.column("id").to_pylist(), out.column("text").to_pylist())), wall, cpu


DT_PYTHON = REPO / "benchmarks" / ".venv-datatrove" / "bin" / "python"
DT_SAME = REPO / "benchmarks" / ".venv-datatrove" / "trafilatura-same"
DT_LABEL = "datatrove's Trafilatura step (trafilatura {v}, favour_precision)"


def run_datatrove(table, overlay: Path | None) -> tuple[str, dict[str, str], float, float] | None:
    """datatrove 0.10.1's own extractor object, in its venv, on the same decoded pages:
    ``Trafilatura(favour_precision=True).extract(html)`` (its defaults: deduplicate,
    no comments), timed there per CPU second; ``overlay`` goes first on PYTHONPATH."""
    import os
    import subprocess
    import tempfile

    if not DT_PYTHON.exists() or (overlay and not overlay.is_dir()):
        return None
    env = {**os.environ, "PYTHONPATH": str(overlay)} if overlay else None
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "pages.json", Path(tmp) / "texts.json"
        src.write_text(json.dumps(dict(zip(table.column("id").to_pylist(),
                                           table.column("html").to_pylist()))))
        subprocess.run([str(DT_PYTHON), __file__, "--child-datatrove", str(src), str(dst)],
                       check=True, env=env)
        res = json.loads(dst.read_text())
    return DT_LABEL.format(v=res["version"]), res["texts"], res["wall"], res["cpu"]


def child_datatrove(src: str, dst: str) -> None:
    """In datatrove's venv: nothing from thresher is imported."""
    import trafilatura
    from datatrove.pipeline.extractors import Trafilatura

    pages = json.loads(Path(src).read_text())
    ex = Trafilatura(favour_precision=True)
    t0, c0 = time.perf_counter(), time.process_time()
    texts = {pid: ex.extract(html) for pid, html in pages.items()}
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    Path(dst).write_text(json.dumps({"texts": {k: v for k, v in texts.items() if v},
                                     "wall": wall, "cpu": cpu,
                                     "version": trafilatura.__version__}))


def child_thresher(label: str, dst: str) -> None:
    """One extractor of CONFIGS in this fresh process: its texts and its timing."""
    _, table, _ = load_pages()
    texts, wall, cpu = run(label, CONFIGS[label], table)
    Path(dst).write_text(json.dumps({"texts": {k: v for k, v in texts.items() if v},
                                     "wall": wall, "cpu": cpu}))


def run_thresher(label: str) -> tuple[str, dict[str, str], float, float]:
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        dst = Path(tmp) / "texts.json"
        subprocess.run([sys.executable, __file__, "--child-thresher", label, str(dst)],
                       check=True)
        res = json.loads(dst.read_text())
    return label, res["texts"], res["wall"], res["cpu"]


def main() -> None:
    import os

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write-doc", action="store_true", help="update docs/benchmarks.md")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each extractor (>= 3)")
    ap.add_argument("--child-datatrove", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--child-thresher", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child_datatrove:
        return child_datatrove(*a.child_datatrove)
    if a.child_thresher:
        return child_thresher(*a.child_thresher)
    if a.repeats < 3:
        ap.error("--repeats must be at least 3")
    ids, table, gold = load_pages()
    # every side is a thunk run in a fresh process: thresher's configs, then datatrove's
    sides = {label: (lambda label=label: run_thresher(label)) for label in CONFIGS}
    order = list(CONFIGS)
    for n, overlay in enumerate((DT_SAME, None)):
        if DT_PYTHON.exists() and (overlay is None or overlay.is_dir()):
            first = run_datatrove(table, overlay)  # its label names its trafilatura version
            sides[first[0]] = lambda overlay=overlay: run_datatrove(table, overlay)
            order.insert(4 + n, first[0])
    loads = [os.getloadavg()[0]]
    texts: dict[str, dict[str, str]] = {}
    timings: dict[str, list[tuple[float, float]]] = {label: [] for label in order}
    for rep in range(a.repeats):
        k = rep % len(order)
        for label in order[k:] + order[:k]:
            got_label, got, wall, cpu = sides[label]()
            assert got_label == label, (got_label, label)
            if label not in texts:
                texts[label] = got
            elif got != texts[label]:
                raise SystemExit(f"{label}: run {rep + 1} gave other texts than run 1")
            timings[label].append((wall, cpu))
            print(f"run {rep + 1} {label}: {len(ids) / cpu:.1f} pages/CPU s, "
                  f"{len(ids) / wall:.1f} pages/s wall", flush=True)
        loads.append(os.getloadavg()[0])
    reference = texts[SAME_OPTIONS]
    same_text = {label: sum((texts[label].get(i) or "") == (reference.get(i) or "")
                            for i in ids)
                 for label in order if label.startswith("datatrove")}
    rows = []
    for label in order:
        scores = [prf(texts[label].get(i) or "", gold[i]) for i in ids]
        p, r, f = (statistics.mean(s[k] for s in scores) for k in range(3))
        per_cpu = [len(ids) / cpu for _, cpu in timings[label]]
        per_wall = [len(ids) / wall for wall, _ in timings[label]]
        rows.append((label, f, p, r, statistics.median(s[2] for s in scores),
                     len(ids) - len(texts[label]), per_cpu, per_wall))
        print(f"{label:34s} F1 {f:.3f}  P {p:.3f}  R {r:.3f}  "
              f"{statistics.median(per_cpu):6.1f} pages/cpu-s (median of {len(per_cpu)})",
              flush=True)

    def spread(xs: list[float]) -> str:
        return f"{statistics.median(xs):.1f} ({min(xs):.1f}-{max(xs):.1f})"

    lines = [
        f"Command: `.venv/bin/python benchmarks/bench_extraction.py --write-doc --repeats "
        f"{a.repeats}`. Gold: the {len(ids)} "
        "pages of the ScrapingHub article-extraction-benchmark (full article text, bundled in "
        "benchmarks/pages). Each extractor runs through thresher's `extract` stage on one core "
        "(the datatrove rows: datatrove 0.10.1's `Trafilatura(favour_precision=True).extract` "
        "in its own venv, same decoded pages, with thresher's trafilatura version and with the "
        "one its processing extra pins); token-level "
        "precision/recall/F1 (lowercased `\\w+` tokens, bags with multiplicity), averaged "
        f"over pages; a page with no output scores 0. Speed: each extractor ran {a.repeats} "
        "times, each in a fresh process, alternating with the others in a rotating order; "
        "median (range) over the runs, every run's texts identical to the extractor's first. "
        f"Machine: {os.cpu_count()} cores, load average {min(loads):.2f}-{max(loads):.2f} "
        "during the runs (pages per CPU second is the steadier figure).",
        "",
        "| extractor | F1 | precision | recall | median F1 | no output | pages/CPU s "
        "| pages/s wall |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, f, p, r, med, empty, per_cpu, per_wall in rows:
        lines.append(f"| {label} | {f:.3f} | {p:.3f} | {r:.3f} | {med:.3f} | {empty} | "
                     f"{spread(per_cpu)} | {spread(per_wall)} |")
    for label, n in same_text.items():
        lines.append(f"\n{label}: the same text as thresher's `{SAME_OPTIONS}` row on {n} of "
                     f"{len(ids)} pages.")
    report = "\n".join(lines)
    print("\n" + report)
    if a.write_doc:
        from bench_e2e import DOC, write_section

        write_section(DOC, "Extraction", report, "bench_extraction.py")
        print(f"wrote the section to {DOC}")


if __name__ == "__main__":
    main()
