"""End to end against datatrove: WARC -> trafilatura -> lid.176 (en >= 0.65) -> Gopher -> Parquet.

    .venv/bin/python benchmarks/bench_e2e.py [--reps 3] [--workers 2] [--write-doc]
    make bench                      # builds the input and datatrove's venv if missing, then this

Both frameworks run the same recipe with the same parameters on the same files
(benchmarks/data, built by make_bench_warc.py), one task per file, with the same number
of worker processes, alternating within each repetition so that load from other work
on the machine hits both alike. Each run is a fresh subprocess (imports and model
loading are counted: a worker pays them too); the parent measures its wall time, and
the CPU time and peak memory of its process group (every worker and forkserver; RSS
summed over the processes every 0.2 s, PSS every 1 s).

docs/s divides one fixed count by the wall time: the HTML response records of the input
(counted once here with warcio), so ratios are ratios of wall times. Each framework's
own counts (documents it extracted, documents kept) are printed next to it, and the
datatrove column shows how many records it read without reporting the rest.
datatrove's extractor gives up on a page after `--dt-timeout` seconds of wall time (its
default, 1 s, drops slow pages that thresher extracts); the default here is 60 s, so
both sides extract every page.

datatrove runs from its own venv (benchmarks/.venv-datatrove, pinned by
benchmarks/requirements-datatrove.txt) because its processing extra pins
trafilatura<1.12; this same file is its entry point (`--child datatrove`), and it
imports nothing from thresher. Its LanguageFilter is pointed at thresher's bundled
lid.176.ftz (a file:// URL, copied into a temporary cache: nothing is downloaded).

datatrove runs in two configurations (`--datatrove`): `same`, its strongest fair one,
with thresher's own trafilatura (the version of requirements.lock, installed by `make
bench` with --no-deps into benchmarks/.venv-datatrove/trafilatura-same and put first on
PYTHONPATH; its Trafilatura step calls only `trafilatura.extract`, with options 2.x
still takes) and the `fork`
start method of its LocalPipelineExecutor; and `default`, the trafilatura its extra
pins (1.11) and its default start method (forkserver). Each child reports the versions of
trafilatura and its dependencies it imported, and the report says whether they equal
thresher's. Kept documents are compared by id (WARC-Record-ID) between every datatrove
row and thresher, and the ids that only one side keeps are listed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "benchmarks" / "data"
DT_VENV = REPO / "benchmarks" / ".venv-datatrove"
DT_SAME = DT_VENV / "trafilatura-same"  # thresher's trafilatura, beside datatrove's pin
# datatrove configurations: (trafilatura on PYTHONPATH or None for its own pin, start method)
DATATROVE = {"same": (DT_SAME, "fork"), "default": (None, "forkserver")}
# the extraction stack whose versions must match for a same-version comparison
VERSIONED = ("trafilatura", "lxml", "courlan", "htmldate", "jusText", "charset-normalizer")
LID_MODEL = REPO / "stages" / "models" / "lid.176.ftz"
DOC = REPO / "docs" / "benchmarks.md"
RECIPE = {"favor_precision": True, "deduplicate": True, "language": "en", "min_score": 0.65}
# thresher's extract stage calling plain trafilatura.extract instead of its fast path
# (stages/extraction/extract_fast.py, byte-identical): shows what the fast path buys, and that the
# output shards are the same
LIBRARY = "trafilatura.extract"


# ----------------------------------------------------------------------------- children

def child_thresher(a: argparse.Namespace) -> dict:
    sys.path.insert(0, str(REPO))
    from pipelines import run_pipeline, stage
    from pipelines.config import LocalExecutor, OutputConfig, PipelineConfig, WarcInput
    from stages.extraction.extract_fast import REFERENCE_ENV

    if a.extractor == LIBRARY:  # the same stage calling plain trafilatura.extract
        os.environ[REFERENCE_ENV] = "1"  # before the workers start: they inherit it
    extract = {"favor_precision": RECIPE["favor_precision"],
               "deduplicate": RECIPE["deduplicate"]}
    if a.extractor not in ("trafilatura", LIBRARY):
        extract = {"extractor": a.extractor}
    cfg = PipelineConfig(
        name="bench-e2e",
        input=WarcInput(paths=[str(p) for p in inputs(Path(a.data))], root=a.data,
                        **({"backend": a.backend} if a.backend != "warcio" else {})),
        output=OutputConfig(path=a.out),
        executor=LocalExecutor(workers=a.workers),
        stages=[stage("extract", **extract),
                stage("langid", languages=[RECIPE["language"]], min_score=RECIPE["min_score"]),
                stage("gopher_quality")],
    )
    run = run_pipeline(cfg, overwrite=True)
    st = json.loads((run.root / "stats.json").read_text())
    stages = {k: {"in": v["docs_in"], "out": v["docs_out"], "wall_s": v["wall_s"],
                  "cpu_s": v["cpu_s"]} for k, v in st["stages"].items()}
    import pyarrow.parquet as pq

    kept = {}
    for p in sorted((run.root / "data").glob("*.parquet")):
        t = pq.read_table(p, columns=["id", "url"])
        kept.update(zip(t.column("id").to_pylist(), t.column("url").to_pylist()))
    return {"records": st["stages"]["read"]["docs_in"],
            "extracted_in": stages["extract"]["in"], "kept": st["output"]["rows"],
            "stages": stages, "kept_ids": kept, "versions": versions(),
            "shards": [sh["sha256"] for sh in st["output"]["shards"]]}


def child_datatrove(a: argparse.Namespace) -> dict:
    # datatrove copies the "downloaded" model into its asset cache: keep that out of $HOME
    os.environ["HF_HOME"] = str(Path(a.out) / "hf-home")
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import GopherQualityFilter, LanguageFilter
    from datatrove.pipeline.readers import WarcReader
    from datatrove.pipeline.writers import ParquetWriter

    files = [p.name for p in inputs(Path(a.data))]
    out = Path(a.out)
    langid = LanguageFilter(languages=[RECIPE["language"]], language_threshold=RECIPE["min_score"])
    # on the instance, which is pickled to the workers (a class attribute set here is not)
    langid.model.MODEL_URL = f"file://{LID_MODEL}"
    pipeline = [
        WarcReader(a.data, glob_pattern="*.warc.gz"),
        Trafilatura(favour_precision=RECIPE["favor_precision"],
                    deduplicate=RECIPE["deduplicate"], timeout=a.dt_timeout),
        langid,
        GopherQualityFilter(),
        ParquetWriter(str(out / "data"), compression="zstd"),
    ]
    ex = LocalPipelineExecutor(pipeline, tasks=len(files), workers=a.workers,
                               logging_dir=str(out / "logs"), start_method=a.start_method)
    ex.run()
    stats = json.loads((out / "logs" / "stats.json").read_text())
    steps = {}
    for s in stats:  # names like "🔻 - FILTER: 🥇 Gopher Quality"
        name = s["name"].split(":", 1)[-1].strip().split(" ", 1)[-1]
        st = s.get("stats", {})
        docs = st["documents"]["total"] if "documents" in st else st.get("total", 0)
        steps[name] = {"wall_s": s.get("time_stats", {}).get("total", 0.0), "in": docs,
                       "forwarded": st.get("forwarded", docs), "dropped": st.get("dropped", 0),
                       "timeout": st.get("timeout", 0)}
    import pyarrow.parquet as pq

    kept = {}
    for p in sorted((out / "data").glob("*.parquet")):
        t = pq.read_table(p, columns=["id", "metadata"]).to_pylist()
        kept.update((str(r["id"]).strip("<>"), (r["metadata"] or {}).get("url")) for r in t)
    return {"records": None, "extracted_in": steps.get("Trafilatura", {}).get("in"),
            "kept": len(kept), "stages": steps, "kept_ids": kept, "versions": versions()}


def inputs(data: Path) -> list[Path]:
    return sorted(data.glob("*.warc.gz"))


def versions() -> dict[str, str]:
    """Versions of the extraction stack as imported in this process (PYTHONPATH first)."""
    import importlib.metadata as md

    return {name: md.version(name) for name in VERSIONED}


# ----------------------------------------------------------------------------- measuring

_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def _group(pgid: int) -> dict[int, tuple[int, int]]:
    """pid -> (CPU ticks, RSS KiB) of every live process in process group ``pgid``."""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:  # after the name: state ppid pgrp ... utime stime
                out[int(d)] = (int(fields[11]) + int(fields[12]), int(fields[21]) * _PAGE_KIB)
    return out


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return next((int(ln.split()[1]) for ln in f if ln.startswith("Pss:")), 0)
    except OSError:
        return 0


class GroupMonitor(threading.Thread):
    """Samples a process group (the run and every worker, forkservers included, even once
    orphaned): peak summed RSS (every 0.2 s) and PSS (every 1 s; smaps is costly to read),
    and each process's CPU time as last seen (so a process's last 0.2 s may be missed)."""

    def __init__(self, pgid: int, every: float = 0.2):
        super().__init__(daemon=True)
        self.pgid, self.every, self.rss, self.pss = pgid, every, 0, 0
        self.ticks: dict[int, int] = {}
        self._stop_evt = threading.Event()

    def run(self) -> None:
        n = 0
        while not self._stop_evt.is_set():
            live = _group(self.pgid)
            self.ticks.update((p, v[0]) for p, v in live.items())
            self.rss = max(self.rss, sum(v[1] for v in live.values()))
            if n % 5 == 0:
                self.pss = max(self.pss, sum(_pss_kib(p) for p in live))
            n += 1
            self._stop_evt.wait(self.every)

    def stop(self) -> None:
        self._stop_evt.set()
        self.join()

    @property
    def cpu_s(self) -> float:
        return sum(self.ticks.values()) / os.sysconf("SC_CLK_TCK")


def measure(cmd: list[str], out: Path, env: dict | None = None) -> dict:
    """Run ``cmd``; wall, CPU, peak memory of its process group, and the child's result.

    The child's output goes to a log file, not a pipe: a pool's forkserver can outlive
    the child and would hold a pipe open."""
    t0 = time.perf_counter()
    log = out.with_suffix(".log")
    with open(log, "w") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env)
        mem = GroupMonitor(proc.pid)
        mem.start()
        try:
            proc.wait()
        finally:
            mem.stop()
            _kill_leftovers(proc.pid)  # also on Ctrl-C: no orphaned forkservers
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[1:]} failed (exit {proc.returncode}); see {log}")
    result = json.loads((out / "result.json").read_text())
    result.update(wall_s=wall, cpu_s=mem.cpu_s, peak_rss_mib=mem.rss / 1024,
                  peak_pss_mib=mem.pss / 1024)
    return result


def _kill_leftovers(pgid: int) -> None:
    """A pool's forkserver may outlive its parent; end what is left of this run's group."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def count_html_responses(files: list[Path]) -> tuple[int, int]:
    """(WARC records, response records whose HTTP Content-Type is HTML), with warcio."""
    from warcio.archiveiterator import ArchiveIterator

    records = html = 0
    for path in files:
        with open(path, "rb") as fh:
            for rec in ArchiveIterator(fh, arc2warc=True):
                records += 1
                if rec.rec_type == "response" and rec.http_headers is not None:
                    ct = (rec.http_headers.get_header("Content-Type") or "").lower()
                    html += ct.startswith(("text/html", "application/xhtml+xml"))
    return records, html


# ----------------------------------------------------------------------------- report

def run_all(a: argparse.Namespace) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    from make_bench_warc import ensure

    data = ensure(Path(a.data))
    files = inputs(data)
    n_records, n_html = count_html_responses(files)
    systems = []  # (key, command prefix, environment)
    for conf in a.datatrove:
        overlay, method = DATATROVE[conf]
        if not (DT_VENV / "bin" / "python").exists() or (overlay and not overlay.is_dir()):
            raise SystemExit(f"{overlay or DT_VENV} is missing: run `make bench` (it creates it)")
        env = {**os.environ, "PYTHONPATH": str(overlay)} if overlay else None
        systems.append((f"datatrove {conf} (trafilatura, warcio)",
                        [str(DT_VENV / "bin" / "python"), __file__, "--child", "datatrove",
                         "--start-method", method], env))
    for spec in a.thresher:
        ex, backend = spec.split(":")
        systems.append((f"thresher ({ex}, {backend})",
                        [str(REPO / ".venv" / "bin" / "python"), __file__, "--child",
                         "thresher", "--extractor", ex, "--backend", backend], None))
    results: dict[str, list[dict]] = {}
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        for rep in range(a.reps):
            order = systems if rep % 2 == 0 else systems[::-1]
            for i, (key, prefix, env) in enumerate(order):
                out = Path(tmp) / f"{rep}-{i}"
                cmd = [*prefix, "--workers", str(a.workers), "--data", str(data),
                       "--out", str(out), "--dt-timeout", str(a.dt_timeout)]
                r = measure(cmd, out, env)
                results.setdefault(key, []).append(r)
                loads.append(os.getloadavg()[0])
                print(f"rep {rep} {key:42s} {r['wall_s']:7.1f} s wall {r['cpu_s']:7.1f} s CPU  "
                      f"kept {r['kept']}  (load {loads[-1]:.1f})", flush=True)
    report = render(a, results, n_records, n_html, len(files), loads)
    print("\n" + report)
    if a.write_doc:
        write_section(DOC, "End to end vs datatrove", report)
        print(f"wrote the section to {DOC}")


def _spread(values: list[float]) -> str:
    return f"{min(values):.1f}–{max(values):.1f}"


def render(a, results: dict[str, list[dict]], n_records: int, n_html: int, n_files: int,
           loads: list[float]) -> str:
    walls = {k: statistics.median(r["wall_s"] for r in rs) for k, rs in results.items()}
    cpus = {k: statistics.median(r["cpu_s"] for r in rs) for k, rs in results.items()}
    peers = [k for k in results if k.startswith("datatrove")]
    th_key = next((k for k in results if k.startswith("thresher (trafilatura,")), None)
    lines = [
        f"Command: `{' '.join(['.venv/bin/python benchmarks/bench_e2e.py', *sys.argv[1:]])}` "
        f"(`make bench`). Machine: {os.cpu_count()} cores, no GPU, shared with other work: "
        f"load average {min(loads):.1f}–{max(loads):.1f} (1-minute, sampled after each run; "
        f"the benchmark's own {a.workers} workers count as about {a.workers}). Input: "
        f"{n_files} WARC files in benchmarks/data ({n_records:,} records, {n_html:,} HTML "
        f"responses). Recipe on both sides: trafilatura favor_precision + deduplicate, "
        f"lid.176.ftz en >= {RECIPE['min_score']}, Gopher quality defaults, Parquet (zstd); "
        f"datatrove's extraction timeout {a.dt_timeout:g} s. {a.workers} workers, one task per "
        f"file, {a.reps} runs of each system, alternating (the order reversed every other "
        "repetition); medians, with the spread (min–max) of the runs. docs/s = "
        f"{n_html:,} HTML responses / wall time (start-up and model loading included); CPU s "
        "and memory are summed over all processes of the run. datatrove same: thresher's "
        "trafilatura version and the `fork` start method (its strongest fair setup); "
        "datatrove default: the trafilatura its processing extra pins, `forkserver`.",
        "",
        "| system (extractor, WARC reader) | wall s, median (spread) | docs/s | CPU s, median "
        "(spread) | peak RSS MiB | peak PSS MiB | extracted | kept | "
        + " | ".join(f"wall / CPU vs {k.split(' (')[0]}" for k in peers) + " |",
        "|---|---|---|---|---|---|---|---|" + "---|" * len(peers),
    ]
    for key, rs in results.items():
        wall, last = walls[key], rs[-1]
        lines.append(
            f"| {key} | {wall:.1f} ({_spread([r['wall_s'] for r in rs])}) | "
            f"{n_html / wall:.1f} | {cpus[key]:.1f} ({_spread([r['cpu_s'] for r in rs])}) | "
            f"{max(r['peak_rss_mib'] for r in rs):.0f} | {max(r['peak_pss_mib'] for r in rs):.0f} "
            f"| {last['extracted_in']:,} | {last['kept']:,} | "
            + " | ".join(f"{walls[p] / wall:.2f}x / {cpus[p] / cpus[key]:.2f}x" for p in peers)
            + " |")
    if th_key:
        lines += ["", f"{th_key} against each datatrove row, repetition by repetition (runs of "
                  "the same repetition ran back to back), wall / CPU ratio:", ""]
        for p in peers:
            pairs = list(zip(results[p], results[th_key]))
            lines.append(f"- {p}: " + ", ".join(
                f"{d['wall_s'] / t['wall_s']:.2f}x / {d['cpu_s'] / t['cpu_s']:.2f}x"
                for d, t in pairs))
    lines += ["", "Every run (wall s / CPU s, in the order run):", ""]
    for key, rs in results.items():
        lines.append(f"- {key}: " + ", ".join(f"{r['wall_s']:.1f}/{r['cpu_s']:.1f}" for r in rs))
    lines += ["", "Time per stage, last run (seconds summed over tasks, each framework's own "
              "timers):", ""]
    for key, rs in results.items():
        st = rs[-1]["stages"]
        lines.append(f"- {key}: " + ", ".join(f"{k} {v['wall_s']:.1f}" for k, v in st.items()))
    lines += ["", "Versions of the extraction stack each side imported:", ""]
    ref = results[th_key][-1]["versions"] if th_key else None
    for key, rs in results.items():
        v = rs[-1]["versions"]
        same = "" if not ref or key == th_key else (
            " (the same as thresher's)" if v == ref else " (DIFFERENT from thresher's: "
            + ", ".join(f"{n} {v[n]} vs {ref[n]}" for n in VERSIONED if v[n] != ref[n]) + ")")
        lines.append(f"- {key}: " + ", ".join(f"{n} {v[n]}" for n in VERSIONED) + same)
    stable = [k for k, rs in results.items() if len({tuple(sorted(r["kept_ids"])) for r in rs}) > 1]
    lines += ["", "Every run of each system kept the same ids." if not stable else
              f"Runs of {', '.join(stable)} kept DIFFERENT ids from one run to the next."]
    if th_key:
        th = results[th_key][-1]
        for p in peers:
            dt = results[p][-1]
            lines += ["", *_disagreement(p, dt, th_key, th, n_records)]
    lib = [rs for k, rs in results.items() if k.startswith(f"thresher ({LIBRARY},")]
    fast = [rs for k, rs in results.items() if k.startswith("thresher (trafilatura,")]
    if lib and fast:
        shards = {tuple(r["shards"]) for rs in lib + fast for r in rs}
        lines += [
            "",
            "The extract stage with its fast path (stages/extraction/extract_fast.py) and with "
            f"plain `trafilatura.extract` ({LIBRARY} rows): "
            + (f"the same output, byte for byte ({len(next(iter(shards)))} shards, sha256, "
               f"every run)." if len(shards) == 1 else
               f"DIFFERENT output shards ({len(shards)} distinct sets)."),
        ]
    return "\n".join(lines)


def _disagreement(peer: str, dt: dict, th_key: str, th: dict, n_records: int) -> list[str]:
    """Kept sets compared by id, with the ids (and URLs) that only one side keeps."""
    a_ids, b_ids = set(dt["kept_ids"]), set(th["kept_ids"])
    urls = {**dt["kept_ids"], **th["kept_ids"]}
    timeouts = dt["stages"].get("Trafilatura", {}).get("timeout", 0)
    out = [
        f"Kept sets by id, {peer} against {th_key}: both {len(a_ids & b_ids):,}; only "
        f"datatrove {len(a_ids - b_ids):,}; only thresher {len(b_ids - a_ids):,}. datatrove "
        f"passed {dt['extracted_in']:,} documents to its extractor and reports nothing about "
        f"the other {n_records - dt['extracted_in']:,} records (requests, metadata, non-HTML; "
        "it also extracts non-2xx pages, which thresher drops as http_status); thresher's "
        f"funnel counts all {th['records']:,}. datatrove extraction timeouts: {timeouts}."]
    for side, ids in (("only datatrove", a_ids - b_ids), ("only thresher", b_ids - a_ids)):
        out += [f"- {side}: `{i}` {urls.get(i) or ''}" for i in sorted(ids)]
    return out


def write_section(doc: Path, title: str, body: str, script: str = "bench_e2e.py") -> None:
    """Replace (or append) the section between this script's markers; the rest is untouched."""
    start, end = f"<!-- {title}: start ({script}) -->", f"<!-- {title}: end -->"
    block = f"{start}\n{body}\n{end}"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + f"\n\n## {title}\n\n{block}\n"
    doc.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--thresher", nargs="+", metavar="EXTRACTOR:BACKEND",
                    default=[f"{LIBRARY}:warcio", "trafilatura:warcio", "trafilatura:fastwarc",
                             "resiliparse:fastwarc"],
                    choices=[f"{e}:{b}" for e in ("trafilatura", LIBRARY, "resiliparse")
                             for b in ("warcio", "fastwarc")],
                    help="thresher configurations to run (extractor, WARC reader); "
                         f"{LIBRARY}: the extract stage calling plain trafilatura.extract "
                         "instead of its byte-identical fast path")
    ap.add_argument("--datatrove", nargs="*", choices=list(DATATROVE), default=list(DATATROVE),
                    help="datatrove configurations to run: same (thresher's trafilatura, fork "
                         "start method), default (its own trafilatura pin, forkserver); none "
                         "with no value")
    ap.add_argument("--dt-timeout", type=float, default=60.0,
                    help="datatrove's per-page extraction timeout (its default is 1 s of wall "
                         "time, which drops slow pages; 60 s is thresher's default CPU limit)")
    ap.add_argument("--write-doc", action="store_true", help=f"update {DOC.relative_to(REPO)}")
    # internal: one run of one system, in its own venv
    ap.add_argument("--child", choices=["thresher", "datatrove"], help=argparse.SUPPRESS)
    ap.add_argument("--extractor", default="trafilatura", help=argparse.SUPPRESS)
    ap.add_argument("--backend", default="warcio", help=argparse.SUPPRESS)
    ap.add_argument("--start-method", default="forkserver", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        res = (child_thresher if a.child == "thresher" else child_datatrove)(a)
        (Path(a.out) / "result.json").write_text(json.dumps(res))
    else:
        run_all(a)


if __name__ == "__main__":
    main()
