"""Sub-document dedup: repeated token spans (ExactSubstr), sentence spans (C4), paragraphs
(Dolma), as one family of global stages.

Phases (the numpy core is in stages/dedup/subdoc_core.py; docs/subdoc_dedup.md):

1. collect, in the map phase before the stage: each document is cut into units (tokens,
   sentences, paragraphs) and every window of ``k`` consecutive units is hashed (two
   independent 64-bit lanes, 128 bits); rows (h1, h2, doc key, position) are written
   partitioned by hash, and (with ``keep: first``) a members file (doc key, id) per shard.
2. step ``find`` (``partitions`` tasks): task p reads partition p of every shard, so each
   window content is seen whole by one task; contents seen two or more times are
   duplicates. ``keep: first`` spares the occurrence with the smallest (document id,
   position), looking ids up in the members files one shard at a time; ``keep: none``
   spares none. The windows to remove ("marks": doc key, position) are written
   partitioned by shard. (``paragraph_dedup`` with ``method: bloom`` decides here with a
   Bloom filter instead, in (document id, position) order.)
3. step ``spans`` (one task per shard): merge the marks of the shard's documents into
   disjoint unit intervals, written to ``spans/part-<shard>.parquet``.
4. apply, in the map phase after: cut each document's intervals out of its text (the
   joining rule is ``subdoc_core.char_ranges``), or drop the document, or annotate it.

Nothing depends on task order: the same documents give the same bytes with 1 or 2
workers, locally or on Ray.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.global_stage import GlobalContext, GlobalStage, Step, key_task
from pipelines.io.files import read_json, read_table, write_json_atomic, write_table_atomic
from pipelines.lazy import lazy_module
from pipelines.partitioned import read_partition, write_partitioned
from pipelines.schema import ID, TEXT
from pipelines.stage import Params, require_columns, set_column
from pipelines.stats import StageStats
from stages.dedup import subdoc_core as core

np = lazy_module("numpy")
pa = lazy_module("pyarrow")


@cache
def windows_schema() -> pa.Schema:
    return pa.schema([("h1", pa.uint64()), ("h2", pa.uint64()), ("key", pa.uint64()),
                      ("pos", pa.uint32())])


@cache
def members_schema() -> pa.Schema:
    return pa.schema([("key", pa.uint64()), ("id", pa.string())])


@cache
def marks_schema() -> pa.Schema:
    return pa.schema([("key", pa.uint64()), ("pos", pa.uint32())])


@cache
def spans_schema() -> pa.Schema:
    return pa.schema([("key", pa.uint64()), ("start", pa.int64()), ("end", pa.int64())])


@cache
def span_list_type() -> pa.DataType:
    return pa.list_(pa.struct([("start", pa.int64()), ("end", pa.int64())]))


CONTEXT_CHARS = 80  # characters of context on each side of a removed span, in samples


class DropAbove(BaseModel):
    """``action: {drop_document_if_fraction_above: X}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    drop_document_if_fraction_above: float = Field(
        ..., ge=0, le=1, description="drop a document when more than this fraction of its "
                                     "characters is in duplicate spans; otherwise remove them")


class SubdocParams(Params):
    column: str = Field(TEXT, description="text column to deduplicate")
    keep: Literal["first", "none"] = Field(
        "first", description="which occurrence of a repeated span survives: first (smallest "
                             "document id, then position) or none (all are removed, as "
                             "ExactSubstr does)")
    action: Literal["remove_spans", "annotate"] | DropAbove = Field(
        "remove_spans", description="remove_spans: cut the spans out; "
                                    "{drop_document_if_fraction_above: X}: drop documents "
                                    "with more than X of their characters in duplicate spans "
                                    "(reason `duplicate_spans`) and cut the spans of the "
                                    "others; annotate: keep the text, write "
                                    "`<name>_spans` and `<name>_fraction`")
    partitions: int = Field(16, ge=1, le=4096,
                            description="tasks of the sharded `find` step (bounds memory)")
    buffer_windows: int = Field(
        4_000_000, ge=1, description="window rows (28 bytes each) a collecting task holds "
                                     "before it writes them out as one more file")


class SubstringParams(SubdocParams):
    min_tokens: int = Field(50, ge=1, le=100_000,
                            description="remove spans of at least this many tokens that "
                                        "occur two or more times (Lee et al.: 50)")
    tokenizer: str = Field(
        "words", description="`words` (runs of word characters; each other non-space "
                             "character is a token) or the path or URL of a tokenizer.json, "
                             "as `count_tokens` takes")
    tokenizer_sha256: str | None = Field(None, description="expected sha256 of the file")


class SentenceSpanParams(SubdocParams):
    sentences: int = Field(3, ge=1, le=1000,
                           description="span length in sentences (C4: 3)")
    splitter: Literal["rule", "spacy_compat"] = Field(
        "rule", description="rule: cut after . ! ? (and closing quotes/brackets) before "
                            "whitespace, and at line ends; spacy_compat: spaCy's English "
                            "sentencizer, as datatrove's sentence dedup cuts English "
                            "(stages/text/sentences.py, without spaCy; much slower)")


class ParagraphParams(SubdocParams):
    method: Literal["exact", "bloom"] = Field(
        "exact", description="exact: 128-bit hashes grouped; bloom: a Bloom filter of fixed "
                             "size per `find` task (false positives remove paragraphs)")
    min_chars: int = Field(0, ge=0, description="paragraphs shorter than this (characters, "
                                                "surrounding whitespace aside) are never "
                                                "removed")
    bloom_items: int = Field(100_000_000, ge=1,
                             description="paragraphs the Bloom filter is sized for")
    bloom_false_positive_rate: float = Field(0.001, gt=0, lt=1,
                                             description="false-positive rate at bloom_items")

    @model_validator(mode="after")
    def _bloom_keeps_first(self):
        if self.method == "bloom" and self.keep != "first":
            raise ValueError("method: bloom keeps the first occurrence; use keep: first")
        return self


class SubdocDedup(GlobalStage):
    """Base of the three stages: subclasses say what a unit is and how long a window."""

    Params: ClassVar[type[Params]] = SubdocParams
    params: SubdocParams
    unit_name: ClassVar[str] = "units"
    drop_reason: ClassVar[str] = "duplicate_spans"
    empty_reason: ClassVar[str] = "duplicate_spans_emptied"
    changed_reason: ClassVar[str] = "spans_removed"  # kept documents that lost spans

    # --------------------------------------------------------------- what a unit is
    @property
    def k(self) -> int:
        raise NotImplementedError

    def split(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the units of ``text``, in order."""
        raise NotImplementedError

    def unit_key(self, text: str, span: tuple[int, int]) -> str:
        return text[span[0]:span[1]]

    def unit_strings(self, text: str) -> list[str]:
        """What is compared of each unit of ``text`` (in collect: no offsets needed)."""
        return [self.unit_key(text, s) for s in self.split(text)]

    def units(self, column: pa.ChunkedArray) -> core.Units:
        lens, keys = [], []
        for t in column.to_pylist():
            t = t or ""
            u = self.unit_strings(t)
            lens.append(len(u))
            keys += u
        offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        return core.Units(offsets, self._hasher.hashes(keys))

    def eligible(self, text: str, spans: list[tuple[int, int]]) -> np.ndarray | None:
        """Units that may be removed (None: all)."""
        return None

    # --------------------------------------------------------------- declarations
    def setup(self) -> None:
        self._hasher = core.UnitHasher()

    def input_columns(self) -> tuple[str, ...]:
        return (self.params.column, ID)

    def output_columns(self) -> dict[str, pa.DataType | None]:
        if self.params.action == "annotate":
            return {f"{self.name}_spans": span_list_type(), f"{self.name}_fraction": "float64"}
        return {self.params.column: "string"}

    def steps(self, n_shards: int) -> list[Step]:
        return [Step("find", self.params.partitions), Step("spans", n_shards)]

    def _path(self, ctx: GlobalContext, kind: str, i: int) -> Path:
        return ctx.path(kind, f"part-{i:05d}.parquet")

    # --------------------------------------------------------------- collect
    def begin_collect(self, ctx: GlobalContext) -> None:
        self._ctx = ctx
        if not hasattr(self, "_hasher"):
            self.setup()
        self._windows: list[pa.Table] = []
        self._buffered = 0
        self._chunks = 0  # window files written by this task so far
        self._members: list[pa.Table] = []

    def collect(self, table: pa.Table, keys: np.ndarray) -> None:
        if table.num_rows == 0:
            return
        require_columns(self, table, (self.params.column, ID))
        column = table.column(self.params.column)
        units = self.units(column)
        h, doc, pos = core.window_hashes(units, self.k)
        ok = self._eligible_windows(column, units, doc, pos)
        if ok is not None:
            h, doc, pos = h[:, ok], doc[ok], pos[ok]
        self._windows.append(pa.table({"h1": h[0], "h2": h[1], "key": keys[doc],
                                       "pos": pos.astype(np.uint32)}, schema=windows_schema()))
        self._buffered += len(doc)
        if self._buffered >= self.params.buffer_windows:
            self._spill()
        if self.params.keep == "first":
            ids = table.column(ID).combine_chunks().cast(pa.string())
            self._members.append(pa.table({"key": pa.array(keys, pa.uint64()), "id": ids},
                                          schema=members_schema()))

    def _eligible_windows(self, column, units, doc, pos) -> np.ndarray | None:
        return None

    def _spill(self) -> None:
        """Write the buffered windows as this task's next file, partitioned by hash."""
        ctx, P = self._ctx, self.params.partitions
        w = pa.concat_tables(self._windows) if self._windows else windows_schema().empty_table()
        part = (w.column("h1").to_numpy() % np.uint64(P)).astype(np.int64)
        write_partitioned(self._window_path(ctx, ctx.task, self._chunks), w, part, P)
        self._chunks += 1
        self._windows, self._buffered = [], 0

    def end_collect(self) -> None:
        ctx = self._ctx
        if self._buffered or self._chunks == 0:
            self._spill()
        if self.params.keep == "first":
            m = pa.concat_tables(self._members) if self._members else members_schema().empty_table()
            write_table_atomic(self._path(ctx, "members", ctx.task), m)
        # last: how many window files the task wrote (the find step names them from it)
        write_json_atomic(ctx.path("windows", f"count-{ctx.task:05d}.json"),
                          {"files": self._chunks})
        self._windows, self._members = [], []

    def _window_path(self, ctx: GlobalContext, shard: int, chunk: int) -> Path:
        return ctx.path("windows", f"part-{shard:05d}-{chunk:04d}.parquet")

    def _window_files(self, ctx: GlobalContext) -> list[Path]:
        files = []
        for s in range(ctx.n_shards):
            n = read_json(ctx.path("windows", f"count-{s:05d}.json"))["files"]
            files += [self._window_path(ctx, s, c) for c in range(n)]
        return files

    # --------------------------------------------------------------- steps
    def run_step(self, step: str, ctx: GlobalContext) -> dict[str, float]:
        if step == "find":
            return self._find(ctx)
        if step == "spans":
            return self._spans(ctx)
        raise ValueError(f"unknown step {step!r}")

    def _ids_of(self, ctx: GlobalContext, keys: np.ndarray) -> dict[int, str]:
        """Document ids of ``keys``, reading the members files one shard at a time."""
        need = np.unique(keys)
        out: dict[int, str] = {}
        shards = np.unique(key_task(need))
        for s in shards:
            m = read_table(self._path(ctx, "members", int(s)))
            mk = m.column("key").to_numpy()
            sel = np.isin(mk, need)
            out.update(zip(mk[sel].tolist(), m.column("id").filter(pa.array(sel)).to_pylist()))
        return out

    def _ordered(self, ctx: GlobalContext, t: pa.Table) -> pa.Table:
        """Rows of ``t`` (key, pos, ...) with their document id, in (h1, h2, id, pos, key)
        order: the first row of each content is its first occurrence."""
        keys = t.column("key").to_numpy()
        ids = self._ids_of(ctx, keys)
        t = t.append_column("id", pa.array([ids[k] for k in keys.tolist()], pa.string()))
        return t.sort_by([("h1", "ascending"), ("h2", "ascending"), ("id", "ascending"),
                          ("pos", "ascending"), ("key", "ascending")])

    def _find(self, ctx: GlobalContext) -> dict[str, float]:
        w = read_partition(self._window_files(ctx), ctx.task, schema=windows_schema())
        n = w.num_rows
        h1, h2 = w.column("h1").to_numpy(), w.column("h2").to_numpy()
        # sort by h1 alone (one 64-bit key); only rows sharing h1 with a neighbour can
        # be duplicates, and those few are sorted by (h1, h2) to compare all 128 bits
        order = np.argsort(h1)
        h1s = h1[order]
        cand = np.zeros(n, bool)
        if n > 1:
            eq = h1s[1:] == h1s[:-1]
            cand[1:] |= eq
            cand[:-1] |= eq
        order = order[cand]
        order = order[np.lexsort((h2[order], h1[order]))]
        h1s, h2s = h1[order], h2[order]
        m = len(order)
        same = np.zeros(m, bool)
        if m > 1:
            same[1:] = (h1s[1:] == h1s[:-1]) & (h2s[1:] == h2s[:-1])
        dup = same.copy()
        if m > 1:
            dup[:-1] |= same[1:]
        n_dup_rows = int(dup.sum())
        n_contents = int((dup & ~same).sum())
        d = w.take(pa.array(order[dup]))
        if self.params.keep == "none":
            marks = d.select(["key", "pos"])
        elif d.num_rows:
            d = self._ordered(ctx, d)
            a1, a2 = d.column("h1").to_numpy(), d.column("h2").to_numpy()
            first = np.ones(d.num_rows, bool)
            first[1:] = (a1[1:] != a1[:-1]) | (a2[1:] != a2[:-1])
            marks = d.filter(pa.array(~first)).select(["key", "pos"])
        else:
            marks = marks_schema().empty_table()
        self._write_marks(ctx, marks.cast(marks_schema()))
        return {"windows": n, "duplicate_windows": n_dup_rows,
                "duplicate_contents": n_contents, "windows_removed": marks.num_rows}

    def _write_marks(self, ctx: GlobalContext, marks: pa.Table) -> None:
        shard = key_task(marks.column("key").to_numpy())
        write_partitioned(self._path(ctx, "marks", ctx.task), marks, shard, ctx.n_shards)

    def _spans(self, ctx: GlobalContext) -> dict[str, float]:
        files = [self._path(ctx, "marks", p) for p in range(self.params.partitions)]
        m = read_partition(files, ctx.task, schema=marks_schema())
        keys, start, end = core.merge_marks(m.column("key").to_numpy(),
                                            m.column("pos").to_numpy(), self.k)
        write_table_atomic(self._path(ctx, "spans", ctx.task),
                           pa.table({"key": keys, "start": start, "end": end},
                                    schema=spans_schema()))
        return {"documents_with_duplicates": len(np.unique(keys)), "spans": len(keys),
                f"{self.unit_name}_removed": int((end - start).sum())}

    # --------------------------------------------------------------- apply
    def begin_apply(self, ctx: GlobalContext) -> None:
        if not hasattr(self, "_hasher"):
            self.setup()
        s = read_table(self._path(ctx, "spans", ctx.task))
        self._skeys = s.column("key").to_numpy()
        self._sstart = s.column("start").to_numpy()
        self._send = s.column("end").to_numpy()

    def _doc_spans(self, key: int) -> list[tuple[int, int]]:
        a = np.searchsorted(self._skeys, np.uint64(key), side="left")
        b = np.searchsorted(self._skeys, np.uint64(key), side="right")
        return list(zip(self._sstart[a:b].tolist(), self._send[a:b].tolist()))

    def apply(self, table: pa.Table, keys: np.ndarray, stats: StageStats) -> pa.Table:
        col = self.params.column
        n = table.num_rows
        if n == 0:
            return table
        hit = np.isin(keys, self._skeys) if len(self._skeys) else np.zeros(n, bool)
        action = self.params.action
        annotate = action == "annotate"
        if not hit.any() and not annotate:
            return table
        # only the documents with spans become Python strings (row -> text)
        rows = np.flatnonzero(hit)
        texts = dict(zip(rows.tolist(),
                         (t or "" for t in table.column(col).take(rows).to_pylist())))
        ranges_of: dict[int, list[tuple[int, int]]] = {}
        units_of: dict[int, int] = {}
        fraction = np.zeros(n)
        for i, text in texts.items():
            units = self.split(text)
            spans = self._doc_spans(int(keys[i]))
            units_of[i] = sum(e - s for s, e in spans)
            ranges = core.char_ranges(spans, units, text)
            ranges_of[i] = ranges
            fraction[i] = sum(b - a for a, b in ranges) / max(len(text), 1)
        if annotate:
            spans = [[{"start": a, "end": b} for a, b in ranges_of.get(i, [])]
                     for i in range(n)]
            table = set_column(table, f"{self.name}_spans", pa.array(spans, span_list_type()),
                               span_list_type())
            return set_column(table, f"{self.name}_fraction", pa.array(fraction, pa.float64()),
                              pa.float64())
        drop = np.zeros(n, bool)
        if isinstance(action, DropAbove):
            drop = hit & (fraction > action.drop_document_if_fraction_above)
        new_texts = {i: core.cut(texts[i], r) for i, r in ranges_of.items() if not drop[i]}
        emptied = np.zeros(n, bool)
        emptied[[i for i, t in new_texts.items() if not t.strip()]] = True
        edited = np.flatnonzero(hit & ~drop & ~emptied)
        self._count_removed(stats, table, edited, texts, ranges_of, units_of)
        # samples: the document before the edit, its removed spans in context
        if stats.sampler is not None:
            for i in edited.tolist():
                self._offer(stats, table, i, texts[i], ranges_of[i], new_texts[i])
        for reason, mask in ((self.drop_reason, drop), (self.empty_reason, emptied)):
            if mask.any():
                frac = table.append_column(f"{self.name}_fraction",
                                           pa.array(fraction, pa.float64()))
                stats.drop_rows(reason, frac, mask, score=f"{self.name}_fraction")
        # the new column: the old values, the edited ones put in their rows by one take
        old = table.column(col).combine_chunks().cast(pa.string())
        take = np.arange(n, dtype=np.int64)
        take[list(new_texts)] = n + np.arange(len(new_texts))
        values = pa.concat_arrays([old, pa.array(list(new_texts.values()), pa.string())])
        table = set_column(table, col, values.take(pa.array(take)), pa.string())
        keep = ~(drop | emptied)
        return table if keep.all() else table.filter(pa.array(keep))

    def _count_removed(self, stats: StageStats, table: pa.Table, edited: np.ndarray,
                       texts: list, ranges_of: dict, units_of: dict) -> None:
        """Documents changed (reason ``spans_removed``), and the spans, units, tokens and
        characters cut from them, in total and per language / dataset (stats.py)."""
        if not len(edited):
            return
        rows = edited.tolist()
        stats.changed[self.changed_reason] += len(rows)
        metrics = {"docs": np.ones(len(rows), np.int64),
                   "spans": [len(ranges_of[i]) for i in rows],
                   "chars": [sum(b - a for a, b in ranges_of[i]) for i in rows],
                   self.unit_name: [units_of[i] for i in rows]}
        if self.unit_name != "tokens":  # word tokens (substring_dedup's `words`) removed
            metrics["tokens"] = [sum(len(core.WORD.findall(texts[i], a, b))
                                     for a, b in ranges_of[i]) for i in rows]
        stats.count_removed(table, rows, metrics)

    def _offer(self, stats: StageStats, table: pa.Table, i: int, text: str,
               ranges: list[tuple[int, int]], after: str) -> None:
        details: dict[str, Any] = {"spans": len(ranges),
                                   "chars_removed": sum(b - a for a, b in ranges),
                                   "after": after[:200]}
        doc = {ID: table.column(ID)[i].as_py(), TEXT: core.in_context(text, ranges,
                                                                      CONTEXT_CHARS),
               "details": details}
        if "url" in table.schema.names:
            doc["url"] = table.column("url")[i].as_py()
        stats.sampler.offer(self.changed_reason, doc, kind="changed")


class SubstringDedup(SubdocDedup):
    """Remove every span of at least `min_tokens` tokens that occurs more than once in the
    corpus (Lee et al. 2022, ExactSubstr), sharded by window hashes.

    keep: first spares the first occurrence (smallest document id, then position); none
    removes every copy. Equal to a suffix-array computation on the same tokens (tests).
    Reasons: `duplicate_spans` (with drop_document_if_fraction_above),
    `duplicate_spans_emptied` (nothing left). Samples of edited documents: reason
    `spans_removed`. Step metrics: windows, duplicate windows, spans, tokens removed.
    """

    Params: ClassVar[type[Params]] = SubstringParams
    params: SubstringParams
    unit_name = "tokens"

    @property
    def k(self) -> int:
        return self.params.min_tokens

    def setup(self) -> None:
        super().setup()
        self._tok = None
        self._sha256 = None
        if self.params.tokenizer == "words":
            return
        from stages.mixing.tokens import load_tokenizer

        self._tok, self._sha256 = load_tokenizer(
            self.name, self.params.tokenizer, self.params.tokenizer_sha256,
            " (use tokenizer: words for the built-in word tokens)")

    def model_files(self) -> dict[str, str]:
        from pipelines.io.models import model_key

        sha = getattr(self, "_sha256", None)
        return {model_key(self.params.tokenizer): sha} if sha else {}

    def unit_strings(self, text: str) -> list[str]:
        return core.WORD.findall(text)  # the same tokens as word_spans, without offsets

    def split(self, text: str) -> list[tuple[int, int]]:
        if self._tok is None:
            return core.word_spans(text)
        return [tuple(o) for o in self._tok.encode(text, add_special_tokens=False).offsets]

    def units(self, column: pa.ChunkedArray) -> core.Units:
        if self._tok is None:
            return super().units(column)
        texts = [t or "" for t in column.to_pylist()]
        enc = self._tok.encode_batch(texts, add_special_tokens=False)
        lens = [len(e.ids) for e in enc]
        ids = np.fromiter((i for e in enc for i in e.ids), np.int64, sum(lens))
        offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        return core.Units(offsets, core.id_hashes(ids))


class SentenceSpanDedup(SubdocDedup):
    """Remove all but the first occurrence of every span of `sentences` consecutive
    sentences that occurs more than once (C4's three-sentence spans).

    Sentences end after `.`, `!` or `?` (with closing quotes/brackets) before whitespace,
    and at line ends (splitter: rule), or where spaCy's English sentencizer ends them
    (splitter: spacy_compat, as datatrove); they are compared with whitespace runs
    collapsed. Reasons and samples as `substring_dedup`.
    """

    Params: ClassVar[type[Params]] = SentenceSpanParams
    params: SentenceSpanParams
    unit_name = "sentences"

    @property
    def k(self) -> int:
        return self.params.sentences

    def split(self, text: str) -> list[tuple[int, int]]:
        if self.params.splitter == "spacy_compat":
            return spacy_sentence_spans(text)
        return core.sentence_spans(text)

    def unit_key(self, text: str, span: tuple[int, int]) -> str:
        return core.normalize_space(text[span[0]:span[1]])

    def units(self, column: pa.ChunkedArray) -> core.Units:
        """The rule's sentences of the whole batch by Arrow (core.sentence_strings): the same
        unit strings as ``unit_strings`` gives text by text (the reference, in tests)."""
        if self.params.splitter != "rule":
            return super().units(column)
        counts, sentences = core.sentence_strings(column)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return core.Units(offsets, core.string_hashes(sentences))


def spacy_sentence_spans(text: str) -> list[tuple[int, int]]:
    """spaCy's sentences (stages/text/sentences.py) without surrounding whitespace;
    whitespace-only pieces are no sentence."""
    from stages.text.sentences import sentence_pieces
    from stages.text.words_en import split_words

    out, pos = [], 0
    for piece in sentence_pieces(text, split_words):
        stripped = piece.strip()
        if stripped:
            lead = len(piece) - len(piece.lstrip())
            out.append((pos + lead, pos + lead + len(stripped)))
        pos += len(piece)
    return out


class ParagraphDedup(SubdocDedup):
    """Remove all but the first occurrence of every repeated paragraph (a line; Dolma),
    by exact 128-bit hashes or a fixed-size Bloom filter.

    Paragraphs are compared without surrounding whitespace; blank lines and paragraphs
    under `min_chars` are never removed. Reasons and samples as `substring_dedup`.
    """

    Params: ClassVar[type[Params]] = ParagraphParams
    params: ParagraphParams
    unit_name = "paragraphs"

    @property
    def k(self) -> int:
        return 1

    def split(self, text: str) -> list[tuple[int, int]]:
        return core.paragraph_spans(text)

    def unit_key(self, text: str, span: tuple[int, int]) -> str:
        return text[span[0]:span[1]].strip()

    def _eligible_windows(self, column, units, doc, pos) -> np.ndarray | None:
        if self.params.min_chars <= 0:
            return None
        texts = [t or "" for t in column.to_pylist()]
        lengths = np.array([len(t[a:b].strip()) for t in texts for a, b in self.split(t)],
                           np.int64)
        return lengths[units.offsets[doc] + pos] >= self.params.min_chars

    def steps(self, n_shards: int) -> list[Step]:
        return [Step("find", self.params.partitions), Step("spans", n_shards)]

    def _find(self, ctx: GlobalContext) -> dict[str, float]:
        if self.params.method == "exact":
            return super()._find(ctx)
        w = read_partition(self._window_files(ctx), ctx.task, schema=windows_schema())
        p = self.params
        m_total, n_hash = core.bloom_params(p.bloom_items, p.bloom_false_positive_rate)
        m = max(64, -(-m_total // p.partitions))  # this task's share of the bits
        if w.num_rows:
            w = self._ordered(ctx, w)
            w = w.sort_by([("id", "ascending"), ("pos", "ascending"), ("key", "ascending")])
            bits = np.zeros((m + 7) // 8, np.uint8)
            seen = core.bloom_seen(w.column("h1").to_numpy(), w.column("h2").to_numpy(),
                                   bits, m, n_hash)
            marks = w.filter(pa.array(seen)).select(["key", "pos"]).cast(marks_schema())
        else:
            marks = marks_schema().empty_table()
        self._write_marks(ctx, marks)
        return {"windows": w.num_rows, "windows_removed": marks.num_rows,
                "bloom_bits": m}
