"""Word segmenters per language (stages/text/segmenters.py) and ``tokenizer: auto``.

Real text: the UDHR in nine languages written with few or no spaces
(tests/data/multilingual/udhr-9lang.jsonl) and Leipzig web sentences
(tests/data/lid/lingua-language-testdata.tar.xz).
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from pipelines.errors import UserError
from stages.text import segmenters as seg
from stages.text.words import DEFAULT_TOKENIZER, get_tokenizer, splitter_for

DATA = Path(__file__).parent / "data"
UDHR = {r["language"]: r["text"] for r in map(json.loads, (
    DATA / "multilingual" / "udhr-9lang.jsonl").read_text(encoding="utf-8").splitlines())}


def leipzig(lang: str, n: int = 200) -> list[str]:
    with tarfile.open(DATA / "lid" / "lingua-language-testdata.tar.xz") as t:
        f = t.extractfile(f"language-testdata/sentences/{lang}.txt")
        return f.read().decode("utf-8").splitlines()[:n]


def mean_length(words: list[str]) -> float:
    return sum(map(len, words)) / len(words)


# language -> (segmenter, bounds of the mean word length on the UDHR)
EXPECTED = {
    "zh": ("jieba", 1.2, 2.5), "ja": ("sudachi", 1.1, 2.5), "ko": ("kiwi", 1.0, 2.5),
    "th": ("pythainlp", 1.8, 5.0), "vi": ("pyvi", 3.0, 8.0), "km": ("khmer_nltk", 2.0, 8.0),
    "lo": ("laonlp", 2.0, 8.0), "my": ("pyidaungsu", 2.0, 8.0),
    "bo": ("unicode_words", 2.0, 6.0),
}


@pytest.mark.parametrize("lang", sorted(EXPECTED))
def test_each_language_gets_its_segmenter_and_real_words(lang):
    name, lo, hi = EXPECTED[lang]
    assert seg.segmenter_name(lang) == name
    text = UDHR[lang]
    words = seg.load(name)(text)
    assert lo <= mean_length(words) <= hi, (lang, mean_length(words), words[:20])
    assert all(w and w == w.strip() for w in words)
    # the words cover the text: nothing but whitespace is lost (Kiwi's morphemes of a
    # contracted syllable overlap; pyvi rewrites some Vietnamese punctuation)
    if lang not in ("ko", "vi"):
        assert "".join(words).replace(" ", "") == "".join(text.split()).replace(" ", "")
    if lang not in ("vi", "ko"):  # written without spaces: whitespace chunks are long
        assert mean_length(text.split()) > 2 * mean_length(words)


def test_auto_picks_by_language_and_defaults_elsewhere():
    split_for = splitter_for("auto")
    zh = "我们在北京大学学习自然语言处理。"
    assert split_for("zh")(zh) == ["我们", "在", "北京大学", "学习", "自然语言", "处理", "。"]
    assert split_for("cmn_Hani")(zh) == split_for("zh")(zh)  # GlotLID-style labels
    default = get_tokenizer(DEFAULT_TOKENIZER)
    english = "Hello, world. It's a test."
    for lang in ("en", "ru", None, "", "xx"):
        assert split_for(lang)(english) == default(english)
    assert split_for("zh") is split_for("zh")  # one splitter per language, memoised


def test_segmenters_load_once_per_process(monkeypatch):
    calls = []
    fake = seg.Segmenter("fake", None, None, lambda: calls.append(1) or str.split, "test")
    monkeypatch.setitem(seg.SEGMENTERS, "fake", fake)
    monkeypatch.delitem(seg._LOADED, "fake", raising=False)
    assert seg.load("fake") is seg.load("fake")
    assert calls == [1]


def test_missing_library_is_a_one_line_error_naming_the_extra(monkeypatch):
    missing = seg.Segmenter("nolib", "no_such_module_xyz", "no-such-package",
                            lambda: str.split, "test")
    monkeypatch.setitem(seg.SEGMENTERS, "nolib", missing)
    monkeypatch.setitem(seg.LANGUAGES, "zz", "nolib")
    with pytest.raises(UserError) as e:  # at setup, before any document
        splitter_for("auto")
    msg = str(e.value)
    assert "\n" not in msg and "thresher[segmenters]" in msg and "no-such-package" in msg
    with pytest.raises(UserError) as e:  # and if a library goes missing after that
        seg.load("nolib")
    assert "\n" not in str(e.value) and "thresher[segmenters]" in str(e.value)
    # a stage set up with tokenizer auto stops the run with that line
    from pipelines import stage as make_spec

    st = make_spec("gopher_quality", tokenizer="auto").build()
    with pytest.raises(UserError, match="no-such-package"):
        st.setup()


def test_unicode_fallback_script_rules():
    f = seg.split_unicode_words
    assert f("我们在北京。Hello world, it's 3.5 km") == [
        "我", "们", "在", "北", "京", "。", "Hello", "world", ",", "it's", "3.5", "km"]
    assert f("བོད་ཀྱི་སྐད་ཡིག") == ["བོད་", "ཀྱི་", "སྐད་", "ཡིག"]  # tsheg stays
    assert f("မြန်မာနိုင်ငံ") == ["မြန်", "မာ", "နိုင်", "ငံ"]  # Burmese syllables
    assert get_tokenizer("unicode_words")("a b") == ["a", "b"]


def test_sudachi_takes_texts_over_its_byte_limit():
    text = ("東京都に住んでいます。" * 2000 + "\n") * 3  # ~200 KB of UTF-8
    words = seg.load("sudachi")(text)
    assert words[:4] == ["東京", "都", "に", "住ん"]
    assert len(words) == 3 * 2000 * len(seg.load("sudachi")("東京都に住んでいます。"))


def test_spacy_rule_languages_keep_compounds_and_elisions_whole():
    """German, Dutch, French (and the other languages of spaCy's own rules) are split
    with those rules, not English ones: hyphenated compounds and elisions stay whole;
    English and Russian keep the default splitter."""
    assert seg.segmenter_name("de") == "spacy_de" == seg.segmenter_name("deu_Latn")
    assert seg.segmenter_name("no") == "spacy_nb"  # datatrove's choice for Norwegian
    assert seg.segmenter_name("en") is seg.segmenter_name("ru") is None
    de, nl, fr = (splitter_for("auto")(x) for x in ("de", "nl", "fr"))
    english = get_tokenizer(DEFAULT_TOKENIZER)
    text = "Die LiVE-CUP-Serie"
    assert de(text) == ["Die", "LiVE-CUP-Serie"] != english(text)
    assert nl("bel 0900-Hovenier") == ["bel", "0900-Hovenier"]
    assert fr("l'homme aujourd'hui")[-1] == "aujourd'hui"
    real = "\n".join(leipzig("de", 50))
    assert de(real) == de(real) and len(de(real)) < len(english(real))


def test_leipzig_sentences_segment_deterministically():
    for lang in ("zh", "ja", "th", "ko", "vi"):
        text = "\n".join(leipzig(lang, 50))
        split = seg.load(seg.segmenter_name(lang))
        assert split(text) == split(text)
        assert mean_length(split(text)) < 6, lang


# datatrove's word tokenizer for each language, where it loads here (docs/filters.md):
# zh is compared with spaCy's ChineseTokenizer on jieba, what datatrove means to use
# (its config override drops the ChineseTokenizer, so datatrove 0.10 does not segment)
PARITY = {"ja": 1.0, "th": 0.999, "km": 1.0, "lo": 1.0, "my": 1.0, "zh": 1.0, "vi": 0.98,
          # spaCy's own rules for these (English rules agreed 0.94 / 0.97 / 0.92)
          "de": 1.0, "nl": 1.0, "fr": 1.0, "nb": 1.0}


def _reference(lang: str):
    if lang == "zh":
        import spacy

        nlp = spacy.blank("zh", config={"nlp": {"tokenizer": {
            "@tokenizers": "spacy.zh.ChineseTokenizer", "segmenter": "jieba"}}})
        return lambda text: [t.text.strip() for t in nlp(text) if t.text.strip()]
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    return load_word_tokenizer(lang).word_tokenize


@pytest.mark.parametrize("lang", sorted(PARITY))
def test_word_lists_match_datatrove(lang):
    from difflib import SequenceMatcher

    pytest.importorskip("datatrove")
    text = UDHR[lang] if lang in ("km", "lo", "my") else "\n".join(leipzig(lang, 100))
    ours = seg.load(seg.segmenter_name(lang))(text)
    theirs = _reference(lang)(text)
    sm = SequenceMatcher(None, ours, theirs, autojunk=False)
    agree = sum(b.size for b in sm.get_matching_blocks()) / max(len(ours), len(theirs))
    assert agree >= PARITY[lang], (lang, agree)


def test_thresher_stages_shows_the_language_table():
    from pipelines.reference import render_markdown, render_text

    text, md = render_text(), render_markdown()
    for lang in ("zh", "ja", "ko", "th", "vi", "km", "lo", "my", "bo", "de", "nl"):
        name = seg.segmenter_name(lang)
        shown = "spacy_<lang>" if name.startswith("spacy_") else name
        row = next(r for r in seg.table_rows() if shown == r[1])
        assert lang in row[0].split(", ")
        assert f"    {shown}: {row[0]}" in text
        assert f"| {row[0]} | `{shown}` |" in md
    assert "| any other | `spacy_compat` |" in md


def test_sentence_terminal_table_is_the_unicode_property():
    """words_en writes Sentence_Terminal out as ranges (its import used to find them in all
    of Unicode); the `regex` module's property is the reference."""
    import regex

    from stages.text.words_en import SENTENCE_END

    every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    assert SENTENCE_END == frozenset(regex.findall(r"\p{Sentence_Terminal}", every))
    assert {".", "!", "?", "。", "।"} <= SENTENCE_END and "," not in SENTENCE_END
