"""Stats merge by stage name and reason, associatively, whatever the grouping of tasks."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

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
