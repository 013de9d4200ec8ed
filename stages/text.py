"""Text helpers shared by heuristic filters: word splitting, punctuation, stop words.

Word splitting is pluggable: filters take a `tokenizer` parameter naming an
entry of ``TOKENIZERS``. The default splits on Unicode word characters and runs
of punctuation, which is right for space-delimited scripts; languages without
spaces (zh, ja, th, ...) need a dedicated splitter registered here.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Callable

_WORD_OR_PUNCT = re.compile(r"\w+(?:['’\-]\w+)*|[^\w\s]+", re.UNICODE)


def split_words_regex(text: str) -> list[str]:
    """Words and punctuation runs, e.g. "Hi, it's 5..." -> [Hi , it's 5 ...]."""
    return _WORD_OR_PUNCT.findall(text)


def split_whitespace(text: str) -> list[str]:
    return text.split()


TOKENIZERS: dict[str, Callable[[str], list[str]]] = {
    "regex": split_words_regex,
    "whitespace": split_whitespace,
}

PUNCTUATION = frozenset(
    string.punctuation
    + "".join(chr(c) for c in range(0x2000, 0x2070) if unicodedata.category(chr(c)).startswith("P"))
    + "«»‹›¿¡、。，．・！？：；"
)


def is_symbol_word(word: str) -> bool:
    """True if the word is made only of punctuation."""
    return all(ch in PUNCTUATION for ch in word)
