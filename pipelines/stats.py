"""Per-stage counters that merge associatively across tasks, phases and runs.

Every stage of every task keeps one ``StageStats``. Two of them add with ``+``;
a ``RunStats`` is an ordered mapping stage name -> ``StageStats`` and merges by
stage name (never by position), so partial, resumed or distributed runs merge
to the same totals.

The bookkeeping invariant every stage keeps (checked at the end of each task):
``docs_in + docs_added == docs_out + sum(dropped) + sum(errors)``, where
``docs_added`` counts copies a rebalancing stage wrote.

Documents out of a stage are also broken down (docs, chars, tokens) by the values of
the ``language`` column and of the ``dataset`` column (set from ``input.dataset``, or
carried by the input), once those columns exist.

Tokens are counted wherever documents carry an ``n_tokens`` column (the
``count_tokens`` stage adds it), so token totals cost a column sum, not a
tokenizer call per stage.

A stage that passes the dropped document (``drop(reason, doc=...)``) or rows
(``drop_rows``) also gets its characters counted per reason and, when the task
samples drops (``sampler``, see samples.py), the document offered to the sample;
a bare ``drop(reason)`` still works and is only counted.

A stage that cuts pieces out of documents it keeps (sub-document dedup) counts what it
removed with ``count_removed``: named totals (``spans``, ``tokens``, ``chars``, ``docs``,
...) in ``removed``, and the same per ``language`` and ``dataset`` value in
``removed_by_language`` / ``removed_by_dataset``, next to the documents-out breakdowns.
"""

from __future__ import annotations

import time
import weakref
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pipelines.lazy import lazy_module
from pipelines.schema import HTML, TEXT, content_column
from pipelines.sketches import Sketches

np = lazy_module("numpy")
pa = lazy_module("pyarrow")
pc = lazy_module("pyarrow.compute")

LANGUAGE = "language"
DATASET = "dataset"
TOKENS = "n_tokens"


@dataclass
class StageStats:
    docs_in: int = 0
    docs_out: int = 0
    chars_in: int = 0
    chars_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    dropped: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    # language -> [docs_out, chars_out, tokens_out], filled once a `language` column exists
    by_language: dict = field(default_factory=dict)
    tokens_in: int = 0
    tokens_out: int = 0
    docs_added: int = 0  # copies written by a stage that replicates documents
    # dataset -> [docs_out, chars_out, tokens_out], filled once a `dataset` column exists
    by_dataset: dict = field(default_factory=dict)
    # reason -> characters of the documents dropped or failed for it, where they were given
    chars_by_reason: Counter = field(default_factory=Counter)
    # reason -> documents rewritten for it (kept, not dropped: e.g. pii's replacements)
    changed: Counter = field(default_factory=Counter)
    # what was cut out of kept documents: metric -> n, and group value -> {metric: n}
    removed: Counter = field(default_factory=Counter)
    removed_by_language: dict = field(default_factory=dict)
    removed_by_dataset: dict = field(default_factory=dict)
    sampler: Any = field(default=None, repr=False, compare=False)  # samples.StageSampler
    # histograms of lengths in/out and of the numeric columns the stage wrote (sketches.py)
    sketches: Sketches = field(default_factory=Sketches)
    _names_in: Any = field(default=None, repr=False, compare=False)  # last input's columns

    @contextmanager
    def timed(self) -> Iterator[None]:
        """Charge the wall and CPU time of the ``with`` block to this stage."""
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall_s += time.perf_counter() - t0
            self.cpu_s += time.process_time() - c0

    def drop(self, reason: str, n: int = 1, doc: dict | None = None) -> None:
        """Count ``n`` documents dropped for ``reason``; ``doc`` (one of them, a mapping with
        ``id`` and ``text``/``url``/...) is also measured and offered to the sample."""
        self.dropped[reason] += n
        if doc is not None:
            self._note(reason, doc, error=False)

    def error(self, reason: str, n: int = 1, doc: dict | None = None) -> None:
        self.errors[reason] += n
        if doc is not None:
            self._note(reason, doc, error=True)

    def _note(self, reason: str, doc, error: bool) -> None:
        content = doc.get(TEXT)
        content = doc.get(HTML) if content is None else content
        if isinstance(content, str):
            self.chars_by_reason[reason] += len(content)
        if self.sampler is not None:
            self.sampler.offer(reason, doc, error=error)

    def drop_rows(self, reason: str, table: pa.Table, rows=None, error: bool = False,
                  score: str | None = None, details: tuple[str, ...] = ()) -> None:
        """Count rows of ``table`` as dropped (or, with ``error``, failed) for ``reason``:
        all rows, or ``rows`` (indices or a boolean mask). For vectorised stages: counts,
        characters and samples in one call. ``score``/``details`` name columns to sample."""
        if rows is None:
            idx = np.arange(table.num_rows)
        else:
            idx = np.asarray(rows)
            idx = np.flatnonzero(idx) if idx.dtype == bool else idx.astype(np.int64)
        if not len(idx):
            return
        (self.errors if error else self.dropped)[reason] += len(idx)
        col = content_column(table)
        if col is not None:
            taken = table.column(col).take(pa.array(idx, pa.int64()))
            self.chars_by_reason[reason] += int(pc.sum(pc.utf8_length(taken)).as_py() or 0)
        if self.sampler is not None:
            self.sampler.offer_rows(reason, table, idx, error=error, score=score,
                                    details=details)

    def change_rows(self, reason: str, table: pa.Table, rows, before, after) -> None:
        """Count rows ``rows`` of ``table`` as rewritten for ``reason`` (kept, not dropped)
        and offer them to the sample; ``before[j]``/``after[j]``: the text of ``rows[j]``
        before and after the change."""
        if not len(rows):
            return
        self.changed[reason] += len(rows)
        if self.sampler is not None:
            self.sampler.offer_changes(reason, table, rows, before, after)

    def count_removed(self, table: pa.Table, rows, metrics: dict[str, Any]) -> None:
        """Count what was cut out of rows ``rows`` of ``table`` (kept documents): for each
        metric name, ``metrics[name][j]`` belongs to ``rows[j]``; totals in ``removed``, and
        per value of the ``language`` / ``dataset`` column of ``table`` when it has one."""
        rows = np.asarray(rows, np.int64)
        if not len(rows):
            return
        vals = {k: np.asarray(v, np.int64) for k, v in metrics.items()}
        for k, v in vals.items():
            self.removed[k] += int(v.sum())
        for name, into in ((LANGUAGE, self.removed_by_language),
                           (DATASET, self.removed_by_dataset)):
            if name not in table.schema.names:
                continue
            groups = pc.fill_null(table.column(name).take(pa.array(rows)).cast(pa.string()),
                                  "unknown").to_pylist()
            for j, g in enumerate(groups):
                entry = into.setdefault(g, Counter())
                for k, v in vals.items():
                    entry[k] += int(v[j])

    @property
    def n_dropped(self) -> int:
        return sum(self.dropped.values())

    @property
    def n_errors(self) -> int:
        return sum(self.errors.values())

    def balanced(self) -> bool:
        return self.docs_in + self.docs_added == self.docs_out + self.n_dropped + self.n_errors

    def count_in(self, table: pa.Table | pa.RecordBatch) -> None:
        self.docs_in += table.num_rows
        lengths, c, b = _measure(table)
        self.chars_in += c
        self.bytes_in += b
        self.tokens_in += _tokens(table)
        self._names_in = frozenset(table.schema.names)
        self.sketches.observe_in(table, lengths)

    def count_out(self, table: pa.Table | pa.RecordBatch) -> None:
        self.docs_out += table.num_rows
        lengths, c, b = _measure(table)
        self.chars_out += c
        self.bytes_out += b
        self.tokens_out += _tokens(table)
        self.sketches.observe_out(table, lengths, self._names_in)
        if table.num_rows and (LANGUAGE in table.schema.names
                               or DATASET in table.schema.names):
            tokens = table.column(TOKENS) if TOKENS in table.schema.names else None
            for name, into in ((LANGUAGE, self.by_language), (DATASET, self.by_dataset)):
                if name in table.schema.names:
                    _count_groups(into, table.column(name), lengths, tokens)

    def __add__(self, other: StageStats) -> StageStats:
        return StageStats(
            docs_in=self.docs_in + other.docs_in,
            docs_out=self.docs_out + other.docs_out,
            chars_in=self.chars_in + other.chars_in,
            chars_out=self.chars_out + other.chars_out,
            bytes_in=self.bytes_in + other.bytes_in,
            bytes_out=self.bytes_out + other.bytes_out,
            dropped=self.dropped + other.dropped,
            errors=self.errors + other.errors,
            wall_s=self.wall_s + other.wall_s,
            cpu_s=self.cpu_s + other.cpu_s,
            by_language=_add_groups(self.by_language, other.by_language),
            by_dataset=_add_groups(self.by_dataset, other.by_dataset),
            tokens_in=self.tokens_in + other.tokens_in,
            tokens_out=self.tokens_out + other.tokens_out,
            docs_added=self.docs_added + other.docs_added,
            chars_by_reason=_add_counts(self.chars_by_reason, other.chars_by_reason),
            changed=_add_counts(self.changed, other.changed),
            sketches=self.sketches + other.sketches,
            removed=_add_counts(self.removed, other.removed),
            removed_by_language=_add_nested(self.removed_by_language,
                                            other.removed_by_language),
            removed_by_dataset=_add_nested(self.removed_by_dataset, other.removed_by_dataset),
        )

    def to_dict(self) -> dict[str, Any]:
        out = {
            "docs_in": self.docs_in,
            "docs_out": self.docs_out,
            "dropped": dict(sorted(self.dropped.items())),
            "errors": dict(sorted(self.errors.items())),
            "chars_in": self.chars_in,
            "chars_out": self.chars_out,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "wall_s": round(self.wall_s, 6),
            "cpu_s": round(self.cpu_s, 6),
            "by_language": _groups_dict(self.by_language),
            "by_dataset": _groups_dict(self.by_dataset),
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "docs_added": self.docs_added,
            "chars_by_reason": dict(sorted(self.chars_by_reason.items())),
            "sketches": self.sketches.to_dict(),
        }
        if self.changed:  # only stages that rewrite documents have the key
            out["changed"] = dict(sorted(self.changed.items()))
        if self.removed:  # only stages that cut pieces out of documents have these keys
            out["removed"] = dict(sorted(self.removed.items()))
            out["removed_by_language"] = _nested_dict(self.removed_by_language)
            out["removed_by_dataset"] = _nested_dict(self.removed_by_dataset)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StageStats:
        return cls(
            docs_in=d["docs_in"], docs_out=d["docs_out"],
            chars_in=d["chars_in"], chars_out=d["chars_out"],
            bytes_in=d.get("bytes_in", 0), bytes_out=d.get("bytes_out", 0),
            dropped=Counter(d.get("dropped", {})), errors=Counter(d.get("errors", {})),
            wall_s=d.get("wall_s", 0.0), cpu_s=d.get("cpu_s", 0.0),
            by_language=_groups_from(d.get("by_language", {})),
            by_dataset=_groups_from(d.get("by_dataset", {})),
            tokens_in=d.get("tokens_in", 0), tokens_out=d.get("tokens_out", 0),
            docs_added=d.get("docs_added", 0),
            chars_by_reason=Counter(d.get("chars_by_reason", {})),
            changed=Counter(d.get("changed", {})),
            sketches=Sketches.from_dict(d.get("sketches")),
            removed=Counter(d.get("removed", {})),
            removed_by_language={k: Counter(v) for k, v in
                                 d.get("removed_by_language", {}).items()},
            removed_by_dataset={k: Counter(v) for k, v in
                                d.get("removed_by_dataset", {}).items()},
        )


class RunStats:
    """Ordered stage name -> StageStats; ``+`` merges by name."""

    def __init__(self, stages: dict[str, StageStats] | None = None, sampler: Any = None):
        self.stages: dict[str, StageStats] = dict(stages or {})
        self.sampler = sampler  # samples.TaskSampler: stages created by stage() sample drops

    def __getitem__(self, name: str) -> StageStats:
        return self.stages[name]

    def stage(self, name: str) -> StageStats:
        """The stats of ``name``, created empty (and ordered last) if new."""
        if name not in self.stages:
            self.stages[name] = StageStats(
                sampler=self.sampler.stage(name) if self.sampler is not None else None)
        return self.stages[name]

    def __add__(self, other: RunStats) -> RunStats:
        merged = dict(self.stages)
        for name, st in other.stages.items():
            merged[name] = merged[name] + st if name in merged else st
        return RunStats(merged)

    @classmethod
    def sum(cls, items: Iterable[RunStats]) -> RunStats:
        total = cls()
        for item in items:
            total = total + item
        return total

    def to_dict(self) -> dict[str, Any]:
        return {name: st.to_dict() for name, st in self.stages.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunStats:
        return cls({name: StageStats.from_dict(v) for name, v in d.items()})

    def ordered(self, order: list[str]) -> RunStats:
        """Same stats with stages in pipeline order (unknown names last)."""
        names = [n for n in order if n in self.stages]
        names += [n for n in self.stages if n not in names]
        return RunStats({n: self.stages[n] for n in names})


def _add_counts(a: Counter, b: Counter) -> Counter:
    """a + b keeping zero entries (a reason whose documents were all empty has 0 chars)."""
    out = Counter(a)
    out.update(b)
    return out


_last: tuple = (None, None)  # (weak reference to a table, its _measure)


def _measure(table: pa.Table | pa.RecordBatch) -> tuple:
    """(characters of each document's content or None, their sum, their UTF-8 bytes).

    A table counted out of one stage is counted into the next, and a chain's stages
    may pass it on unchanged: the last table's measure is kept (by weak reference,
    so its memory is not), and its text is read once instead of up to eight times.
    """
    global _last
    ref, sizes = _last
    if ref is not None and ref() is table:
        return sizes
    col = content_column(table)
    if col is None or table.num_rows == 0:
        sizes = (None, 0, 0)
    else:
        arr = table.column(col)
        lengths = pc.utf8_length(arr)
        sizes = (lengths, int(pc.sum(lengths).as_py() or 0),
                 int(pc.sum(pc.binary_length(arr)).as_py() or 0))
    _last = (weakref.ref(table), sizes)
    return sizes


def _tokens(table: pa.Table | pa.RecordBatch) -> int:
    if TOKENS not in table.schema.names or table.num_rows == 0:
        return 0
    return int(pc.sum(table.column(TOKENS)).as_py() or 0)


def _count_groups(into: dict, values: pa.ChunkedArray | pa.Array, lengths,
                  tokens=None) -> None:
    """Add [docs, chars, tokens] per value of ``values`` (null: "unknown") into ``into``."""
    n = len(values)
    t = pa.table({"v": pc.fill_null(values.cast(pa.string()), "unknown"),
                  "c": lengths if lengths is not None else pa.nulls(n, pa.int64()),
                  "t": tokens if tokens is not None else pa.nulls(n, pa.int64())})
    g = t.group_by("v").aggregate([("v", "count"), ("c", "sum"), ("t", "sum")])
    for v, k, c, tk in zip(g["v"].to_pylist(), g["v_count"].to_pylist(),
                           g["c_sum"].to_pylist(), g["t_sum"].to_pylist()):
        entry = into.setdefault(v, [0, 0, 0])
        entry[0] += int(k)
        entry[1] += int(c or 0)
        entry[2] += int(tk or 0)


def _add_groups(a: dict, b: dict) -> dict:
    out = {k: list(v) for k, v in a.items()}
    for k, v in b.items():
        e = out.setdefault(k, [0, 0, 0])
        for i, x in enumerate(v):
            e[i] += x
    return out


def _add_nested(a: dict, b: dict) -> dict:
    out = {k: Counter(v) for k, v in a.items()}
    for k, v in b.items():
        out[k] = _add_counts(out.get(k, Counter()), v)
    return out


def _nested_dict(groups: dict) -> dict:
    return {k: dict(sorted(v.items())) for k, v in sorted(groups.items())}


def _groups_dict(groups: dict) -> dict:
    return {k: {"docs_out": v[0], "chars_out": v[1], "tokens_out": v[2]}
            for k, v in sorted(groups.items())}


def _groups_from(d: dict) -> dict:
    return {k: [v["docs_out"], v["chars_out"], v.get("tokens_out", 0)] for k, v in d.items()}
