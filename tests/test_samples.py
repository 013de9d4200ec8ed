"""Samples of dropped documents: deterministic, mergeable, complete up to N, shown by the CLI."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import DATA, REPO, WARC_DIR, demo_config, kill_inside_a_task, thresher
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines import Filter, Stage, run_pipeline, stage
from pipelines.config import JsonlInput, OutputConfig, PipelineConfig, SamplesConfig
from pipelines.samples import StageSampler, TaskSampler, load_samples, sample_key
from pipelines.stats import RunStats

N = 20  # the default samples.per_reason


def sample_bytes(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run / "samples").glob("*.parquet"))}


# ----------------------------------------------------------------------------- the merge

@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 300)), max_size=200),
       st.integers(1, 6), st.integers(1, 8), st.randoms(use_true_random=False))
def test_per_task_bottom_n_merges_to_the_global_bottom_n(drops, n, n_tasks, rnd):
    """However documents are split into tasks and ordered, merging every task's N smallest
    gives the N smallest hashes of all of them."""
    tasks = [StageSampler("s", 7, n, 50) for _ in range(n_tasks)]
    for reason, i in drops:
        rnd.choice(tasks).offer(reason, {"id": f"doc-{i}", "text": f"text {i}"})
    merged: dict[str, list] = {}
    for t in tasks:
        for e in t.entries():
            merged.setdefault(e["reason"], []).append(e)
    for reason in {r for r, _ in drops}:
        want = sorted((sample_key(7, f"doc-{i}"), f"doc-{i}") for r, i in drops if r == reason)
        got = sorted((e["key"], e["id"]) for e in merged[reason])[:n]  # what the merge keeps
        assert got == want[:n]


def test_sampler_cuts_text_and_keeps_score_and_details():
    s = StageSampler("langid", 0, 2, 10)
    t = pa.table({"id": ["x", "y", "z"], "text": ["a" * 30, "short", None],
                  "url": ["u1", None, "u3"], "source": ["f", "f", "f"],
                  "language": ["de", "fr", "it"], "language_score": [0.5, 0.25, 0.125]})
    s.offer_rows("other_language", t, [0, 1, 2], score="language_score",
                 details=("language", "language_score"))
    rows = s.entries()
    smallest = sorted(["x", "y", "z"], key=lambda i: sample_key(0, i))[:2]
    assert [r["id"] for r in rows] == smallest
    want = {"x": ("a" * 10, 30, 0.5, "de"), "y": ("short", 5, 0.25, "fr"),
            "z": (None, None, 0.125, "it")}
    for r in rows:
        text, n, score, lang = want[r["id"]]
        assert (r["text"], r["text_chars"], r["score"]) == (text, n, score)
        assert json.loads(r["details"]) == {"language": lang}  # the score is not repeated


def test_user_stage_dropping_without_a_doc_still_counts(tmp_path: Path):
    """A stage that calls stats.drop(reason) with no document keeps working (not sampled);
    drop_rows counts, measures and samples whole batches."""
    stats = RunStats(sampler=TaskSampler(0, 5, 100))
    st_ = stats.stage("mine")
    st_.docs_in = 4
    st_.drop("bare")
    t = pa.table({"id": ["a", "b", "c"], "text": ["xx", "yyy", "z"]})
    st_.drop_rows("batch", t, [True, False, True])
    st_.docs_out = 1
    assert st_.balanced()
    assert st_.dropped == {"bare": 1, "batch": 2}
    assert st_.chars_by_reason == {"batch": 3}
    assert sorted(e["id"] for e in stats.sampler.to_table().to_pylist()) == ["a", "c"]


class DropOdd(Stage):
    """A minimal user stage: drops documents with an odd-length text, no doc given."""

    def process(self, table, stats):
        keep = [len(t) % 2 == 0 for t in table.column("text").to_pylist()]
        stats.drop("odd", keep.count(False))
        return table.filter(pa.array(keep))


class FailOnDigits(Filter):
    """Raises on texts with a digit (an error, sampled as such); drops texts with a '?'."""

    def check(self, doc):
        if any(ch.isdigit() for ch in doc["text"]):
            raise ValueError("digits")
        return "question" if "?" in doc["text"] else None


# ----------------------------------------------------------------------------- real runs

@pytest.fixture(scope="module")
def killed_and_resumed(reference_run: Path, tmp_path_factory) -> Path:
    """The demo with 1 worker, SIGKILLed after its first task, then resumed."""
    tmp = tmp_path_factory.mktemp("samples-resume")
    cfg = demo_config(tmp, workers=1)
    run = tmp / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "run", str(cfg), "--output", str(run), "--quiet"],
        cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = run / "stats" / "main"
    kill_inside_a_task(proc, run, 1)
    assert len(list(done.glob("task-*.json"))) < len(list(WARC_DIR.glob("*.warc.gz")))
    thresher("run", str(cfg), "--output", str(run), "--resume", "--quiet")
    return run


def test_samples_identical_for_workers_and_after_kill_and_resume(reference_run: Path,
                                                                  killed_and_resumed: Path):
    ref = sample_bytes(reference_run)
    assert set(ref) == {"read.parquet", "extract.parquet", "langid.parquet",
                        "gopher_quality.parquet"}
    assert sample_bytes(killed_and_resumed) == ref


def test_every_reason_has_min_n_count_samples(reference_run: Path):
    stats = json.loads((reference_run / "stats.json").read_text())["stages"]
    rows = load_samples(reference_run)
    got: dict[tuple[str, str], int] = {}
    for r in rows:
        got[r["stage"], r["reason"]] = got.get((r["stage"], r["reason"]), 0) + 1
    want = {(name, reason): min(N, n) for name, s in stats.items()
            for reason, n in {**s["dropped"], **s["errors"]}.items()}
    assert got == want
    assert any(n == N for n in want.values()) and any(n < N for n in want.values())


def test_samples_are_the_dropped_documents(reference_run: Path):
    kept = set(pq.read_table(reference_run / "data", columns=["id"]).column("id").to_pylist())
    rows = load_samples(reference_run)
    assert not kept & {r["id"] for r in rows}
    for r in rows:
        assert r["kind"] == "drop" and r["source"].endswith(".warc.gz")
        if r["stage"] == "read":  # records the reader skipped: no text, but where they are
            assert r["text"] is None and r["record"] >= 0
        elif r["stage"] == "extract":  # no main text: the HTML it was extracted from
            assert json.loads(r["details"]) == {"text_column": "html"} and "<" in r["text"]
        else:
            assert r["text"].strip() and r["url"].startswith("http")
            assert len(r["text"]) <= 2000 and r["text_chars"] >= len(r["text"])
        if r["stage"] == "langid":  # the model's score, and the reason agrees with it
            lang = json.loads(r["details"])["language"]
            assert (lang != "en") == (r["reason"] == "other_language")
            assert r["reason"] != "low_score" or r["score"] < 0.65
    not_html = [r for r in rows if r["reason"] == "not_html"]
    assert not_html and all("html" not in json.loads(r["details"])["content_type"]
                            for r in not_html)
    # N smallest hashes in order within each reason
    for (stage_, reason) in {(r["stage"], r["reason"]) for r in rows}:
        keys = [r["key"] for r in rows if (r["stage"], r["reason"]) == (stage_, reason)]
        assert keys == sorted(keys)


def test_samples_cli_shows_real_dropped_text(reference_run: Path):
    rows = load_samples(reference_run, "gopher_quality", "too_few_words")
    first_line = next(line for line in rows[0]["text"].splitlines() if line.strip())[:40]
    out = thresher("samples", str(reference_run), "gopher_quality", "too_few_words", "-n", "1",
                   "--chars", "2000").stdout
    assert "gopher_quality / too_few_words" in out and rows[0]["id"] in out
    assert first_line.split()[0] in out
    assert f"{len(rows)} sampled, showing 1" in out
    out = thresher("samples", str(reference_run), "read", "http_status", "-n", "2").stdout
    assert "record " in out and "status " in out and "(no text)" in out
    js = json.loads(thresher("samples", str(reference_run), "langid", "--json").stdout)
    assert {r["reason"] for r in js} == {"other_language", "low_score"}
    bad = thresher("samples", str(reference_run), "langid", "no_such_reason", check=False)
    assert bad.returncode == 2 and "reasons: low_score, other_language" in bad.stderr
    bad = thresher("samples", str(reference_run), "write", check=False)
    assert bad.returncode == 2 and "dropped nothing" in bad.stderr


def test_stats_csv(reference_run: Path):
    import csv
    import io

    stats = json.loads((reference_run / "stats.json").read_text())["stages"]
    rows = list(csv.DictReader(io.StringIO(thresher("stats", str(reference_run),
                                                     "--csv").stdout)))
    for name, s in stats.items():
        mine = [r for r in rows if r["stage"] == name]
        assert {(r["kind"], r["reason"]): int(r["docs"]) for r in mine} == {
            ("in", ""): s["docs_in"], ("out", ""): s["docs_out"],
            **{("dropped", k): v for k, v in s["dropped"].items()},
            **{("error", k): v for k, v in s["errors"].items()}}
        if name in ("langid", "gopher_quality"):  # filters measure what each reason cost
            lost = sum(int(r["chars"]) for r in mine if r["kind"] == "dropped")
            assert lost == s["chars_in"] - s["chars_out"] > 0
    assert all(r["chars"] == "" for r in rows if r["stage"] == "read" and r["kind"] == "dropped")
    langs = list(csv.DictReader(io.StringIO(thresher("stats", str(reference_run), "--csv",
                                                      "--by", "language").stdout)))
    assert {(r["stage"], r["language"]) for r in langs} == {
        ("langid", "en"), ("gopher_quality", "en"), ("write", "en")}
    assert all(int(r["docs"]) > 0 and int(r["chars"]) > 0 for r in langs)


# ----------------------------------------------------------------------------- JSONL runs

def jsonl_inputs(tmp: Path) -> Path:
    """Two real JSONL files of sentences in 12 languages, with bad lines in the second."""
    src = tmp / "inputs"
    src.mkdir()
    lines = (DATA / "lid" / "lingua-sentences-12lang.jsonl").read_text().splitlines(True)
    random.Random(0).shuffle(lines)
    (src / "a.jsonl").write_text("".join(lines[:180]))
    (src / "b.jsonl").write_text("".join(lines[180:200]) + '{"id": "broken", "text": \n'
                                 + '["not", "an", "object"]\n' + "".join(lines[200:]))
    return src


def jsonl_config(tmp: Path, out: str, per_reason: int = 5, stages=None) -> PipelineConfig:
    return PipelineConfig(
        input=JsonlInput(paths=[str(tmp / "inputs" / "*.jsonl")]),
        output=OutputConfig(path=str(tmp / out)),
        samples=SamplesConfig(per_reason=per_reason, max_chars=40),
        stages=stages or [stage("langid", languages=["en", "de"], min_score=0.9)])


def test_reader_errors_are_sampled_with_their_line(tmp_path: Path):
    jsonl_inputs(tmp_path)
    run = run_pipeline(jsonl_config(tmp_path, "run")).root
    rows = load_samples(run, "read")
    by_reason = {r["reason"]: r for r in rows}
    assert set(by_reason) == {"bad_json", "not_an_object"}
    bad = by_reason["bad_json"]
    assert bad["kind"] == "error" and bad["source"] == "b.jsonl" and bad["record"] == 20
    assert bad["text"].startswith('{"id": "broken"')
    assert by_reason["not_an_object"]["record"] == 21
    langid = load_samples(run, "langid")
    assert {r["reason"] for r in langid} == {"other_language", "low_score"}
    assert all(len(r["text"]) <= 40 for r in langid)
    assert sum(r["reason"] == "other_language" for r in langid) == 5


def test_samples_config_is_not_in_the_fingerprint_and_a_smaller_n_wins(tmp_path: Path):
    """Samples do not change the output: a resume may change them; the merge then uses the
    smallest N any task was sampled with, so the sample is still an exact bottom-N."""
    jsonl_inputs(tmp_path)
    a = jsonl_config(tmp_path, "run", per_reason=5)
    assert a.fingerprint() == jsonl_config(tmp_path, "run", per_reason=50).fingerprint()
    run = run_pipeline(a).root
    five = load_samples(run, "langid", "other_language")
    assert len(five) == 5
    run_pipeline(jsonl_config(tmp_path, "run", per_reason=2), resume=True)
    assert load_samples(run, "langid", "other_language") == five[:2]
    run_pipeline(jsonl_config(tmp_path, "run", per_reason=50), resume=True)
    assert load_samples(run, "langid", "other_language") == five  # tasks kept only 5


def test_user_stage_without_docs_is_counted_not_sampled(tmp_path: Path):
    jsonl_inputs(tmp_path)
    run = run_pipeline(jsonl_config(tmp_path, "run", stages=[
        stage("test_samples:DropOdd", name="odd")])).root
    stats = json.loads((run / "stats.json").read_text())["stages"]
    assert stats["odd"]["dropped"]["odd"] > 0
    assert not (run / "samples" / "odd.parquet").exists()


def test_no_samples_when_disabled(tmp_path: Path):
    jsonl_inputs(tmp_path)
    run = run_pipeline(jsonl_config(tmp_path, "run", per_reason=0)).root
    assert not (run / "samples").exists()


def test_global_stage_drops_are_sampled_across_phases(tmp_path: Path):
    """exact_dedup drops in its apply phase (after a collect and a step phase): the merged
    sample covers it like any map stage, with each duplicate's cluster."""
    src = tmp_path / "inputs"
    src.mkdir()
    lines = (DATA / "lid" / "lingua-sentences-12lang.jsonl").read_text().splitlines()
    docs = [json.loads(x) for x in lines[:60]]
    for f, part in (("a.jsonl", docs[:40]), ("b.jsonl", docs[20:])):  # 20 shared texts
        (src / f).write_text("".join(json.dumps({**d, "id": f"{f}-{d['id']}"}) + "\n"
                                     for d in part))
    cfg = jsonl_config(tmp_path, "run", per_reason=8,
                       stages=[stage("langid"), stage("exact_dedup")])
    run = run_pipeline(cfg).root
    stats = json.loads((run / "stats.json").read_text())
    assert stats["stages"]["exact_dedup"]["dropped"] == {"duplicate": 20}
    assert "apply-exact_dedup" in stats["phases"]
    rows = load_samples(run, "exact_dedup", "duplicate")
    assert len(rows) == 8
    kept_ids = set(pq.read_table(run / "data", columns=["id"]).column("id").to_pylist())
    for r in rows:
        assert r["id"] not in kept_ids and r["text"]
        details = json.loads(r["details"])
        assert details["exact_cluster_size"] == 2 and details["exact_cluster_id"] in kept_ids


def test_errors_are_sampled_with_their_reason(tmp_path: Path):
    jsonl_inputs(tmp_path)
    run = run_pipeline(jsonl_config(tmp_path, "run", per_reason=50, stages=[
        stage("test_samples:FailOnDigits", name="fussy")])).root
    st_ = json.loads((run / "stats.json").read_text())["stages"]["fussy"]
    rows = load_samples(run, "fussy")
    assert min(50, st_["errors"]["exception:ValueError"]) == sum(
        r["reason"] == "exception:ValueError" for r in rows) > 0
    assert min(50, st_["dropped"]["question"]) == sum(
        r["reason"] == "question" for r in rows) > 0
    for r in rows:
        assert r["kind"] == ("error" if r["reason"].startswith("exception:") else "drop")
        assert r["text_chars"] > 0
    out = thresher("samples", str(run), "fussy", "exception:ValueError", "-n", "1").stdout
    assert f"{st_['errors']['exception:ValueError']} failed" in out


def test_rewritten_documents_are_sampled_as_changed_with_before_and_after(tmp_path: Path):
    """pii rewrites documents and drops none: they are counted per kind under `changed`
    and sampled (kind `changed`: the text after, the first changed span before and after),
    the same for any worker count."""
    def run(workers: int) -> Path:
        cfg = PipelineConfig(
            name="pii", input=JsonlInput(paths=[str(DATA / "pii" / "pii-labelled.jsonl.gz")]),
            output=OutputConfig(path=str(tmp_path / f"w{workers}")),
            executor={"kind": "local", "workers": workers},
            stages=[stage("pii", placeholder="typed")])
        return run_pipeline(cfg).root

    one, two = run(1), run(2)
    assert sample_bytes(one) == sample_bytes(two) != {}
    st_ = json.loads((one / "stats.json").read_text())["stages"]
    out = {r["id"]: r for r in pq.read_table(one / "data").to_pylist()}
    assert st_["pii"]["dropped"] == {} and "changed" not in st_["read"]
    assert st_["pii"]["changed"] == {
        f"replaced:{k}": sum(r[f"pii_{k}"] > 0 for r in out.values()) for k in ("email", "ip")}
    rows = load_samples(one, "pii")
    assert {r["reason"] for r in rows} == {"replaced:email", "replaced:ip"}
    for r in rows:
        assert r["kind"] == "changed" and r["text"] == out[r["id"]]["text"][:2000]
        d = json.loads(r["details"])
        assert d["before"] != d["after"] and ("<EMAIL>" in d["after"] or "<IP_ADDRESS>" in
                                               d["after"])
        kind = r["reason"].split(":")[1]
        assert out[r["id"]][f"pii_{kind}"] > 0
    shown = thresher("samples", str(one), "pii", "replaced:email", "-n", "1").stdout
    assert f"{st_['pii']['changed']['replaced:email']} changed" in shown
    assert "changed replaced:" in thresher("stats", str(one)).stdout
