"""What hashing the inputs for the manifest costs the read stage, and how much less it
costs taken while reading than with a read of its own.

    .venv/bin/python benchmarks/bench_input_hash.py [--reps 5] [--cold-reps 3] [--demo]

Three ways to read every file of a set (the bench and demo WARCs with both WARC back-ends;
the bundled quality documents as plain, gzip and zstd JSONL) with the run's reader
(read_input), alternating in each rep:

- ``no hash``: the reader alone;
- ``separate read``: sha256 of the file by a read of its own, then the reader (what a
  task did before hashing moved into the readers);
- ``while reading``: the reader through pipelines/io/hashing.py's HashingFile.

Warm: the files are in the page cache. Cold (root only): ``echo 3 >
/proc/sys/vm/drop_caches`` before each pass, so the first read of a file comes from the
disk (on network storage the separate read is a second transfer of the whole input).
Prints the median wall time of each pass and the time spent hashing inside it (measured
directly: the separate read, or the HashingFile's own count), as a share of the reader's
``no hash`` time, and checks that both ways give the same digests. ``--demo`` also runs
configs/demo.yaml with one worker and prints the hashing time its tasks recorded
(``input_hash_s``) against the run's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.config import InputBase, JsonlInput, WarcInput  # noqa: E402
from pipelines.io.files import sha256_file  # noqa: E402
from pipelines.io.hashing import InputDigest  # noqa: E402
from pipelines.io.inputs import read_input  # noqa: E402
from pipelines.plan import InputFile  # noqa: E402
from pipelines.stats import StageStats  # noqa: E402

MODES = ("no hash", "separate read", "while reading")


def drop_caches() -> bool:
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def one_pass(cfg: InputBase, files: list[Path], mode: str) -> tuple[float, float, list[str]]:
    """Wall time of the pass, the part of it spent hashing, the digests."""
    digests, hashing = [], 0.0
    t0 = time.perf_counter()
    for f in files:
        inp = InputFile(str(f), f.name, f.stat().st_size)
        digest = InputDigest() if mode == "while reading" else None
        if mode == "separate read":
            h0 = time.perf_counter()
            digests.append(sha256_file(f))
            hashing += time.perf_counter() - h0
        for _ in read_input(cfg, inp, StageStats(), digest):
            pass
        if digest is not None:
            digests.append(digest.sha256)
            hashing += digest.seconds
    return time.perf_counter() - t0, hashing, digests


def bench(name: str, files: list[Path], cfg: InputBase, reader: str, reps: int,
          cold: bool) -> None:
    times: dict[str, list[float]] = {m: [] for m in MODES}
    hashing: dict[str, list[float]] = {m: [] for m in MODES}
    seen: dict[str, list[str]] = {}
    if not cold:
        one_pass(cfg, files, "no hash")  # into the page cache
    for rep in range(reps):
        order = MODES if rep % 2 == 0 else MODES[::-1]
        for mode in order:
            if cold:
                drop_caches()
            t, h, digests = one_pass(cfg, files, mode)
            times[mode].append(t)
            hashing[mode].append(h)
            if digests:
                seen[mode] = digests
    assert seen["separate read"] == seen["while reading"], "the two ways disagree"
    med = {m: statistics.median(v) for m, v in times.items()}
    hmed = {m: statistics.median(v) for m, v in hashing.items()}
    base = med["no hash"]
    mb = sum(f.stat().st_size for f in files) / 1e6
    print(f"{name:<12} {reader:<8} {'cold' if cold else 'warm':<4} {mb:5.1f} MB | "
          + " | ".join(f"{m} {med[m]:.3f} s" for m in MODES)
          + " | time hashing: " + ", ".join(
              f"{m} {hmed[m]:.3f} s = {100 * hmed[m] / base:.1f} %" for m in MODES[1:])
          + " of the reader's")


def demo_run() -> None:
    """configs/demo.yaml, one worker: the hashing its tasks recorded against the run."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "demo"
        t0 = time.perf_counter()
        subprocess.run([str(REPO / ".venv" / "bin" / "thresher"), "run", "configs/demo.yaml",
                        "--output", str(out), "--set", "executor.workers=1", "--quiet"],
                       cwd=REPO, check=True, capture_output=True)
        wall = time.perf_counter() - t0
        recs = [json.loads(p.read_text()) for p in (out / "stats" / "main").glob("task-*.json")]
        hashed = sum(r["input_hash_s"] for r in recs)
        read = sum(r["stages"]["read"]["wall_s"] for r in recs)
        tasks = sum(r["wall_s"] for r in recs)
        print(f"demo (1 worker): run {wall:.1f} s, tasks {tasks:.2f} s, read stage {read:.3f} s, "
              f"hashing {hashed:.4f} s = {100 * hashed / tasks:.3f} % of task time, "
              f"{100 * hashed / read:.1f} % of the read stage")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--cold-reps", type=int, default=3)
    ap.add_argument("--demo", action="store_true")
    a = ap.parse_args()
    sys.path.insert(0, str(REPO / "benchmarks"))
    from make_bench_warc import ensure  # builds benchmarks/data from bundled pages if missing

    warcs = {"bench WARCs": sorted(ensure().glob("*.warc.gz")),
             "demo WARCs": sorted((REPO / "tests" / "data" / "warc").glob("*.warc.gz"))}
    can_drop = os.geteuid() == 0 and drop_caches()
    print(f"{os.cpu_count()} CPUs; cold cache: {'yes' if can_drop else 'no (needs root)'}")
    runs = [(name, files, WarcInput(paths=["x"], backend=b), b)
            for name, files in warcs.items() for b in ("warcio", "fastwarc")]
    with tempfile.TemporaryDirectory() as tmp:
        for ext, files in jsonl_sets(Path(tmp)).items():
            runs.append((f"JSONL {ext}", files, JsonlInput(paths=["x"]), "jsonl"))
        for name, files, cfg, reader in runs:
            bench(name, files, cfg, reader, a.reps, cold=False)
            if can_drop:
                bench(name, files, cfg, reader, a.cold_reps, cold=True)
    if a.demo:
        demo_run()


def jsonl_sets(tmp: Path) -> dict[str, list[Path]]:
    """The bundled quality documents (real web text) as .jsonl, .jsonl.gz and .jsonl.zst."""
    import gzip

    import zstandard

    out: dict[str, list[Path]] = {"": [], ".gz": [], ".zst": []}
    for src in sorted((REPO / "tests" / "data" / "quality").glob("*.jsonl.gz")):
        data = gzip.decompress(src.read_bytes())
        stem = tmp / src.name.removesuffix(".gz")
        for ext, blob in (("", data), (".gz", src.read_bytes()),
                          (".zst", zstandard.ZstdCompressor().compress(data))):
            path = stem.with_name(stem.name + ext)
            path.write_bytes(blob)
            out[ext].append(path)
    return {ext or "plain": files for ext, files in out.items()}


if __name__ == "__main__":
    main()
