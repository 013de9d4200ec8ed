"""configs/data-constrained.yaml: exact dedup, token counts, then repetition toward token
targets per source with at most 4 epochs of any document ("Scaling Data-Constrained
Language Models"), on the bundled JSONL sources; and `thresher mixture`, which writes the
per-domain tokens and sampling weights the rebalancing produced.

Checked: no document is repeated more than 4 times; the source whose target needs more
than 4 epochs has every document exactly 4 times and reports the tokens it misses; the
others meet their targets (to the per-document rounding of fractional epochs); and the
mixture file, read back, gives the run's own stats.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import yaml
from conftest import REPO, thresher
from test_recipe_slimpajama import inputs, output_rows

from pipelines.errors import UserError
from pipelines.inspection.mixture import read_mixture

CONFIG = REPO / "configs" / "data-constrained.yaml"
CHAIN = ["read", "exact_dedup", "count_tokens", "rebalance", "write"]
SPEC = next(s for s in yaml.safe_load(CONFIG.read_text())["stages"]
            if s["stage"] == "rebalance")
CAPPED = "web-with-benchmarks"  # 0.19M unique tokens for a 1M-token target: 5.2 epochs


def approx_tokens(text: str) -> int:
    return (len(text.encode("utf-8")) + 3) // 4  # count_tokens' `approx`


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data-constrained") / "run"
    thresher("run", str(CONFIG), "--output", str(out), "--quiet")
    return out


def test_the_funnel_dedups_counts_and_repeats(run):
    stats = json.loads((run / "stats.json").read_text())["stages"]
    assert list(stats) == CHAIN
    for a, b in zip(CHAIN, CHAIN[1:]):
        assert stats[a]["docs_out"] == stats[b]["docs_in"], (a, b)
    dd = stats["exact_dedup"]
    assert dd["dropped"] == {"duplicate": dd["docs_in"] - dd["docs_out"]} and dd["dropped"]
    # identical texts (NFC, whitespace runs as one space: exact_dedup's defaults) in several
    # sources: one copy is unique data, the rest is not
    texts = {re.sub(r"\s+", " ", unicodedata.normalize("NFC", t)).strip()
             for _, t in inputs(CONFIG).values()}
    assert dd["docs_out"] == len(texts)
    rb = stats["rebalance"]
    assert rb["dropped"] == {} and rb["docs_added"] == rb["docs_out"] - rb["docs_in"] > 0
    assert stats["write"]["tokens_out"] == rb["tokens_out"] > 2 * rb["tokens_in"]


def test_no_document_is_repeated_more_than_4_epochs(run):
    rows = output_rows(run)
    copies = Counter(r["id"] for r in rows)
    assert max(copies.values()) == SPEC["max_epochs"] == 4
    for r in rows:
        assert 0 <= r["repeat_index"] < copies[r["id"]]
        assert r["n_tokens"] == approx_tokens(r["text"])
    by_source: dict[str, set[int]] = defaultdict(set)
    for r in rows:
        by_source[r["dataset"]].add(copies[r["id"]])
    assert by_source[CAPPED] == {4}  # at the cap: every document exactly 4 times
    assert by_source["extracted-pages"] == {2, 3}  # 2.08 epochs: 2 or 3 copies
    assert by_source["wiki-and-forums"] == {3, 4}  # 3.63 epochs: 3 or 4 copies


def test_targets_are_met_within_the_cap(run):
    stats = json.loads((run / "stats.json").read_text())
    before = stats["stages"]["count_tokens"]["by_dataset"]
    after = stats["stages"]["write"]["by_dataset"]
    metrics = stats["phases"]["rebalance.targets"]["metrics"]
    budget = SPEC["target_tokens"]
    for source, share in SPEC["targets"].items():
        goal = share * budget
        got = after[source]["tokens_out"]
        unique = before[source]["tokens_out"]
        if source == CAPPED:
            assert got == 4 * unique < goal
            assert metrics[f"unmet:{source}"] == round(goal - 4 * unique) > 0
        else:
            assert metrics[f"unmet:{source}"] == 0
            assert abs(got - goal) / goal < 0.005, (source, got, goal)  # rounding only
            assert unique < got < 4 * unique


def test_mixture_file_reads_back_as_the_run_s_stats(run, tmp_path):
    out = tmp_path / "weights.json"
    proc = thresher("mixture", str(run), "-o", str(out))
    assert "3 domain(s) by dataset" in proc.stdout
    mix = read_mixture(out)
    stats = json.loads(thresher("stats", str(run), "--by", "dataset", "--json").stdout)
    write = stats["stages"]["write"]["by_dataset"]
    assert mix["by"] == "dataset" and mix["unit"] == "tokens"
    assert mix["run"] == "data-constrained"
    assert set(mix["domains"]) == set(write)
    total = sum(g["tokens_out"] for g in write.values())
    assert total == stats["stages"]["write"]["tokens_out"]
    assert mix["total"] == {"documents": stats["stages"]["write"]["docs_out"],
                            "characters": stats["stages"]["write"]["chars_out"],
                            "tokens": total}
    unique = stats["stages"]["count_tokens"]["by_dataset"]
    for name, d in mix["domains"].items():
        assert (d["documents"], d["characters"], d["tokens"]) == \
            (write[name]["docs_out"], write[name]["chars_out"], write[name]["tokens_out"])
        assert d["weight"] == write[name]["tokens_out"] / total
        assert d["unique_tokens"] == unique[name]["tokens_out"]
        assert d["epochs"] == pytest.approx(d["tokens"] / d["unique_tokens"])
        assert d["target"] == SPEC["targets"][name]
    assert mix["domains"][CAPPED]["epochs"] == 4.0
    assert mix["domains"][CAPPED]["unmet_tokens"] > 0
    assert mix["rebalance"] == {"stage": "rebalance", "mode": "replicate", "max_epochs": 4,
                                "target_tokens": 10_000_000}
    assert not any(k.startswith("weighted_") for d in mix["domains"].values() for k in d)
    # the weights are what a loader that samples the shards' tokens uniformly sees
    rows = output_rows(run)
    tokens = Counter()
    for r in rows:
        tokens[r["dataset"]] += r["n_tokens"]
    assert {k: v / sum(tokens.values()) for k, v in tokens.items()} == \
        {k: d["weight"] for k, d in mix["domains"].items()}
    # stdout without -o; --by language needs a language column, which this run lacks
    assert json.loads(thresher("mixture", str(run)).stdout) == mix
    proc = thresher("mixture", str(run), "--by", "language", check=False)
    assert proc.returncode != 0 and "no `language` column" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def weighted(tmp_path_factory) -> Path:
    """The same recipe with `mode: weight`: every document once, its weight in a column."""
    out = tmp_path_factory.mktemp("data-constrained-weight") / "run"
    thresher("run", str(CONFIG), "--output", str(out), "--quiet",
             "--set", "stages.rebalance.mode=weight")
    return out


def test_mixture_of_a_weight_mode_run_reads_back_as_its_stats_and_weights(weighted, run,
                                                                         tmp_path):
    out = tmp_path / "weights.json"
    proc = thresher("mixture", str(weighted), "-o", str(out))
    assert "3 domain(s) by dataset" in proc.stdout
    mix = read_mixture(out)
    stats = json.loads(thresher("stats", str(weighted), "--by", "dataset", "--json").stdout)
    write = stats["stages"]["write"]["by_dataset"]
    unique = stats["stages"]["count_tokens"]["by_dataset"]
    assert mix["by"] == "dataset" and mix["unit"] == "tokens"
    assert mix["rebalance"] == {"stage": "rebalance", "mode": "weight", "max_epochs": 4,
                                "target_tokens": 10_000_000}
    assert write == unique  # no copies: the shards hold each unique document once
    assert (mix["total"]["documents"], mix["total"]["characters"], mix["total"]["tokens"]) == \
        (stats["stages"]["write"]["docs_out"], stats["stages"]["write"]["chars_out"],
         stats["stages"]["write"]["tokens_out"])
    # the weighted sums, computed here from the shards' rows
    want: dict[str, Counter] = defaultdict(Counter)
    for r in output_rows(weighted):
        assert 0 < r["weight"] <= 4 and "repeat_index" not in r
        want[r["dataset"]]["documents"] += r["weight"]
        want[r["dataset"]]["characters"] += r["weight"] * len(r["text"])
        want[r["dataset"]]["tokens"] += r["weight"] * r["n_tokens"]
    metrics = stats["phases"]["rebalance.targets"]["metrics"]
    replicated = json.loads((run / "stats.json").read_text())["stages"]["write"]["by_dataset"]
    total = sum(w["tokens"] for w in want.values())
    assert set(mix["domains"]) == set(write) == set(want)
    for name, d in mix["domains"].items():
        assert (d["documents"], d["characters"], d["tokens"]) == \
            (write[name]["docs_out"], write[name]["chars_out"], write[name]["tokens_out"])
        for k in ("documents", "characters", "tokens"):
            assert d[f"weighted_{k}"] == pytest.approx(want[name][k], rel=1e-12), (name, k)
        # the tokens the solver aimed each domain at (its tokens_after metric)
        assert abs(d["weighted_tokens"] - metrics[f"tokens_after:{name}"]) <= 1
        assert d["weight"] == pytest.approx(want[name]["tokens"] / total, rel=1e-12)
        assert d["unique_tokens"] == unique[name]["tokens_out"] == d["tokens"]
        assert d["epochs"] == pytest.approx(d["weighted_tokens"] / d["tokens"])
        assert d["target"] == SPEC["targets"][name]
        # the replicated run wrote the copies these weights stand for (rounded per document)
        assert abs(replicated[name]["tokens_out"] - d["weighted_tokens"]) / \
            d["weighted_tokens"] < 0.005, name
    assert mix["domains"][CAPPED]["epochs"] == pytest.approx(4.0)
    assert mix["domains"][CAPPED]["unmet_tokens"] == metrics[f"unmet:{CAPPED}"] > 0
    assert sum(d["weight"] for d in mix["domains"].values()) == pytest.approx(1)
    assert mix["total"]["weighted_tokens"] == pytest.approx(total, rel=1e-12)
    # without -o: the same document
    assert json.loads(thresher("mixture", str(weighted)).stdout) == mix


def test_mixture_of_a_weight_mode_run_without_its_weight_column_is_refused(weighted,
                                                                          tmp_path):
    import shutil

    import pyarrow.parquet as pq

    copy = tmp_path / "run"
    shutil.copytree(weighted, copy)
    shard = sorted((copy / "data").glob("*.parquet"))[0]
    pq.write_table(pq.read_table(shard).drop_columns(["weight"]), shard)
    proc = thresher("mixture", str(copy), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        f"thresher: error: {copy}: shard data/{shard.name} has no `weight` column (dropped "
        "by output.drop_columns?); `thresher mixture` needs it for a run rebalanced with "
        "`mode: weight`"]


def test_mixture_of_a_weight_mode_run_without_token_counts_weighs_characters(tmp_path):
    """No count_tokens: the weights are shares of weight x characters; a rule weight per
    source (mapping), no targets, so no unique_tokens/target fields' solver metrics."""
    cfg = yaml.safe_load(CONFIG.read_text())
    cfg["output"]["path"] = str(tmp_path / "run")
    cfg["stages"] = [{"stage": "rebalance", "by": "dataset", "mode": "weight",
                      "mapping": {"extracted-pages": 0.5, "wiki-and-forums": 2.5}}]
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(cfg))
    thresher("run", str(config), "--quiet")
    mix = json.loads(thresher("mixture", str(tmp_path / "run")).stdout)
    assert mix["unit"] == "characters" and mix["rebalance"]["mode"] == "weight"
    want: dict[str, Counter] = defaultdict(Counter)
    for r in output_rows(tmp_path / "run"):
        want[r["dataset"]]["documents"] += r["weight"]
        want[r["dataset"]]["characters"] += r["weight"] * len(r["text"])
    assert {d: w["documents"] / max(1, mix["domains"][d]["documents"])
            for d, w in want.items()} == {"extracted-pages": 0.5, "wiki-and-forums": 2.5,
                                          CAPPED: 1.0}  # default_weight
    total = sum(w["characters"] for w in want.values())
    for name, d in mix["domains"].items():
        assert d["weighted_characters"] == pytest.approx(want[name]["characters"], rel=1e-12)
        assert d["weight"] == pytest.approx(want[name]["characters"] / total, rel=1e-12)
        assert d["tokens"] == d["weighted_tokens"] == 0  # nothing counted tokens
        assert d["unique_tokens"] == 0 and d["epochs"] is None and d["target"] is None


def test_read_mixture_refuses_what_is_not_one(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "thresher-mixture", "version": 2, "domains": {}}))
    with pytest.raises(UserError, match="version 2"):
        read_mixture(bad)
    bad.write_text(json.dumps({"format": "thresher-mixture", "version": 1,
                               "domains": {"a": {"weight": 0.4}}}))
    with pytest.raises(UserError, match="sum to"):
        read_mixture(bad)
