"""Word segmenters per language, for ``tokenizer: auto``.

Chinese, Japanese, Thai, Khmer, Lao, Burmese and Tibetan are written without spaces
between words, so the word-based rules (Gopher's word counts and mean word length,
repetition n-grams, C4's words per line, MinHash word shingles) need a segmenter. With
``tokenizer: auto`` a stage reads each document's ``language`` column (written by
``langid``) and splits its text with the segmenter ``LANGUAGES`` registers for that
language; any other language (and a document without one) gets ``DEFAULT``, the
splitter the stages use by default. Space-separated languages for which datatrove runs
spaCy's own rules, and whose words those rules cut differently from the English ones of
``DEFAULT`` (German and Dutch compounds with hyphens, French elisions, ...), get spaCy's
tokenizer of the language (``spacy_de``, ...).

The segmenters come from well-kept libraries in the optional extra ``segmenters``
(``pip install 'thresher[segmenters]'``). Each loads once per process, on the first
document of its language, and nothing downloads at run time: every library listed
ships its dictionary or model in its wheel. A library that is not installed stops
the stage with a one-line error naming the extra.

``unicode_words`` (no library) splits at the default word boundaries of Unicode
(UAX #29, the ``regex`` module's ``(?w)\\b``): for Han, kana, Thai, Lao, Khmer and
Burmese letters that means one character (with its combining marks) per word, and
for Tibetan one syllable (letters between tsheg marks), with Burmese cut into
syllables. It is what Tibetan and Dzongkha get (botok, datatrove's Tibetan segmenter,
downloads its dictionary at run time) and a name any stage accepts.

Word lists follow datatrove's word tokenizers (the FineWeb-2 reference) where the
same library is used: surface strings, whitespace-only tokens dropped, punctuation
kept as tokens. docs/filters.md reports the agreement per language.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from pipelines.errors import UserError
from pipelines.lazy import lazy_module

regex = lazy_module("regex")

Splitter = Callable[[str], list[str]]
EXTRA = "segmenters"
DEFAULT = "spacy_compat"  # stages/text/words.py: the default tokenizer of every stage


def _strip(tokens) -> list[str]:
    """Tokens without surrounding whitespace, whitespace-only ones dropped."""
    out = []
    for t in tokens:
        t = t.strip()
        if t:
            out.append(t)
    return out


# ---------------------------------------------------------------- the segmenters

def _jieba() -> Splitter:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tok = jieba.Tokenizer()
    tok.initialize()  # the dictionary loads now, not on the first document
    cut = tok.cut

    def split(text: str) -> list[str]:
        return _strip(cut(text))  # accurate mode, HMM for unknown words (spaCy's "jieba")

    return split


def _sudachi() -> Splitter:
    from sudachipy import Dictionary, SplitMode

    tokenize = Dictionary(dict="core").tokenizer(mode=SplitMode.A).tokenize
    limit = 40_000  # Sudachi refuses inputs over 49,149 bytes: split on line ends below it

    def split(text: str) -> list[str]:
        out: list[str] = []
        for chunk in _byte_chunks(text, limit):
            out += _strip(m.surface() for m in tokenize(chunk))
        return out

    return split


def _byte_chunks(text: str, limit: int) -> list[str]:
    """``text`` cut (at a newline where one is near) into pieces of at most ``limit`` bytes."""
    if len(text) * 4 <= limit or len(text.encode("utf-8")) <= limit:
        return [text]
    out, start = [], 0
    while start < len(text):
        end = start + limit // 4  # 4 bytes a character at most: the piece fits
        if end < len(text):
            nl = text.rfind("\n", start, end)
            end = nl + 1 if nl > start else end
        out.append(text[start:end])
        start = end
    return out


def _kiwi() -> Splitter:
    from kiwipiepy import Kiwi

    kiwi = Kiwi()  # the model kiwipiepy_model ships (datatrove asks for "sbg", no longer shipped)
    long_numbers = regex.compile(r"[0-9,]{20,}")  # kiwi mis-handles very long numbers

    def split(text: str) -> list[str]:
        text = long_numbers.sub("", text)
        return _strip(text[t.start:t.end] for t in kiwi.tokenize(text))

    return split


def _pythainlp() -> Splitter:
    os.environ.setdefault("PYTHAINLP_READ_ONLY", "1")  # never write a data directory
    from pythainlp.tokenize import word_tokenize

    def split(text: str) -> list[str]:
        return _strip(word_tokenize(text, engine="newmm-safe", keep_whitespace=False))

    return split


def _pyvi() -> Splitter:
    from pyvi import ViTokenizer

    def split(text: str) -> list[str]:
        words, _ = ViTokenizer.spacy_tokenize(text)  # syllables joined by "_" into words
        return _strip(w.replace("_", " ") for w in words)  # as spaCy's "vi" gives them

    return split


def _khmer_nltk() -> Splitter:
    from khmernltk.utils.log_utils import logger  # sets itself to DEBUG when imported

    logger.setLevel(logging.WARNING)  # before the model loads and says so
    from khmernltk import word_tokenize

    def split(text: str) -> list[str]:
        return _strip(word_tokenize(text))

    return split


def _laonlp() -> Splitter:
    from laonlp.tokenize import word_tokenize

    def split(text: str) -> list[str]:
        return _strip(word_tokenize(text))

    return split




def _spacy(lang: str) -> Callable[[], Splitter]:
    """spaCy's rule tokenizer of ``lang`` (a blank pipeline: no model), as datatrove's
    SpaCyTokenizer runs it; each call inside a memory zone, so its string store does
    not grow with the corpus."""
    def load() -> Splitter:
        import spacy

        nlp = spacy.blank(lang)
        tokenizer, zone = nlp.tokenizer, nlp.memory_zone

        def split(text: str) -> list[str]:
            with zone():
                return _strip(t.text for t in tokenizer(text))

        return split

    return load


def _pyidaungsu() -> Splitter:
    import pyidaungsu

    def split(text: str) -> list[str]:
        return _strip(pyidaungsu.tokenize(text, form="word"))  # its CRF word model

    return split


_MYANMAR_RUN = r"([\u1000-\u109F\uA9E0-\uA9FF\uAA60-\uAA7F]+)"
# a Burmese syllable starts at a consonant, independent vowel or digit that is not
# stacked under the previous one (after U+1039) nor killed by asat (U+103A) or stacked
_MYANMAR_SYLLABLE = r"(?<![\u1039])(?=[\u1000-\u102A\u103F\u104A-\u104F](?![\u1039\u103A]))"
_TSHEG = frozenset("\u0f0b\u0f0c")  # Tibetan syllable marks: they end the syllable before


def split_unicode_words(text: str) -> list[str]:
    """Unicode default word boundaries (UAX #29), whitespace dropped; no library needed.

    Two script rules on top: a Tibetan tsheg stays with its syllable, and Burmese
    (whose letters UAX #29 leaves to dictionaries) is cut into syllables.
    """
    out: list[str] = []
    for i, run in enumerate(regex.split(_MYANMAR_RUN, text)):
        if i % 2:
            out += [s for s in regex.split(_MYANMAR_SYLLABLE, run) if s]
            continue
        for tok in regex.split(r"(?w)\b", run):
            tok = tok.strip()
            if not tok:
                continue
            if tok in _TSHEG and out:
                out[-1] += tok
            else:
                out.append(tok)
    return out


@dataclass(frozen=True)
class Segmenter:
    """A word segmenter: the library it needs (None: none) and how to load it."""

    name: str
    library: str | None  # the module to import (checked before loading)
    package: str | None  # its PyPI name
    load: Callable[[], Splitter]
    note: str


SEGMENTERS: dict[str, Segmenter] = {s.name: s for s in (
    Segmenter("jieba", "jieba", "jieba", _jieba, "jieba accurate mode, HMM on"),
    Segmenter("sudachi", "sudachipy", "sudachipy + sudachidict_core", _sudachi,
              "SudachiPy, core dictionary, split mode A"),
    Segmenter("kiwi", "kiwipiepy", "kiwipiepy", _kiwi, "Kiwi morphemes as surface strings"),
    Segmenter("pythainlp", "pythainlp", "pythainlp", _pythainlp,
              "PyThaiNLP newmm-safe (dictionary maximal matching, bounded on long runs)"),
    Segmenter("pyvi", "pyvi", "pyvi", _pyvi, "pyvi: syllables joined into words"),
    Segmenter("khmer_nltk", "khmernltk", "khmer-nltk", _khmer_nltk, "khmer-nltk CRF"),
    Segmenter("laonlp", "laonlp", "laonlp", _laonlp, "LaoNLP dictionary maximal matching"),
    Segmenter("pyidaungsu", "pyidaungsu", "pyidaungsu-numpy2", _pyidaungsu,
              "pyidaungsu CRF word segmentation"),
    Segmenter("unicode_words", None, None, lambda: split_unicode_words,
              "Unicode word boundaries (UAX #29): a character or syllable per word"),
    *(Segmenter(f"spacy_{lang}", "spacy", "spacy", _spacy(lang),
                f"spaCy's {lang} tokenizer rules (blank pipeline)")
      for lang in ("ca", "da", "de", "el", "fi", "fr", "hu", "id", "it", "lt", "nb", "nl",
                   "pt", "ro", "sl", "sr", "sv", "tr")),
)}

#: language (fastText/GlotLID code; the part before ``_`` of ``zho_Hani`` style labels too)
#: -> segmenter name. Languages not listed get DEFAULT.
LANGUAGES: dict[str, str] = {
    "zh": "jieba", "cmn": "jieba", "zho": "jieba", "wuu": "jieba", "yue": "jieba",
    "gan": "jieba", "hak": "jieba", "nan": "jieba", "lzh": "jieba",
    "ja": "sudachi", "jpn": "sudachi",
    "ko": "kiwi", "kor": "kiwi",
    "th": "pythainlp", "tha": "pythainlp",
    "vi": "pyvi", "vie": "pyvi",
    "km": "khmer_nltk", "khm": "khmer_nltk",
    "lo": "laonlp", "lao": "laonlp",
    "my": "pyidaungsu", "mya": "pyidaungsu",
    "bo": "unicode_words", "bod": "unicode_words",  # botok downloads its dictionary at run time
    "dz": "unicode_words", "dzo": "unicode_words",  # Dzongkha: Tibetan script
    # space-separated languages whose spaCy rules (what datatrove's tokenizer for them
    # runs) split differently from spacy_compat's English ones: on 100 Leipzig
    # sentences each, spacy_compat agrees with them below 0.99 (de 0.943, nl 0.966, fr
    # 0.918, ca 0.872: hyphenated compounds, elisions, abbreviations); the others keep
    # DEFAULT, ten times faster (docs/filters.md)
    **{code: f"spacy_{sp}" for sp, codes in {
        "ca": ("ca", "cat"), "da": ("da", "dan"), "de": ("de", "deu"), "el": ("el", "ell"),
        "fi": ("fi", "fin"), "fr": ("fr", "fra"), "hu": ("hu", "hun"), "id": ("id", "ind"),
        "it": ("it", "ita"), "lt": ("lt", "lit"), "nb": ("nb", "nob", "no", "nn", "nno"),
        "nl": ("nl", "nld"), "pt": ("pt", "por"), "ro": ("ro", "ron"), "sl": ("sl", "slv"),
        "sr": ("sr", "srp"), "sv": ("sv", "swe"), "tr": ("tr", "tur")}.items()
       for code in codes},
}


def segmenter_name(language: str | None) -> str | None:
    """The segmenter registered for ``language`` (None: the default splitter)."""
    if not language:
        return None
    name = LANGUAGES.get(language)
    if name is None and "_" in language:  # zho_Hani, __label__ stripped GlotLID labels
        name = LANGUAGES.get(language.split("_", 1)[0])
    return name


_LOADED: dict[str, Splitter] = {}


def check_installed() -> None:
    """Raise a one-line error naming the extra when a segmenter's library is missing.

    Stages call it when they are set up with ``tokenizer: auto``, before any document:
    a segmenter that failed on its first document would fail every document of its
    language one by one (each an error), not the run.
    """
    missing = sorted({SEGMENTERS[n].package for n in set(LANGUAGES.values())
                      if SEGMENTERS[n].library is not None
                      and importlib.util.find_spec(SEGMENTERS[n].library) is None})
    if missing:
        raise UserError(f"tokenizer auto needs the word segmenters of the extra {EXTRA!r}; "
                        f"missing: {', '.join(missing)}: pip install 'thresher[{EXTRA}]'")


def load(name: str) -> Splitter:
    """The segmenter ``name``, loaded once per process."""
    fn = _LOADED.get(name)
    if fn is None:
        seg = SEGMENTERS[name]
        if seg.library is not None and importlib.util.find_spec(seg.library) is None:
            raise UserError(f"tokenizer auto: the {name} segmenter needs {seg.package}, "
                            f"which is not installed: pip install 'thresher[{EXTRA}]'")
        fn = _LOADED[name] = seg.load()
    return fn


def table_rows() -> list[tuple[str, str, str]]:
    """(languages, segmenter, what it is) rows of the language table, for the docs."""
    by_seg: dict[str, list[str]] = {}
    for lang, name in LANGUAGES.items():
        by_seg.setdefault("spacy_<lang>" if name.startswith("spacy_") else name, []).append(lang)
    rows = []
    for name, langs in by_seg.items():
        if name == "spacy_<lang>":
            rows.append((", ".join(langs), name, "spaCy's rule tokenizer of the language "
                         "(blank pipeline, no model; `spacy`), as datatrove's; no/nn use nb"))
            continue
        seg = SEGMENTERS[name]
        rows.append((", ".join(langs), name,
                     seg.note + (f" (`{seg.package}`)" if seg.package else "")))
    rows.append(("any other", DEFAULT, "spaCy-compatible English-rule splitter "
                                       "(stages/text/words_en.py)"))
    return rows


def table_summary() -> str:
    """One line: language codes -> segmenter, for parameter descriptions."""
    by_seg: dict[str, list[str]] = {}
    for lang, name in LANGUAGES.items():
        if len(lang) == 2 or lang in ("wuu", "yue"):
            key = "spacy_<lang>" if name.startswith("spacy_") else name
            by_seg.setdefault(key, []).append(lang)
    return "; ".join(f"{'/'.join(v)}: {k}" for k, v in by_seg.items()) + f"; others: {DEFAULT}"
