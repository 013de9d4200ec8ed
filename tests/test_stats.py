"""Stats merge by stage name and reason, associatively, whatever the grouping of tasks."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.sketches import LOG10, REAL, Hist, bins, edges
from pipelines.stats import RunStats, StageStats

reasons = st.sampled_from(["too_short", "too_long", "other_language", "low_score"])
stage_names = st.sampled_from(["read", "extract", "langid", "gopher_quality", "write"])


@st.composite
def stage_stats(draw) -> StageStats:
    s = StageStats(docs_out=draw(st.integers(0, 1000)), chars_out=draw(st.integers(0, 10**6)),
                   wall_s=draw(st.floats(0, 100)), cpu_s=draw(st.floats(0, 100)))
    for r in draw(st.lists(reasons, max_size=5)):
        s.drop(r, draw(st.integers(1, 50)))
    for r in draw(st.lists(st.sampled_from(["exception:ValueError", "bad_json"]), max_size=2)):
        s.error(r)
    s.docs_added = draw(st.integers(0, s.docs_out))  # copies a rebalancing stage wrote
    s.docs_in = s.docs_out + s.n_dropped + s.n_errors - s.docs_added
    s.tokens_in, s.tokens_out = draw(st.integers(0, 10**6)), draw(st.integers(0, 10**6))
    for lang in draw(st.lists(st.sampled_from(["en", "de", "zh"]), max_size=3, unique=True)):
        s.by_language[lang] = [draw(st.integers(0, 10)), draw(st.integers(0, 1000)),
                               draw(st.integers(0, 1000))]
    lengths = st.lists(st.integers(0, 10**13), max_size=20)
    s.sketches.length_in.add(np.array(draw(lengths), dtype=np.int64))
    s.sketches.length_out.add(np.array(draw(lengths), dtype=np.int64))
    for col in draw(st.lists(st.sampled_from(["language_score", "n_tokens"]), max_size=2,
                             unique=True)):
        values = st.floats(-1, 1e6) | st.just(1.0) | st.just(float("nan")) \
            if col == "language_score" else st.integers(-5, 10**9)
        h = s.sketches.columns[col] = Hist(REAL if col == "language_score" else LOG10)
        h.add(np.array(draw(st.lists(values, max_size=20)), dtype=np.float64))
    return s


run_stats = st.dictionaries(stage_names, stage_stats(), max_size=5).map(RunStats)


def _canon(r: RunStats) -> dict:
    d = r.to_dict()
    for v in d.values():
        v["wall_s"] = round(v["wall_s"], 3)
        v["cpu_s"] = round(v["cpu_s"], 3)
    return dict(sorted(d.items()))


@settings(max_examples=200, deadline=None)
@given(run_stats, run_stats, run_stats)
def test_merge_is_associative_and_commutative(a, b, c):
    assert _canon((a + b) + c) == _canon(a + (b + c))
    assert _canon(a + b) == _canon(b + a)


@settings(max_examples=200, deadline=None)
@given(st.lists(run_stats, max_size=6))
def test_merge_keeps_books_balanced_and_roundtrips(parts):
    total = RunStats.sum(parts)
    for name, s in total.stages.items():
        assert s.balanced(), name
        assert s.docs_in == sum(p.stages[name].docs_in for p in parts if name in p.stages)
    assert _canon(RunStats.from_dict(total.to_dict())) == _canon(total)


def test_merge_is_by_name_not_position():
    a = RunStats({"x": StageStats(docs_in=3, docs_out=1, dropped=Counter(r=2)),
                  "y": StageStats(docs_in=1, docs_out=1)})
    b = RunStats({"y": StageStats(docs_in=5, docs_out=5),
                  "x": StageStats(docs_in=2, docs_out=2)})
    m = a + b
    assert m["x"].docs_in == 5 and m["x"].dropped == Counter(r=2) and m["y"].docs_in == 6
    assert list(m.ordered(["y", "x"]).stages) == ["y", "x"]


def test_counts_chars_bytes_and_languages():
    s = StageStats()
    t = pa.table({"text": ["héllo", "日本語", None], "language": ["fr", "ja", None]})
    s.count_out(t)
    assert (s.docs_out, s.chars_out, s.bytes_out) == (3, 8, 15)
    assert s.by_language == {"fr": [1, 5, 0], "ja": [1, 3, 0], "unknown": [1, 0, 0]}


def _batches(values: list, cuts: list[int]) -> list[list]:
    cuts = sorted({c % (len(values) + 1) for c in cuts})
    return [values[a:b] for a, b in zip([0, *cuts], [*cuts, len(values)])]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=300), st.floats(0, 1) | st.none()), max_size=60),
       st.lists(st.integers(0, 60), max_size=5))
def test_sketches_are_the_same_whatever_the_task_split(rows, cuts):
    """Per-batch histograms summed == one histogram over everything, bin for bin."""
    def counted(part: list) -> RunStats:
        s = StageStats()
        t = pa.table({"text": pa.array([r[0] for r in part], pa.string())})
        s.count_in(t)
        s.count_out(t.append_column("quality_score",
                                    pa.array([r[1] for r in part], pa.float64())))
        return RunStats({"q": s})

    whole = counted(rows).to_dict()
    split = RunStats.sum(counted(p) for p in _batches(rows, cuts)).to_dict()
    assert split["q"]["sketches"] == whole["q"]["sketches"]
    sk = whole["q"]["sketches"]
    assert sum(sk.get("length_out", {}).get("counts", {}).values()) == len(rows)
    q = sk.get("columns", {}).get("quality_score", {})
    assert sum(q.get("counts", {}).values()) + q.get("null", 0) == len(rows)


def test_sketch_bins_edges_and_specials():
    h = Hist(LOG10)
    h.add(pa.chunked_array([[0, 9, 10, 199, 200, 201, 10**13, -3, None]]))
    assert h.to_dict() == {"scheme": "log10", "under": 1, "null": 1,
                           "counts": {"0": 1, "9": 1, "10": 1, "150": 1, "200": 2,
                                      "1000000000000": 1}}
    r = Hist(REAL)
    r.add(pa.array([0.0, 0.019, 0.02, 0.99, 1.0, 1.5, float("nan")]))
    assert r.to_dict() == {"scheme": "real", "null": 1,
                           "counts": {"0": 2, "0.02": 1, "0.98": 2, "1": 1}}
    assert bins(r.to_dict())[-1] == (1.0, 2.0, 1) and bins(h.to_dict())[-1][1] is None
    for scheme in (LOG10, REAL):  # every edge has its own label, and they increase
        e = edges(scheme)
        assert (np.diff(e) > 0).all()
        assert Hist.from_dict(Hist(scheme, {i: 1 for i in range(len(e))}).to_dict()).counts \
            == {i: 1 for i in range(len(e))}


def test_sketches_only_columns_the_stage_wrote_and_old_stats_load():
    s = StageStats()
    t = pa.table({"text": ["abc", "defgh"], "record": [1, 2]})
    s.count_in(t)
    s.count_out(t.append_column("language_score", pa.array([0.5, 0.97]))
                .append_column("language", pa.array(["en", "fr"])))
    d = s.to_dict()["sketches"]
    assert list(d["columns"]) == ["language_score"]  # not `record` (input), not strings
    assert d["columns"]["language_score"]["counts"] == {"0.5": 1, "0.96": 1}
    assert d["length_in"]["counts"] == d["length_out"]["counts"] == {"3": 1, "5": 1}
    old = s.to_dict()
    del old["sketches"]  # stats.json written before sketches existed
    assert StageStats.from_dict(old).sketches.to_dict() == {}


def test_csv_has_the_removed_rows_of_kept_documents(tmp_path):
    """`thresher stats --csv` gives what stages cut out of documents they kept, as the
    table and --json do: for a substring dedup of real WikiText-2 paragraphs with planted
    repeats, documents changed, characters, spans and tokens equal the suffix-array
    reference's ranges; for pii on the labelled pages, the addresses of every kind."""
    import json

    from test_cli_errors import cli
    from test_pii import DOCS as PII_DOCS
    from test_pii import _config as pii_config
    from test_subdoc_dedup import config, make_corpus, read_rows, reference_ranges, write_corpus

    from pipelines import run_pipeline
    from stages.dedup import subdoc_core as core

    docs, _ = make_corpus()
    write_corpus(tmp_path / "in", docs)
    run = run_pipeline(config(tmp_path, tmp_path / "in",
                              {"stage": "substring_dedup", "min_tokens": 20, "partitions": 2},
                              workers=2)).root
    kept, text = read_rows(run), {d["id"]: d["text"] for d in docs}
    ranges = {i: r for i, r in reference_ranges(docs, 20, "first").items() if i in kept}
    want = {"docs": len(ranges), "chars": sum(b - a for r in ranges.values() for a, b in r),
            "spans": sum(len(r) for r in ranges.values()),
            "tokens": sum(len(core.WORD.findall(text[i], a, b))
                          for i, r in ranges.items() for a, b in r)}
    assert want["docs"] > 20 and want["chars"] > 5000
    assert json.loads((run / "stats.json").read_text())["stages"]["substring_dedup"][
        "removed"] == want
    csv = cli("stats", str(run), "--csv", cwd=tmp_path)
    assert csv.returncode == 0, csv.stderr
    lines = csv.stdout.splitlines()
    assert lines[0] == "stage,kind,reason,docs,chars"
    assert [x for x in lines if x.startswith("substring_dedup,removed,")] == [
        f"substring_dedup,removed,,{want['docs']},{want['chars']}",
        f"substring_dedup,removed,spans,{want['spans']},",
        f"substring_dedup,removed,tokens,{want['tokens']},"]

    # pii: no chars counted (empty), one row per kind with its matches replaced
    inp = tmp_path / "pii-in"
    inp.mkdir()
    pages = PII_DOCS[:120]
    with open(inp / "part0.jsonl", "w") as fh:
        for d in pages:
            fh.write(json.dumps({"id": d["id"], "text": d["text"]}) + "\n")
    run = run_pipeline(pii_config(tmp_path, inp, 1, "pii")).root
    kinds = ("email", "ip")
    with_any = sum(any(g["kind"] in kinds for g in d["spans"]) for d in pages)
    per_kind = {k: sum(g["kind"] == k for d in pages for g in d["spans"]) for k in kinds}
    assert with_any > 10 and min(per_kind.values()) > 10
    lines = cli("stats", str(run), "--csv", cwd=tmp_path).stdout.splitlines()
    assert [x for x in lines if x.startswith("pii,removed,")] == [
        f"pii,removed,,{with_any},", *(f"pii,removed,{k},{per_kind[k]}," for k in kinds)]
