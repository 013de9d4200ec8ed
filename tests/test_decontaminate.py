"""decontaminate: evaluation-style items planted into real web text, found and removed.

The set (tests/data/decontam/make_decontam_set.py): 80 WikiText-2 passages (SQuAD-like
contexts) and 80 LAMBADA-style cloze items from US inaugural addresses are the evaluation
sets; 320 real web documents carry an item planted verbatim, as a 20-30 word window,
lightly edited (case, punctuation, one word in 25), or paraphrased (one word in five
changed: no 13 words in a row survive), a paragraph of the same Wikipedia article that is
not an item (hard negative), or nothing. Each document's label says which.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import DATA, shard_hashes
from test_cli_errors import assert_user_error, cli

from pipelines import config_from_dict, run_pipeline
from pipelines.errors import UserError
from pipelines.global_stage import GlobalContext
from pipelines.plan import make_plan
from pipelines.stats import StageStats
from stages.decontamination.decontaminate import Decontaminate, read_matches, tokens

SET = DATA / "decontam"
DOCS = [json.loads(line) for line in gzip.open(SET / "corpus.jsonl.gz", "rt", encoding="utf-8")]
FOUND = ("verbatim", "partial", "light")  # 13 words in a row survive: must be found
EVAL_SETS = [{"name": "wiki", "path": str(SET / "wiki-passages.jsonl"), "fields": ["context"],
              "id_field": "id"},
             {"name": "cloze", "path": str(SET / "inaugural-cloze.jsonl"),
              "fields": ["context", "target"], "id_field": "id"}]
LABEL_FIELDS = ["category", "eval_set", "item_id"]


def write_corpus(root: Path, n_files: int = 3) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for f in range(n_files):
        with open(root / f"part{f}.jsonl", "w") as fh:
            for d in DOCS[f::n_files]:
                fh.write(json.dumps(d) + "\n")
    return root


def config(tmp: Path, inp: Path, out: str, workers: int = 1, **params):
    return config_from_dict({
        "name": "decontam",
        "input": {"format": "jsonl", "paths": [str(inp / "*.jsonl")], "id_key": "id",
                  "fields": LABEL_FIELDS},
        "output": {"path": str(tmp / out)},
        "executor": {"kind": "local", "workers": workers},
        "stages": [{"stage": "decontaminate", "eval_sets": EVAL_SETS, **params}],
    })


def rows(run: Path) -> list[dict]:
    return [r for p in sorted((run / "data").glob("*.parquet"))
            for r in pq.read_table(p).to_pylist()]


def load(name: str) -> list[dict]:
    return [json.loads(x) for x in (SET / name).read_text().splitlines()]


def direct(docs: list[dict], tmp: Path, **params) -> pa.Table:
    """The stage's own phases on ``docs`` in this process: index step, then apply."""
    st = Decontaminate(Decontaminate.Params(eval_sets=EVAL_SETS, **params), name="dc")
    st.setup()
    st.run_step("index", GlobalContext(tmp, 0, 1, 1))
    st.begin_apply(GlobalContext(tmp, 0, 1, 1))
    table = pa.table({"id": [d["id"] for d in docs], "text": [d["text"] for d in docs]})
    return st.apply(table, np.arange(len(docs), dtype=np.uint64), StageStats())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("decontam")
    inp = write_corpus(tmp / "in")
    one = run_pipeline(config(tmp, inp, "one")).root
    two = run_pipeline(config(tmp, inp, "two", workers=2)).root
    return tmp, inp, one, two


def test_plan_builds_the_index_once_in_a_single_task_step(runs):
    tmp, inp, _, _ = runs
    plan = make_plan(config(tmp, inp, "plan"))
    steps = [p for p in plan.phases if p.kind == "step"]
    assert [(p.name, p.n_tasks) for p in steps] == [("decontaminate.index", 1)]


def test_drop_finds_every_planted_item_and_nothing_else(runs):
    _, _, one, _ = runs
    kept = {r["id"] for r in rows(one)}
    for d in DOCS:
        assert (d["id"] in kept) == (d["category"] not in FOUND), d["category"]
    stats = json.loads((one / "stats.json").read_text())
    dropped = stats["stages"]["decontaminate"]["dropped"]
    want = Counter(f"contaminated:{d['eval_set']}" for d in DOCS if d["category"] in FOUND)
    assert dropped == dict(want)  # hits per evaluation set
    metrics = stats["phases"]["decontaminate.index"]["metrics"]
    assert metrics["items:wiki"] == 80 and metrics["items:cloze"] == 80


def test_one_and_two_workers_give_the_same_bytes(runs):
    _, _, one, two = runs
    assert shard_hashes(one) == shard_hashes(two)


def test_manifest_records_the_eval_files_and_index_json_the_index(runs):
    _, _, one, _ = runs
    manifest = json.loads((one / "manifest.json").read_text())
    models = {m["path"]: m["sha256"] for m in manifest["models"]}
    for s in EVAL_SETS:
        path = str(Path(s["path"]).resolve())
        assert models[path] == hashlib.sha256(Path(path).read_bytes()).hexdigest()
    work = one / "work" / "decontaminate"
    meta = json.loads((work / "index.json").read_text())
    assert meta["sha256"] == hashlib.sha256((work / "index.parquet").read_bytes()).hexdigest()
    assert meta["n"] == 13 and meta["sets"]["wiki"]["items"] == 80
    index = pq.read_table(work / "index.parquet")
    h = index.column("hash").to_numpy()
    assert np.all(h[:-1] <= h[1:]) and len(h) == meta["entries"]
    # the index itself, with its sha256, is in the manifest
    assert manifest["artifacts"] == [{
        "stage": "decontaminate", "step": "index", "path": "work/decontaminate/index.parquet",
        "sha256": hashlib.sha256((work / "index.parquet").read_bytes()).hexdigest(),
        "bytes": (work / "index.parquet").stat().st_size}]


def test_verify_and_reproduce_check_the_index(runs, tmp_path):
    import shutil

    _, _, one, two = runs
    manifest = one / "manifest.json"
    # another worker count builds the same index: the other run verifies against it
    assert json.loads((two / "manifest.json").read_text())["artifacts"] == \
        json.loads(manifest.read_text())["artifacts"]
    proc = cli("verify", str(manifest), str(two), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    copy = tmp_path / "copy"
    shutil.copytree(two, copy)
    index = copy / "work" / "decontaminate" / "index.parquet"
    index.write_bytes(index.read_bytes()[:-1] + b"x")
    proc = cli("verify", str(manifest), str(copy), cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout.startswith("DIFF work/decontaminate/index.parquet (decontaminate "
                                  "index): sha256 "), proc.stdout
    index.unlink()
    proc = cli("verify", str(manifest), str(copy), cwd=tmp_path)
    assert proc.stdout == "DIFF missing decontaminate index file " \
                          "work/decontaminate/index.parquet\n"
    proc = cli("reproduce", str(manifest), str(tmp_path / "again"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    again = tmp_path / "again" / "work" / "decontaminate" / "index.parquet"
    assert again.read_bytes() == (one / "work" / "decontaminate" / "index.parquet").read_bytes()


def test_matches_name_the_planted_item_of_each_dropped_document(runs):
    _, _, one, _ = runs
    plan = json.loads((one / "plan.json").read_text())
    n = plan["phases"][-1]["n_tasks"]  # the apply phase
    listed = [json.loads((one / "work" / "decontaminate" / "matches" /
                          f"part-{t:05d}.json").read_text())["files"] for t in range(n)]
    assert all(f.startswith(f"part-{t:05d}-") for t in range(n) for f in listed[t])
    matches = read_matches(one / "work" / "decontaminate", n)
    assert matches.equals(pa.concat_tables(
        [pq.read_table(one / "work" / "decontaminate" / "matches" / f)
         for t in range(n) for f in listed[t]]))
    found: dict[str, set] = {}
    for m in matches.to_pylist():
        assert m["action"] == "dropped" and m["overlaps"] >= 1
        found.setdefault(m["doc_id"], set()).add((m["set"], m["item_id"]))
    for d in DOCS:
        if d["category"] in FOUND:
            assert (d["eval_set"], d["item_id"]) in found[d["id"]]
        else:
            assert d["id"] not in found


def test_matches_are_written_per_batch_and_listed(tmp_path):
    """An apply task keeps no match in memory past its batch: each batch with matches gets
    its own file, named in part-<task>.json; a task that runs again starts the list anew."""
    st = Decontaminate(Decontaminate.Params(eval_sets=EVAL_SETS), name="dc")
    st.setup()
    st.run_step("index", GlobalContext(tmp_path, 0, 1, 1))
    found = [d for d in DOCS if d["category"] in FOUND]
    clean = [d for d in DOCS if d["category"] == "clean"]
    batches = [found[:10], clean[:10], found[10:25]]

    def apply_all(ctx):
        st.begin_apply(ctx)
        for b in batches:
            table = pa.table({"id": [d["id"] for d in b], "text": [d["text"] for d in b]})
            st.apply(table, np.arange(len(b), dtype=np.uint64), StageStats())

    apply_all(GlobalContext(tmp_path, 3, 4, 4))
    listed = json.loads((tmp_path / "matches" / "part-00003.json").read_text())["files"]
    assert listed == ["part-00003-00000.parquet", "part-00003-00002.parquet"]  # not batch 1
    for t in range(3):  # tasks 0-2 of the phase found nothing
        (tmp_path / "matches" / f"part-{t:05d}.json").write_text('{"files": []}')
    ids = list(dict.fromkeys(m["doc_id"] for m in read_matches(tmp_path, 4).to_pylist()))
    assert ids == [d["id"] for d in found[:25]]  # every planted document, in batch order
    batches = [clean[:10]]  # the task again, on other input: the old files are not listed
    apply_all(GlobalContext(tmp_path, 3, 4, 4))
    assert json.loads((tmp_path / "matches" / "part-00003.json").read_text())["files"] == []
    assert read_matches(tmp_path, 4).num_rows == 0


def test_a_tampered_index_is_refused(runs, tmp_path):
    tmp, inp, one, _ = runs
    st = Decontaminate(Decontaminate.Params(eval_sets=EVAL_SETS), name="dc")
    st.setup()
    st.run_step("index", GlobalContext(tmp_path, 0, 1, 1))
    (tmp_path / "index.parquet").write_bytes((one / "work" / "decontaminate" /
                                              "index.parquet").read_bytes() + b"x")
    with pytest.raises(UserError, match="sha256"):
        st.begin_apply(GlobalContext(tmp_path, 0, 1, 1))


def test_remove_cuts_the_shared_spans_and_keeps_the_rest(tmp_path):
    docs = [d for d in DOCS if d["category"] in ("verbatim", "partial", "clean")][:90]
    out = direct(docs, tmp_path, action="remove", max_removed_fraction=1.0)
    assert out.num_rows == len(docs)
    again = direct([{"id": i, "text": t} for i, t in zip(out.column("id").to_pylist(),
                                                           out.column("text").to_pylist())],
                   tmp_path / "again", action="annotate")
    assert not any(again.column("dc_items").to_pylist())  # nothing left to find
    items = {("wiki", r["id"]): r["context"] for r in load("wiki-passages.jsonl")}
    items.update({("cloze", r["id"]): f"{r['context']} {r['target']}."
                  for r in load("inaugural-cloze.jsonl")})
    for d, text in zip(docs, out.column("text").to_pylist()):
        if d["category"] == "clean":
            assert text == d["text"]
            continue
        full = items[(d["eval_set"], d["item_id"])]
        planted = next(x for x in d["text"].split("\n") if x and x in full)
        before, after = d["text"].split(planted, 1)
        assert text.startswith(before) and text.endswith(after)  # the web text is intact
        assert len(text) < len(before) + len(after) + len(planted) // 4


def test_remove_in_a_run_counts_rewritten_documents_as_changed(runs):
    tmp, inp, _, _ = runs
    run = run_pipeline(config(tmp, inp, "remove", workers=2, action="remove")).root
    out = {r["id"]: r["text"] for r in rows(run)}
    st = json.loads((run / "stats.json").read_text())["stages"]["decontaminate"]
    changed, dropped = Counter(), Counter()
    for d in DOCS:
        if d["id"] not in out:
            assert d["category"] in FOUND
            dropped[f"contaminated:{d['eval_set']}"] += 1  # lost more than half: dropped
        elif out[d["id"]] != d["text"]:
            assert d["category"] in FOUND
            changed[f"contaminated:{d['eval_set']}"] += 1
        else:
            assert d["category"] not in FOUND, d["id"]
    assert st["changed"] == dict(changed) and st["dropped"] == dict(dropped)
    assert min(changed.values()) > 10 and st["docs_out"] == len(out)
    csv = cli("stats", str(run), "--csv", cwd=tmp).stdout.splitlines()
    assert [x for x in csv if x.startswith("decontaminate,changed,")] == \
        [f"decontaminate,changed,{r},{n}," for r, n in sorted(changed.items())]
    samples = cli("samples", str(run), "decontaminate", "--json", cwd=tmp)
    assert samples.returncode == 0, samples.stderr
    kinds = Counter((s["kind"], s["reason"]) for s in json.loads(samples.stdout))
    assert {r for (k, r) in kinds if k == "changed"} == set(changed)


def test_remove_drops_a_document_that_would_lose_too_much(tmp_path):
    items = load("wiki-passages.jsonl")
    doc = {"id": "x", "text": "Intro.\n" + items[3]["context"]}
    out = direct([doc], tmp_path, action="remove", max_removed_fraction=0.5)
    assert out.num_rows == 0
    kept = direct([doc], tmp_path / "b", action="remove", max_removed_fraction=1.0)
    assert kept.column("text")[0].as_py() == "Intro.\n."  # the item's last full stop stays


def test_annotate_keeps_all_and_names_items(tmp_path):
    out = direct(DOCS, tmp_path, action="annotate")
    assert out.num_rows == len(DOCS)
    for d, items, ov in zip(DOCS, out.column("dc_items").to_pylist(),
                            out.column("dc_overlaps").to_pylist()):
        if d["category"] in FOUND:
            assert f"{d['eval_set']}/{d['item_id']}" in items and ov >= 1
        else:
            assert items == [] and ov == 0


def test_annotate_in_a_run_counts_hits_per_set(runs, tmp_path):
    from pipelines.report.page import write_report

    tmp, inp, _, _ = runs
    run = run_pipeline(config(tmp, inp, "annotate", workers=2, action="annotate")).root
    out = {r["id"]: r for r in rows(run)}
    assert set(out) == {d["id"] for d in DOCS}  # every document kept, text unchanged
    want = Counter()
    for d in DOCS:
        r = out[d["id"]]
        assert r["text"] == d["text"]
        if r["decontaminate_items"]:
            assert d["category"] in FOUND, d["id"]
            want[f"contaminated:{d['eval_set']}"] += 1
        else:
            assert d["category"] not in FOUND, d["id"]
    assert sum(want.values()) == sum(d["category"] in FOUND for d in DOCS)
    assert min(want.values()) > 10 and len(want) == 2
    st = json.loads((run / "stats.json").read_text())["stages"]["decontaminate"]
    assert st["changed"] == dict(want) and not st["dropped"]
    assert st["docs_in"] == st["docs_out"] == len(DOCS)
    # thresher stats: the table's reasons line, --json and --csv
    table = cli("stats", str(run), cwd=tmp)
    assert table.returncode == 0, table.stderr
    line = next(x for x in table.stdout.splitlines() if x.strip().startswith("decontaminate:"))
    for reason, n in want.items():
        assert f"{reason} {n:,}" in line
    js = json.loads(cli("stats", str(run), "--json", cwd=tmp).stdout)
    assert js["stages"]["decontaminate"]["changed"] == dict(want)
    csv = cli("stats", str(run), "--csv", cwd=tmp).stdout.splitlines()
    assert [x for x in csv if x.startswith("decontaminate,changed,")] == \
        [f"decontaminate,changed,{r},{n}," for r, n in sorted(want.items())]
    # samples: annotated documents, unchanged; the report gives each set's count
    samples = json.loads(cli("samples", str(run), "decontaminate", "--json", cwd=tmp).stdout)
    assert {s["reason"] for s in samples} == set(want)
    for s in samples:
        assert s["kind"] == "changed" and s["text"] == out[s["id"]]["text"][:len(s["text"])]
        assert out[s["id"]]["decontaminate_items"]
    html = write_report(run, tmp_path / "r.html").read_text()
    for reason, n in want.items():
        assert f"decontaminate / {reason}: {n:,} changed" in html


def test_n_and_min_overlaps_decide(tmp_path):
    para = [d for d in DOCS if d["category"] == "paraphrase"]
    at13 = direct(para, tmp_path / "13", action="annotate")
    at4 = direct(para, tmp_path / "4", action="annotate", n=4)
    assert not any(at13.column("dc_items").to_pylist())
    assert sum(bool(x) for x in at4.column("dc_items").to_pylist()) >= len(para) // 2
    partial = [d for d in DOCS if d["category"] == "partial"]
    strict = direct(partial, tmp_path / "m", action="annotate", min_overlaps=40)
    assert not any(strict.column("dc_items").to_pylist())  # a 30-word window has <= 18


def test_normalisation_case_and_punctuation(tmp_path):
    items = load("wiki-passages.jsonl")
    shouted = {"id": "u", "text": "Quote: " + items[0]["context"].upper().replace(",", " ;")}
    assert direct([shouted], tmp_path / "a", action="annotate").column("dc_items")[0].as_py()
    assert not direct([shouted], tmp_path / "b", action="annotate",
                      lowercase=False).column("dc_items")[0].as_py()
    toks, starts, ends = tokens("Ｆｕｌｌ-width, Tokyo!", Decontaminate.Params(eval_sets=EVAL_SETS))
    assert toks == ["full", "width", "tokyo"] and starts.tolist() == [0, 5, 12]


def test_parquet_and_gzipped_jsonl_sets_give_the_same_index_as_jsonl(tmp_path):
    wiki, cloze = load("wiki-passages.jsonl"), load("inaugural-cloze.jsonl")
    pq.write_table(pa.Table.from_pylist(wiki), tmp_path / "wiki.parquet")
    with gzip.open(tmp_path / "cloze.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in cloze)
    sets = [{**EVAL_SETS[0], "path": str(tmp_path / "wiki.parquet")},
            {**EVAL_SETS[1], "path": [str(tmp_path / "cloze.jsonl.gz")]}]
    built = {}
    for name, eval_sets in (("jsonl", EVAL_SETS), ("other", sets)):
        st = Decontaminate(Decontaminate.Params(eval_sets=eval_sets), name="dc")
        st.setup()
        metrics = st.run_step("index", GlobalContext(tmp_path / name, 0, 1, 1))
        built[name] = ((tmp_path / name / "index.parquet").read_bytes(),
                       pq.read_table(tmp_path / name / "items.parquet"), metrics)
    assert built["jsonl"][0] == built["other"][0]  # the same index, byte for byte
    assert built["jsonl"][1].equals(built["other"][1])
    assert built["other"][2]["items:wiki"] == len(wiki) == 80
    assert built["other"][2]["items:cloze"] == len(cloze) == 80
    (tmp_path / "bad.parquet").write_bytes(b'{"context": "not parquet"}\n')
    st = Decontaminate(Decontaminate.Params(eval_sets=[
        {**EVAL_SETS[0], "path": str(tmp_path / "bad.parquet")}]), name="dc")
    st.setup()
    with pytest.raises(UserError, match=r"evaluation set 'wiki': cannot read .*bad\.parquet: "
                                        r"not a Parquet file"):
        st.run_step("index", GlobalContext(tmp_path / "bad", 0, 1, 1))


def test_bad_inputs_are_one_line(tmp_path):
    inp = write_corpus(tmp_path / "in", n_files=1)
    (tmp_path / "ev.jsonl").write_text('{"question": "What?"}\n')
    base = (f"input: {{format: jsonl, paths: ['{inp}/*.jsonl']}}\n"
            f"output: {{path: {tmp_path}/run-NAME}}\nstages:\n  - stage: decontaminate\n")
    cases = {
        "missing": ("    eval_sets: [{name: q, path: nowhere.jsonl, fields: [question]}]\n",
                    "evaluation file nowhere.jsonl does not exist"),
        "field": (f"    eval_sets: [{{name: q, path: {tmp_path}/ev.jsonl, fields: [text]}}]\n",
                  "item 1 has no field 'text'"),
        "dup": (f"    eval_sets: [{{name: q, path: {tmp_path}/ev.jsonl, fields: [question]}},"
                f" {{name: q, path: {tmp_path}/ev.jsonl, fields: [question]}}]\n",
                "names must be unique"),
        "column": (f"    column: body\n    eval_sets: [{{name: q, path: {tmp_path}/ev.jsonl, "
                   f"fields: [question]}}]\n", "needs column 'body'"),
    }
    for name, (extra, expected) in cases.items():
        cfg = tmp_path / f"{name}.yaml"
        cfg.write_text(base.replace("NAME", name) + extra)
        proc = cli("run", str(cfg), cwd=tmp_path)
        assert proc.returncode == 2, (name, proc.stderr)
        errors = [x for x in proc.stderr.splitlines() if x.startswith("thresher: error:")]
        assert len(errors) == 1 and expected in errors[0], (name, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert_user_error(cli("validate", str(tmp_path / "dup.yaml"), cwd=tmp_path), "unique")


def test_eval_set_on_s3_is_fetched_and_named_by_url_in_the_manifest(tmp_path, monkeypatch):
    pytest.importorskip("moto")
    from s3server import serving

    from pipelines.io import models

    monkeypatch.setenv("THRESHER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(models, "_VERIFIED", {})
    with serving(tmp_path / "moto.log", "evals") as srv:
        srv.client().upload_file(EVAL_SETS[0]["path"], "evals", "sets/wiki.jsonl")
        url = "s3://evals/sets/wiki.jsonl"
        inp = tmp_path / "in"
        inp.mkdir()
        docs = [d for d in DOCS if d["eval_set"] in ("wiki", None)][:60]
        with open(inp / "a.jsonl", "w") as fh:
            for d in docs:
                fh.write(json.dumps(d) + "\n")
        cfg = config_from_dict({
            "name": "s3eval",
            "input": {"format": "jsonl", "paths": [str(inp / "*.jsonl")], "id_key": "id",
                      "fields": LABEL_FIELDS},
            "output": {"path": str(tmp_path / "run")},
            "executor": {"kind": "local", "workers": 1},
            "stages": [{"stage": "decontaminate", "eval_sets": [{**EVAL_SETS[0], "path": url}]}],
        })
        run = run_pipeline(cfg).root
    kept = {r["id"] for r in rows(run)}
    assert kept == {d["id"] for d in docs if d["category"] not in FOUND}
    manifest = json.loads((run / "manifest.json").read_text())
    sha = hashlib.sha256(Path(EVAL_SETS[0]["path"]).read_bytes()).hexdigest()
    assert {"path": url, "sha256": sha} in manifest["models"]


def test_report_lists_contaminated_items_and_matched_documents(runs, tmp_path):
    from pipelines.report.page import write_report

    _, _, one, _ = runs
    html = write_report(one, tmp_path / "r.html").read_text()
    assert "Contaminated evaluation items" in html
    planted = {(d["eval_set"], d["item_id"]) for d in DOCS if d["category"] in FOUND}
    assert f"{len(planted):,} contaminated evaluation items" in html
    some = next(d for d in DOCS if d["category"] == "verbatim")
    assert f">{some['id']}<" in html and f">{some['item_id']}<" in html
    found = [d for d in DOCS if d["category"] in FOUND]
    assert f"{len(found):,} matched documents" in html
