"""`thresher thresholds`: a per-language threshold table derived from reference text.

The reference is real text: Leipzig web sentences (tests/data/lid) grouped into
documents, written as Parquet, JSONL.gz and plain text, locally and on S3 (moto's real
S3 API server); the table then drives gopher_quality on the bundled Common Crawl pages,
is recorded in the run manifest, and `thresher materialize` re-filters at a second one.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import shard_hashes, thresher
from test_per_language import pages

from pipelines import stage as make_spec
from stages.heuristics.derive import derive

LANGS = {"zh": 14, "ja": 14, "de": 12, "ru": 12}  # documents of 12 sentences each


@lru_cache(maxsize=1)
def reference_docs() -> dict[str, list[str]]:  # (each read unpacks the 4 MB tar.xz)
    return {lang: pages(lang, n, per_page=12) for lang, n in LANGS.items()}


def write_reference(d: Path) -> Path:
    """zh and ja as Parquet (column `lang`), de as JSONL.gz, ru as a plain-text file."""
    docs = reference_docs()
    d.mkdir()
    rows = [(t, lang) for lang in ("zh", "ja") for t in docs[lang]]
    pq.write_table(pa.table({"text": [t for t, _ in rows], "lang": [x for _, x in rows]}),
                   d / "cjk.parquet")
    with gzip.open(d / "de.jsonl.gz", "wt", encoding="utf-8") as f:
        for t in docs["de"]:
            f.write(json.dumps({"text": t, "lang": "de"}, ensure_ascii=False) + "\n")
    (d / "ru.txt").write_text("\n\n".join(docs["ru"]) + "\n", encoding="utf-8")
    return d


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_table_from_parquet_jsonl_and_text_is_each_rules_tail_quantile(tmp_path):
    ref = write_reference(tmp_path / "ref")
    out = tmp_path / "table.json"
    proc = thresher("thresholds", "--reference", str(ref / "*"), "--by", "lang",
                    "--quantile", "0.1", "-o", str(out))
    assert "4 languages" in proc.stderr
    table = read(out)
    about = table["_about"]
    assert about["quantile"] == 0.1
    assert about["reference"] == {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                                  for p in sorted(ref.iterdir())}
    # every format read as the same documents: the table is derive() on them
    assert table["languages"] == json.loads(json.dumps(derive(reference_docs(), 0.1)))
    for lang, n in LANGS.items():
        row = table["languages"][lang]
        assert row["_documents"] == n
        # each derived limit fails about the asked share of that language's reference
        st = make_spec("gopher_quality", mode="annotate", tokenizer="auto").build()
        st.setup()
        ms = [st.measure({"text": t, "language": lang, "id": "x"}, True)
              for t in reference_docs()[lang]]
        g = row["gopher_quality"]
        below = sum(m["avg_word_length"] < g["min_avg_word_length"] for m in ms)
        above = sum(m["avg_word_length"] > g["max_avg_word_length"] for m in ms)
        for failed in (below, above):
            assert 1 <= failed <= 2, (lang, failed, n)  # 10% of 12-14 documents
        assert len(g["stop_words"]) == 8
    # segmented words: Chinese limits are a few characters, not a page's length
    assert table["languages"]["zh"]["gopher_quality"]["max_avg_word_length"] < 3
    assert "der" in table["languages"]["de"]["gopher_quality"]["stop_words"]


def test_errors_are_one_line(tmp_path):
    proc = thresher("thresholds", "--reference", str(tmp_path / "none*.parquet"), "-o",
                    str(tmp_path / "t.json"), check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "no file matches" in proc.stderr
    (tmp_path / "bad.jsonl").write_text("not json\n", encoding="utf-8")
    proc = thresher("thresholds", "--reference", str(tmp_path / "bad.jsonl"), check=False)
    assert proc.returncode == 2 and "bad.jsonl:1: not JSON" in proc.stderr
    proc = thresher("thresholds", "--bundled", "--params", "c4:min_words", check=False)
    assert proc.returncode == 2 and "derivable are" in proc.stderr


def test_remote_reference_gives_the_same_table(tmp_path):
    pytest.importorskip("moto")
    from s3server import serving

    ref = write_reference(tmp_path / "ref")
    local = tmp_path / "local.json"
    thresher("thresholds", "--reference", str(ref / "*"), "--by", "lang", "-o", str(local))
    with serving(tmp_path / "moto.log", "refs") as srv:
        client = srv.client()
        for p in sorted(ref.iterdir()):
            client.upload_file(str(p), "refs", f"wiki/{p.name}")
        remote = tmp_path / "remote.json"
        thresher("thresholds", "--reference", "s3://refs/wiki/*", "--by", "lang",
                 "-o", str(remote))
        written = "s3://refs/tables/t.json"  # the table can go to the store too
        thresher("thresholds", "--reference", "s3://refs/wiki/*", "--by", "lang", "-o", written)
        body = client.get_object(Bucket="refs", Key="tables/t.json")["Body"].read()
    a, b = read(local), read(remote)
    assert a["languages"] == b["languages"]
    assert list(b["_about"]["reference"]) == [f"s3://refs/wiki/{p.name}"
                                              for p in sorted(ref.iterdir())]
    assert list(a["_about"]["reference"].values()) == list(b["_about"]["reference"].values())
    assert body == remote.read_bytes()


def _run(tmp: Path, name: str, mode: str, table: Path, corpus: Path) -> Path:
    cfg = tmp / f"{name}.yaml"
    cfg.write_text(f"""name: {name}
input:
  format: jsonl
  paths: [{corpus}]
output:
  path: {tmp / name}
executor: {{kind: local, workers: 1}}
stages:
  - stage: langid
  - stage: gopher_quality
    mode: {mode}
    tokenizer: auto
    thresholds: {table}
""", encoding="utf-8")
    thresher("run", str(cfg), "--quiet")
    return tmp / name


def test_derived_table_in_the_manifest_and_materialize_at_another(tmp_path):
    """A run given a derived table records its sha256; `thresher materialize` at a table
    derived with another quantile writes what a direct run at that table writes. The
    documents filtered are other Leipzig sentences of the same languages (held out)."""
    from test_per_language import sentences

    ref = write_reference(tmp_path / "ref")
    corpus = tmp_path / "docs.jsonl"
    with corpus.open("w", encoding="utf-8") as f:
        for lang in LANGS:
            s = sentences(lang, 400)[200:]
            for i in range(0, len(s), 12):
                f.write(json.dumps({"id": f"{lang}{i}", "text": "\n".join(s[i:i + 12])},
                                   ensure_ascii=False) + "\n")
    loose, strict = tmp_path / "loose.json", tmp_path / "strict.json"
    thresher("thresholds", "--reference", str(ref / "*"), "--by", "lang", "--quantile",
             "0.02", "-o", str(loose))
    thresher("thresholds", "--reference", str(ref / "*"), "--by", "lang", "--quantile",
             "0.3", "-o", str(strict))
    annotated = _run(tmp_path, "ann", "annotate", loose, corpus)
    models = json.loads((annotated / "manifest.json").read_text())["models"]
    assert {"path": str(loose.resolve()), "sha256": hashlib.sha256(
        loose.read_bytes()).hexdigest()} in [{k: m[k] for k in ("path", "sha256")}
                                             for m in models]
    direct = _run(tmp_path, "direct", "filter", strict, corpus)
    out = tmp_path / "mat"
    thresher("materialize", str(annotated), str(out), "--set",
             f"gopher_quality.thresholds={strict}", "--quiet")
    assert shard_hashes(out) == shard_hashes(direct) != {}
    rows = [r for p in sorted((annotated / "data").glob("*.parquet"))
            for r in pq.read_table(p).to_pylist()]
    kept_loose = sum(r["gopher_quality_reason"] is None for r in rows)
    kept_strict = sum(pq.read_metadata(p).num_rows for p in (out / "data").glob("*.parquet"))
    print(f"{len(rows)} held-out documents: {kept_loose} kept at q=0.02, {kept_strict} at q=0.3")
    assert len(rows) * 0.7 <= kept_loose  # a 2% tail per rule: most of the held-out text
    assert kept_strict < kept_loose * 0.8  # three rules at a 30% tail each: many fewer


def test_langid_min_score_is_fineweb2s_formula_on_the_models_scores(tmp_path):
    """langid.min_score per language: max(0.3, min(0.9, median - std)) of the lid.176
    scores of the reference documents given that language. Clean sentences score high
    (the 0.9 cap); documents cut to a few words score lower and spread out."""
    import numpy as np

    from stages.heuristics.derive import lid_min_score

    st = make_spec("langid").build()
    st.setup()
    for lang in ("de", "zh"):
        words = [" ".join(t.split()[:3]) if lang == "de" else t[:6]
                 for t in pages(lang, 40, per_page=1)]
        _, cols = st.check_batch(pa.table({"text": words}))
        xs = np.array([s for la, s in zip(cols["language"], cols["language_score"])
                       if la == lang])
        want = round(float(np.clip(np.median(xs) - np.std(xs), 0.3, 0.9)), 3)
        assert lid_min_score(words, lang) == want
        assert 0.3 <= want < 0.9, (lang, want)  # short texts: below the cap
        assert lid_min_score(reference_docs()[lang], lang) == 0.9  # clean pages: the cap
    assert lid_min_score(pages("de", 5), "de") is None  # too few documents
