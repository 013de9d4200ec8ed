"""pii: e-mail and public IP anonymisation on real web text with planted, labelled items.

The labelled set (tests/data/pii/make_pii_set.py) is real extracted web text into which
e-mail addresses, public IPv4/IPv6 addresses, phone numbers, IBANs and card numbers were
planted, with false-positive traps beside them (versions, OIDs, retina image names,
private and documentation ranges, dates, MAC addresses...). The stage runs on it as a
stage (annotate mode gives its spans), in a pipeline (replace mode, 1 and 2 workers), and
beside datatrove's PIIFormatter.
"""

from __future__ import annotations

import gzip
import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import DATA, shard_hashes
from test_cli_errors import assert_user_error, cli

from pipelines import config_from_dict, run_pipeline
from pipelines.stats import StageStats
from stages.pii.pii import FINEWEB, TYPED, Pii, find_pii, iban_ok, luhn_ok

SET = DATA / "pii" / "pii-labelled.jsonl.gz"
DOCS = [json.loads(line) for line in gzip.open(SET, "rt", encoding="utf-8")]
ALL_KINDS = {"phones": True, "ibans": True, "credit_cards": True}


def stage(**params) -> Pii:
    st = Pii(Pii.Params(**params), name="pii")
    st.setup()
    return st


def run_stage(st: Pii, docs: list[dict]) -> pa.Table:
    table = pa.table({"id": [d["id"] for d in docs], "text": [d["text"] for d in docs]})
    return st.process(table, StageStats())


def scores(docs: list[dict], spans_per_doc: list[list[dict]], kinds: set[str]) -> tuple:
    """(precision, recall) of found spans against the labels of the enabled kinds
    (obfuscated addresses, which no regex here looks for, are left out of recall)."""
    tp = fp = found = total = 0
    for d, spans in zip(docs, spans_per_doc):
        gold = [g for g in d["spans"] if g["kind"] in kinds]
        total += len(gold)
        hit = set()
        for s in spans:
            m = [i for i, g in enumerate(gold) if g["kind"] == s["kind"] and
                 g["start"] == s["start"] and g["end"] == s["end"]]
            tp += bool(m)
            fp += not m
            hit.update(m)
        found += len(hit)
    return tp / max(1, tp + fp), found / max(1, total), fp


def test_the_labelled_set_is_what_its_docstring_says():
    assert len(DOCS) == 320
    kinds = {g["kind"] for d in DOCS for g in d["spans"]}
    assert kinds == {"email", "ip", "phone", "iban", "credit_card", "email_obfuscated"}
    for d in DOCS[:50]:
        for g in d["spans"]:
            assert d["text"][g["start"]:g["end"]] == g["value"]


def test_defaults_find_every_planted_address_and_no_trap():
    out = run_stage(stage(mode="annotate"), DOCS)
    assert out.column("text").to_pylist() == [d["text"] for d in DOCS]  # annotate: unchanged
    spans = out.column("pii_spans").to_pylist()
    precision, recall, fp = scores(DOCS, spans, {"email", "ip"})
    assert fp == 0 and precision == 1.0
    assert recall == 1.0
    counts = out.column("pii_email").to_pylist()
    assert counts == [sum(s["kind"] == "email" for s in sp) for sp in spans]
    assert set(out.schema.names) == {"id", "text", "pii_email", "pii_ip", "pii_spans"}


def test_optional_kinds_when_switched_on():
    out = run_stage(stage(mode="annotate", **ALL_KINDS), DOCS)
    precision, recall, fp = scores(DOCS, out.column("pii_spans").to_pylist(),
                                   {"email", "ip", "phone", "iban", "credit_card"})
    assert fp == 0 and recall == 1.0
    off = run_stage(stage(mode="annotate"), DOCS).column("pii_spans").to_pylist()
    assert not any(s["kind"] in ("phone", "iban", "credit_card") for sp in off for s in sp)


@pytest.mark.parametrize("text", [
    "Update to version 4.2.1.12 before installing the plugin.",
    "Changelog for v8.11.16.17: fixed a crash.",
    "See section 14.12.1.18 of the standard.",
    "Query the OID 1.3.6.1.4.1.2021.1 with snmpget.",
    "Replace logo@2x.png and icon@3x.webp; url(images/hero@2x.jpg)",
    "Set the gateway to 192.168.0.1, or 10.0.0.138, or 172.16.4.4.",
    "The service listens on 127.0.0.1 and ::1 only.",
    "For example 192.0.2.7 or 2001:db8::17.",
    "Link-local fe80::1ff:fe23:4567:890a and 169.254.10.3; multicast 224.0.0.251.",
    "Published 12.10.2023, updated 2023-10-12 at 10:30:45.",
    "MAC 00:1A:2B:3C:4D:5E; use std::vector and a::b.",
    "Messages to root@localhost are discarded. Follow @thresher_bot.",
    "Order number 4111111111111112 has shipped; ISBN 978-3-16-148410-0.",
    "Reference DE12 3456 7890 1234 5678 90 is not a valid account.",
])
def test_traps_are_left_alone_with_every_kind_on(text):
    assert find_pii(text, **ALL_KINDS) == []
    out = run_stage(stage(**ALL_KINDS), [{"id": "t", "text": text}])
    assert out.column("text")[0].as_py() == text


@pytest.mark.parametrize("text, kind, value", [
    ("Write to Jane.Doe+news@mail.example-uni.co.uk today.", "email",
     "Jane.Doe+news@mail.example-uni.co.uk"),
    ("Server at 93.184.216.34.", "ip", "93.184.216.34"),
    ("Connect to 45.33.32.156:8080 now", "ip", "45.33.32.156"),
    ("http://8.8.4.4/admin", "ip", "8.8.4.4"),
    ("[2606:4700:4700::1111]:53", "ip", "2606:4700:4700::1111"),
    ("Tel. +49 30 1234567", "phone", "+49 30 1234567"),
    ("Call (212) 555-0147 now", "phone", "(212) 555-0147"),
    ("IBAN GB82 WEST 1234 5698 7654 32.", "iban", "GB82 WEST 1234 5698 7654 32"),
    ("card 4111-1111-1111-1111 expired", "credit_card", "4111-1111-1111-1111"),
])
def test_realistic_forms_are_found(text, kind, value):
    found = find_pii(text, **ALL_KINDS)
    assert [(m.kind, m.value) for m in found] == [(kind, value)]


def test_checksums():
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB83 WEST 1234 5698 7654 32")
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")


def test_placeholders_fineweb_typed_and_overrides():
    text = "a@gmail.com, b@gmail.com, a@gmail.com; 8.8.8.8 and +44 20 7946 0958"
    doc = [{"id": "x", "text": text}]
    fw = run_stage(stage(phones=True), doc).column("text")[0].as_py()
    emails = re.findall(r"[\w.]+@example\.(?:com|org)", fw)
    assert len(emails) == 3 and emails[0] == emails[2]  # one address, one placeholder
    assert set(emails) <= set(FINEWEB["email"])
    assert any(ip in fw for ip in FINEWEB["ip"]) and "8.8.8.8" not in fw
    assert TYPED["phone"] in fw  # no FineWeb placeholder for phones: the typed tag
    typed = run_stage(stage(placeholder="typed", phones=True), doc).column("text")[0].as_py()
    assert typed == "<EMAIL>, <EMAIL>, <EMAIL>; <IP_ADDRESS> and <PHONE_NUMBER>"
    over = run_stage(stage(replacements={"email": "[mail]"}), doc).column("text")[0].as_py()
    assert over.startswith("[mail], [mail], [mail]; ")
    with pytest.raises(ValueError, match="unknown kind"):
        Pii.Params(replacements={"mail": "x"})


def test_thresher_finds_every_labelled_address_datatrove_finds_and_none_of_its_traps():
    """Side by side with datatrove's PIIFormatter (FineWeb) on the same documents: on the
    labelled items datatrove finds thresher finds them too; where datatrove replaces a
    trap (version numbers, OIDs, retina names) thresher leaves it (benchmarks/bench_pii.py
    gives the figures)."""
    pytest.importorskip("datatrove")
    from datatrove.pipeline.formatters import PIIFormatter

    fmt = PIIFormatter(email_replacement="\ue000", ip_replacement="\ue001")
    dt_trap_hits = th_trap_hits = 0
    for d in DOCS:
        out = fmt.format(d["text"])
        th = {(m.start, m.end) for m in find_pii(d["text"])}
        for g in d["spans"]:
            if g["kind"] in ("email", "ip") and g["value"] not in out:
                assert (g["start"], g["end"]) in th, g
        for t in d["traps"]:
            if t["sentence"] not in out:
                dt_trap_hits += 1
            th_trap_hits += bool(find_pii(t["sentence"]))
    assert dt_trap_hits > 50  # the traps are real traps for the reference
    assert th_trap_hits == 0


def _config(tmp_path, inp, workers: int, out: str, column: str = "text"):
    return config_from_dict({
        "name": "pii",
        "input": {"format": "jsonl", "paths": [str(inp / "*.jsonl")], "id_key": "id"},
        "output": {"path": str(tmp_path / out)},
        "executor": {"kind": "local", "workers": workers},
        "stages": [{"stage": "pii", "column": column}],
    })


def test_pipeline_replaces_and_is_identical_across_worker_counts(tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    docs = DOCS[:120]
    for f in range(3):
        with open(inp / f"part{f}.jsonl", "w") as fh:
            for d in docs[f::3]:
                fh.write(json.dumps({"id": d["id"], "text": d["text"]}) + "\n")
    one = run_pipeline(_config(tmp_path, inp, 1, "one")).root
    two = run_pipeline(_config(tmp_path, inp, 2, "two")).root
    assert shard_hashes(one) == shard_hashes(two)
    rows = [r for p in sorted((one / "data").glob("*.parquet"))
            for r in pq.read_table(p).to_pylist()]
    assert len(rows) == len(docs)
    by_id = {r["id"]: r for r in rows}
    for d in docs:
        text = by_id[d["id"]]["text"]
        for g in d["spans"]:
            if g["kind"] in ("email", "ip"):
                assert g["value"] not in text, (d["id"], g["value"])
        for t in d["traps"]:
            assert t["sentence"] in text  # traps survive the rewrite untouched
        assert by_id[d["id"]]["pii_email"] == sum(g["kind"] == "email" for g in d["spans"])
    stats = json.loads((one / "stats.json").read_text())["stages"]["pii"]
    assert stats["docs_in"] == stats["docs_out"] == len(docs) and not stats["dropped"]
    sketch = stats["sketches"]
    assert "pii_email" in json.dumps(sketch) and "pii_ip" in json.dumps(sketch)
    # documents rewritten, per kind: in stats.json and in `thresher stats --csv`
    want = {f"replaced:{k}": sum(any(g["kind"] == k for g in d["spans"]) for d in docs)
            for k in ("email", "ip")}
    assert stats["changed"] == want and min(want.values()) > 10
    # matches replaced per kind: every labelled address
    assert stats["removed"] == {
        "docs": sum(any(g["kind"] in ("email", "ip") for g in d["spans"]) for d in docs),
        **{k: sum(g["kind"] == k for d in docs for g in d["spans"]) for k in ("email", "ip")}}
    assert stats["removed"]["email"] > want["replaced:email"]  # some pages have several
    summary = cli("stats", str(one), cwd=tmp_path).stdout
    assert f"removed email {stats['removed']['email']:,}, ip {stats['removed']['ip']:,}" \
        in summary
    assert sum(by_id[d["id"]]["text"] != d["text"] for d in docs) == \
        sum(any(g["kind"] in ("email", "ip") for g in d["spans"]) for d in docs)
    csv = cli("stats", str(one), "--csv", cwd=tmp_path).stdout.splitlines()
    assert csv[0] == "stage,kind,reason,docs,chars"
    assert [x for x in csv if x.startswith("pii,changed,")] == \
        [f"pii,changed,{r},{n}," for r, n in sorted(want.items())]


def test_missing_text_column_is_one_line(tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "a.jsonl").write_text(json.dumps({"id": "1", "text": "a@b.com"}) + "\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"input: {{format: jsonl, paths: ['{inp}/*.jsonl']}}\n"
                   f"output: {{path: {tmp_path / 'run'}}}\n"
                   "stages:\n  - stage: pii\n    column: body\n")
    assert_user_error(cli("run", str(cfg), cwd=tmp_path), "body")
