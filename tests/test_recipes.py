"""The shipped recipes run on the bundled real WARCs and do what their comments say."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
from conftest import REPO, thresher

FW2 = [(1, 1, 1), (2, 2, 2), (3, 3, 3), (4, 4, 3), (5, 99, 5), (100, 999, 8), (1000, 10**9, 1)]


def fw2_weight(size: int) -> int:
    return next(w for lo, hi, w in FW2 if lo <= size <= hi)


def test_fineweb2_like_recipe(tmp_path: Path):
    out = tmp_path / "fw2"
    thresher("run", str(REPO / "configs" / "fineweb2-like.yaml"), "--output", str(out),
             "--quiet")
    rows = [r for p in sorted((out / "data").glob("*.parquet"))
            for r in pq.read_table(p).to_pylist()]
    copies = Counter(r["id"] for r in rows)
    originals = [r for r in rows if r["repeat_index"] == 0]
    assert len({r["language"] for r in originals}) >= 4  # really multilingual
    for r in originals:  # rehydration: copies follow FineWeb-2's table exactly
        assert copies[r["id"]] == fw2_weight(r["minhash_cluster_size"])
    assert any(r["minhash_cluster_size"] > 1 for r in originals)
    clusters = pq.read_table(out / "work" / "minhash_dedup" / "clusters.parquet").to_pylist()
    by_cluster: dict[str, set] = {}
    lang = {r["id"]: r["language"] for r in originals}
    for c in clusters:
        by_cluster.setdefault(c["cluster_id"], set()).add(c["id"])
    for cid in by_cluster:
        assert cid in lang  # the survivor is in the output
    stats = json.loads((out / "stats.json").read_text())["stages"]
    assert stats["write"]["tokens_out"] == sum(r["n_tokens"] for r in rows)
    assert stats["rebalance"]["docs_added"] == len(rows) - len(originals)
    table = thresher("stats", str(out), "--by", "language").stdout
    assert "tokens" in table and "langid" in table and "write" in table
    # --stages all: a funnel per language, every stage that saw the column, docs only
    funnel = thresher("stats", str(out), "--by", "language", "--stages", "all",
                      "--csv").stdout
    rows_by = [ln.split(",") for ln in funnel.splitlines()[1:]]
    seen = {r[0] for r in rows_by}
    assert {"langid", "gopher_repetition", "fineweb_quality", "gopher_quality"} <= seen
    wide = thresher("stats", str(out), "--by", "language", "--stages", "all").stdout
    assert "documents by language after each stage" in wide
    # the per-language filters ran, and kept Chinese text (segmented words, FineWeb-2's
    # thresholds): English word rules would drop every Chinese page
    for name in ("gopher_repetition", "fineweb_quality", "gopher_quality"):
        assert stats[name]["docs_in"] > stats[name]["docs_out"] > 0, name
    assert "zh" in {r["language"] for r in originals}
    import hashlib  # the built-in threshold table is recorded with the models

    from stages.heuristics.per_language import BUILTIN
    models = json.loads((out / "manifest.json").read_text())["models"]
    assert {"path": str(BUILTIN.resolve()),
            "sha256": hashlib.sha256(BUILTIN.read_bytes()).hexdigest()} in models
