"""trafilatura through stages/extraction/extract_fast.py against plain ``trafilatura.extract``.

    .venv/bin/python benchmarks/bench_extract_fast.py [--reps 3] [--pages N] [--write-doc]

The pages of the end-to-end input (benchmarks/data, as thresher's WARC reader decodes
them), extracted with the end-to-end recipe (favor_precision, deduplicate with one cache
per pass, no comments) in this process, one core: the library's own call and the fast
path, alternating pass by pass so that load from other work hits both alike. Reported:
CPU seconds per pass (median and min), pages per CPU second, the ratio, and how many
pages give the same text (all of them, or the fast path is wrong).

``--instructions N`` also counts the instructions each path executes on N of the pages
under valgrind's callgrind (a figure other work on the machine cannot change): one run
per path plus one that only starts up and warms up, which is subtracted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
RECIPE = {"favor_precision": True, "include_comments": False}


def load_pages(data: Path, limit: int | None) -> list[tuple[str | None, str]]:
    from make_bench_warc import ensure

    from pipelines.config import WarcInput
    from pipelines.io.readers import make_reader
    from pipelines.stats import StageStats

    files = sorted(ensure(data).glob("*.warc.gz"))  # built from bundled pages if missing
    reader = make_reader(WarcInput(paths=[str(f) for f in files], root=str(data)))
    pages = []
    for f in files:
        for table in reader.read(f, f.name, StageStats()):
            pages += zip(table.column("url").to_pylist(), table.column("html").to_pylist())
    if limit and limit < len(pages):  # an even spread over the files
        pages = pages[::len(pages) // limit][:limit]
    return pages


def one_pass(extract, pages) -> tuple[float, list[str | None]]:
    from trafilatura.deduplication import LRUCache

    cache = LRUCache(maxsize=2**20)
    c0 = time.process_time()
    out = [extract(html, url=url, deduplicate=cache, **RECIPE) for url, html in pages]
    return time.process_time() - c0, out


def child_pass(a: argparse.Namespace) -> None:
    """One pass in this process, for callgrind: 'none' starts up and warms up only."""
    import trafilatura

    from stages.extraction import extract_fast

    pages = load_pages(Path(a.data), a.pages)
    extract_fast.install()
    extract_fast.extract(pages[0][1])
    trafilatura.extract(pages[0][1])
    if a.child_pass != "none":
        one_pass(extract_fast.extract if a.child_pass == "fast" else trafilatura.extract, pages)


def instructions(a: argparse.Namespace, n: int) -> dict[str, int]:
    import re
    import subprocess
    import tempfile

    counts = {}
    with tempfile.TemporaryDirectory() as tmp:
        for what in ("none", "library", "fast"):
            out = subprocess.run(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/{what}.out",
                 sys.executable, __file__, "--child-pass", what, "--pages", str(n),
                 "--data", a.data], capture_output=True, text=True, check=True).stderr
            counts[what] = int(re.search(r"Collected : (\d+)", out).group(1))
            print(f"callgrind {what}: {counts[what]:,} instructions", flush=True)
    return {k: counts[k] - counts["none"] for k in ("library", "fast")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--pages", type=int, default=None, help="a spread subset (default: all)")
    ap.add_argument("--data", default=str(REPO / "benchmarks" / "data"))
    ap.add_argument("--write-doc", action="store_true")
    ap.add_argument("--instructions", type=int, metavar="N",
                    help="also count instructions under callgrind on N pages")
    ap.add_argument("--child-pass", choices=["none", "library", "fast"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child_pass:
        return child_pass(a)
    import trafilatura

    from stages.extraction import extract_fast

    pages = load_pages(Path(a.data), a.pages)
    extract_fast.install()
    extract_fast.extract(pages[0][1])  # warm both: justext's stoplists, lazy imports
    trafilatura.extract(pages[0][1])
    systems = {"trafilatura.extract (library)": trafilatura.extract,
               "stages.extraction.extract_fast.extract": extract_fast.extract}
    cpu: dict[str, list[float]] = {k: [] for k in systems}
    outs: dict[str, list] = {}
    for rep in range(a.reps):
        for name in (list(systems) if rep % 2 == 0 else list(systems)[::-1]):
            secs, out = one_pass(systems[name], pages)
            cpu[name].append(secs)
            outs.setdefault(name, out)
            print(f"rep {rep} {name:32s} {secs:7.2f} CPU s  (load {os.getloadavg()[0]:.1f})",
                  flush=True)
    ref, fast = (outs[k] for k in systems)
    same = sum(x == y for x, y in zip(ref, fast))
    med = {k: statistics.median(v) for k, v in cpu.items()}
    base = med["trafilatura.extract (library)"]
    lines = [
        f"Command: `.venv/bin/python benchmarks/bench_extract_fast.py "
        f"{' '.join(sys.argv[1:])}`. {len(pages):,} HTML pages of benchmarks/data (as the WARC "
        f"reader decodes them), trafilatura {trafilatura.__version__} with the end-to-end "
        "recipe (favor_precision, deduplicate, no comments), one process on one core, "
        f"{a.reps} passes each, alternating. Load average at the end {os.getloadavg()[0]:.2f} "
        f"on {os.cpu_count()} cores.",
        "",
        "| extraction | CPU s per pass (median) | min | pages per CPU s | speed-up | same text |",
        "|---|---|---|---|---|---|",
    ]
    for name, secs in med.items():
        ident = "-" if systems[name] is trafilatura.extract else f"{same:,} / {len(pages):,}"
        lines.append(f"| {name} | {secs:.2f} | {min(cpu[name]):.2f} | {len(pages) / secs:.1f} "
                     f"| {base / secs:.2f}x | {ident} |")
    if a.instructions:
        ins = instructions(a, a.instructions)
        lines += ["", f"Instructions executed on {a.instructions} of these pages (callgrind, "
                  "start-up and warm-up subtracted): trafilatura.extract "
                  f"{ins['library'] / 1e9:.2f} G, the fast path {ins['fast'] / 1e9:.2f} G: "
                  f"{ins['library'] / ins['fast']:.2f}x fewer."]
    report = "\n".join(lines)
    print("\n" + report)
    if same != len(pages):
        raise SystemExit(f"the fast path differs on {len(pages) - same} pages")
    if a.write_doc:
        from bench_e2e import DOC, write_section

        write_section(DOC, "Extraction: trafilatura's fast path", report,
                      "bench_extract_fast.py")
        print(f"wrote the section to {DOC}")


if __name__ == "__main__":
    main()
