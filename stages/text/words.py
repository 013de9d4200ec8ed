"""Text helpers shared by the heuristic filters: word splitting and character classes.

Word splitting is pluggable. Filters take a ``tokenizer`` parameter that names an
entry of ``TOKENIZERS`` or gives an import path ``module:function`` (a function from
text to a list of words), so a splitter for a language without spaces (jieba,
a spaCy language, ...) plugs in without touching this module, on every executor:

    # mypkg/words.py
    def split_zh(text: str) -> list[str]:
        import jieba
        return [w for w in jieba.cut(text) if w.strip()]

    # pipeline.yaml
    - stage: gopher_quality
      tokenizer: mypkg.words:split_zh

``tokenizer: auto`` picks, per document, the segmenter registered for its ``language``
column (``splitter_for``; the table is in stages/text/segmenters.py, docs/filters.md).

``register_tokenizer(name, fn)`` adds a short name within one process (tests,
notebooks). The default, ``spacy_compat``, makes the splits of spaCy's blank
English tokenizer (what datatrove's filters use) at a fraction of its cost; see
``stages/text/words_en.py``.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from functools import lru_cache

from pipelines.errors import UserError
from pipelines.lazy import lazy_module
from stages.text import segmenters
from stages.text.words_en import SENTENCE_END, clear_chunk_cache
from stages.text.words_en import split_words as split_words_spacy_compat

regex = lazy_module("regex")

Splitter = Callable[[str], list[str]]

_WORD_OR_PUNCT = re.compile(r"\w+(?:['’\-]\w+)*|[^\w\s]+", re.UNICODE)


def split_words_regex(text: str) -> list[str]:
    """Words and punctuation runs, e.g. "Hi, it's 5..." -> [Hi , it's 5 ...]."""
    return _WORD_OR_PUNCT.findall(text)


def split_whitespace(text: str) -> list[str]:
    return text.split()


TOKENIZERS: dict[str, Splitter] = {
    "spacy_compat": split_words_spacy_compat,
    "regex": split_words_regex,
    "whitespace": split_whitespace,
    "unicode_words": segmenters.split_unicode_words,
}
DEFAULT_TOKENIZER = "spacy_compat"
AUTO = "auto"  # per document, the segmenter of its `language` (stages/text/segmenters.py)
TOKENIZER_HELP = ("word splitter: " + ", ".join(TOKENIZERS)
                  + ", an import path module:function (text -> list of words), or auto: "
                  "per document by its `language` column (" + segmenters.table_summary()
                  + "; extra `segmenters`)")


def register_tokenizer(name: str, fn: Splitter) -> None:
    """Make ``fn`` available as ``tokenizer: name`` in this process."""
    TOKENIZERS[name] = fn
    get_tokenizer.cache_clear()


@lru_cache(maxsize=None)
def get_tokenizer(name: str, memoize: bool = True) -> Splitter:
    """The splitter registered as ``name`` or found at import path ``module:function``.

    With ``memoize``, the word lists of the last ``MEMO_SIZE`` texts are kept, so the
    filters of one chain (which see the same batch one after the other) split each
    text once; the returned lists must not be modified.
    """
    fn = _find_tokenizer(name)
    return _memoized(fn) if memoize else fn


def splitter_for(name: str, memoize: bool = True) -> Callable[[str | None], Splitter]:
    """language -> the splitter for its documents: the segmenter registered for it with
    ``tokenizer: auto`` (loaded on first use, once per process), else ``name``'s."""
    if name != AUTO:
        fixed = get_tokenizer(name, memoize)
        return lambda language: fixed
    segmenters.check_installed()  # now, not on a language's first document
    default = get_tokenizer(DEFAULT_TOKENIZER, memoize)
    by_language: dict[str | None, Splitter] = {}

    def for_language(language: str | None) -> Splitter:
        fn = by_language.get(language)
        if fn is None:
            seg = segmenters.segmenter_name(language)
            fn = default if seg is None else _segmenter(seg, memoize)
            by_language[language] = fn
        return fn

    return for_language


@lru_cache(maxsize=None)
def _segmenter(name: str, memoize: bool) -> Splitter:
    fn = segmenters.load(name)
    return _memoized(fn) if memoize else fn


def uses_language(name: str) -> bool:
    """Whether the tokenizer ``name`` reads the `language` column."""
    return name == AUTO


MEMO_SIZE = 1024  # > the default batch of 256 documents
_MEMOS: list[dict[str, list[str]]] = []  # every memo of this process, emptied per task


def clear_word_caches() -> None:
    """Empty this module's caches, called by the filters that split words from their
    ``begin_task``: the word-list memos, ``words_en``'s chunk -> words cache and the
    word kinds. They save work within a task (the filters of a chain see the same
    batch; a corpus repeats its words); kept from task to task they held every earlier
    task's texts and words, so a reused worker grew task after task: 4 MB a task on the
    22 pieces of the split JSONL corpus (gopher_quality + gopher_repetition, one
    process: 113 -> 170-180 MB; emptied per task 110-128 MB), growth a short sample of
    a few tasks a worker cannot show (``thresher plan``). Emptying them costs the next
    task its warm start, within the noise there (docs/benchmarks.md, "The three gaps")."""
    for memo in _MEMOS:
        memo.clear()
    _WORD_KIND.clear()
    clear_chunk_cache()


def _memoized(fn: Splitter) -> Splitter:
    memo: dict[str, list[str]] = {}
    _MEMOS.append(memo)

    def split(text: str) -> list[str]:
        words = memo.get(text)
        if words is None:
            if len(memo) >= MEMO_SIZE:
                del memo[next(iter(memo))]  # the oldest
            words = memo[text] = fn(text)
        return words

    return split


def _find_tokenizer(name: str) -> Splitter:
    if name == AUTO:
        raise UserError("tokenizer auto picks a splitter per document: use splitter_for()")
    if name in TOKENIZERS:
        return TOKENIZERS[name]
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise UserError(f"tokenizer {name!r}: cannot import it: {e}") from None
        if not callable(fn):
            raise UserError(f"tokenizer {name!r} is not a function")
        return fn
    raise UserError(f"unknown tokenizer {name!r}; expected one of: {', '.join(TOKENIZERS)} "
                    "or an import path module:function")


_SYMBOL_WORD = None  # compiled on first use: the import stays cheap for `thresher validate`
_WORD_KIND: dict[str, int] = {}
SYMBOL, LETTERS, OTHER = 0, 1, 2  # word kinds


def is_symbol_word(word: str) -> bool:
    """True if the word is made only of punctuation, symbols or control characters."""
    global _SYMBOL_WORD
    if _SYMBOL_WORD is None:
        _SYMBOL_WORD = regex.compile(r"[\p{P}\p{S}\p{C}]+")
    return _SYMBOL_WORD.fullmatch(word) is not None


def word_kind(word: str) -> int:
    """SYMBOL (only punctuation/symbols), LETTERS (has a letter) or OTHER; memoised."""
    kind = _WORD_KIND.get(word)
    if kind is None:
        if is_symbol_word(word):
            kind = SYMBOL
        elif word.isalpha() or any(ch.isalpha() for ch in word):
            kind = LETTERS
        else:
            kind = OTHER
        if len(_WORD_KIND) > 500_000:
            _WORD_KIND.clear()
        _WORD_KIND[word] = kind
    return kind


# Unicode's Sentence_Terminal characters: . ! ? and their equivalents in other scripts
TERMINAL_PUNCTUATION = SENTENCE_END


def duplicates(items: list[str]) -> tuple[int, int]:
    """(number of items equal to an earlier item, their total characters)."""
    seen: set[str] = set()
    n = chars = 0
    for x in items:
        if x in seen:
            n += 1
            chars += len(x)
        else:
            seen.add(x)
    return n, chars
