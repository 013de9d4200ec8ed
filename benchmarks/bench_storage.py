"""Streaming read throughput of pipelines/io/storage.open_read vs a plain s3fs read.

Starts moto's S3 server on 127.0.0.1 (tests/s3server.py), writes one generated object
(256 MB by default), then reads it whole in 1 MB reads, alternating the two readers,
each run in a fresh subprocess so its peak RSS is its own:

- ``storage``: ``open_read(url)`` (8 MB read-ahead blocks, retries, resume);
- ``s3fs``: ``s3fs.S3FileSystem().open(path, "rb", block_size=8 MB)``, the same block
  size, no wrapper.

Prints per-run seconds, MB/s and peak RSS (VmHWM, and its growth over the RSS before the
read), the medians, and the ratio storage/s3fs of the median times.

    .venv/bin/python benchmarks/bench_storage.py [--mb 256] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

MB = 1 << 20
BLOCK = 8 * MB


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def child(mode: str, url: str) -> None:
    """One timed read of ``url`` in 1 MB reads; prints a JSON line."""
    if mode == "storage":
        from pipelines.io.storage import Storage

        def opener():
            return Storage(block_size=BLOCK).open_read(url)
    else:
        import s3fs

        fs = s3fs.S3FileSystem()

        def opener():
            return fs.open(url, "rb", block_size=BLOCK)
    rss0 = _status_kb("VmRSS")
    t0 = time.perf_counter()
    n = 0
    with opener() as fh:
        while chunk := fh.read(MB):
            n += len(chunk)
    seconds = time.perf_counter() - t0
    hwm = _status_kb("VmHWM")
    print(json.dumps({"mode": mode, "bytes": n, "seconds": seconds,
                      "peak_rss_mb": hwm / 1024, "growth_mb": (hwm - rss0) / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--child", nargs=2, metavar=("MODE", "URL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return

    from s3server import MotoServer

    from pipelines.io.storage import Storage

    with MotoServer() as srv:
        env = {**os.environ, **srv.env()}
        os.environ.update(srv.env())
        srv.make_bucket("bench")
        url = "s3://bench/object.bin"
        t0 = time.perf_counter()
        block = os.urandom(MB)
        with Storage(part_size=16 * MB).atomic_write(url) as fh:
            for i in range(args.mb):
                fh.write(block[i % 7:] + block[: i % 7])  # 1 MB, different each time
        print(f"wrote {args.mb} MB to {srv.endpoint} in {time.perf_counter() - t0:.1f} s")
        results: dict[str, list[dict]] = {"storage": [], "s3fs": []}
        for run in range(args.runs):
            for mode in (("storage", "s3fs") if run % 2 == 0 else ("s3fs", "storage")):
                out = subprocess.run([sys.executable, __file__, "--child", mode, url],
                                     env=env, check=True, capture_output=True, text=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                assert r["bytes"] == args.mb * MB, r
                results[mode].append(r)
                print(f"run {run + 1} {mode:8s} {r['seconds']:6.2f} s "
                      f"{args.mb / r['seconds']:7.1f} MB/s  peak RSS {r['peak_rss_mb']:6.1f} MB"
                      f" (+{r['growth_mb']:.1f} MB over the RSS before the read)")
    med = {m: statistics.median(r["seconds"] for r in rs) for m, rs in results.items()}
    for mode, rs in results.items():
        print(f"median {mode:8s} {med[mode]:6.2f} s {args.mb / med[mode]:7.1f} MB/s  "
              f"peak RSS {max(r['peak_rss_mb'] for r in rs):6.1f} MB "
              f"(growth {max(r['growth_mb'] for r in rs):.1f} MB)")
    print(f"ratio storage/s3fs (median time): {med['storage'] / med['s3fs']:.3f}")


if __name__ == "__main__":
    main()
