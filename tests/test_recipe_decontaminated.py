"""configs/decontaminated.yaml: the SlimPajama recipe followed by `decontaminate`, on the
bundled sources, one of which carries evaluation items planted verbatim, in part, lightly
edited or paraphrased (tests/data/decontam/make_decontam_set.py).

What the recipe implies is checked document by document: every planted copy that reaches
the stage is dropped with its evaluation set as the reason, paraphrases and same-article
paragraphs are kept, and an independent 13-gram matcher (written here, not thresher's)
finds a shared 13-gram in every dropped document and in no kept one, in any source.
"""

from __future__ import annotations

import gzip
import json
import re
import unicodedata
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import DATA, REPO, thresher
from test_recipe_slimpajama import inputs, output_rows

CONFIG = REPO / "configs" / "decontaminated.yaml"
CHAIN = ["read", "length", "minhash_dedup", "decontaminate", "write"]
SETS = {"wiki": (DATA / "decontam" / "wiki-passages.jsonl", ["context"]),
        "cloze": (DATA / "decontam" / "inaugural-cloze.jsonl", ["context", "target"])}
N = 13


def grams(text: str) -> set[tuple[str, ...]]:
    """Word 13-grams as docs/decontamination.md defines them: NFKC, lower case, \\w+ runs."""
    words = re.findall(r"\w+", unicodedata.normalize("NFKC", text).lower())
    return {tuple(words[i:i + N]) for i in range(len(words) - N + 1)}


def eval_index() -> dict[tuple[str, ...], set[tuple[str, str]]]:
    index: dict[tuple[str, ...], set[tuple[str, str]]] = {}
    for name, (path, fields) in SETS.items():
        for line in path.read_text().splitlines():
            item = json.loads(line)
            for g in grams("\n".join(item[f] for f in fields)):
                index.setdefault(g, set()).add((name, item["id"]))
    return index


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("decontaminated") / "run"
    thresher("run", str(CONFIG), "--output", str(out), "--quiet")
    return out


@pytest.fixture(scope="module")
def labels() -> dict[str, dict]:
    """The planted corpus: id -> {category, eval_set, item_id}."""
    with gzip.open(DATA / "decontam" / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        return {d["id"]: d for d in map(json.loads, fh)}


def matches(run: Path) -> list[dict]:
    return [m for p in sorted((run / "work" / "decontaminate" / "matches").glob("*.parquet"))
            for m in pq.read_table(p).to_pylist()]


def test_the_funnel_is_slimpajama_then_decontamination(run):
    stats = json.loads((run / "stats.json").read_text())["stages"]
    assert list(stats) == CHAIN
    for a, b in zip(CHAIN, CHAIN[1:]):
        assert stats[a]["docs_out"] == stats[b]["docs_in"], (a, b)
    dropped = stats["decontaminate"]["dropped"]
    assert set(dropped) == {"contaminated:wiki", "contaminated:cloze"}
    assert sum(dropped.values()) == len({m["doc_id"] for m in matches(run)})
    # only the source with planted items loses documents to decontamination
    before = stats["minhash_dedup"]["by_dataset"]
    after = stats["decontaminate"]["by_dataset"]
    lost = {d: before[d]["docs_out"] - after[d]["docs_out"] for d in before}
    assert lost == {"extracted-pages": 0, "wiki-and-forums": 0, "lid-sentences": 0,
                    "web-with-benchmarks": sum(dropped.values())}


def test_planted_items_are_dropped_and_near_misses_kept(run, labels):
    kept = {r["id"] for r in output_rows(run)}
    reason = {}
    for m in matches(run):
        assert m["action"] == "dropped"
        reason.setdefault(m["doc_id"], set()).add(m["set"])
    reached = kept | set(reason)  # the documents the stage saw
    seen = {"verbatim": 0, "partial": 0, "light": 0}
    for doc_id, d in labels.items():
        if doc_id not in reached:
            continue  # dropped before (MinHash: a near copy of a page in another source)
        if d["category"] in seen:
            assert doc_id in reason and d["eval_set"] in reason[doc_id], d["id"]
            seen[d["category"]] += 1
        else:  # clean, same_article, paraphrase: no 13 words in a row of an item
            assert doc_id in kept, (doc_id, d["category"])
    assert min(seen.values()) >= 40  # 45 of each were planted
    assert len(labels) - len(reached & set(labels)) <= 5


def test_an_independent_13_gram_matcher_agrees_on_every_document(run):
    index = eval_index()
    docs = inputs(CONFIG)
    kept = {r["id"] for r in output_rows(run)}
    found = {}
    for m in matches(run):
        found.setdefault(m["doc_id"], set()).add((m["set"], m["item_id"]))
    for doc_id in kept:
        assert not grams(docs[doc_id][1]) & index.keys(), doc_id
    for doc_id, items in found.items():
        hit = set().union(*(index[g] for g in grams(docs[doc_id][1]) & index.keys()))
        assert items <= hit and hit, doc_id


def test_the_evaluation_files_are_recorded_and_reported(run):
    models = json.loads((run / "manifest.json").read_text())["models"]
    paths = {Path(m["path"]).name for m in models}
    assert {"wiki-passages.jsonl", "inaugural-cloze.jsonl"} <= paths
    index = json.loads((run / "work" / "decontaminate" / "index.json").read_text())
    assert index["n"] == 13


def test_the_report_lists_the_contaminated_items_and_the_matched_documents(run, tmp_path):
    import html as html_lib
    import re

    report = tmp_path / "report.html"
    thresher("report", str(run), "-o", str(report))
    page = report.read_text()
    section = page[page.index('id="contamination"'):]
    section = section[:section.index("</section>")]
    found = matches(run)
    items = {(m["set"], m["item_id"]) for m in found}
    docs: dict[str, set] = {}
    for m in found:
        docs.setdefault(m["doc_id"], set()).add(f"{m['set']}/{m['item_id']}")
    assert len(docs) > 50  # more than the tables show: they say so
    assert f"decontaminate: {len(items):,} contaminated evaluation items</h3>" in section
    assert f"decontaminate: {len(docs):,} matched documents ({len(found):,} matches)" in section
    assert f"first 50 of {len(items):,} items" in section or len(items) <= 50
    assert f"first 50 of {len(docs):,} documents; every match is in " \
           "work/decontaminate/matches/ (part-&lt;task&gt;.json names the files)" in section
    tables = re.findall(r"<tbody>(.*?)</tbody>", section, re.S)
    assert len(tables) == 2
    cells = [[html_lib.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
             for row in re.findall(r"<tr>(.*?)</tr>", tables[0])]
    counts = {k: sum(1 for m in found if (m["set"], m["item_id"]) == k) for k in items}
    assert len(cells) == min(50, len(items))
    for s, i, n, _, _ in cells:  # set, item, documents, most shared n-grams, text
        assert int(n.replace(",", "")) == counts[(s, i)]
    assert [int(c[2].replace(",", "")) for c in cells] == \
        sorted(counts.values(), reverse=True)[:len(cells)]  # most matched first
    rows = [[html_lib.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", tables[1])]
    assert [r[0] for r in rows] == sorted(docs)[:50]
    for doc_id, action, listed, _ in rows:
        assert action == "dropped" and set(listed.split(", ")) == docs[doc_id]
