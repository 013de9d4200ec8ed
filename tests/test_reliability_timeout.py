"""Per-document CPU timeout: pipelines.deadline and the extract stage's `timeout_s`.

The pathological page is real trafilatura work, not a sleep: 120,000 short paragraphs,
which trafilatura handles in roughly quadratic time (tens of CPU seconds here, over 20x
the 1 s limit used below), so the limit is what ends it on any machine.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from conftest import thresher
from test_readers import make_warc, page

from pipelines.deadline import CpuDeadline
from pipelines.stage import TaskContext
from pipelines.stats import StageStats
from stages.extraction.extract import Extract, ExtractParams

SLOW_HTML = ("<html><body>" + "".join(f"<p>word{i} some text here.</p>" for i in range(120_000))
             + "</body></html>")
GOOD_HTML = page("A normal page with a paragraph of real words about the weather in Lisbon, "
                 "which was sunny and warm for most of the week, as the forecast said. " * 5)


def spin(cpu_s: float) -> str:
    t0 = time.thread_time()
    while time.thread_time() - t0 < cpu_s:
        pass
    return "done"


def spin_swallowing(cpu_s: float) -> str:
    """Code that catches every Exception must still be stopped."""
    t0 = time.thread_time()
    while time.thread_time() - t0 < cpu_s:
        try:
            sum(range(100))
        except Exception:
            pass
    return "done"


def _deadline_behaviour() -> list:
    d = CpuDeadline(0.3)
    out = [d.call(lambda: spin(0.01)), d.call(lambda: spin(30)),
           d.call(lambda: spin_swallowing(30)), d.call(lambda: spin(0.01))]
    for _ in range(300):  # many short calls leave no timer or pending exception behind
        d.call(lambda: 1)
    spin(0.5)  # would raise DeadlineExceeded here if a timer were left armed
    out.append(CpuDeadline(None).call(lambda: spin(0.01)))
    return out


EXPECTED = [(False, "done"), (True, None), (True, None), (False, "done"), (False, "done")]


def test_deadline_in_the_main_thread():
    assert threading.current_thread() is threading.main_thread()
    assert _deadline_behaviour() == EXPECTED


def test_deadline_in_another_thread():
    result = []
    t = threading.Thread(target=lambda: result.append(_deadline_behaviour()))
    t.start()
    t.join()
    assert result == [EXPECTED]


def test_deadline_passes_exceptions_of_the_call_through():
    with pytest.raises(ZeroDivisionError):
        CpuDeadline(5).call(lambda: 1 / 0)


def _extract(table: pa.Table, **params) -> tuple[pa.Table, StageStats]:
    st = Extract(ExtractParams(**params))
    st.setup()
    st.begin_task(TaskContext(Path("."), "main", 0, "src"))
    stats = StageStats()
    return st.process(table, stats), stats


def _docs() -> pa.Table:
    return pa.table({"id": ["a", "slow", "b"], "url": [None, "http://slow.example/", None],
                     "source": ["s"] * 3, "html": [GOOD_HTML, SLOW_HTML, GOOD_HTML]})


@pytest.mark.parametrize("where", ["main thread", "other thread"])
def test_extract_counts_a_page_over_the_limit_and_goes_on(where: str):
    res = []
    if where == "main thread":
        res.append(_extract(_docs(), timeout_s=1.0))
    else:
        t = threading.Thread(target=lambda: res.append(_extract(_docs(), timeout_s=1.0)))
        t.start()
        t.join()
    out, stats = res[0]
    assert out.column("id").to_pylist() == ["a", "b"]
    assert all("Lisbon" in t for t in out.column("text").to_pylist())
    assert stats.errors == {"extract_timeout": 1} and stats.n_dropped == 0


def test_extract_timeout_in_pipeline_workers(tmp_path: Path):
    """Two local workers (forkserver processes): the limit works there too and the run
    finishes with the timeout counted in the funnel."""
    d = tmp_path / "in"
    d.mkdir()
    make_warc(d / "a.warc.gz", [{"body": GOOD_HTML.encode(), "ctype": "text/html"},
                                {"body": SLOW_HTML.encode(), "ctype": "text/html"}])
    make_warc(d / "b.warc.gz", [{"body": GOOD_HTML.encode(), "ctype": "text/html"}])
    cfg = {"input": {"format": "warc", "paths": [str(d / "*.warc.gz")]},
           "output": {"path": str(tmp_path / "run")},
           "executor": {"kind": "local", "workers": 2},
           "stages": [{"stage": "extract", "timeout_s": 1.0}]}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(cfg))
    thresher("run", str(tmp_path / "p.yaml"), "--quiet")
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    ex = stats["stages"]["extract"]
    assert ex["errors"] == {"extract_timeout": 1} and ex["docs_out"] == 2
    log = (tmp_path / "run" / "logs" / "main" / "task-00000.log").read_text()
    assert "took over 1.0s of CPU" in log
