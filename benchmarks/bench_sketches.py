"""Cost of the stats' histogram sketches (pipelines/sketches.py) per document and stage.

Counts one batch of 10,000 documents (log-normal lengths, a float and an int column
the stage "wrote") into a StageStats, with and without the sketches, best of 20.
    .venv/bin/python benchmarks/bench_sketches.py
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa

from pipelines import sketches
from pipelines.stats import StageStats

N = 10_000


def _batches() -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(0)
    texts = ["x" * int(k) for k in rng.lognormal(7, 1.2, N).astype(int)]
    inp = pa.table({"id": [str(i) for i in range(N)], "text": texts})
    out = inp.append_column("language_score", pa.array(rng.random(N)))
    return inp, out.append_column("n_tokens", pa.array(rng.integers(0, 10**5, N)))


def best(inp: pa.Table, out: pa.Table) -> float:
    t_best = float("inf")
    for _ in range(20):
        s = StageStats()
        t = time.perf_counter()
        s.count_in(inp)
        s.count_out(out)
        t_best = min(t_best, time.perf_counter() - t)
    return t_best


def main() -> None:
    inp, out = _batches()
    with_sk = best(inp, out)
    sketches.Sketches.observe_in = lambda *a: None  # the same counting without sketches
    sketches.Sketches.observe_out = lambda *a: None
    without = best(inp, out)
    print(f"count_in + count_out of {N:,} documents: {without * 1e3:.2f} ms without sketches, "
          f"{with_sk * 1e3:.2f} ms with: +{(with_sk - without) * 1e6 / N:.2f} us per document "
          "per stage")


if __name__ == "__main__":
    main()
