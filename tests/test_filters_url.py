"""url_filter: domains block their subdomains, URLs block exact pages, lists come from files."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import pytest
from conftest import DATA

from pipelines import stage as make_spec
from pipelines.errors import UserError
from pipelines.stats import StageStats

BLOCKLIST = """\
# a comment line
example.com
ads.example.org          # only this host and below
*.tracker.net
http://news.example.net/2020/bad-page.html
shop.example.io/item?id=7
"""


def _run(tmp_path: Path, urls: list[str | None], **params) -> tuple[list, StageStats]:
    path = tmp_path / "blocklist.txt"
    path.write_text(BLOCKLIST, encoding="utf-8")
    st = make_spec("url_filter", blocklist_file=str(path), mode="annotate", **params).build()
    st.setup()
    table = pa.table({"id": [str(i) for i in range(len(urls))], "text": ["x"] * len(urls),
                      "url": pa.array(urls, pa.string())})
    stats = StageStats()
    stats.count_in(table)
    out = st.process(table, stats)
    stats.count_out(out)
    assert stats.balanced()
    return out.column("url_filter_reason").to_pylist(), stats


@pytest.mark.parametrize("url,reason", [
    ("https://example.com/", "blocked_domain"),
    ("http://www.example.com/a/b?c=d", "blocked_domain"),
    ("https://deep.sub.example.com", "blocked_domain"),
    ("https://EXAMPLE.COM:8080/x", "blocked_domain"),
    ("https://notexample.com/", None),
    ("https://example.com.evil.org/", None),
    ("https://ads.example.org/banner", "blocked_domain"),
    ("https://x.ads.example.org/banner", "blocked_domain"),
    ("https://example.org/", None),
    ("https://a.tracker.net/p", "blocked_domain"),
    ("https://news.example.net/2020/bad-page.html", "blocked_url"),
    ("http://www.news.example.net/2020/bad-page.html/", "blocked_url"),
    ("https://news.example.net/2020/good-page.html", None),
    ("https://shop.example.io/item?id=7", "blocked_url"),
    ("https://shop.example.io/item?id=8", None),
    (None, None),
    ("not a url", None),
])
def test_url_filter_matches_domains_subdomains_and_pages(tmp_path, url, reason):
    reasons, _ = _run(tmp_path, [url])
    assert reasons == [reason]


def test_url_filter_can_drop_documents_without_url(tmp_path):
    reasons, stats = _run(tmp_path, [None, "", "http://[broken", "https://ok.org/"],
                          drop_missing_url=True)
    assert reasons == ["no_url", "no_url", "no_url", None]


def test_url_filter_errors_are_one_line(tmp_path):
    with pytest.raises(UserError, match="cannot read blocklist_file"):
        make_spec("url_filter", blocklist_file=str(tmp_path / "missing.txt")).build().setup()
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    with pytest.raises(UserError, match="has no entries"):
        make_spec("url_filter", blocklist_file=str(empty)).build().setup()
    with pytest.raises(UserError, match="blocklist_file"):
        make_spec("url_filter")  # the list is required: there is no default


def test_url_filter_on_real_urls_with_several_files(tmp_path):
    rows = [json.loads(line) for line in gzip.open(DATA / "quality" / "filter-docs.jsonl.gz",
                                                   "rt", encoding="utf-8")]
    urls = [r["url"] for r in rows if r["url"]]
    assert len(urls) >= 500
    (tmp_path / "domains").write_text("spiegel.de\nwordpress.com\n")
    (tmp_path / "urls").write_text(urls[0] + "\n")
    st = make_spec("url_filter", blocklist_file=[str(tmp_path / "domains"),
                                                 str(tmp_path / "urls")]).build()
    st.setup()
    table = pa.table({"id": [str(i) for i in range(len(urls))], "url": urls})
    stats = StageStats()
    out = st.process(table, stats)
    expected = Counter()
    for u in urls:
        host = (urlsplit(u).hostname or "").lower()
        if host in ("spiegel.de", "wordpress.com") or host.endswith((".spiegel.de",
                                                                      ".wordpress.com")):
            expected["blocked_domain"] += 1
        elif u == urls[0]:
            expected["blocked_url"] += 1
    assert expected["blocked_domain"] > 0
    assert stats.dropped == expected
    assert out.num_rows == len(urls) - sum(expected.values())
