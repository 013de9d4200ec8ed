"""rebalance + count_tokens: FineWeb-2 rehydration on clusters of known sizes, weight vs
replicate totals, token-share targets with the max_epochs cap, a real tokenizer.json."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import DATA, shard_hashes
from test_exact_dedup import make_corpus, norm

from pipelines import config_from_dict, run_pipeline

FW2 = {1: 1, 2: 2, 3: 3, 4: 3}  # the sizes our corpus has (1 original + 0..3 copies)


def rows_of(run) -> list[dict]:
    out = []
    for p in sorted(run.data.glob("*.parquet")):
        out += pq.read_table(p).to_pylist()
    return out


def pipeline(tmp: Path, data: Path, *stages, workers: int = 1, out: str = "run"):
    return config_from_dict({
        "name": "rebalance",
        "input": {"format": "jsonl", "paths": [str(data / "*.jsonl")], "id_key": "id",
                  "fields": ["lang"]},
        "output": {"path": str(tmp / out)},
        "executor": {"kind": "local", "workers": workers},
        "stages": list(stages),
    })


DEDUP = {"stage": "exact_dedup", "lowercase": True, "partitions": 3}
TOKENS = {"stage": "count_tokens"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("rebal")
    docs = make_corpus(root / "in")
    sizes = Counter(norm(d["text"], True) for d in docs)
    return root, docs, sizes


def test_fineweb2_rehydration_copies_and_tokens(corpus, tmp_path):
    root, docs, sizes = corpus
    run = run_pipeline(pipeline(tmp_path, root / "in", DEDUP, TOKENS,
                                {"stage": "rebalance", "by": "exact_cluster_size",
                                 "preset": "fineweb2"}))
    rows = rows_of(run)
    copies = Counter(r["id"] for r in rows)
    survivors = {r["id"]: r for r in rows if r["repeat_index"] == 0}
    assert len(survivors) == len(sizes)
    for doc_id, r in survivors.items():
        want = FW2[r["exact_cluster_size"]]
        assert copies[doc_id] == want
        assert sorted(x["repeat_index"] for x in rows if x["id"] == doc_id) == list(range(want))
    assert set(Counter(FW2[s] for s in sizes.values())) >= {1, 2, 3}  # every branch exercised
    tokens = sum(r["n_tokens"] for r in rows)
    assert tokens == sum(FW2[r["exact_cluster_size"]] * r["n_tokens"]
                         for r in survivors.values())
    st = json.loads(run.stats_json.read_text())["stages"]["rebalance"]
    assert st["docs_in"] == len(survivors) and st["docs_out"] == len(rows)
    assert st["docs_added"] == len(rows) - len(survivors)
    assert st["tokens_out"] == tokens


def test_weight_and_replicate_agree_and_workers_do_not_matter(corpus, tmp_path):
    root, _, _ = corpus
    rule = {"stage": "rebalance", "by": "exact_cluster_size", "preset": "fineweb2"}
    rep1 = run_pipeline(pipeline(tmp_path, root / "in", DEDUP, TOKENS, rule, out="r1"))
    rep2 = run_pipeline(pipeline(tmp_path, root / "in", DEDUP, TOKENS, rule, workers=2,
                                 out="r2"))
    assert shard_hashes(rep1.root) == shard_hashes(rep2.root)
    wt = run_pipeline(pipeline(tmp_path, root / "in", DEDUP, TOKENS, {**rule, "mode": "weight"},
                               out="w"))
    w_rows = rows_of(wt)
    assert sum(r["weight"] * r["n_tokens"] for r in w_rows) == \
        sum(r["n_tokens"] for r in rows_of(rep1))
    assert len({r["id"] for r in w_rows}) == len(w_rows)


def test_token_share_targets_with_cap(corpus, tmp_path):
    root, docs, _ = corpus
    targets = {"en": 0.5, "de": 0.3, "fr": 0.2}
    run = run_pipeline(pipeline(
        tmp_path, root / "in", TOKENS,
        {"stage": "length", "min_chars": 1},
        {"stage": "rebalance", "mode": "weight", "targets": targets, "target_by": ["lang"],
         "max_epochs": 4}))
    rows = rows_of(run)
    after = Counter()
    for r in rows:
        after[r["lang"]] += r["weight"] * r["n_tokens"]
    listed = sum(after[g] for g in targets)
    for g, share in targets.items():
        assert after[g] / listed == pytest.approx(share, rel=1e-6)
    assert max(r["weight"] for r in rows) <= 4
    assert all(r["weight"] == 1 for r in rows if r["lang"] not in targets)
    m = json.loads(run.stats_json.read_text())["phases"]["rebalance.targets"]["metrics"]
    assert m["unmet:en"] == 0 and m["tokens_after:de"] == pytest.approx(
        m["tokens_target:de"], abs=1)
    # a billion tokens from a few hundred sentences: impossible under a 2x cap
    run2 = run_pipeline(pipeline(
        tmp_path, root / "in", TOKENS,
        {"stage": "rebalance", "mode": "weight", "targets": {"ja": 0.5, "en": 0.5},
         "target_by": ["lang"], "max_epochs": 2, "target_tokens": 10**9}, out="unmet"))
    m2 = json.loads(run2.stats_json.read_text())["phases"]["rebalance.targets"]["metrics"]
    assert m2["unmet:ja"] > 0
    assert max(r["weight"] for r in rows_of(run2) if r["lang"] == "ja") == 2


def test_count_tokens_with_a_real_tokenizer_json(corpus, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    root, docs, _ = corpus
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    texts = [json.loads(line)["text"] for line in
             (DATA / "lid" / "lingua-sentences-12lang.jsonl").read_text().splitlines()]
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=500, special_tokens=["[UNK]"],
                                                       show_progress=False))
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    run = run_pipeline(pipeline(tmp_path, root / "in",
                                {"stage": "count_tokens", "tokenizer": str(path)}))
    rows = rows_of(run)
    for r in rows[:50]:
        assert r["n_tokens"] == len(tok.encode(r["text"], add_special_tokens=False).ids)
    manifest = json.loads((run.root / "manifest.json").read_text())
    assert str(path) in {m["path"] for m in manifest["models"]}
    st = json.loads(run.stats_json.read_text())["stages"]
    assert st["write"]["tokens_out"] == sum(r["n_tokens"] for r in rows)


def test_rule_errors_are_config_errors(tmp_path):
    with pytest.raises(Exception, match="exactly one of"):
        pipeline(tmp_path, tmp_path, {"stage": "rebalance", "by": "x"})
    with pytest.raises(Exception, match="summing to 1"):
        pipeline(tmp_path, tmp_path, {"stage": "rebalance", "targets": {"en": 0.5}})


def test_per_dataset_tokens_before_and_after_a_mixture(corpus, tmp_path):
    """input.dataset names each file's dataset; stats count docs and tokens per dataset at
    every stage, so the mixture before and after rebalancing is in stats.json and
    `thresher stats --by dataset`."""
    import shutil

    from conftest import thresher

    root, _, _ = corpus
    mixed = tmp_path / "mixed"
    for i, part in enumerate(sorted((root / "in").glob("*.jsonl"))):
        (mixed / ("web" if i < 3 else "wiki")).mkdir(parents=True, exist_ok=True)
        shutil.copy(part, mixed / ("web" if i < 3 else "wiki") / part.name)
    targets = {"web": 0.4, "wiki": 0.6}

    def cfg(out: str, workers: int = 1):
        c = pipeline(tmp_path, mixed, TOKENS,
                     {"stage": "rebalance", "targets": targets, "target_by": ["dataset"]},
                     workers=workers, out=out).to_dict(resolved=False)
        c["input"].update(paths=[str(mixed / "*" / "*.jsonl")], root=str(mixed),
                          dataset={"web": ["web/*"], "wiki": ["wiki/*"]})
        return config_from_dict(c)

    run = run_pipeline(cfg("run"))
    rows = rows_of(run)
    stages = json.loads(run.stats_json.read_text())["stages"]

    def totals(rs):
        out = {}
        for r in rs:
            e = out.setdefault(r["dataset"], {"docs_out": 0, "chars_out": 0, "tokens_out": 0})
            e["docs_out"] += 1
            e["chars_out"] += len(r["text"])
            e["tokens_out"] += r["n_tokens"]
        return out

    from stages.mixing.tokens import CountTokens, CountTokensParams

    counter = CountTokens(CountTokensParams())
    counter.setup()
    inputs = []
    for path in sorted(mixed.glob("*/*.jsonl")):
        for line in path.read_text().splitlines():
            text = json.loads(line)["text"]
            inputs.append({"dataset": path.parent.name, "text": text,
                           "n_tokens": counter.count(pa.array([text]))[0].as_py()})
    assert stages["count_tokens"]["by_dataset"] == totals(inputs)
    assert stages["rebalance"]["by_dataset"] == stages["write"]["by_dataset"] == totals(rows)
    after = {k: v["tokens_out"] for k, v in totals(rows).items()}
    for name, share in targets.items():  # replicate mode rounds each document's copies
        assert after[name] / sum(after.values()) == pytest.approx(share, abs=0.03)
    before = {k: v["tokens_out"] for k, v in totals(inputs).items()}
    assert before["web"] / sum(before.values()) > 0.6  # the mixture did change

    assert run_pipeline(cfg("two", workers=2)) and json.loads(
        (tmp_path / "two" / "stats.json").read_text())["stages"]["write"]["by_dataset"] == \
        stages["write"]["by_dataset"]
    out = thresher("stats", str(run.root), "--by", "dataset").stdout
    assert "by dataset, after read / write" in out and "wiki" in out
    csv = thresher("stats", str(run.root), "--by", "dataset", "--csv").stdout.splitlines()
    assert csv[0] == "stage,dataset,docs,chars,tokens" and any(
        line.startswith("write,wiki,") for line in csv)


def test_an_input_outside_every_dataset_glob_is_a_config_error(corpus, tmp_path):
    from conftest import thresher

    root, _, _ = corpus
    c = pipeline(tmp_path, root / "in", TOKENS).to_dict(resolved=False)
    c["input"]["dataset"] = {"web": ["part0.jsonl", "part1.jsonl"]}
    path = tmp_path / "c.yaml"
    import yaml

    path.write_text(yaml.safe_dump(c))
    p = thresher("run", str(path), "--quiet", check=False)
    assert p.returncode != 0
    assert "input 'part2.jsonl' matches none of the globs of input.dataset (web)" in p.stderr
