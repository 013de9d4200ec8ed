"""Inputs on a local S3 server against the same inputs on local disk (issue #16).

    .venv/bin/python benchmarks/bench_remote.py [--reps 5] [--warc-reps 3] [--mb 1024]
        [--workers 2] [--skip-demo] [--skip-warc]

Starts moto's S3 server as a subprocess on 127.0.0.1 (tests/s3server.py, ``MotoServer``),
points every AWS client at it through the environment, and stops it at the end. Two parts,
each alternating its sides in every repetition:

1. **The demo chain** (configs/demo.yaml: extract, langid, gopher_quality on the bundled
   WARCs of tests/data/warc), ``thresher run`` in a fresh process per run, ``--workers``
   workers, inputs from local disk (the config as it is) vs from the server (the same
   files uploaded, ``--set input.paths=["s3://.../*.warc.gz"]``) vs inputs and the run
   directory on the server (``--output s3://bench/runs/demo``). Wall time of the whole
   command; the sha256 of every file under ``data/`` must be the same for every run of
   both sides. Prints the overhead of remote reads (the issue's goal: <= 10 %).
2. **One big WARC** (``--mb`` MB, 1024 for the documented run): the bundled WARCs
   concatenated over and over (each is a sequence of gzip members ending at a record
   boundary, so the concatenation is a valid .warc.gz), written to a temporary file and
   uploaded. Each read runs in a fresh subprocess that reports its own peak RSS (VmHWM)
   and its growth over the RSS before the read:

   - ``thresher-s3``: ``pipelines.io.inputs.read_input`` on the ``s3://`` URL, as a map
     task reads an input (storage layer stream, sha256 while reading, warcio parsing,
     Arrow batches of the ``html`` rows, which are counted and dropped);
   - ``s3fs``: a plain sequential read of the same object through s3fs, 1 MB reads,
     ``block_size`` 8 MB (the storage layer's read-ahead block), no parsing, no hashing;
   - ``thresher-local``: ``read_input`` on the local file.

   Both thresher sides must give the same rows, characters and sha256 (the file's).

The load average is printed at the start and the end of each part (the machine is shared).
"""

from __future__ import annotations

import argparse
import hashlib
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
sys.path.insert(0, str(REPO / "tests"))

MB = 1 << 20
BLOCK = 8 * MB
BUCKET = "bench"
WARCS = sorted((REPO / "tests" / "data" / "warc").glob("*.warc.gz"))  # the demo's glob
THRESHER = Path(sys.executable).with_name("thresher")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def spread(xs: list[float]) -> str:
    return f"{min(xs):.2f}-{max(xs):.2f}"


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _files(run: str, under: str) -> dict[str, bytes]:
    """Relative name -> bytes of every file under ``run/under`` (a path or an s3:// URL)."""
    if run.startswith("s3://"):
        import s3fs

        fs = s3fs.S3FileSystem(use_listings_cache=False)
        base = run[len("s3://"):]
        return {k[len(base) + 1:]: fs.cat(k) for k in sorted(fs.find(f"{base}/{under}"))}
    root = Path(run)
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted((root / under).rglob("*")) if p.is_file()}


def task_seconds(run: str) -> tuple[float, float]:
    """(wall, CPU) seconds summed over the run's task records (the forkserver's workers
    are not the CLI's waited-for children, so getrusage cannot see them)."""
    wall = cpu = 0.0
    for name, body in _files(run, "stats").items():
        if name.rsplit("/", 1)[-1].startswith("task-"):
            r = json.loads(body)
            wall, cpu = wall + r.get("wall_s", 0.0), cpu + r.get("cpu_s", 0.0)
    return wall, cpu


def data_hashes(run: str) -> dict[str, str]:
    return {k: hashlib.sha256(v).hexdigest() for k, v in _files(run, "data").items()}


# ------------------------------------------------------------------ child: one big read


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def child(mode: str, path: str, size: int) -> None:
    """One timed read of ``path``; prints a JSON line."""
    out: dict = {"mode": mode}
    if mode == "first":  # what a process with thresher loaded pays for its first s3:// read
        from pipelines.io.storage import Storage  # a worker has it (forkserver preload)

        t0 = time.perf_counter()
        import pipelines.io.s3  # noqa: F401  (the storage layer imports it on first use)

        t1 = time.perf_counter()
        with Storage().open_read(path) as fh:
            fh.read(1)
        t2 = time.perf_counter()
        print(json.dumps({"mode": mode, "import_s": t1 - t0, "first_read_s": t2 - t1}))
        return
    if mode == "s3fs":
        import s3fs

        fs = s3fs.S3FileSystem()
        rss0 = _status_kb("VmRSS")
        t0, c0 = time.perf_counter(), time.process_time()
        n = 0
        with fs.open(path, "rb", block_size=BLOCK) as fh:
            while chunk := fh.read(MB):
                n += len(chunk)
        out.update(bytes=n)
    else:
        import pyarrow.compute as pc

        from pipelines.config import config_from_dict
        from pipelines.io.hashing import InputDigest
        from pipelines.io.inputs import read_input
        from pipelines.plan import InputFile
        from pipelines.stats import StageStats

        cfg = config_from_dict({"input": {"format": "warc", "paths": [path]},
                                "output": {"path": "unused"}})
        inp = InputFile(path=path, source="big.warc.gz", size=size)
        stats, digest = StageStats(), InputDigest()
        rss0 = _status_kb("VmRSS")
        t0, c0 = time.perf_counter(), time.process_time()
        rows = chars = 0
        for table in read_input(cfg.input, inp, stats, digest):
            rows += table.num_rows
            chars += pc.sum(pc.utf8_length(table.column("html"))).as_py() or 0
        out.update(bytes=size, rows=rows, chars=chars, records=stats.docs_in,
                   sha256=digest.sha256, retries=digest.retries)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    hwm = _status_kb("VmHWM")
    out.update(seconds=seconds, cpu_s=cpu, peak_rss_mb=hwm / 1024, growth_mb=(hwm - rss0) / 1024)
    print(json.dumps(out))


# ------------------------------------------------------------------------- the parts


def bench_demo(a, env: dict, tmp: Path, server_pid: int) -> None:
    print(f"\n== demo chain: local disk vs inputs on s3://{BUCKET}/warc (s3) vs inputs and "
          f"run directory on S3 (s3-all), {a.workers} workers, {a.reps} reps\n"
          f"load average at start: {load()}", flush=True)
    remote = f'input.paths=["s3://{BUCKET}/warc/*.warc.gz"]'
    cmds = {"local": [], "s3": ["--set", remote], "s3-all": ["--set", remote]}
    outs = {"local": str(tmp / "demo-local"), "s3": str(tmp / "demo-s3"),
            "s3-all": f"s3://{BUCKET}/runs/demo"}  # s3-all: the run directory there too
    times: dict[str, list[float]] = {k: [] for k in cmds}
    task_wall: dict[str, list[float]] = {k: [] for k in cmds}  # summed over the tasks
    task_cpu: dict[str, list[float]] = {k: [] for k in cmds}
    srv_cpu: dict[str, list[float]] = {k: [] for k in cmds}  # the moto server's
    ref: dict[str, str] | None = None
    sides = list(cmds)
    for rep in range(a.reps):
        for side in sides[rep % 3:] + sides[:rep % 3]:
            out = outs[side]
            s0 = cpu_of(server_pid)
            t0 = time.perf_counter()
            proc = subprocess.run([str(THRESHER), "run", "configs/demo.yaml", "--output",
                                   out, "--overwrite", "--quiet", "--workers",
                                   str(a.workers), *cmds[side]], cwd=REPO, env=env,
                                  capture_output=True, text=True)
            times[side].append(time.perf_counter() - t0)
            if proc.returncode != 0:
                sys.exit(f"{side}: thresher run exited {proc.returncode}\n{proc.stderr}")
            w, c = task_seconds(out)
            task_wall[side].append(w)
            task_cpu[side].append(c)
            srv_cpu[side].append(cpu_of(server_pid) - s0)
            hashes = data_hashes(out)
            assert hashes, f"{side}: no shards under {out}/data"
            ref = ref or hashes
            assert hashes == ref, f"rep {rep} {side}: data/ differs from the first run"
            print(f"rep {rep + 1} {side:5s} {times[side][-1]:6.2f} s  (tasks: wall {w:.2f} s, "
                  f"CPU {c:.2f} s; moto server CPU {srv_cpu[side][-1]:.2f} s)", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"load average at the end: {load()}; {len(ref)} files under data/, "
          f"byte-identical in all {3 * a.reps} runs")
    print("| side | median wall s | runs (s) | spread | task wall s, sum (median) "
          "| task CPU s, sum (median) | moto server CPU s (median) |\n"
          "|---|---|---|---|---|---|---|")
    for k, v in times.items():
        print(f"| {k} | {med[k]:.2f} | {', '.join(f'{x:.2f}' for x in v)} | {spread(v)} | "
              f"{statistics.median(task_wall[k]):.2f} | {statistics.median(task_cpu[k]):.2f} | "
              f"{statistics.median(srv_cpu[k]):.2f} |")
    print(f"overhead of remote reads: {100 * (med['s3'] - med['local']) / med['local']:+.1f} % "
          f"(s3/local = {med['s3'] / med['local']:.3f}; goal <= +10 %)")
    print(f"overhead of remote reads and a remote run directory: "
          f"{100 * (med['s3-all'] - med['local']) / med['local']:+.1f} % "
          f"(s3-all/local = {med['s3-all'] / med['local']:.3f})")
    firsts = []
    for _ in range(a.reps):  # what every process that reads s3:// pays once
        proc = subprocess.run([sys.executable, __file__, "--child", "first",
                               f"s3://{BUCKET}/warc/{WARCS[0].name}", "0"], env=env,
                              check=True, capture_output=True, text=True)
        firsts.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    imp = [f["import_s"] for f in firsts]
    first = [f["first_read_s"] for f in firsts]
    print(f"a fresh process's first s3:// read (median of {a.reps}), thresher already "
          f"imported: import pipelines.io.s3 (botocore) {statistics.median(imp):.2f} s "
          f"({spread(imp)}), then the client and one byte {statistics.median(first):.3f} s "
          f"({spread(first)})")


def make_big_warc(path: Path, mb: int) -> tuple[int, str]:
    """The bundled WARCs concatenated until the file reaches ``mb`` MB; (size, sha256)."""
    blob = b"".join(p.read_bytes() for p in WARCS)
    h, n = hashlib.sha256(), 0
    with open(path, "wb") as fh:
        while n < mb * MB:
            fh.write(blob)
            h.update(blob)
            n += len(blob)
    return n, h.hexdigest()


def bench_warc(a, env: dict, tmp: Path, srv, server_pid: int) -> None:
    from boto3.s3.transfer import TransferConfig

    local = tmp / "big.warc.gz"
    t0 = time.perf_counter()
    size, sha = make_big_warc(local, a.mb)
    url = f"s3://{BUCKET}/big/big.warc.gz"
    srv.client().upload_file(str(local), BUCKET, "big/big.warc.gz",
                             Config=TransferConfig(multipart_chunksize=64 * MB))
    print(f"\n== one {size / MB:.0f} MB WARC ({size} bytes, "
          f"{size // sum(p.stat().st_size for p in WARCS)} copies of the bundled WARCs), "
          f"written and uploaded in {time.perf_counter() - t0:.1f} s; {a.warc_reps} reps\n"
          f"load average at start: {load()}", flush=True)
    paths = {"thresher-s3": url, "s3fs": url, "thresher-local": str(local)}
    modes = list(paths)
    results: dict[str, list[dict]] = {m: [] for m in modes}
    for rep in range(a.warc_reps):
        order = modes[rep % 3:] + modes[:rep % 3]
        for mode in order:
            s0 = cpu_of(server_pid)
            proc = subprocess.run([sys.executable, __file__, "--child", mode, paths[mode],
                                   str(size)], env=env, check=True, capture_output=True,
                                  text=True)
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            r["server_cpu_s"] = cpu_of(server_pid) - s0
            assert r["bytes"] == size, r
            if mode != "s3fs":
                assert r["sha256"] == sha, (mode, r["sha256"], sha)
            results[mode].append(r)
            print(f"rep {rep + 1} {mode:14s} {r['seconds']:7.2f} s "
                  f"{size / MB / r['seconds']:7.1f} MB/s  peak RSS {r['peak_rss_mb']:6.1f} MB "
                  f"(+{r['growth_mb']:.1f} MB over the RSS before the read)  CPU "
                  f"{r['cpu_s']:.2f} s, moto server {r['server_cpu_s']:.2f} s"
                  + (f"  rows {r['rows']}" if "rows" in r else ""), flush=True)
    s3, lo = results["thresher-s3"], results["thresher-local"]
    keys = ("rows", "chars", "records")
    assert all(tuple(r[k] for k in keys) == tuple(lo[0][k] for k in keys) for r in s3 + lo), \
        "the thresher reads differ"
    assert all(r["retries"] == {} for r in s3), [r["retries"] for r in s3]
    med = {m: statistics.median(r["seconds"] for r in rs) for m, rs in results.items()}
    print(f"load average at the end: {load()}; thresher-s3 and thresher-local: "
          f"{lo[0]['rows']} rows, {lo[0]['chars']} characters of html, "
          f"sha256 {sha[:16]}... in every run, no storage retries")
    print("| read | median s | MB/s (median) | runs (s) | spread | peak RSS MB (max) "
          "| growth MB (max) | CPU s (median) | moto server CPU s (median) |\n"
          "|---|---|---|---|---|---|---|---|---|")
    for m, rs in results.items():
        xs = [r["seconds"] for r in rs]
        print(f"| {m} | {med[m]:.2f} | {size / MB / med[m]:.1f} | "
              f"{', '.join(f'{x:.2f}' for x in xs)} | {spread(xs)} | "
              f"{max(r['peak_rss_mb'] for r in rs):.0f} | "
              f"{max(r['growth_mb'] for r in rs):.0f} | "
              f"{statistics.median(r['cpu_s'] for r in rs):.2f} | "
              f"{statistics.median(r['server_cpu_s'] for r in rs):.2f} |")
    print(f"thresher-s3/thresher-local (median time): "
          f"{med['thresher-s3'] / med['thresher-local']:.3f} "
          f"({100 * (med['thresher-s3'] - med['thresher-local']) / med['thresher-local']:+.1f}"
          f" %); thresher-s3/s3fs: {med['thresher-s3'] / med['s3fs']:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5, help="demo runs per side")
    ap.add_argument("--warc-reps", type=int, default=3, help="big-WARC reads per side")
    ap.add_argument("--mb", type=int, default=1024, help="size of the big WARC")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--skip-warc", action="store_true")
    ap.add_argument("--child", nargs=3, metavar=("MODE", "PATH", "SIZE"),
                    help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child[0], a.child[1], int(a.child[2]))
        return

    import boto3
    import fsspec
    import moto
    import s3fs
    from s3server import MotoServer

    print(f"s3fs {s3fs.__version__}, fsspec {fsspec.__version__}, moto {moto.__version__}, "
          f"boto3 {boto3.__version__}; {os.cpu_count()} CPUs; load average at start: {load()}",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-remote-") as d, \
            MotoServer(log=Path(d) / "moto.log") as srv:
        tmp = Path(d)
        env = {**os.environ, **srv.env(), "PYTHONUNBUFFERED": "1"}
        os.environ.update(srv.env())
        srv.make_bucket(BUCKET)
        client = srv.client()
        for p in WARCS:
            client.upload_file(str(p), BUCKET, f"warc/{p.name}")
        print(f"moto server {srv.endpoint}; uploaded {len(WARCS)} WARCs "
              f"({sum(p.stat().st_size for p in WARCS)} bytes)", flush=True)
        pid = srv._proc.pid  # the server's own CPU time is read from /proc
        if not a.skip_demo:
            bench_demo(a, env, tmp, pid)
        if not a.skip_warc:
            bench_warc(a, env, tmp, srv, pid)
    print(f"\nmoto server stopped; load average at the end: {load()}")


if __name__ == "__main__":
    main()
