"""Sentences as datatrove cuts them: spaCy's rule-based sentencizer, without spaCy.

datatrove's ``split_into_sentences`` (C4's sentence mode) runs spaCy's blank English
pipeline with its ``sentencizer`` and cuts the text at the end of each sentence but
the last, so each piece keeps the whitespace before it and the last runs to the end
of the text. The sentencizer sees spaCy's tokens, which include one token per run
of whitespace (less a single space right after a word, which spaCy attaches to
the word); such a token after a sentence end starts the next sentence.

Here the words come from any splitter whose words are pieces of the text in order
(``spacy_compat`` makes spaCy's); whitespace tokens are rebuilt from the gaps.
"""

from __future__ import annotations

from collections.abc import Callable

from stages.text.words_en import SENTENCE_END, _is_punct


def sentence_pieces(text: str, split: Callable[[str], list[str]]) -> list[str]:
    """``text`` cut after each sentence but the last (pieces join back to ``text``)."""
    cuts: list[int] = []  # where a new sentence starts: the end of the previous one
    end = -1  # end of the last token so far (-1: no token yet)
    seen_end = False  # a sentence-ending token since the current sentence started

    def token(tok: str, tok_end: int) -> None:
        nonlocal end, seen_end
        if tok in SENTENCE_END:
            seen_end = True
        elif seen_end and not _is_punct(tok):  # whitespace tokens are not punctuation
            cuts.append(end)
            seen_end = False
        end = tok_end

    pos = 0
    for word in split(text):
        start = text.find(word, pos)
        if start < 0:
            raise ValueError(f"the word splitter returned {word[:20]!r}, which is not in the "
                             "text in order; sentence splitting needs words that are")
        _gap(text, pos, start, end >= 0, token)
        token(word, start + len(word))
        pos = start + len(word)
    _gap(text, pos, len(text), end >= 0, token)
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]


def _gap(text: str, start: int, stop: int, after_word: bool,
         token: Callable[[str, int], None]) -> None:
    """The whitespace token spaCy makes of ``text[start:stop]``, if any."""
    if after_word and start < stop and text[start] == " ":
        start += 1  # attached to the word before
    gap = text[start:stop]
    if gap and gap.isspace():
        token(gap, stop)
