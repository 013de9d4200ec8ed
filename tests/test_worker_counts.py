"""The README's claim "byte-identical whatever the number of workers", for 1, 2, 3 and 5
local workers, on a chain with global stages (exact then MinHash dedup: collect, steps,
apply): every shard's sha256, and every count in stats.json, are the same."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import dedup_chain_config, shard_hashes

from pipelines import run_pipeline

# measured, not computed: the only fields of stats.json that may differ between runs
MEASURED = {"wall_s", "cpu_s", "elapsed_s", "task_wall_s", "max_rss_mb"}


def _without_measures(value):
    if isinstance(value, dict):
        return {k: _without_measures(v) for k, v in value.items() if k not in MEASURED}
    if isinstance(value, list):
        return [_without_measures(v) for v in value]
    return value


def test_one_two_three_and_five_workers_give_the_same_bytes(tmp_path: Path):
    from test_exact_dedup import make_corpus

    docs = make_corpus(tmp_path / "in", n_files=7)  # 7 tasks in each map phase
    hashes, stats = {}, {}
    for workers in (1, 2, 3, 5):
        run = run_pipeline(dedup_chain_config(tmp_path / "in", tmp_path / f"w{workers}",
                                              {"kind": "local", "workers": workers}))
        hashes[workers] = shard_hashes(run.root)
        stats[workers] = json.loads(run.stats_json.read_text())

    assert len(hashes[1]) == 7
    for workers in (2, 3, 5):
        assert hashes[workers] == hashes[1], workers
        # every count: per stage (docs, chars, drops by reason, languages, histograms),
        # per phase (tasks, what the steps found) and the manifest of the output
        assert _without_measures(stats[workers]) == _without_measures(stats[1]), workers
    # a real chain: every input read, both dedups dropped copies, 6 phases ran
    st, phases = stats[1]["stages"], stats[1]["phases"]
    assert st["read"]["docs_in"] == len(docs) == 706
    assert st["exact_dedup"]["dropped"]["duplicate"] > 0
    assert st["minhash_dedup"]["dropped"]["near_duplicate"] > 0
    assert [p["tasks"] for p in phases.values()] == [7, 3, 7, 3, 1, 7]
