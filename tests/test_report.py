"""`thresher report` opened in a real headless Chromium: the plots are laid out, every
number shown is the one in stats.json, the page requests nothing, and compare mode's
deltas are B - A.

Chromium is Debian's (`scripts/install-system-deps.sh` installs it); without it these
tests skip, unless THRESHER_REQUIRE_CHROMIUM=1 (set by .ci/run as root), which makes
them fail instead.
"""

from __future__ import annotations

import json
import os
import subprocess
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from conftest import WARC_DIR, thresher

from pipelines.report.html import CSS
from pipelines.report.page import build_report, load_run
from pipelines.sketches import indexed

CHROMIUM = Path("/usr/bin/chromium")
# the small bundled WARCs: English, Chinese, Japanese..., and near-duplicate pages
INPUTS = [str(WARC_DIR / g) for g in ("dolma-*.warc.gz", "resiliparse-*.warc.gz",
                                      "cc-main-*.warc.gz")]
STAGES = [
    {"stage": "extract"},
    {"stage": "langid", "min_score": {"default": 0.5, "en": 0.65}},
    {"stage": "length", "min_chars": 200},
    {"stage": "count_tokens"},
    {"stage": "minhash_dedup"},
    {"stage": "gopher_quality"},
]


@pytest.fixture(scope="module")
def chromium():
    if not CHROMIUM.exists():
        msg = f"{CHROMIUM} is missing; install it with: sudo bash scripts/install-system-deps.sh"
        if os.environ.get("THRESHER_REQUIRE_CHROMIUM") == "1":
            pytest.fail(f"THRESHER_REQUIRE_CHROMIUM=1 but {msg}")
        pytest.skip(msg)
    return CHROMIUM


def _run(tmp: Path, name: str, **sets) -> Path:
    stages = [dict(s) for s in STAGES]
    for st in stages:
        st.update(sets.get(st["stage"], {}))
    cfg = {"name": name, "input": {"format": "warc", "paths": INPUTS},
           "output": {"path": str(tmp / name)},
           "executor": {"kind": "local", "workers": 2}, "stages": stages}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    thresher("run", str(path), "--quiet")
    return tmp / name


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """Run A, and run B with stricter length and langid thresholds."""
    tmp = tmp_path_factory.mktemp("report")
    a = _run(tmp, "a")
    b = _run(tmp, "b", length={"min_chars": 1000}, langid={"min_score": 0.9})
    return a, b


def _browse(chromium: Path, html: Path, tmp: Path, shot: Path | None = None) -> tuple[str, list]:
    """The DOM after load (scripts run) and the URLs the page itself asked the network for
    (Chromium's own background requests have no origin and are left out)."""
    netlog = tmp / f"{html.stem}-netlog.json"
    args = [str(chromium), "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", f"--user-data-dir={tmp / 'chromium-profile'}",
            f"--log-net-log={netlog}", "--window-size=1280,1800", "--hide-scrollbars"]
    args += [f"--screenshot={shot}"] if shot else ["--dump-dom"]
    p = subprocess.run([*args, html.as_uri()], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    log = json.loads(netlog.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    asked = [e["params"]["url"] for e in log["events"] if e["type"] == start
             and "url" in e.get("params", {}) and e["params"].get("initiator") != "not an origin"]
    return p.stdout, asked


class _Dom(HTMLParser):
    """Elements with data-key (by key and run), plots with their bars, tags seen."""

    def __init__(self):
        super().__init__()
        self.cells: dict[tuple[str, str], dict] = {}
        self.plots: dict[str, dict] = {}
        self.tags: list[tuple[str, dict]] = []
        self._open: dict | None = None
        self._plot: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "svg" and "plot" in a.get("class", ""):
            self._plot = self.plots[a["data-key"]] = {"attrs": a, "bars": []}
        elif tag == "rect" and "bar" in a.get("class", "").split() and self._plot is not None:
            self._plot["bars"].append(a)
        elif "data-key" in a and "data-run" in a:
            self._open = self.cells[(a["data-key"], a["data-run"])] = {**a, "text": ""}

    def handle_endtag(self, tag):
        if tag == "svg":
            self._plot = None
        elif tag == "td":
            self._open = None

    def handle_data(self, data):
        if self._open is not None:
            self._open["text"] += data


def _dom(text: str) -> _Dom:
    d = _Dom()
    d.feed(text)
    return d


def _shown(d: _Dom, key: str, run: str = "a") -> dict:
    assert (key, run) in d.cells, f"{key} ({run}) is not on the page"
    return d.cells[(key, run)]


def _assert_number(d: _Dom, key: str, value, run: str = "a") -> None:
    c = _shown(d, key, run)
    assert c["data-value"] == str(value), (key, c)
    assert c["text"] == f"{value:,}", (key, c)


def _bar_sum(d: _Dom, key: str, series: str | None = None) -> int:
    return sum(int(b["data-value"]) for b in d.plots[key]["bars"]
               if series is None or b.get("data-series") == series)


def _counts(h: dict | None) -> int:
    return sum(h.get("counts", {}).values()) if h else 0


def test_report_in_chromium_matches_stats(runs, chromium, tmp_path):
    a, _ = runs
    out = tmp_path / "report.html"
    thresher("report", str(a), "-o", str(out))
    html = out.read_text()
    dom_text, asked = _browse(chromium, out, tmp_path)
    d = _dom(dom_text)
    stats = json.loads((a / "stats.json").read_text())

    # laid out by the browser: every plot has all its bars on the page with a non-empty box
    assert d.tags[0][0] == "html" and int(d.tags[0][1]["data-plots-drawn"]) == len(d.plots)
    for key, p in d.plots.items():
        assert p["bars"] and int(p["attrs"]["data-drawn"]) == len(p["bars"]), key
    assert {"funnel|docs", "funnel|chars", "funnel|tokens", "reasons|docs", "time|wall",
            "by_language|docs", "hist|langid|col|language_score"} <= set(d.plots)

    for name, st in stats["stages"].items():  # the funnel and the time table
        for f in ("docs_in", "docs_out", "chars_in", "chars_out", "tokens_in", "tokens_out"):
            _assert_number(d, f"funnel|{name}|{f}", st[f])
        _assert_number(d, f"funnel|{name}|dropped", sum(st["dropped"].values()))
        assert float(_shown(d, f"time|{name}|wall_s")["data-value"]) == st["wall_s"]
        for reason, n in st["dropped"].items():
            _assert_number(d, f"reason|{name}|dropped|{reason}|docs", n)
            if reason in st["chars_by_reason"]:
                _assert_number(d, f"reason|{name}|dropped|{reason}|chars",
                               st["chars_by_reason"][reason])
        for lang, v in st["by_language"].items() if name in ("langid", "write") else ():
            # the first stage that knew languages and the last one, side by side
            _assert_number(d, f"by_language|{lang}|{name}|docs_out", v["docs_out"])
            _assert_number(d, f"by_language|{lang}|{name}|chars_out", v["chars_out"])
            _assert_number(d, f"by_language|{lang}|{name}|tokens_out", v["tokens_out"])
        sk = st["sketches"]
        if name != "write" and sk.get("length_out"):  # plotted bars = the sketch's counts
            assert _bar_sum(d, f"hist|{name}|length", "out") == _counts(sk["length_out"])
            assert _bar_sum(d, f"hist|{name}|length", "in") == _counts(sk.get("length_in"))
        for col, h in sk.get("columns", {}).items():
            assert _bar_sum(d, f"hist|{name}|col|{col}") == _counts(h), (name, col)
    assert len(stats["stages"]["langid"]["by_language"]) >= 3

    for phase, ph in stats["phases"].items():  # time per phase, what the steps found
        _assert_number(d, f"phase|{phase}|tasks", ph["tasks"])
        assert float(_shown(d, f"phase|{phase}|elapsed_s")["data-value"]) == ph["elapsed_s"]
        for k, v in ph.get("metrics", {}).items():
            assert float(_shown(d, f"metric|{phase}|{k}|value")["data-value"]) == v

    # dedup: clusters of 2+ plotted from the sketch = the clusters the cluster step found
    clusters = stats["phases"]["minhash_dedup.cluster"]["metrics"]["clusters"]
    assert clusters >= 1
    assert _bar_sum(d, "dedup|minhash_dedup|minhash_cluster_size") == clusters
    size_col = stats["stages"]["minhash_dedup"]["sketches"]["columns"]["minhash_cluster_size"]
    assert sum(n for i, n in indexed(size_col).items() if i >= 2) == clusters
    _assert_number(d, "meta|inputs", 5)

    # dropped samples, one summary per stage and reason that has samples
    summaries = [t for t, _ in d.tags if t == "summary"]
    assert len(summaries) >= sum(len(st["dropped"]) for n, st in stats["stages"].items()
                                 if n != "read")

    # self-contained: nothing loaded from anywhere, no request made
    assert asked == []
    assert not [a for t, a in d.tags if "src" in a or (t == "link")]
    assert all(a["href"].startswith("#") for t, a in d.tags if "href" in a)
    assert [t for t, _ in d.tags].count("script") == 1
    assert "url(" not in CSS and "@import" not in CSS and html.count("<style>") == 1
    # the same run gives the same bytes
    thresher("report", str(a), "-o", str(tmp_path / "again.html"))
    assert (tmp_path / "again.html").read_bytes() == out.read_bytes()


def test_report_escapes_document_html(runs, chromium, tmp_path):
    """Text and URLs of documents are shown as text: a page's markup never becomes ours."""
    data = load_run(runs[0])
    evil = ('<script>document.title="owned"</script><img src="http://127.0.0.1:9/x.png">'
            '<a href="http://127.0.0.1:9/">link</a> & </pre></details>')
    data.samples.insert(0, {**data.samples[0], "text": evil, "url": 'http://x/"><b>u</b>',
                            "id": "<i>id</i>"})
    out = tmp_path / "evil.html"
    out.write_text(build_report(data))
    dom_text, asked = _browse(chromium, out, tmp_path)
    d = _dom(dom_text)
    assert asked == []
    assert [t for t, _ in d.tags].count("script") == 1
    assert not [t for t, _ in d.tags if t in ("img", "b", "i")]
    assert "&lt;script&gt;document.title=" in dom_text and "<title>thresher report" in dom_text
    assert 'http://x/"&gt;&lt;b&gt;u&lt;/b&gt;' in dom_text


EVIL_TEXT = ('<script>document.title="owned"</script><img src=x onerror="alert(1)">'
             '<a href="http://127.0.0.1:9/" onclick="alert(2)">link</a> & </pre></details>')
EVIL_URL = 'http://x/" onmouseover="alert(3)"><b>u</b>'
EVIL_ID = "<i onmouseover=alert(4)>id</i>"


class _Markup(HTMLParser):
    """Every start tag with its attributes, and every run of text (entities decoded)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list]] = []
        self.texts: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_data(self, data):
        self.texts.append(data)


def _planted_markup(html: str) -> list[str]:
    """Where the planted document fields became markup of the page, or were not shown as
    text, as a standard HTML parser reads the page."""
    m = _Markup()
    m.feed(html)
    m.close()
    found = [f"<{t}> tag" for t, _ in m.tags if t in ("img", "b", "i")]
    scripts = [t for t, _ in m.tags].count("script")  # the page's own one only
    if scripts != 1:
        found.append(f"{scripts} <script> tags")
    found += [f"{k}= on <{t}>" for t, attrs in m.tags for k, _ in attrs if k.startswith("on")]
    found += [f"<{t} {k}={v!r}>" for t, attrs in m.tags for k, v in attrs
              if k in ("href", "src") and not (v or "").startswith("#")]
    found += [f"not shown as text: {f!r}" for f in (EVIL_TEXT, EVIL_URL, EVIL_ID)
              if not any(f in t for t in m.texts)]
    return found


def test_report_escapes_document_html_without_a_browser(runs):
    """The same planted page text, URL and id, checked with the standard library's HTML
    parser (no Chromium needed): each is only text of the page, never a tag or an
    attribute. The check itself catches the same page built without escaping."""
    data = load_run(runs[0])
    data.samples.insert(0, {**data.samples[0], "text": EVIL_TEXT, "url": EVIL_URL,
                            "id": EVIL_ID})
    html = build_report(data)
    assert _planted_markup(html) == []
    for raw in (EVIL_TEXT, EVIL_URL, EVIL_ID):
        assert raw not in html and escape(raw) in html  # in the source: escaped only

    unescaped = html.replace(escape(EVIL_TEXT), EVIL_TEXT)
    assert {"<img> tag", "onerror= on <img>", "onclick= on <a>", "2 <script> tags",
            "<a href='http://127.0.0.1:9/'>"} <= set(_planted_markup(unescaped))
    meta = escape(f"{EVIL_ID} · {EVIL_URL}")
    assert html.count(meta) == 1
    unescaped = html.replace(meta, f"{EVIL_ID} · {EVIL_URL}")
    assert {"<i> tag", "<b> tag", "onmouseover= on <i>"} <= set(_planted_markup(unescaped))


def test_network_check_sees_a_page_request(chromium, tmp_path):
    """The no-request check above can fail: a page that loads an image is caught."""
    page = tmp_path / "control.html"
    page.write_text('<html><body><img src="http://127.0.0.1:9/x.png"></body></html>')
    _, asked = _browse(chromium, page, tmp_path)
    assert asked == ["http://127.0.0.1:9/x.png"]


def test_report_compare_deltas(runs, chromium, tmp_path):
    a, b = runs
    out = tmp_path / "compare.html"
    thresher("report", str(a), "--compare", str(b), "-o", str(out))
    shot = tmp_path / "compare.png"
    dom_text, asked = _browse(chromium, out, tmp_path)
    d = _dom(dom_text)
    assert asked == []
    for key, p in d.plots.items():
        assert p["bars"] and int(p["attrs"]["data-drawn"]) == len(p["bars"]), key
    sa, sb = (json.loads((r / "stats.json").read_text())["stages"] for r in runs)
    changed = 0
    for name in sa:
        for f in ("docs_in", "docs_out", "chars_out", "tokens_out"):
            x, y = sa[name][f], sb[name][f]
            _assert_number(d, f"funnel|{name}|{f}", x, "a")
            _assert_number(d, f"funnel|{name}|{f}", y, "b")
            delta = _shown(d, f"funnel|{name}|{f}", "delta")
            assert int(delta["data-value"]) == y - x
            assert delta["text"] == (f"{y - x:+,}" if y != x else "0")
            if x:
                assert float(_shown(d, f"funnel|{name}|{f}", "pct")["data-value"]) == \
                    pytest.approx((y - x) / x, rel=1e-12)
            changed += y != x
        for reason in set(sa[name]["dropped"]) | set(sb[name]["dropped"]):
            x, y = sa[name]["dropped"].get(reason), sb[name]["dropped"].get(reason)
            if x is not None and y is not None:
                key = f"reason|{name}|dropped|{reason}|docs"
                assert int(_shown(d, key, "delta")["data-value"]) == y - x
    assert changed  # stricter thresholds changed the funnel
    assert sb["length"]["dropped"]["too_short"] > sa["length"]["dropped"]["too_short"]
    # both runs' histograms on one plot
    bars = d.plots["hist|langid|length"]["bars"]
    assert {"A out", "B out"} == {x["data-series"] for x in bars}
    assert _bar_sum(d, "hist|langid|length", "B out") == \
        _counts(sb["langid"]["sketches"]["length_out"])

    _browse(chromium, out, tmp_path, shot=shot)  # and the screenshot is a real PNG of it
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (1280, 1800)


def test_report_of_old_stats_and_of_no_run(runs, tmp_path):
    """stats.json written before sketches existed still gives a report (without
    histograms); a directory that is no finished run is one error line."""
    data = load_run(runs[0])
    for st in data.stats["stages"].values():
        del st["sketches"]
    html = build_report(data)
    assert 'id="funnel"' in html and 'id="histograms"' not in html and 'id="dedup"' not in html
    p = thresher("report", str(tmp_path), "-o", str(tmp_path / "r.html"), check=False)
    assert p.returncode == 2 and "stats.json does not exist" in p.stderr
    assert not (tmp_path / "r.html").exists()


def test_report_shows_the_run_directory_relative_to_the_working_directory(runs, monkeypatch,
                                                                          tmp_path):
    """A shared page (docs/report.png among them) does not reveal the machine's paths."""
    a, _ = runs
    monkeypatch.chdir(a.parent)
    html = build_report(load_run(a.name))
    assert str(a) not in html and str(a.parent) not in html
    assert f">{a.name}<" in html
    monkeypatch.chdir(tmp_path)
    assert str(a) in build_report(load_run(a))  # elsewhere: the full path, unambiguous
