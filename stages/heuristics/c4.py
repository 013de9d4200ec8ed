"""C4's cleaning rules (Raffel et al. 2020, "Exploring the Limits of Transfer Learning", 2.2).

Line rules drop single lines (a line that fails one is removed from the text);
document rules drop the whole document with a reason. Defaults follow the paper
and datatrove's C4QualityFilter and C4BadWordsFilter, which also count sentences
the same way (spaCy's rule-based sentencizer on English words); see docs/filters.md.

Line rules, in order: a word longer than `max_word_length`; (citation markers
like ``[1]`` or ``[edit]`` are removed); no terminal punctuation or ending in an
ellipsis; fewer than `min_words_per_line` words; containing "javascript"; a
cookie/terms-of-use phrase. With ``split: sentences`` the same rules apply to each
sentence instead of each line (datatrove's ``split_paragraph=False``). Document
rules: "lorem ipsum" or a curly bracket in a line that passed the rules before
them, fewer than `min_sentences` sentences in the kept lines, no line left, and
(with ``bad_words_file``) a listed word in the cleaned text, of which
`bad_words_keep_fraction` are kept anyway (chosen by a keyed hash of the id).

In ``mode: annotate`` the measurements are columns (``<name>_lorem_ipsum_line``,
``<name>_curly_bracket_line``, ``<name>_sentences``, ``<name>_chars``,
``<name>_bad_words``), taken as if the document rules were off, and the text
becomes the text the document has wherever it is kept, so ``thresher
materialize`` can change the document rules (not the line rules, which change the
text) and later stages see the text of a direct run.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field

from pipelines.errors import UserError
from pipelines.io.models import local_model, model_hashes
from pipelines.lazy import lazy_module
from pipelines.schema import TEXT
from pipelines.stage import Params
from stages.heuristics.measured import MeasuredFilter, Rule, RuleTable
from stages.heuristics.per_language import PerLanguageParams
from stages.text.sentences import sentence_pieces
from stages.text.words import DEFAULT_TOKENIZER, TOKENIZER_HELP, clear_word_caches, splitter_for
from stages.text.words_en import sentence_count

pa = lazy_module("pyarrow")

CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
END_PUNCTUATION = (".", "?", "!", '"', "'")
POLICY_PHRASES = ["terms of use", "privacy policy", "cookie policy", "uses cookies",
                  "use of cookies", "use cookies"]
# C4 matches bad words of these languages anywhere: they are written without spaces
SUBSTRING_LANGUAGES = ("ja", "th", "zh")
LANGUAGE = "language"


class C4Params(PerLanguageParams):
    split: Literal["lines", "sentences"] = Field(
        "lines", description="apply the line rules to each line (C4), or to each sentence "
                             "(datatrove's split_paragraph=False; kept sentences are joined "
                             "with spaces and each counts as one sentence)")
    max_word_length: int | None = Field(
        1000, ge=0, description="drop lines with a (whitespace-separated) word longer than this")
    remove_citations: bool = Field(True, description="remove [1], [edit], [citation needed]")
    drop_lines_without_terminal_punct: bool = Field(
        True, description="drop lines not ending in . ? ! \" ' (or ending in '...')")
    min_words_per_line: int | None = Field(3, ge=0, description="drop lines with fewer words")
    drop_javascript_lines: bool = Field(True, description="drop lines mentioning javascript")
    drop_policy_lines: bool = Field(True, description="drop lines with a `policy_phrases` entry")
    policy_phrases: list[str] = Field(POLICY_PHRASES, description="lowercase phrases")
    drop_lorem_ipsum: bool = Field(True, description="drop documents with 'lorem ipsum'")
    drop_curly_bracket: bool = Field(True, description="drop documents with a '{'")
    min_sentences: int | None = Field(
        5, ge=0, description="drop documents with fewer sentences in their kept lines")
    bad_words_file: str | dict[str, str] | None = Field(
        None, description="file (path or URL) with one bad word or phrase per line (e.g. the "
                          "LDNOOBW list), or language -> file, which checks each document "
                          "against the list of its `language` column (key `default`: for "
                          "other languages); documents containing one are dropped (reason "
                          "bad_words)")
    bad_words_match: Literal["auto", "word", "substring"] = Field(
        "auto", description="word: between non-word characters; substring: anywhere; auto: "
                            "substring for the lists of ja, th, zh (as C4), else word")
    bad_words_keep_fraction: float = Field(
        0.0, ge=0, le=1, description="keep this share of documents with bad words (as mC4), "
                                     "chosen by a hash of `bad_words_seed` and the id")
    bad_words_seed: int = Field(0, description="seed of the bad_words_keep_fraction choice")
    rewrite_text: bool = Field(
        True, description="replace the text with its kept lines (as C4); false only decides")
    tokenizer: str = Field(DEFAULT_TOKENIZER, description="for counting and splitting "
                           "sentences; " + TOKENIZER_HELP)


def _curly_bracket_first(f: C4, m: Mapping[str, Any], doc: dict[str, Any]) -> bool:
    """Both document rules found their line: the earlier line decides (lorem on a tie)."""
    curly = m["curly_bracket_line"]
    return f.params.drop_curly_bracket and curly is not None and curly < m["lorem_ipsum_line"]


def _kept_anyway(f: C4, m: Mapping[str, Any], doc: dict[str, Any]) -> bool:
    return f.keep_anyway(doc.get("id"))


MEASURES = {"lorem_ipsum_line": "int32", "curly_bracket_line": "int32",
            "sentences": "int32", "chars": "int32", "bad_words": "bool"}
# the document rules (the line rules change the text, so they are not in the table)
RULES = RuleTable(
    MEASURES,
    Rule("lorem_ipsum_line", "drop_lorem_ipsum", "set", "lorem_ipsum",
         unless=_curly_bracket_first, reads=("drop_curly_bracket",)),
    Rule("curly_bracket_line", "drop_curly_bracket", "set", "curly_bracket"),
    Rule("sentences", "min_sentences", "below", "too_few_sentences"),
    Rule("chars", None, "zero", "no_lines_left"),
    Rule("bad_words", None, "true", "bad_words", needs="bad_words_file", unless=_kept_anyway,
         reads=("bad_words_keep_fraction", "bad_words_seed")),
)


class C4(MeasuredFilter):
    """C4's line cleaning and document rules; reasons name the document rule that fired."""

    Params: ClassVar[type[Params]] = C4Params
    params: C4Params
    rules: ClassVar[RuleTable] = RULES
    table_kind = "c4"

    def __init__(self, params: Params | None = None, name: str | None = None):
        super().__init__(params, name)
        p = self.params
        by_language = isinstance(p.bad_words_file, dict) or self.reads_language()
        self.columns = ("id", TEXT, LANGUAGE) if by_language else ("id", TEXT)
        self.required = (TEXT, LANGUAGE) if by_language else (TEXT,)
        self.annotations = ({TEXT: "string"} if p.rewrite_text else {}) | (
            self.measure_columns() if self.annotating else {})

    def begin_task(self, ctx) -> None:
        clear_word_caches()  # no word cache outlives a task (stages/text/words.py)

    def setup(self) -> None:
        p = self.params
        # lines are split one at a time (not worth remembering); whole texts are shared
        self._split_for = splitter_for(p.tokenizer, memoize=p.split == "sentences")
        self._policy = tuple(p.policy_phrases)
        self._bad = _load_bad_words(p.bad_words_file, p.bad_words_match, self.name)
        files = p.bad_words_file
        files = [] if files is None else [files] if isinstance(files, str) else files.values()
        self._sha256 = model_hashes(files)

    def check(self, doc: dict[str, Any]) -> str | None | tuple[str | None, dict[str, Any]]:
        m = self.measure(doc, self.annotating)
        reason = self.decide(m, doc)
        columns = self.measured(m) if self.annotating else {}
        if self.params.rewrite_text:  # filter mode: dropped documents keep their text
            kept = m.get("chars") and (self.annotating or reason is None)
            columns[TEXT] = m["text"] if kept else doc[TEXT]
        return reason, columns

    def measure(self, doc: dict[str, Any], full: bool) -> dict[str, Any]:
        """Line rules, then what the document rules need. Without ``full`` (filter mode)
        it stops at the first document rule that fires and counts sentences only up to
        `min_sentences`; ``decide`` gives the same answer either way."""
        p = self.params
        text = doc[TEXT] or ""
        need = self.params_for(doc.get(LANGUAGE)).min_sentences or 0
        split = self._split_for(doc.get(LANGUAGE))
        m: dict[str, Any] = {"lorem_ipsum_line": None, "curly_bracket_line": None}
        sentences = 0
        kept: list[str] = []
        units = text.splitlines() if p.split == "lines" else sentence_pieces(text, split)
        for i, line in enumerate(units):
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
            if m["lorem_ipsum_line"] is None and "lorem ipsum" in lower:
                m["lorem_ipsum_line"] = i
                if p.drop_lorem_ipsum and not full:
                    return m
            if p.drop_javascript_lines and "javascript" in lower:
                continue
            if m["curly_bracket_line"] is None and "{" in line:
                m["curly_bracket_line"] = i
                if p.drop_curly_bracket and not full:
                    return m
            if p.drop_policy_lines and any(x in lower for x in self._policy):
                continue
            if p.split == "sentences":
                sentences += 1
            elif full or sentences < need:  # enough is enough: counting is the costly part
                sentences += sentence_count(split(line))
            kept.append(line)
        cleaned = ("\n" if p.split == "lines" else " ").join(kept).strip()
        m |= {"sentences": sentences, "chars": len(cleaned), "text": cleaned}
        if p.bad_words_file:
            bad = self._bad.get(doc.get(LANGUAGE), self._bad.get("default")) \
                if isinstance(p.bad_words_file, dict) else self._bad[None]
            if bad is None or not cleaned or not (full or sentences >= need):
                m["bad_words"] = None  # no list for the language, or not reached
            else:
                m["bad_words"] = bad.search(cleaned.lower()) is not None
        return m

    def model_files(self) -> dict[str, str]:
        """The bad-word lists (and a threshold table) decide the output: the manifest
        records them with the models."""
        return self._sha256 | super().model_files()

    def keep_anyway(self, doc_id: str | None) -> bool:
        """Whether this document is among the `bad_words_keep_fraction` kept: a keyed hash
        of its id, so the choice does not depend on order, batching or workers."""
        fraction = self.params.bad_words_keep_fraction
        if fraction <= 0:
            return False
        key = str(self.params.bad_words_seed).encode()[:64]
        h = hashlib.blake2b((doc_id or "").encode(), digest_size=8, key=key).digest()
        return int.from_bytes(h, "big") < fraction * 2**64


def _load_bad_words(files: str | dict[str, str] | None, match: str,
                    stage: str) -> dict[str | None, re.Pattern]:
    """Language (None for a single list) -> the pattern of its list."""
    if files is None:
        return {}
    if isinstance(files, str):
        return {None: _pattern(files, "word" if match == "auto" else match, stage)}
    return {lang: _pattern(path, match if match != "auto" else
                           "substring" if lang in SUBSTRING_LANGUAGES else "word", stage)
            for lang, path in sorted(files.items())}


def _pattern(path: str, match: str, stage: str) -> re.Pattern:
    try:
        local = local_model(path, what=f"stage {stage}: cannot read bad_words_file")
        lines = local.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise UserError(f"stage {stage}: cannot read bad_words_file {path}: {e.strerror}") from None
    words = sorted({w.strip().lower() for w in lines if w.strip()}, key=len, reverse=True)
    if not words:
        raise UserError(f"stage {stage}: bad_words_file {path} lists no words")
    alternation = "|".join(map(re.escape, words))
    if match == "substring":
        return re.compile(alternation)
    return re.compile(rf"(?:\W|^)(?:{alternation})(?:\W|$)")
