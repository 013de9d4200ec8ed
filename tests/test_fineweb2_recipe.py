"""configs/fineweb2.yaml on the bundled multilingual WARCs (the Common Crawl excerpt: zh,
de, ru, nl, en pages; the ClueWeb excerpt: ja pages), and its funnel per language as
`thresher stats --by language` shows it."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import yaml
from conftest import REPO, thresher

CONFIG = REPO / "configs" / "fineweb2.yaml"
WARCS = [REPO / "tests" / "data" / "warc" / n for n in (
    "resiliparse-cc-main-2020-34-warcfile.warc.gz", "resiliparse-clueweb09-ja-quirk.warc.gz")]
FILTERS = ["langid", "gopher_repetition", "gopher_quality", "c4", "fineweb_quality",
           "count_tokens", "minhash_dedup"]


def test_fineweb2_recipe_funnel_per_language(tmp_path: Path):
    cfg = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    kinds = [s["stage"] for s in cfg["stages"]]
    assert kinds == ["extract", *FILTERS[:-2], "count_tokens", "minhash_dedup", "rebalance",
                     "pii"]  # the FineWeb-2 chain, in the order
    for s in cfg["stages"]:
        if s["stage"] in ("gopher_repetition", "gopher_quality", "c4", "fineweb_quality"):
            assert s["tokenizer"] == "auto" and s["thresholds"] == "per_language"
    out = tmp_path / "fw2"
    thresher("run", str(CONFIG), "--output", str(out), "--quiet", "--set",
             f"input.paths={json.dumps([str(p) for p in WARCS])}")
    stats = json.loads((out / "stats.json").read_text())["stages"]
    funnel = thresher("stats", str(out), "--by", "language", "--stages", "all",
                      "--csv").stdout
    docs: dict[str, dict[str, int]] = {}
    for r in csv.DictReader(io.StringIO(funnel)):
        docs.setdefault(r["stage"], {})[r["language"]] = int(r["docs"])
    at_langid = docs["langid"]
    assert {"zh", "ja", "de", "ru", "nl", "en"} <= set(at_langid), at_langid
    langs = sorted(at_langid)
    for prev, stage in zip(FILTERS, FILTERS[1:]):
        for lang in langs:  # a document only leaves, language by language
            assert docs.get(stage, {}).get(lang, 0) <= docs[prev].get(lang, 0), (stage, lang)
        # the per-language rows add up to the stage's own drop count
        lost = sum(docs[prev].get(x, 0) - docs.get(stage, {}).get(x, 0) for x in langs)
        assert lost == stats[stage]["docs_in"] - stats[stage]["docs_out"], (stage, lost)
        assert sum(docs.get(stage, {}).values()) == stats[stage]["docs_out"]
    # segmented words and FineWeb-2's Chinese thresholds: Chinese pages pass Gopher's
    # word rules (whitespace words fail every one of them: test_per_language.py)
    assert docs["gopher_quality"].get("zh", 0) > 0
    # the output, language by language, is the last stage's row of the funnel
    rows = [r for p in sorted((out / "data").glob("*.parquet"))
            for r in pq.read_table(p, columns=["language", "repeat_index"]).to_pylist()]
    written = Counter(r["language"] for r in rows)
    assert written == Counter({k: v for k, v in docs["write"].items() if v})
    originals = Counter(r["language"] for r in rows if r["repeat_index"] == 0)
    assert originals == Counter({k: v for k, v in docs["minhash_dedup"].items() if v})
    assert stats["rebalance"]["docs_added"] == len(rows) - sum(originals.values())
    table = thresher("stats", str(out), "--by", "language").stdout
    for lang in ("zh", "ja", "de", "ru", "nl", "en"):
        assert f" {lang} " in table
    # the per-language table is in the manifest, by sha256
    from stages.heuristics.per_language import BUILTIN

    models = json.loads((out / "manifest.json").read_text())["models"]
    assert hashlib.sha256(BUILTIN.read_bytes()).hexdigest() in {m["sha256"] for m in models}
