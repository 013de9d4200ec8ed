"""Heuristic filters: every rule fires with its reason, thresholds are parameters, and
the filters behave on real extracted text (tests/data/quality/filter-docs.jsonl.gz).

Decisions are compared with datatrove's in test_datatrove_parity.py.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import DATA

from pipelines import stage as make_spec
from pipelines.errors import UserError
from pipelines.stage import TaskContext
from pipelines.stats import StageStats

DOCS = DATA / "quality" / "filter-docs.jsonl.gz"

GOOD = ("The committee said that the new library will open to the public next spring, and "
        "that it will have a reading room with more than ten thousand books. Local schools "
        "have asked to bring their classes to the building during the first week.\n")
GOOD_PAGE = GOOD + (
    "Construction began two years ago after a long debate about the cost of the project. "
    "Several residents argued that the old post office should be restored instead.\n"
    "The architect, who grew up in the town, designed a roof garden where readers can sit "
    "in the summer. Solar panels on the south side will cover most of the electricity.\n"
    "Volunteers have already sorted donated novels, atlases and cookbooks into crates. "
    "A second group is recording interviews with older people about the history of the "
    "valley, which will be kept in the local archive.\n"
    "Opening hours have not been decided yet, but the council expects to publish them in "
    "March together with a programme of readings, workshops and film evenings.\n")


def _build(name: str, **params):
    st = make_spec(name, **params).build()
    st.setup()
    st.begin_task(TaskContext(Path("."), "main", 0, "test"))
    return st


def _run(st, table: pa.Table) -> tuple[pa.Table, StageStats]:
    stats = StageStats()
    stats.count_in(table)
    out = st.process(table, stats)
    stats.count_out(out)
    assert stats.balanced()
    return out, stats


def _table(texts: dict[str, str]) -> pa.Table:
    return pa.table({"id": list(texts), "text": list(texts.values())})


def _reasons(name: str, texts: dict[str, str], **params) -> dict[str, str | None]:
    out, _ = _run(_build(name, mode="annotate", **params), _table(texts))
    return dict(zip(out.column("id").to_pylist(), out.column(f"{name}_reason").to_pylist()))


@pytest.fixture(scope="module")
def real_docs() -> pa.Table:
    rows = [json.loads(line) for line in gzip.open(DOCS, "rt", encoding="utf-8")]
    return pa.Table.from_pylist(rows)


# ----------------------------------------------------------------------------- gopher_quality

def test_gopher_quality_counts_distinct_case_sensitive_stop_words():
    words = "Alpha beta gamma delta epsilon zeta eta theta iota kappa lambda " * 6
    texts = {"one": words + " the the the the", "two": words + " the of",
             "capital": words + " The Of"}
    got = _reasons("gopher_quality", texts)
    assert got == {"one": "too_few_stop_words", "two": None, "capital": "too_few_stop_words"}
    assert _reasons("gopher_quality", texts, min_stop_words=1)["one"] is None


def test_gopher_quality_bullets_are_a_parameter():
    text = "\n".join(f"* item {i} of the list that we have with the things" for i in range(60))
    assert _reasons("gopher_quality", {"a": text})["a"] is None
    assert _reasons("gopher_quality", {"a": text}, bullets=["*"])["a"] == "too_many_bullet_lines"


def test_gopher_quality_symbol_words_do_not_count():
    # 49 words and a lot of punctuation: still too few words
    text = " ".join(["the", "word", "--", "!!", "(", ")"] * 12)[:-1] + " and"
    assert _reasons("gopher_quality", {"a": text})["a"] == "too_few_words"


# ----------------------------------------------------------------------------- gopher_repetition

def test_gopher_repetition_rules_fire_with_their_reasons():
    lines = [s.strip() + "." for s in GOOD_PAGE.replace("\n", " ").split(".") if s.strip()]
    cases = {
        "good": GOOD_PAGE,
        "dup_para_ratio": "\n\n".join(lines + ["Share this."] * 6),
        "dup_para_char_ratio": "\n\n".join([GOOD] * 3 + lines[:4]),
        "dup_line_ratio": "\n".join(lines[:6] + ["Read more."] * 5),
        "dup_line_char_ratio": "\n".join(lines + [GOOD.strip()] * 3),
        "top_2gram_ratio": " ".join(["click here"] * 40 + lines),
        "dup_5gram_ratio": GOOD_PAGE + GOOD_PAGE.replace("\n", " "),
        "empty": "",
    }
    got = _reasons("gopher_repetition", cases)
    assert got == {k: (None if k == "good" else k) for k in cases}


def test_gopher_repetition_thresholds_are_parameters():
    text = " ".join(["click here"] * 40) + " " + GOOD_PAGE
    assert _reasons("gopher_repetition", {"a": text})["a"] == "top_2gram_ratio"
    loose = _reasons("gopher_repetition", {"a": text}, max_top_ngram_char_ratio={},
                     max_dup_ngram_char_ratio={})
    assert loose["a"] is None
    with pytest.raises(UserError, match="at least 2"):
        _build("gopher_repetition", max_top_ngram_char_ratio={1: 0.5})


def test_gopher_repetition_dup_ngrams_jump_past_a_repeat():
    from stages.heuristics.gopher_repetition import NGrams

    words = "a b c d e a b c d e a b c d e".split()
    # repeats at 5 and 10: each covers 5 characters of 15 (no separators) -> 10/15;
    # every word from the 6th on is in a repeated 5-gram, so the bound is 10/15 too
    m: dict = {}
    NGrams(words, 15, [], [5, 6]).fill(m, "dup_6gram_ratio")
    # the 6-gram at 5 repeats the one at 0, and the scan jumps past the end
    assert m == {"dup_5gram_ratio": 10 / 15, "dup_6gram_ratio": 6 / 15}
    text = " ".join(words)  # 10 of its 29 characters
    assert _reasons("gopher_repetition", {"a": text}, max_top_ngram_char_ratio={},
                    max_dup_ngram_char_ratio={5: 0.34})["a"] == "dup_5gram_ratio"
    assert _reasons("gopher_repetition", {"a": text}, max_top_ngram_char_ratio={},
                    max_dup_ngram_char_ratio={5: 0.35})["a"] is None


# ----------------------------------------------------------------------------- c4

def test_c4_cleans_lines_and_keeps_the_rest():
    kept = [f"Sentence number {i} is here, and it ends well." for i in range(5)]
    text = "\n".join([
        "Home | About | Contact",                      # no terminal punctuation
        kept[0], "Too short.",                         # fewer than 3 words
        kept[1], "Please enable JavaScript to view this page.",
        kept[2], "This site uses cookies to improve your experience.",
        kept[3][:-1] + "[1].", "Wait for it...", "x" * 1001 + " is a long word.", kept[4],
    ])
    out, stats = _run(_build("c4"), _table({"a": text}))
    assert out.column("text").to_pylist() == ["\n".join(kept)]  # [1] removed
    assert stats.n_dropped == 0
    out, _ = _run(_build("c4", rewrite_text=False), _table({"a": text}))
    assert out.column("text").to_pylist() == [text]


def test_c4_document_rules_fire_with_their_reasons():
    five = " ".join(f"This is sentence {i}." for i in range(5))
    cases = {
        "good": five,
        "too_few_sentences": "One sentence here. And a second one!",
        "lorem_ipsum": five + "\nLorem ipsum dolor sit amet, consectetur.",
        "curly_bracket": five + "\nfunction f() { return 1; } is code.",
    }
    assert _reasons("c4", cases) == {k: (None if k == "good" else k) for k in cases}
    assert _reasons("c4", cases, min_sentences=None)["too_few_sentences"] is None
    assert _reasons("c4", cases, drop_curly_bracket=False)["curly_bracket"] is None


def test_c4_counts_sentences_like_spacy():
    # abbreviations and decimals do not end sentences; '...' does not either
    one = "Mr. Smith paid $3.50 for the e.g. apples at 5 p.m. on Main St. yesterday."
    assert _reasons("c4", {"a": "\n".join([one] * 4)})["a"] == "too_few_sentences"
    assert _reasons("c4", {"a": "\n".join([one] * 5)})["a"] is None


def test_c4_annotate_writes_the_text_documents_have_wherever_they_are_kept():
    """Annotate mode measures as if the document rules were off: a page dropped for lorem
    ipsum gets the text it has with drop_lorem_ipsum false (what later stages and
    materialize must see); a page with no line left keeps its own text."""
    five = " ".join(f"This is sentence {i}." for i in range(5))
    texts = {"lorem": f"Nav menu\n{five}\nLorem ipsum dolor sit amet, consectetur.",
             "no_line": "Nav menu\nHome", "good": "\n".join(["Nav menu", GOOD_PAGE])}
    out, _ = _run(_build("c4", mode="annotate"), _table(texts))
    rows = {r["id"]: r for r in out.to_pylist()}
    assert rows["lorem"]["text"] == f"{five}\nLorem ipsum dolor sit amet, consectetur."
    assert (rows["lorem"]["c4_reason"], rows["lorem"]["c4_lorem_ipsum_line"]) == ("lorem_ipsum", 2)
    assert rows["no_line"]["text"] == texts["no_line"]
    assert (rows["no_line"]["c4_reason"], rows["no_line"]["c4_chars"]) == ("too_few_sentences", 0)
    assert rows["good"]["text"] == GOOD_PAGE.strip() and rows["good"]["c4_reason"] is None
    kept, _ = _run(_build("c4", drop_lorem_ipsum=False), _table({"lorem": texts["lorem"]}))
    assert kept.column("text").to_pylist() == [rows["lorem"]["text"]]


def test_c4_bad_words_from_a_file(tmp_path):
    words = tmp_path / "bad.txt"
    words.write_text("darn\nheck no\n\n", encoding="utf-8")
    texts = {"clean": GOOD_PAGE, "bad": GOOD_PAGE + "Well, darn, that was late.",
             "phrase": GOOD_PAGE + "Heck no, she said to the man.",
             "inside": GOOD_PAGE + "The darnest thing happened at the library."}
    got = _reasons("c4", texts, bad_words_file=str(words))
    assert got == {"clean": None, "bad": "bad_words", "phrase": "bad_words", "inside": None}
    got = _reasons("c4", texts, bad_words_file=str(words), bad_words_match="substring")
    assert got["inside"] == "bad_words"
    with pytest.raises(UserError, match="cannot read bad_words_file"):
        _build("c4", bad_words_file=str(tmp_path / "missing.txt"))


def test_c4_bad_words_per_language(tmp_path):
    (tmp_path / "zh").write_text("坏词\n", encoding="utf-8")
    (tmp_path / "en").write_text("darn\n", encoding="utf-8")
    zh = "今天天气很好，我们去公园散步。" * 3 + "他说了一个坏词。"
    rows = {"zh": (zh, "zh"), "en": (GOOD_PAGE + "Well, darn, that was late.", "en"),
            "fr": (GOOD_PAGE + "Well, darn, that was late.", "fr")}
    table = pa.table({"id": list(rows), "text": [t for t, _ in rows.values()],
                      "language": [lang for _, lang in rows.values()]})
    files = {"zh": str(tmp_path / "zh"), "en": str(tmp_path / "en")}

    def run(**params):  # the line rules are English ones: off for the Chinese page
        out, _ = _run(_build("c4", mode="annotate", bad_words_file=files, min_sentences=None,
                             min_words_per_line=None, drop_lines_without_terminal_punct=False,
                             **params), table)
        return {r["id"]: (r["c4_reason"], r["c4_bad_words"]) for r in out.to_pylist()}

    # zh lists match anywhere (as C4: no spaces between words), others between non-words;
    # a language without a list is not checked (null), unless there is a `default` list
    assert run() == {"zh": ("bad_words", True), "en": ("bad_words", True), "fr": (None, None)}
    assert run(bad_words_match="word")["zh"] == (None, False)
    files["default"] = files["en"]
    assert run()["fr"] == ("bad_words", True)
    with pytest.raises(UserError, match="needs column\\(s\\) language"):
        _run(_build("c4", bad_words_file=files), table.drop_columns(["language"]))


def test_c4_bad_words_keep_fraction_is_a_hash_of_the_id(real_docs, tmp_path):
    """mC4 keeps some pages with bad words; which ones depends on the seed and the id only,
    so not on batches, order or workers."""
    words = tmp_path / "bad.txt"
    words.write_text("sex\nkill\ndrug\nhell\nkrieg\nnazi\nterror\nmord\n", encoding="utf-8")
    table = real_docs.select(["id", "text"])
    out, _ = _run(_build("c4", mode="annotate", bad_words_file=str(words)), table)
    bad = out.filter(pa.compute.equal(out.column("c4_reason"), "bad_words"))
    assert bad.num_rows >= 80

    def kept(table: pa.Table, **params) -> set[str]:
        out, stats = _run(_build("c4", bad_words_file=str(words), **params), table)
        return set(out.column("id").to_pylist())

    half = kept(bad, bad_words_keep_fraction=0.5)
    assert abs(len(half) - bad.num_rows / 2) <= 4 * (bad.num_rows / 4) ** 0.5  # binomial
    reordered = pa.concat_tables([bad.slice(40), bad.slice(0, 40)])  # another batch split
    assert kept(reordered, bad_words_keep_fraction=0.5) == half
    assert kept(bad, bad_words_keep_fraction=0.5, bad_words_seed=1) != half
    assert kept(bad, bad_words_keep_fraction=0.25) < half  # a smaller share, nested
    assert kept(bad, bad_words_keep_fraction=1.0) == set(bad.column("id").to_pylist())
    assert kept(bad) == set()


# ----------------------------------------------------------------------------- fineweb_quality

def test_fineweb_quality_rules_fire_with_their_reasons():
    menu = "\n".join(f"Menu entry number {i} of the site" for i in range(40))
    cases = {
        "good": GOOD_PAGE,
        "few_terminal_punct_lines": menu + "\n" + GOOD,
        "too_many_short_lines": GOOD + "\n".join(f"Item {i}." for i in range(10)),
        "too_many_dup_line_chars": GOOD_PAGE + GOOD,
        "too_many_newlines": "\n".join(f"Incomprehensibilities_number_{i}." for i in range(9)),
        "empty": "\n \n",
    }
    got = _reasons("fineweb_quality", cases, max_short_line_ratio=0.67)
    assert got == {k: (None if k == "good" else k) for k in cases}


def test_fineweb_quality_zero_punctuation_switch():
    text = "\n".join(f"Eine Zeile ohne Satzzeichen Nummer {i} am Ende" for i in range(10))
    assert _reasons("fineweb_quality", {"a": text})["a"] == "few_terminal_punct_lines"
    assert _reasons("fineweb_quality", {"a": text}, keep_when_no_terminal_punct=True)["a"] is None


# ----------------------------------------------------------------------------- char_ratio

def test_char_ratio_rules_fire_with_their_reasons():
    cases = {"good": GOOD, "too_few_letters": "-- == ** ++ ## " * 5 + "ok",
             "too_many_digits": "Prices: 12345 67890 13579 24680 11223 in total",
             "too_many_uppercase": "BUY NOW CHEAP PILLS FREE SHIPPING today",
             "too_much_whitespace": "a" + " " * 50 + "b", "empty": "   "}
    got = _reasons("char_ratio", cases, min_letter_ratio=0.3, max_digit_ratio=0.3,
                   max_uppercase_ratio=0.5, max_whitespace_ratio=0.5)
    assert got == {k: (None if k == "good" else k) for k in cases}
    assert set(_reasons("char_ratio", cases).values()) == {None}  # all rules off by default


def test_char_ratio_punctuation_counts_symbols():
    got = _reasons("char_ratio", {"a": "$$$ +++ ||| text", "b": GOOD}, max_punctuation_ratio=0.3)
    assert got == {"a": "too_many_punctuation", "b": None}


# ----------------------------------------------------------------------------- on real text

@pytest.mark.parametrize("name", ["gopher_quality", "gopher_repetition", "c4",
                                  "fineweb_quality"])
def test_filters_on_real_text_drop_some_keep_some_and_annotate_matches(name, real_docs):
    table = real_docs.select(["id", "text"]).slice(0, 400)
    filtered, fstats = _run(_build(name), table)
    annotated, _ = _run(_build(name, mode="annotate"), table)
    assert 0 < filtered.num_rows < table.num_rows
    assert len(fstats.dropped) >= 2  # more than one rule fires on real pages
    reasons = annotated.column(f"{name}_reason").to_pylist()
    assert Counter(r for r in reasons if r) == fstats.dropped
    kept = annotated.filter(pa.compute.is_null(annotated.column(f"{name}_reason")))
    measures = list(_build(name, mode="annotate").measure_columns())
    assert measures and set(measures) <= set(annotated.column_names)
    assert kept.drop_columns([f"{name}_reason", *measures]).equals(filtered)


# ----------------------------------------------------------------------------- tokenizers

def test_tokenizer_by_import_path_and_registration(tmp_path, monkeypatch):
    (tmp_path / "mysplit.py").write_text(
        "def per_char(text):\n    return [c for c in text if not c.isspace()]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    text = "日本語の文章です。" * 10  # no spaces: one word with whitespace splitting
    assert _reasons("gopher_quality", {"a": text}, tokenizer="whitespace")["a"] == "too_few_words"
    got = _reasons("gopher_quality", {"a": text}, tokenizer="mysplit:per_char", min_stop_words=None,
                   min_avg_word_length=None)
    assert got["a"] is None  # 80 one-character words
    from stages.text.words import TOKENIZERS, get_tokenizer, register_tokenizer

    register_tokenizer("chars_test", lambda t: list(t.replace(" ", "")))
    try:
        assert get_tokenizer("chars_test")("a b") == ["a", "b"]
    finally:
        TOKENIZERS.pop("chars_test")
        get_tokenizer.cache_clear()
    with pytest.raises(UserError, match="unknown tokenizer"):
        _build("gopher_quality", tokenizer="nope")
    with pytest.raises(UserError, match="cannot import"):
        _build("fineweb_quality", tokenizer="nomodule_xyz:split")


@pytest.mark.parametrize("name", ["gopher_quality", "gopher_repetition", "c4",
                                  "fineweb_quality"])
def test_no_word_cache_outlives_a_task(name):
    """The word-list memo, the chunk -> words cache and the word kinds are emptied at
    the start of each task: kept, a reused worker held every earlier task's words and
    grew about 4 MB a task on the split JSONL corpus (docs/benchmarks.md)."""
    from stages.text import words, words_en

    st = _build(name)
    texts = {"a": "The cat sat on the mat. It was a sunny day, and all was well.\n" * 3}
    first = _run(st, _table(texts))[0]
    words.get_tokenizer(words.DEFAULT_TOKENIZER)(texts["a"])
    words.word_kind("cat")
    assert any(words._MEMOS) and words_en._CACHE and words._WORD_KIND
    st.begin_task(TaskContext(Path("."), "main", 1, "test"))
    assert not any(words._MEMOS) and not words_en._CACHE and not words._WORD_KIND
    assert _run(st, _table(texts))[0].equals(first)  # the same decisions, cold or warm


@pytest.mark.parametrize("text,tokens", [
    ("Don't stop, it's 5 p.m. in the U.S.!", ["Do", "n't", "stop", ",", "it", "'s", "5", "p.m.",
                                            "in", "the", "U.S.", "!"]),
    ("(see https://example.com/a?b=1).", ["(", "see", "https://example.com/a?b=1", ")", "."]),
    ("well-known 2020-01-01 COVID-19 10km $5", ["well", "-", "known", "2020", "-", "01", "-",
                                               "01", "COVID-19", "10", "km", "$", "5"]),
    ("z.B. end.The wow!! ...and", ["z.", "B.", "end", ".", "The", "wow", "!", "!", "...", "and"]),
    ("Genre(s): im Jahr", ["Genre(s", "):", "i", "m", "Jahr"]),
])
def test_spacy_compat_splits(text, tokens):
    """Expected tokens are those of spaCy 3.8's blank English tokenizer."""
    from stages.text.words_en import split_words

    assert split_words(text) == tokens


def test_sentence_count_follows_the_sentencizer_rule():
    from stages.text.words_en import sentence_count, split_words

    assert sentence_count(split_words("One. Two! Three? \"Four.\" Five...")) == 5
    assert sentence_count(split_words("No end")) == 1
    assert sentence_count([]) == 0


# ----------------------------------------------------------------------------- in a pipeline

def test_heuristic_chain_is_byte_identical_across_workers(tmp_path, real_docs):
    """The four filters in a real run: same shards with 1 and 2 workers (caches are per
    process and must not change any output), every input document accounted for."""
    import hashlib

    from pipelines import run_pipeline
    from pipelines.config import JsonlInput, LocalExecutor, OutputConfig, PipelineConfig

    rows = real_docs.select(["id", "text", "url"]).slice(0, 300).to_pylist()
    (tmp_path / "in").mkdir()
    for i in range(3):
        (tmp_path / "in" / f"part-{i}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in rows[i::3]), encoding="utf-8")

    def run(workers: int):
        cfg = PipelineConfig(
            input=JsonlInput(paths=[str(tmp_path / "in" / "*.jsonl")]),
            output=OutputConfig(path=str(tmp_path / f"w{workers}")),
            executor=LocalExecutor(workers=workers),
            stages=[make_spec("gopher_quality"), make_spec("gopher_repetition"),
                    make_spec("c4"), make_spec("fineweb_quality")])
        return run_pipeline(cfg)

    one, two = run(1), run(2)
    digest = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
              for p in sorted((one.root / "data").glob("*.parquet"))}
    assert digest == {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                      for p in sorted((two.root / "data").glob("*.parquet"))}
    stages = json.loads(one.stats_json.read_text())["stages"]
    dropped = sum(sum(stages[s]["dropped"].values()) for s in
                  ("gopher_quality", "gopher_repetition", "c4", "fineweb_quality"))
    assert stages["read"]["docs_out"] == 300
    assert stages["write"]["docs_out"] + dropped == 300 and stages["write"]["docs_out"] > 0
