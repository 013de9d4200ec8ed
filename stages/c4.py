"""C4's cleaning rules (Raffel et al. 2020, "Exploring the Limits of Transfer Learning", 2.2).

Line rules drop single lines (a line that fails one is removed from the text);
document rules drop the whole document with a reason. Defaults follow the paper
and datatrove's C4QualityFilter, which also counts sentences the same way (spaCy's
rule-based sentencizer on English words); see docs/filters.md.

Line rules, in order: a word longer than `max_word_length`; (citation markers
like ``[1]`` or ``[edit]`` are removed); no terminal punctuation or ending in an
ellipsis; fewer than `min_words_per_line` words; containing "javascript"; a
cookie/terms-of-use phrase. Document rules: "lorem ipsum" or a curly bracket in a
kept line, fewer than `min_sentences` sentences in the kept lines, and (when
`bad_words_file` is given) a listed word in the cleaned text.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, Literal

import pyarrow as pa
from pydantic import Field

from pipelines.errors import UserError
from pipelines.schema import TEXT
from pipelines.stage import Filter, FilterParams, Params

from .text import DEFAULT_TOKENIZER, TOKENIZER_HELP, get_tokenizer
from .words_en import sentence_count

CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
END_PUNCTUATION = (".", "?", "!", '"', "'")
POLICY_PHRASES = ["terms of use", "privacy policy", "cookie policy", "uses cookies",
                  "use of cookies", "use cookies"]


class C4Params(FilterParams):
    max_word_length: int | None = Field(
        1000, description="drop lines with a (whitespace-separated) word longer than this")
    remove_citations: bool = Field(True, description="remove [1], [edit], [citation needed]")
    drop_lines_without_terminal_punct: bool = Field(
        True, description="drop lines not ending in . ? ! \" ' (or ending in '...')")
    min_words_per_line: int | None = Field(3, description="drop lines with fewer words")
    drop_javascript_lines: bool = Field(True, description="drop lines mentioning javascript")
    drop_policy_lines: bool = Field(True, description="drop lines with a `policy_phrases` entry")
    policy_phrases: list[str] = Field(POLICY_PHRASES, description="lowercase phrases")
    drop_lorem_ipsum: bool = Field(True, description="drop documents with 'lorem ipsum'")
    drop_curly_bracket: bool = Field(True, description="drop documents with a '{'")
    min_sentences: int | None = Field(
        5, description="drop documents with fewer sentences in their kept lines")
    bad_words_file: str | None = Field(
        None, description="file with one bad word or phrase per line (e.g. the LDNOOBW list); "
                          "documents containing one are dropped (reason bad_words)")
    bad_words_match: Literal["word", "substring"] = Field(
        "word", description="word: between non-word characters (as C4); substring: anywhere "
                            "(for languages without spaces)")
    rewrite_text: bool = Field(
        True, description="replace the text with its kept lines (as C4); false only decides")
    tokenizer: str = Field(DEFAULT_TOKENIZER, description="for counting sentences; "
                           + TOKENIZER_HELP)


class C4(Filter):
    """C4's line cleaning and document rules; reasons name the document rule that fired."""

    Params: ClassVar[type[Params]] = C4Params
    params: C4Params
    columns: ClassVar[tuple[str, ...]] = (TEXT,)

    def setup(self) -> None:
        p = self.params
        self._split = get_tokenizer(p.tokenizer, memoize=False)  # lines, not documents
        self._policy = tuple(p.policy_phrases)
        self._bad = _load_bad_words(p.bad_words_file, p.bad_words_match, self.name) \
            if p.bad_words_file else None
        self.annotations = {TEXT: pa.string()} if p.rewrite_text else {}

    def check(self, doc: dict[str, Any]) -> str | None | tuple[str | None, dict[str, Any]]:
        text = doc[TEXT] or ""
        reason, cleaned = self.clean(text)
        if not self.params.rewrite_text:
            return reason
        return reason, {TEXT: text if reason else cleaned}

    def clean(self, text: str) -> tuple[str | None, str]:
        """(reason to drop or None, the text of the kept lines)."""
        p = self.params
        need = p.min_sentences or 0
        sentences = 0
        kept: list[str] = []
        for line in text.splitlines():
            line = line.strip()
            words = line.split()
            if p.max_word_length is not None and any(len(w) > p.max_word_length for w in words):
                continue
            if p.remove_citations:
                line = CITATION.sub("", line)
            if p.drop_lines_without_terminal_punct and (
                    not line.endswith(END_PUNCTUATION) or line.endswith("...")):
                continue
            if p.min_words_per_line is not None and len(words) < p.min_words_per_line:
                continue
            lower = line.lower()
            if p.drop_lorem_ipsum and "lorem ipsum" in lower:
                return "lorem_ipsum", ""
            if p.drop_javascript_lines and "javascript" in lower:
                continue
            if p.drop_curly_bracket and "{" in line:
                return "curly_bracket", ""
            if p.drop_policy_lines and any(x in lower for x in self._policy):
                continue
            if sentences < need:  # enough is enough: counting is the costly part
                sentences += sentence_count(self._split(line))
            kept.append(line)
        if sentences < need:
            return "too_few_sentences", ""
        cleaned = "\n".join(kept).strip()
        if not cleaned:
            return "no_lines_left", ""
        if self._bad is not None and self._bad.search(cleaned.lower()):
            return "bad_words", cleaned
        return None, cleaned


def _load_bad_words(path: str, match: str, stage: str) -> re.Pattern:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise UserError(f"stage {stage}: cannot read bad_words_file {path}: {e.strerror}") from None
    words = sorted({w.strip().lower() for w in lines if w.strip()}, key=len, reverse=True)
    if not words:
        raise UserError(f"stage {stage}: bad_words_file {path} lists no words")
    alternation = "|".join(map(re.escape, words))
    if match == "substring":
        return re.compile(alternation)
    return re.compile(rf"(?:\W|^)(?:{alternation})(?:\W|$)")
