"""The stage protocol: a small base a user can subclass in ten lines.

A stage turns an Arrow table of documents into another one and counts what it
did into a ``StageStats``. Most stages are naturally per document; for those,
subclass ``Filter`` (return a drop *reason*, never a bare bool) or ``Annotator``
(return new columns) and the base class does the batching, the counting, the
``mode: annotate`` switch and per-document error isolation::

    class MinWords(Filter):
        '''Drop documents with fewer than `min_words` words.'''
        class Params(Filter.Params):
            min_words: int = 50

        def check(self, doc):
            if len(doc["text"].split()) < self.params.min_words:
                return "too_few_words"

Stages that can work on whole columns override ``process`` (or ``check_batch``).

Every stage declares the columns it reads (``input_columns``) and writes
(``output_columns``) from its parameters alone, before ``setup`` loads any model,
so that ``thresher validate`` can refuse a chain that could only fail at run time
(pipelines/chain.py). Column types are Arrow types or their aliases (``"string"``,
``"float64"``, resolved by ``pipelines.schema.arrow_type``); built-in stages use aliases,
so that importing a stage module for its parameters imports no pyarrow (issue #20).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipelines.errors import UserError
from pipelines.lazy import lazy_module
from pipelines.schema import TEXT, arrow_type
from pipelines.stats import StageStats

pa = lazy_module("pyarrow")

log = logging.getLogger(__name__)


#: key of ``output_columns`` (and of a reader's columns) meaning "and further columns
#: known only at run time": after it, no column can be proved missing
ANY_COLUMN = "*"


class Params(BaseModel):
    """Base of every stage's parameters: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class TaskContext:
    """What a stage may know about the task it runs in (never the worker)."""

    run_dir: Path
    phase: str
    task: int
    source: str
    seed: int = 0


class ErrorReason(str):
    """A reason that marks an error (bad input or a stage bug), not a decision."""


class Stage:
    """Base of all stages.

    ``name`` is the instance name used in stats (the YAML ``name:``, which
    defaults to the registered stage name). ``setup`` runs once per process
    before the first task (load models there); ``begin_task`` before each task.
    """

    Params: ClassVar[type[Params]] = Params
    kind: ClassVar[Literal["map", "global"]] = "map"

    def __init__(self, params: Params | None = None, name: str | None = None):
        self.params = params if params is not None else self.Params()
        self.name = name or type(self).__name__.lower()

    def setup(self) -> None:
        """Load models and other per-process state."""

    def begin_task(self, ctx: TaskContext) -> None:
        """Reset per-task state (caches that would make output order-dependent)."""

    def process(self, table: pa.Table, stats: StageStats) -> pa.Table:
        raise NotImplementedError

    def input_columns(self) -> tuple[str, ...]:
        """Columns this stage cannot work without (known from the params, before ``setup``).

        The default declares none: a stage that does not say is never refused."""
        return ()

    def output_columns(self) -> dict[str, pa.DataType | str | None]:
        """Columns this stage adds or rewrites, with their type (None: known at run time).

        The default, ``{ANY_COLUMN: None}``, says "any column": after an undeclared
        stage the chain check (pipelines/chain.py) assumes every column may exist."""
        return {ANY_COLUMN: None}

    def removed_columns(self) -> tuple[str, ...]:
        """Columns this stage drops from the documents it passes on."""
        return ()

    def model_files(self) -> dict[str, str]:
        """Every file this stage reads that decides its output (a model, a tokenizer, a
        word list): absolute path -> sha256, for the manifest; reproduce checks them."""
        return {}


def set_column(table: pa.Table, name: str, values: pa.Array | list,
               type_: pa.DataType | str) -> pa.Table:
    """Add or replace column ``name`` with typed ``values``."""
    type_ = arrow_type(type_)
    arr = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values, type_)
    idx = table.schema.get_field_index(name)
    field = pa.field(name, type_)
    if idx >= 0:
        return table.set_column(idx, field, arr)
    return table.append_column(field, arr)


def iter_docs(table: pa.Table, columns: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    """One small dict per row with just ``columns`` (missing columns give None)."""
    names = [c for c in columns if c in table.schema.names]
    cols = [table.column(c).to_pylist() for c in names]
    missing = [c for c in columns if c not in names]
    for row in zip(*cols) if cols else ({} for _ in range(table.num_rows)):
        doc = dict(zip(names, row))
        for c in missing:
            doc[c] = None
        yield doc


def require_columns(stage: Stage, table: pa.Table, names: tuple[str, ...]) -> None:
    """A clear error when a stage is placed before the stage that makes its input."""
    missing = [c for c in names if c not in table.schema.names]
    if missing:
        hint = " (put `extract` before it)" if missing == [TEXT] and "html" in \
            table.schema.names else ""
        raise UserError(f"stage {stage.name!r} needs column(s) {', '.join(missing)}, which "
                        f"its input does not have{hint}; columns: {', '.join(table.schema.names)}")


def _error_reason(stage: Stage, doc: dict, exc: BaseException) -> ErrorReason:
    log.warning("stage %s: %s on document %s: %s", stage.name, type(exc).__name__,
                doc.get("id"), exc)
    return ErrorReason(f"exception:{type(exc).__name__}")


class FilterParams(Params):
    mode: Literal["filter", "annotate"] = Field(
        "filter", description="filter: drop documents; annotate: keep them all and write "
                              "the reason into a `<name>_reason` column (and, for filters "
                              "with thresholds, what they measured: docs/filters.md)")


class Filter(Stage):
    """Keeps or drops each document, always saying why it dropped one.

    ``check(doc)`` returns ``None`` to keep, a reason string to drop, or
    ``(reason_or_None, {column: value})`` to also annotate. ``columns`` lists the
    columns ``doc`` carries; ``annotations`` the typed columns ``check`` may add.
    """

    Params: ClassVar[type[Params]] = FilterParams
    columns: ClassVar[tuple[str, ...]] = ("id", TEXT)
    required: ClassVar[tuple[str, ...]] = (TEXT,)
    annotations: ClassVar[dict[str, pa.DataType | str]] = {}

    def check(self, doc: dict[str, Any]) -> str | None | tuple[str | None, dict[str, Any]]:
        raise NotImplementedError

    def decide_from_columns(self, table: pa.Table) -> list[str | None]:
        """Optional: reasons at the current params from columns an annotate run stored.

        ``thresher materialize`` calls it to re-filter an annotated run at new
        thresholds without recomputing scores; override it when the decision is a
        threshold on columns the stage writes (see docs/filters.md), and list in
        ``materialize_params`` the parameters it honours: materialize refuses to
        change any other.
        """
        raise NotImplementedError

    #: parameters ``decide_from_columns`` decides at new values (``thresher materialize``)
    materialize_params: ClassVar[frozenset[str]] = frozenset()

    def measure_columns(self) -> dict[str, pa.DataType | str]:
        """Columns written only in ``mode: annotate`` (per-rule measurements), so that
        ``thresher materialize`` can re-decide from them and drop them in filter mode."""
        return {}

    def input_columns(self) -> tuple[str, ...]:
        """``required``: the columns ``check`` cannot do without."""
        return tuple(self.required)

    def output_columns(self) -> dict[str, pa.DataType | str | None]:
        """``annotations``, and in ``mode: annotate`` the measurements and the reason."""
        out: dict[str, pa.DataType | str | None] = dict(self.annotations)
        if getattr(self.params, "mode", "filter") == "annotate":
            out.update(self.measure_columns())
            out[f"{self.name}_reason"] = "string"
        return out

    def check_batch(self, table: pa.Table) -> tuple[list[str | None], dict[str, list]]:
        reasons: list[str | None] = []
        cols: dict[str, list] = {c: [] for c in self.annotations}
        for doc in iter_docs(table, self.columns):
            try:
                out = self.check(doc)
            except Exception as exc:  # one bad document must not kill the task
                out = _error_reason(self, doc, exc)
            values: dict[str, Any] = {}
            if isinstance(out, tuple):
                out, values = out
            reasons.append(out)
            for c in cols:
                cols[c].append(values.get(c))
        return reasons, cols

    def process(self, table: pa.Table, stats: StageStats) -> pa.Table:
        require_columns(self, table, self.required)
        reasons, cols = self.check_batch(table)
        for c, values in cols.items():
            table = set_column(table, c, values, self.annotations[c])
        keep = []
        annotate = getattr(self.params, "mode", "filter") == "annotate"
        dropped: dict[tuple[str, bool], list[int]] = {}  # (reason, is error) -> rows
        for i, r in enumerate(reasons):
            if r is None or (annotate and not isinstance(r, ErrorReason)):
                keep.append(True)
            else:
                dropped.setdefault((r, isinstance(r, ErrorReason)), []).append(i)
                keep.append(False)
        score = next((c for c, t in self.annotations.items()
                      if pa.types.is_floating(arrow_type(t))), None)
        for (r, error), rows in dropped.items():  # counts, chars and samples per reason
            stats.drop_rows(str(r), table, rows, error=error, score=score,
                            details=tuple(self.annotations))
        if annotate:
            table = set_column(table, f"{self.name}_reason",
                               [None if isinstance(r, ErrorReason) else r for r in reasons],
                               pa.string())
        return table.filter(pa.array(keep, pa.bool_()))


class Annotator(Filter):
    """Adds columns, never drops (except documents it fails on, counted as errors)."""

    Params: ClassVar[type[Params]] = Params

    def annotate(self, doc: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def check(self, doc: dict[str, Any]):
        return None, self.annotate(doc)
