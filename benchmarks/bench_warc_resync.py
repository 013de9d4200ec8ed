"""What the damage-tolerant WARC iteration costs, against warcio's own iterator.

    .venv/bin/python benchmarks/bench_warc_resync.py [--copies 8] [--reps 5]

thresher reads a .warc.gz one gzip member at a time (pipelines/io/warc_stream.py) so
that damage costs only the damaged records; warcio's ArchiveIterator reads the file as
one stream and stops at the first damage. Both read every record's payload of the same
file: the bundled real WARCs concatenated --copies times (gzip members concatenate).
Alternating reps; prints the median of each and the ratio, and checks both saw the
same records. A second line times a copy with garbage inserted every 50 members: only
thresher reads past it (warcio's count is shown for comparison).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from warcio.archiveiterator import ArchiveIterator  # noqa: E402

from pipelines.io.warc_stream import iter_warc  # noqa: E402


def with_warcio(path: Path) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    n = size = 0
    try:
        with open(path, "rb") as fh:
            for rec in ArchiveIterator(fh, arc2warc=True):
                size += len(rec.content_stream().read())
                n += 1
    except Exception:
        pass  # stops at the first damage
    return time.perf_counter() - t0, n, size


def with_thresher(path: Path) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    n = size = 0
    for _, _, rec, problem in iter_warc(path):
        if problem is None:
            size += len(rec.content_stream().read())
            n += 1
    return time.perf_counter() - t0, n, size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=8)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    warcs = sorted((REPO / "tests" / "data" / "warc").glob("*.warc.gz"))
    data = b"".join(p.read_bytes() for p in warcs) * args.copies
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "big.warc.gz"
        path.write_bytes(data)
        times: dict[str, list[float]] = {"warcio": [], "thresher": []}
        seen = {}
        for _ in range(args.reps):
            for name, fn in (("warcio", with_warcio), ("thresher", with_thresher)):
                t, n, size = fn(path)
                times[name].append(t)
                seen[name] = (n, size)
        assert seen["warcio"] == seen["thresher"], seen
        a, b = statistics.median(times["warcio"]), statistics.median(times["thresher"])
        print(f"{len(data) / 2**20:.1f} MiB, {seen['thresher'][0]} records: warcio {a:.3f}s, "
              f"thresher {b:.3f}s, ratio thresher/warcio {b / a:.2f}")

        # garbage every 50 members (member starts as warcio reports them)
        starts = []
        with open(path, "rb") as fh:
            it = ArchiveIterator(fh)
            for _ in it:
                starts.append(it.get_record_offset())
        cuts = starts[50::50]
        parts, prev = [], 0
        for c in cuts:
            parts += [data[prev:c], b"\x00garbage\xff" * 10]
            prev = c
        parts.append(data[prev:])
        path.write_bytes(b"".join(parts))
        tw, nw, _ = with_warcio(path)
        tt, nt, _ = with_thresher(path)
        print(f"with {len(cuts)} garbage inserts: warcio reads {nw} records ({tw:.3f}s), "
              f"thresher {nt} ({tt:.3f}s)")


if __name__ == "__main__":
    main()
