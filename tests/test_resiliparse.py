"""`extract` with `extractor: resiliparse`, on the real pages of the bundled WARCs."""

from __future__ import annotations

import hashlib
import re
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from pipelines import run_pipeline, stage
from pipelines.config import LocalExecutor, OutputConfig, PipelineConfig, WarcInput
from pipelines.errors import UserError
from pipelines.io.readers import make_reader
from pipelines.stats import StageStats
from stages.extraction.extract import Extract, ExtractParams

pytest.importorskip("resiliparse")

WARC_DIR = Path(__file__).parent / "data" / "warc"
DOLMA = WARC_DIR / "dolma-wget-2024-sample-0000.warc.gz"
CC2020 = WARC_DIR / "resiliparse-cc-main-2020-34-warcfile.warc.gz"


def pages(path: Path) -> pa.Table:
    stats = StageStats()
    return pa.concat_tables(list(make_reader(WarcInput(paths=["x"])).read(path, "src", stats)))


def extract(table: pa.Table, **params) -> tuple[dict[str, str], StageStats]:
    st = Extract(ExtractParams(**params))
    st.setup()
    st.begin_task(None)
    stats = StageStats()
    out = st.process(table, stats)
    return dict(zip(out.column("url").to_pylist(), out.column("text").to_pylist())), stats


def words(text: str) -> Counter:
    return Counter(re.findall(r"\w+", text.lower()))


def test_main_content_agrees_with_trafilatura_on_real_pages():
    table = pages(DOLMA)
    res, rstats = extract(table, extractor="resiliparse")
    tra, _ = extract(table)
    assert len(res) == table.num_rows == 22 and not rstats.errors
    # trafilatura's (precise) main text is, word for word, mostly inside resiliparse's
    recall = sorted(sum((words(tra[u]) & words(res[u])).values()) / sum(words(tra[u]).values())
                    for u in tra)
    assert recall[len(recall) // 2] > 0.9
    # and resiliparse keeps block structure as lines, which the Gopher line rules need
    assert all("\n" in t for t in res.values())
    assert not any("<div" in t or "<script" in t for t in res.values())


def test_include_tables_false_skips_tables():
    table = pages(DOLMA)
    url = "https://soldaini.net/lineage/"  # a page whose content is a table of advisors
    with_tables, _ = extract(table, extractor="resiliparse")
    without, _ = extract(table, extractor="resiliparse", include_tables=False)
    assert "Fields of Study" in with_tables[url]
    assert "Fields of Study" not in without.get(url, "")


def test_non_latin_pages_and_drops():
    table = pages(CC2020)  # a real Common Crawl excerpt: mostly Chinese pages
    res, stats = extract(table, extractor="resiliparse")
    assert len(res) + stats.n_dropped + stats.n_errors == table.num_rows
    assert sum(bool(re.search(r"[\u4e00-\u9fff]", t)) for t in res.values()) >= 8


def test_trafilatura_only_options_are_refused():
    for opt in ({"favor_precision": True}, {"deduplicate": True}, {"output_format": "markdown"}):
        with pytest.raises(ValueError, match=f"{next(iter(opt))}: only for extractor trafilatura"):
            ExtractParams(extractor="resiliparse", **opt)
    ExtractParams(extractor="resiliparse", include_comments=True, include_links=True)


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "resiliparse.extract.html2text", None)
    with pytest.raises(UserError, match="needs the resiliparse package"):
        Extract(ExtractParams(extractor="resiliparse")).setup()


def test_pipeline_with_resiliparse_is_deterministic_across_workers(tmp_path: Path):
    hashes = []
    for workers in (1, 2):
        cfg = PipelineConfig(
            name="rp", input=WarcInput(paths=[str(WARC_DIR / "dolma-*.warc.gz"),
                                              str(CC2020)]),
            output=OutputConfig(path=str(tmp_path / f"w{workers}")),
            executor=LocalExecutor(workers=workers),
            stages=[stage("extract", extractor="resiliparse"), stage("langid")])
        run = run_pipeline(cfg)
        hashes.append({p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                       for p in sorted((run.root / "data").glob("*.parquet"))})
    assert hashes[0] and hashes[0] == hashes[1]
