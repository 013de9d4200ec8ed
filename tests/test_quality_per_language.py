"""quality_classifier's `min_score` per language (a mapping with `default`, as langid's),
with the bundled proxy model (configs/models/fineweb-edu-proxy.bin) on real Leipzig
pages in four languages: filter, per-document, annotate + decide_from_columns agree, and
the chain check asks for `language`."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from conftest import REPO
from test_per_language import pages

from pipelines import stage as make_spec
from pipelines.errors import UserError
from pipelines.stage import StageStats, TaskContext

MODEL = str(REPO / "configs" / "models" / "fineweb-edu-proxy.bin")


def build(**params):
    st = make_spec("quality_classifier", model=MODEL, positive_label="edu", **params).build()
    st.setup()
    st.begin_task(TaskContext(Path("."), "main", 0, "test"))
    return st


def test_min_score_per_language():
    docs = [(t, lang) for lang in ("en", "de", "zh", "ja") for t in pages(lang, 6)]
    t = pa.table({"id": [f"d{i}" for i in range(len(docs))], "text": [d for d, _ in docs],
                  "language": [x for _, x in docs]})
    scores = build().scores([d for d, _ in docs])
    by_lang = {lang: sorted(s for s, (_, x) in zip(scores, docs) if x == lang)
               for lang in ("en", "de", "zh", "ja")}
    # thresholds between each language's scores: the 3rd lowest of de, above zh's highest
    table = {"default": 0.0, "de": float(by_lang["de"][2]), "zh": min(1.0, by_lang["zh"][-1]
                                                                        + 1e-9)}
    st = build(min_score=table)
    assert "language" in st.input_columns()
    reasons, cols = st.check_batch(t)
    want = [("low_quality" if s < table.get(lang, 0.0) else None)
            for s, (_, lang) in zip(scores, docs)]
    assert reasons == want
    assert sum(r is not None for r, (_, x) in zip(reasons, docs) if x == "de") == 2
    assert all(r is not None for r, (_, x) in zip(reasons, docs) if x == "zh")
    assert all(r is None for r, (_, x) in zip(reasons, docs) if x in ("en", "ja"))
    one = [st.check({"id": "x", "text": d, "language": x})[0] for d, x in docs]
    assert one == reasons
    annotated = build(min_score=table, mode="annotate").process(t, StageStats())
    assert st.decide_from_columns(annotated) == reasons  # thresher materialize
    assert build(min_score=0.0).input_columns() == ("text",)
    with pytest.raises(UserError, match="needs the 'language' column"):
        st.check_batch(t.drop(["language"]))
