"""Filters whose rules are thresholds on per-document measurements.

Such a filter is two methods: ``measure(doc, full)`` gives the numbers its rules
compare (word counts, ratios, ...) and ``decide(m, doc)`` runs the rules in their
order and returns the first that fires. Every way of deciding goes through that one
``decide``, so the same rules in the same order give the same first failing reason:

- filter mode measures lazily (``full=False``): a measurement no rule reaches is
  not made, and a costly one may be replaced by a bound that decides the same;
- annotate mode measures everything (``full=True``) and writes each measurement
  as a column ``<stage name>_<measure>``; null means the rule does not apply to
  the document (no words to take a ratio of, ...) at any threshold;
- ``thresher materialize`` reads those columns back into ``decide`` at new
  parameters (``decide_from_columns``).

Only the parameters in ``materialize_params`` (thresholds, rule switches) can change
in materialize; those that change what is measured (word lists, the tokenizer,
...) cannot, and materialize refuses them by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pyarrow as pa

from pipelines.errors import UserError
from pipelines.stage import Filter


def above(value: float | None, limit: float | None) -> bool:
    """The rule "at most ``limit``" fails (a null value or limit never fails)."""
    return value is not None and limit is not None and value > limit


def below(value: float | None, limit: float | None) -> bool:
    """The rule "at least ``limit``" fails (a null value or limit never fails)."""
    return value is not None and limit is not None and value < limit


class Lazy(dict):
    """Measurements of one document, computed on first use.

    ``fill(m, key)`` must store ``key`` (and may store others it computes on the way).
    """

    def __init__(self, fill: Callable[[Lazy, str], None], known: dict[str, Any]):
        super().__init__(known)
        self._fill = fill

    def __missing__(self, key: str) -> Any:
        self._fill(self, key)
        return self[key]


class MeasuredFilter(Filter):
    """A filter whose decision is ``decide(measure(doc))``; see the module docstring."""

    def measure_types(self) -> dict[str, pa.DataType]:
        """Measure name -> Arrow type, for the current parameters."""
        raise NotImplementedError

    def measure_param(self, measure: str) -> str | None:
        """The parameter whose rule reads ``measure`` (for error messages)."""
        return None

    def measure(self, doc: dict[str, Any], full: bool) -> Mapping[str, Any]:
        raise NotImplementedError

    def decide(self, m: Mapping[str, Any], doc: dict[str, Any]) -> str | None:
        raise NotImplementedError

    @property
    def annotating(self) -> bool:
        return getattr(self.params, "mode", "filter") == "annotate"

    def measure_columns(self) -> dict[str, pa.DataType]:
        return {f"{self.name}_{k}": t for k, t in self.measure_types().items()}

    def setup(self) -> None:
        if self.annotating:
            self.annotations = {**self.annotations, **self.measure_columns()}

    def measured(self, m: Mapping[str, Any]) -> dict[str, Any]:
        """The annotate-mode columns of measurements ``m``."""
        return {f"{self.name}_{k}": m[k] for k in self.measure_types()}

    def check(self, doc: dict[str, Any]) -> str | None | tuple[str | None, dict[str, Any]]:
        m = self.measure(doc, self.annotating)
        reason = self.decide(m, doc)
        return (reason, self.measured(m)) if self.annotating else reason

    def decide_from_columns(self, table: pa.Table) -> list[str | None]:
        """`thresher materialize`: ``decide`` on the measurements an annotate run stored."""
        names = list(self.measure_types())
        columns = []
        for k in names:
            col = f"{self.name}_{k}"
            if col not in table.schema.names:
                param = self.measure_param(k)
                needs = f"{param} needs" if param else "deciding needs"
                raise UserError(f"stage {self.name!r}: {needs} column {col!r}, which the run "
                                "does not have (annotate mode stores what its own parameters "
                                "measure; or output.drop_columns removed it); re-run the pipeline")
            columns.append(table.column(col).to_pylist())
        ids = table.column("id").to_pylist() if "id" in table.schema.names \
            else [None] * table.num_rows
        rows = zip(*columns) if columns else (() for _ in range(table.num_rows))
        return [self.decide(dict(zip(names, row)), {"id": i}) for row, i in zip(rows, ids)]
