"""Per-language filtering: ``tokenizer: auto`` and ``thresholds:`` on the heuristic filters,
and ``tokenizer: auto`` word shingles in minhash_dedup.

Documents are real text: Leipzig web sentences (tests/data/lid/lingua-language-testdata
.tar.xz) grouped into pages, in Chinese, Japanese, German and Russian.
"""

from __future__ import annotations

import json
import random
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pipelines import stage as make_spec
from pipelines.errors import UserError
from pipelines.stage import StageStats, TaskContext
from stages.dedup import minhash_core as core
from stages.dedup.minhash import segmented_token_hashes
from stages.heuristics import per_language

DATA = Path(__file__).parent / "data"


def sentences(lang: str, n: int) -> list[str]:
    with tarfile.open(DATA / "lid" / "lingua-language-testdata.tar.xz") as t:
        f = t.extractfile(f"language-testdata/sentences/{lang}.txt")
        return f.read().decode("utf-8").splitlines()[:n]


def pages(lang: str, n_pages: int, per_page: int = 15) -> list[str]:
    s = sentences(lang, n_pages * per_page)
    return ["\n".join(s[i:i + per_page]) for i in range(0, len(s), per_page)]


def table(docs: list[tuple[str, str]]) -> pa.Table:
    return pa.table({"id": [f"d{i}" for i in range(len(docs))],
                     "text": [t for t, _ in docs], "language": [lang for _, lang in docs]})


def build(name: str, **params):
    st = make_spec(name, **params).build()
    st.setup()
    st.begin_task(TaskContext(Path("."), "main", 0, "test"))
    return st


def decisions(name: str, docs: list[tuple[str, str]], **params) -> list:
    st = build(name, mode="annotate", **params)
    t = table(docs)
    out = st.process(t, StageStats())
    return st.decide_from_columns(out)


CJK = [(p, "zh") for p in pages("zh", 6)] + [(p, "ja") for p in pages("ja", 6)]
OTHERS = [(p, "de") for p in pages("de", 4)] + [(p, "ru") for p in pages("ru", 4)]


def test_whitespace_words_drop_every_chinese_and_japanese_page():
    """The problem: without segmentation a CJK page is a few very long "words"."""
    got = decisions("gopher_quality", CJK)
    assert all(r in ("avg_word_too_long", "too_few_words") for r in got), got


def test_segmented_cjk_pages_pass_the_word_length_rule():
    got = decisions("gopher_quality", CJK, tokenizer="auto", thresholds="per_language")
    assert not any(r in ("avg_word_too_long", "avg_word_too_short", "too_few_words")
                   for r in got), got
    assert got.count(None) >= len(CJK) - 2, got  # real prose: (nearly) all kept
    st = build("gopher_quality", mode="annotate", tokenizer="auto")
    out = st.process(table(CJK), StageStats())
    lengths = out.column(f"{st.name}_avg_word_length").to_pylist()
    assert all(1 <= x <= 3 for x in lengths), lengths


def test_per_language_table_changes_decisions_for_its_languages_only():
    docs = CJK + OTHERS
    base = decisions("gopher_quality", docs, tokenizer="auto")
    # English defaults: segmented CJK words are "too short", de/ru lack English stop words
    assert base[:12] == ["avg_word_too_short"] * 12 and "too_few_stop_words" in base[12:16]
    table_ = {"zh": {"min_avg_word_length": 1, "stop_words": ["的", "在", "是", "了"]},
              "de": {"min_stop_words": 0, "min_alpha_words_ratio": 0.5}}
    got = decisions("gopher_quality", docs, tokenizer="auto", thresholds=table_)
    zh, ja = got[:6], got[6:12]
    de, ru = got[12:16], got[16:]
    assert zh.count(None) >= 5 and de == [None] * 4
    assert ja == base[6:12] and ru == base[16:]


def test_builtin_table_is_fineweb2s_published_values():
    data = json.loads(per_language.BUILTIN.read_text(encoding="utf-8"))["languages"]
    zh = data["zh"]
    assert zh["_source"] == "cmn_Hani" and data["cmn_Hani"] == zh
    assert zh["gopher_quality"]["min_avg_word_length"] == 1
    assert zh["gopher_repetition"]["max_dup_ngram_char_ratio"]["5"] == 0.198
    assert "的" in zh["gopher_quality"]["stop_words"]
    st = build("gopher_repetition", thresholds="per_language")
    assert st.params_for("zh").max_dup_line_ratio == 0.287
    assert st.params_for("zh").max_dup_ngram_char_ratio[6] == 0.182
    assert st.params_for("en") is st.params  # English is not in FineWeb-2: the defaults
    assert st.params_for("cmn_Hani") == st.params_for("zh")
    assert st.model_files() == per_language.sha256(str(per_language.BUILTIN))


def test_table_file_and_its_sha256(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("zh:\n  min_terminal_punct_line_ratio: 0.05\n", encoding="utf-8")
    st = build("fineweb_quality", thresholds=str(path))
    assert st.params_for("zh").min_terminal_punct_line_ratio == 0.05
    assert st.params_for("de").min_terminal_punct_line_ratio == 0.12
    (key, sha), = st.model_files().items()
    assert key.endswith("t.yaml") and len(sha) == 64


@pytest.mark.parametrize("row, words", [
    ({"tokenizer": "whitespace"}, "cannot differ per language"),
    ({"min_avg_word_length": -1}, "thresholds for 'zh'"),
])
def test_bad_table_rows_are_one_line_errors(row, words):
    with pytest.raises(UserError) as e:
        make_spec("gopher_quality", thresholds={"zh": row}).build()
    assert words in str(e.value) and "\n" not in str(e.value)


def test_language_column_is_required_by_auto_and_tables():
    st = make_spec("gopher_quality", tokenizer="auto").build()
    assert "language" in st.input_columns()
    st = make_spec("c4", thresholds={"zh": {"min_sentences": 1}}).build()
    assert "language" in st.input_columns()
    assert "language" not in make_spec("gopher_quality").build().input_columns()


def test_filter_and_annotate_modes_and_materialize_agree():
    """Lazy filter-mode measuring uses each language's limits: same decisions."""
    docs = CJK + OTHERS
    for name in ("gopher_repetition", "fineweb_quality", "gopher_quality", "c4"):
        params = dict(tokenizer="auto", thresholds="per_language")
        if name == "c4":
            params = dict(tokenizer="auto", thresholds={"zh": {"min_sentences": 1}})
        annotated = decisions(name, docs, **params)
        st = build(name, **params)
        got = [st.decide(st.measure(d, False), d) for d in
               ({"id": f"d{i}", "text": t, "language": lang} for i, (t, lang) in enumerate(docs))]
        assert got == annotated, name


# ------------------------------------------------------------------ minhash per language

def _family_edits(text: str, rng: random.Random) -> str:
    """A near duplicate: drop a line, swap two lines and cut a few characters."""
    lines = text.split("\n")
    del lines[rng.randrange(len(lines))]
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    k = rng.randrange(len(lines))
    pos = rng.randrange(max(1, len(lines[k]) - 3))
    lines[k] = lines[k][:pos] + lines[k][pos + 3:]
    return "\n".join(lines)


def _recall(texts_a, texts_b, langs, spec, segmented: bool, min_j: float = 0.85):
    """LSH recall over the pairs whose exact Jaccard (on the same shingles) is >= min_j."""
    def shingles(texts):
        if segmented:
            tok, lens = segmented_token_hashes(texts, langs, spec)
        else:
            tok, lens = core._token_hashes(texts, spec)
        sh, counts = core._shingles(tok, lens, spec.n)
        return np.split(sh, np.cumsum(counts)[:-1])

    sa, sb = shingles(texts_a), shingles(texts_b)
    pairs = [i for i in range(len(texts_a)) if core.jaccard(np.unique(sa[i]),
                                                            np.unique(sb[i])) >= min_j]
    ka = core.band_keys(core.signatures_from_shingles(sa, spec), spec)
    kb = core.band_keys(core.signatures_from_shingles(sb, spec), spec)
    found = [i for i in pairs if (ka[i] == kb[i]).any()]
    return len(found) / max(1, len(pairs)), len(pairs)


def test_minhash_auto_finds_chinese_and_japanese_near_duplicates():
    rng = random.Random(0)
    spec = core.MinHashSpec()
    for lang in ("zh", "ja"):
        seeds = pages(lang, 33, per_page=30)
        edited = [_family_edits(t, rng) for t in seeds]
        recall, n = _recall(seeds, edited, [lang] * len(seeds), spec, segmented=True)
        assert n >= 10, (lang, n)
        assert recall >= 0.95, (lang, recall, n)


def test_minhash_stage_auto_is_deterministic_and_per_language():
    st = make_spec("minhash_dedup", tokenizer="auto", scope="language").build()
    st.setup()
    assert "language" in st.input_columns()
    texts = [t for t, _ in CJK] + [t for t, _ in OTHERS]
    langs = [lang for _, lang in CJK] + [lang for _, lang in OTHERS]
    t = pa.table({"text": texts, "language": langs})
    whole = st._signatures(t)
    half = np.concatenate([st._signatures(t.slice(0, 7)), st._signatures(t.slice(7))])
    assert (whole == half).all()  # any batching (so any worker count) gives the same
    plain = core.signatures(texts, st.spec)
    same = (whole == plain).all(axis=1)
    for i, lang in enumerate(langs):  # no segmenter (ru): shingles as before
        assert same[i] == (lang == "ru"), (i, lang)  # zh, ja, de (spaCy's rules): words


# ------------------------------------------------------------------ real crawled pages

def _annotate_run(tmp_path: Path, name: str, gopher: str) -> list[dict]:
    import pyarrow.parquet as pq
    from conftest import REPO, thresher

    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(f"""name: {name}
input:
  format: warc
  paths: [{REPO}/tests/data/warc/resiliparse-cc-main-2020-34-warcfile.warc.gz]
output:
  path: {tmp_path / name}
executor: {{kind: local, workers: 1}}
stages:
  - stage: extract
  - stage: langid
  - stage: gopher_quality
    mode: annotate
{gopher}""", encoding="utf-8")
    thresher("run", str(cfg), "--quiet")
    return [r for p in sorted((tmp_path / name / "data").glob("*.parquet"))
            for r in pq.read_table(p).to_pylist()]


def test_chinese_crawled_pages_are_not_dropped_for_word_length_once_segmented(tmp_path):
    """The Common Crawl excerpt's Chinese pages (real web text, extracted and identified by
    the pipeline): whitespace words make them fail the word-length rule; segmented words
    with FineWeb-2's Chinese thresholds do not."""
    plain = _annotate_run(tmp_path, "plain", "")
    auto = _annotate_run(tmp_path, "auto", "    tokenizer: auto\n    thresholds: per_language\n")
    zh_plain = [r for r in plain if r["language"] == "zh"]
    zh_auto = [r for r in auto if r["language"] == "zh"]
    assert len(zh_auto) >= 8 and len(zh_auto) == len(zh_plain)
    # the English splitter cuts only at spaces and punctuation: "words" are phrases
    assert all(r["gopher_quality_avg_word_length"] > 4 for r in zh_plain)
    assert sum(r["gopher_quality_avg_word_length"] > 10 for r in zh_plain) >= 3
    assert not [r for r in zh_plain if r["gopher_quality_reason"] is None]
    assert len([r for r in zh_auto if r["gopher_quality_reason"] is None]) >= 3
    assert not [r for r in zh_auto if r["gopher_quality_reason"] in (
        "avg_word_too_long", "avg_word_too_short")]
    assert all(1 <= r["gopher_quality_avg_word_length"] <= 3 for r in zh_auto)
    # the words are the ones spaCy's jieba tokenizer (what datatrove means to use) makes
    from test_segmenters import _reference

    from stages.text.words import splitter_for
    jieba_words, ours = _reference("zh"), splitter_for("auto")("zh")
    assert all(ours(r["text"]) == jieba_words(r["text"]) for r in zh_auto)
    others = [(a["id"], a["gopher_quality_reason"]) for a in auto if a["language"] == "en"]
    assert others == [(p["id"], p["gopher_quality_reason"]) for p in plain
                      if p["language"] == "en"]  # English: not in the table, same as before


# ------------------------------------------------------------------ deriving a table

def test_derived_thresholds_fail_the_asked_share_of_the_reference(tmp_path):
    from stages.heuristics import derive

    docs, files = derive.bundled_reference()
    ref = {lang: docs[lang] for lang in ("zh", "de", "km")}
    table = derive.derive(ref, quantile=0.1, params=derive.DEFAULT_PARAMS, stop_words=4)
    zh = table["zh"]["gopher_quality"]
    assert 1 < zh["min_avg_word_length"] < zh["max_avg_word_length"] < 3  # segmented words
    assert "的" in zh["stop_words"] and len(zh["stop_words"]) == 4
    assert table["de"]["gopher_quality"]["min_avg_word_length"] > 4
    assert "km" in table  # the UDHR stands in for the languages Leipzig lacks
    # the table works as a thresholds file, and each rule fails about 10% of the reference
    path = tmp_path / "derived.json"
    path.write_text(json.dumps({"languages": table}, ensure_ascii=False), encoding="utf-8")
    got = decisions("gopher_quality", [(t, "zh") for t in ref["zh"]], tokenizer="auto",
                    thresholds=str(path), min_doc_words=None, min_stop_words=None,
                    max_symbol_word_ratio=None, max_bullet_lines_ratio=None,
                    max_ellipsis_lines_ratio=None)
    failed = sum(r is not None for r in got) / len(got)
    assert 0.1 <= failed <= 0.35, failed  # three rules at 10% each (37 pages: coarse)


def test_derive_command_line(tmp_path):
    import subprocess
    import sys

    from conftest import REPO

    ref = tmp_path / "ref.jsonl"
    ref.write_text("\n".join(json.dumps({"text": t, "language": lang}, ensure_ascii=False)
                             for lang in ("zh", "de") for t in pages(lang, 12, 10)),
                   encoding="utf-8")
    out = tmp_path / "t.json"
    subprocess.run([sys.executable, "-m", "stages.heuristics.derive", "--reference", str(ref),
                    "--quantile", "0.05", "--out", str(out)], check=True, cwd=REPO)
    table = json.loads(out.read_text(encoding="utf-8"))
    assert table["_about"]["quantile"] == 0.05 and "ref.jsonl" in table["_about"]["reference"]
    assert set(table["languages"]) == {"zh", "de"}
    st = build("gopher_quality", thresholds=str(out))
    assert st.params_for("zh").min_avg_word_length == \
        table["languages"]["zh"]["gopher_quality"]["min_avg_word_length"]


def _corpus(tmp_path: Path) -> Path:
    """Leipzig pages in zh, ja and ru, with near-duplicate copies, in three JSONL files
    (so two workers split them): real text for the segmenters, thresholds and MinHash."""
    d = tmp_path / "corpus"
    if d.exists():
        return d
    d.mkdir()
    rng = random.Random(7)
    docs = []
    for lang in ("zh", "ja", "ru"):  # (de's spaCy rules: test_segmenters.py)
        for i, t in enumerate(pages(lang, 8)):
            docs.append({"id": f"{lang}{i}", "text": t})
            if i % 3 == 0:
                docs.append({"id": f"{lang}{i}-copy", "text": _family_edits(t, rng)})
    for k in range(3):
        (d / f"part-{k}.jsonl").write_text("".join(
            json.dumps(r, ensure_ascii=False) + "\n" for r in docs[k::3]), encoding="utf-8")
    return d


def _chain(tmp_path: Path, name: str, workers: int, mode: str, table: Path) -> Path:
    from conftest import thresher

    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(f"""name: {name}
input:
  format: jsonl
  paths: [{_corpus(tmp_path)}/*.jsonl]
output:
  path: {tmp_path / name}
executor: {{kind: local, workers: {workers}}}
stages:
  - stage: langid
  - stage: gopher_repetition
    tokenizer: auto
    thresholds: per_language
  - stage: minhash_dedup
    scope: language
    tokenizer: auto
  - stage: gopher_quality
    mode: {mode}
    tokenizer: auto
    thresholds: {table}
""", encoding="utf-8")
    thresher("run", str(cfg), "--quiet")
    return tmp_path / name


def test_same_output_for_any_worker_count_and_materialize_at_a_new_table(tmp_path):
    """Per-language segmenting and thresholds are functions of each document alone: one
    worker and two give the same bytes; `thresher materialize` at a new table gives what
    a direct run at that table gives. (Leipzig pages in JSONL: the crawled pages go
    through the same chain in test_fineweb2_recipe.py.)"""
    from conftest import shard_hashes, thresher

    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("zh: {min_avg_word_length: 1, min_stop_words: 0, min_alpha_words_ratio: 0.3}\n",
                 encoding="utf-8")
    b.write_text("zh: {min_avg_word_length: 1.72, min_stop_words: 0, min_alpha_words_ratio: 0.3}\n",
                 encoding="utf-8")
    one = _chain(tmp_path, "one", 1, "annotate", a)
    annotated = _chain(tmp_path, "ann", 2, "annotate", a)
    assert shard_hashes(one) == shard_hashes(annotated) != {}
    direct = _chain(tmp_path, "direct", 2, "filter", b)  # materialize filters
    out = tmp_path / "mat"
    thresher("materialize", str(annotated), str(out), "--set",
             f"gopher_quality.thresholds={b}", "--quiet")
    assert shard_hashes(out) == shard_hashes(direct)
    import pyarrow.parquet as pq

    def zh(run: Path) -> list:
        return [r for p in sorted((run / "data").glob("*.parquet"))
                for r in pq.read_table(p).to_pylist() if r["language"] == "zh"]

    at_a = [r for r in zh(annotated) if r["gopher_quality_reason"] is None]
    assert 0 < len(zh(out)) < len(at_a)  # the stricter Chinese row drops more
    kept = {r["id"] for r in zh(out)}  # filter mode drops the measure columns
    assert all(r["gopher_quality_avg_word_length"] >= 1.72 for r in at_a if r["id"] in kept)


def test_length_and_char_ratio_take_per_language_tables():
    """The vectorised rule filters decide each row at its language's limits too."""
    docs = [("短文本。" * 30, "zh"), ("kurzer Text. " * 10, "de"), ("short text. " * 10, "en")]
    t = table(docs)
    st = build("length", min_words=5, thresholds={"zh": {"min_words": None, "min_chars": 100}})
    reasons, _ = st.check_batch(t)
    assert reasons == [None, None, None]  # zh: one "word", but 120 characters
    st = build("length", min_words=5, thresholds={"zh": {"min_chars": 200}})
    assert st.check_batch(t)[0] == ["too_short", None, None]
    st = build("char_ratio", max_punctuation_ratio=0.05,
               thresholds={"zh": {"max_punctuation_ratio": 0.3}})
    assert st.check_batch(t)[0] == [None, "too_many_punctuation", "too_many_punctuation"]
    annotated = build("char_ratio", mode="annotate", max_punctuation_ratio=0.05,
                      thresholds={"zh": {"max_punctuation_ratio": 0.3}})
    out = annotated.process(t, StageStats())
    assert annotated.decide_from_columns(out) == st.check_batch(t)[0]


def _neardup_edits(text: str, rng: random.Random) -> str:
    """One to three of the English near-duplicate set's edits (benchmarks/neardup_set.py,
    characters for words in spaceless scripts): tokens substituted, deleted or inserted,
    paragraphs dropped or moved, the end cut."""
    import sys

    from conftest import REPO

    sys.path.insert(0, str(REPO / "benchmarks"))
    import neardup_set as ns

    page = ns.Page([p for p in text.split("\n") if p.strip()])
    ops = [lambda: ns.edit_tokens(page, rng, rng.uniform(0.002, 0.01)),
           lambda: ns.drop_paragraphs(page, rng, 0.04),
           lambda: ns.move_paragraphs(page, rng, rng.randint(1, 2)),
           lambda: ns.truncate(page, rng, rng.uniform(0.93, 0.99))]
    for op in rng.sample(ops, rng.randint(1, 3)):
        op()
    return page.text()


def _whitespace_recall(texts_a, texts_b, pairs, spec) -> float:
    """LSH recall over ``pairs`` with 5-word shingles of whitespace-separated words (what
    a splitter without segmentation, e.g. str.split, gives)."""
    import hashlib

    def shingles(text: str) -> np.ndarray:
        w = text.split()
        grams = {" ".join(w[i:i + spec.n]) for i in range(max(1, len(w) - spec.n + 1))}
        return np.array(sorted(int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8)
                                              .digest(), "little") for g in grams), np.uint64)

    ka = core.band_keys(core.signatures_from_shingles([shingles(t) for t in texts_a], spec), spec)
    kb = core.band_keys(core.signatures_from_shingles([shingles(t) for t in texts_b], spec), spec)
    return sum(bool((ka[i] == kb[i]).any()) for i in pairs) / max(1, len(pairs))


def test_minhash_neardup_set_edits_found_in_chinese_and_japanese_missed_by_whitespace():
    """Leipzig pages (real text of the shared LID set) edited as the English near-dup set
    is: segmented shingles find >= 95% of the pairs with Jaccard >= 0.85; whitespace
    shingles (a Chinese or Japanese line is one "word") find few of the same pairs."""
    rng = random.Random(22)
    spec = core.MinHashSpec()
    for lang in ("zh", "ja"):
        seeds = pages(lang, 50, per_page=20)
        edited = [_neardup_edits(t, rng) for t in seeds]
        langs = [lang] * len(seeds)
        recall, n = _recall(seeds, edited, langs, spec, segmented=True)
        assert n >= 12, (lang, n)
        assert recall >= 0.95, (lang, recall, n)

        def seg_shingles(texts, langs=langs):
            tok, lens = segmented_token_hashes(texts, langs, spec)
            sh, counts = core._shingles(tok, lens, spec.n)
            return np.split(sh, np.cumsum(counts)[:-1])

        sa, sb = seg_shingles(seeds), seg_shingles(edited)
        pairs = [i for i in range(len(seeds))
                 if core.jaccard(np.unique(sa[i]), np.unique(sb[i])) >= 0.85]
        missed = 1 - _whitespace_recall(seeds, edited, pairs, spec)
        print(f"{lang}: {len(pairs)} pairs at J >= 0.85: segmented recall {recall:.3f}, "
              f"whitespace misses {missed:.3f}")
        assert missed >= 0.5, (lang, missed)
