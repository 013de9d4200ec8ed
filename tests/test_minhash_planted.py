"""MinHash dedup removes exactly the planted near-duplicates, matched id for id.

The corpus is benchmarks/bench_minhash_scale.py's (real WikiText-2 sentences, 5 % of the
documents a copy of a recent one with 3 words replaced) at 8,000 documents, and the check
is the one the benchmark prints at 1M: every removed id is a planted copy and every
planted copy is removed (a count can balance a miss with a wrong removal: at 1M it did,
108 of each; docs/benchmarks.md). At this size and seed LSH makes no error, so the
match must be exact.
"""

from __future__ import annotations

import sys

from conftest import REPO

from pipelines import config_from_dict, run_pipeline

sys.path.insert(0, str(REPO / "benchmarks"))
import bench_minhash_scale as scale  # noqa: E402

N_DOCS = 8000


def test_removed_ids_are_exactly_the_planted_ones(tmp_path):
    (tmp_path / "in").mkdir()
    planted = scale.build(tmp_path / "in", N_DOCS, n_shards=2)
    assert 300 < len(planted) < 500  # 5 %, so the check below has something to match
    cfg = config_from_dict({
        "name": "planted",
        "input": {"format": "jsonl", "paths": [str(tmp_path / "in" / "*.jsonl.zst")]},
        "output": {"path": str(tmp_path / "run")},
        "executor": {"kind": "local", "workers": 1},
        "stages": [{"stage": "minhash_dedup", "partitions": 4}],
    })
    run_pipeline(cfg)
    m = scale.match_planted(tmp_path / "run", N_DOCS, planted)
    assert (m["missed"], m["extra"]) == ([], []), scale.report_match(m)
    assert m["matched"] == len(planted)


def test_the_match_names_a_missed_and_a_wrong_removal(tmp_path):
    """The matcher itself: an output that kept a planted copy and lost an original."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "data").mkdir()
    kept = ["d00000000", "d00000002", "d00000003"]  # d1 (an original) gone, d3 kept
    pq.write_table(pa.table({"id": kept}), tmp_path / "data" / "part-0.parquet")
    m = scale.match_planted(tmp_path, 4, {"d00000002": "d00000000", "d00000003": "d00000001"})
    assert (m["missed"], m["extra"], m["matched"]) == (["d00000002", "d00000003"],
                                                       ["d00000001"], 0)
    assert "missed (2): d00000002, d00000003" in scale.report_match(m)
