"""configs/fineweb.yaml runs on the bundled real WARCs and its funnel is what FineWeb's is.

The UT1 lists FineWeb filters URLs with (datatrove's asset, 124 MB) take seconds and
hundreds of MB to load in each worker, so the recipe runs with the UT1 entries whose host
is a bundled page's host (pages of archive.org and web.archive.org; the same decisions on
this data as the whole lists) plus one bundled host, deadlists.com, so that the URL filter is seen
dropping pages in the funnel.
"""

from __future__ import annotations

import gzip
import json
import re
import tarfile
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.parquet as pq
import pytest
from conftest import REPO, WARC_DIR, thresher

from stages.pii.pii import FINEWEB, find_pii

CHAIN = ["read", "url_filter", "extract", "langid", "gopher_repetition", "gopher_quality",
         "c4", "fineweb_quality", "minhash_dedup", "pii", "write"]
BLOCKED = "deadlists.com"  # a host of two pages of the bundled 2008 archive.org crawl


def bundled_hosts() -> set[str]:
    hosts = set()
    for f in sorted(WARC_DIR.glob("*.warc.gz")):
        for u in set(re.findall(rb"WARC-Target-URI: <?(\S+?)>?\r\n", gzip.open(f).read())):
            hosts.add((urlsplit(u.decode()).hostname or "").lower().rstrip("."))
    return hosts


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    datatrove = pytest.importorskip("datatrove")
    tmp = tmp_path_factory.mktemp("fineweb")
    hosts = bundled_hosts()
    assert BLOCKED in hosts
    suffixes = {".".join(h.split(".")[i:]) for h in hosts for i in range(len(h.split(".")))}
    asset = Path(datatrove.__file__).parent / "assets" / "url_filterblacklistsv0_3_0.tar.gz"
    listed = []
    with tarfile.open(asset) as tar:
        for name in ("domains", "urls"):
            for line in tar.extractfile(name):
                entry = line.decode("utf-8", "replace").strip()
                host = entry.split("/", 1)[0].lower()
                if host in suffixes:
                    listed.append(entry)
    assert listed and all("/" in e for e in listed)  # pages only: no bundled host as a whole
    blocklist = tmp / "blocklist.txt"
    blocklist.write_text("\n".join(["# UT1 entries of bundled hosts", *listed,
                                     "# added by the test", BLOCKED]) + "\n")
    out = tmp / "run"
    thresher("run", str(REPO / "configs" / "fineweb.yaml"), "--output", str(out), "--quiet",
             "--set", f"stages.url_filter.blocklist_file={blocklist}")
    return out


def test_the_funnel_is_fineweb_s_chain(run):
    stats = json.loads((run / "stats.json").read_text())["stages"]
    assert list(stats) == CHAIN
    for a, b in zip(CHAIN, CHAIN[1:]):
        assert stats[a]["docs_out"] == stats[b]["docs_in"], (a, b)
    assert stats["url_filter"]["dropped"] == {"blocked_domain": 2}
    assert set(stats["langid"]["dropped"]) == {"low_score", "other_language"}
    for name in ("gopher_repetition", "gopher_quality", "c4", "fineweb_quality"):
        assert stats[name]["docs_in"] > 0
    assert stats["pii"]["docs_in"] == stats["pii"]["docs_out"] > 0  # pii never drops
    assert stats["write"]["docs_out"] == stats["pii"]["docs_out"]


def test_output_is_english_deduplicated_per_dump_and_anonymised(run):
    rows = [r for p in sorted((run / "data").glob("*.parquet"))
            for r in pq.read_table(p).to_pylist()]
    assert rows
    for r in rows:
        assert r["language"] == "en" and r["language_score"] >= 0.65
        for m in find_pii(r["text"]):  # PII was the last step: only its placeholders are left
            assert m.value in FINEWEB[m.kind], m
        assert (urlsplit(r["url"]).hostname or "") != BLOCKED
        assert r["dataset"] in {"CC-MAIN-2020-34", "CC-MAIN-2024-22", "clueweb09",
                                "archive-org-2008", "wget-2024"}
        assert {"pii_email", "pii_ip", "minhash_cluster_size"} <= set(r)
    assert sum(r["pii_email"] + r["pii_ip"] for r in rows) > 0  # the crawl has addresses
    config = json.loads((run / "manifest.json").read_text())["config"]
    minhash = next(s for s in config["stages"] if s["stage"] == "minhash_dedup")
    assert (minhash["n"], minhash["bands"], minhash["rows"], minhash["scope"]) == \
        (5, 14, 8, "dataset")
    assert config["stages"][-1]["stage"] == "pii"
