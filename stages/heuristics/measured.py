"""Filters whose rules are thresholds on per-document measurements, kept in one table.

A rule is a row ``Rule(measure, param, fails, reason)``: the document is dropped with
``reason`` when its ``measure`` is ``below`` or ``above`` the value of ``param``. The
rows are in the order the rules run, and the first failing rule gives the reason. A
filter declares its table (``RuleTable``) and a ``measure`` method; everything else
comes from the table:

- which rules are on at the current parameters (a null limit disables its rule);
- ``decide``: the first failing rule, in filter mode, annotate mode and ``thresher
  materialize`` alike, so all three give the same first reason;
- the annotate-mode columns ``<stage name>_<measure>`` (``measure_columns``); a null
  value means no rule applies to the document at any threshold;
- ``materialize_params``: the parameters the rules read, which materialize can change
  (``decide_from_columns`` reads the stored columns back). Those that change what is
  measured (word lists, the tokenizer, ...) are not in the table, and materialize
  refuses them by name.

Filter mode measures lazily (``measure(doc, full=False)``): a measurement no rule
reaches is not made, and a costly one may be replaced by a bound that decides the
same; annotate mode measures everything (``full=True``).

The parameters are also checked when the config is read (``check_order``): a minimum
above its maximum would drop every document.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar, Literal, NamedTuple

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from pipelines.errors import UserError
from pipelines.lazy import lazy_module
from pipelines.stage import Filter, Params
from stages.heuristics import per_language
from stages.heuristics.per_language import LANGUAGE
from stages.text.words import uses_language

pa = lazy_module("pyarrow")
pc = lazy_module("pyarrow.compute")

Fails = Literal["below", "above", "null", "zero", "set", "true"]


def above(value: float | None, limit: float | None) -> bool:
    """The rule "at most ``limit``" fails (a null value or limit never fails)."""
    return value is not None and limit is not None and value > limit


def below(value: float | None, limit: float | None) -> bool:
    """The rule "at least ``limit``" fails (a null value or limit never fails)."""
    return value is not None and limit is not None and value < limit


# how each kind of rule fails, on one value and on a column (null: does not fail)
_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "below": below, "above": above,
    "null": lambda v, _: v is None, "zero": lambda v, _: not v,
    "set": lambda v, _: v is not None, "true": lambda v, _: bool(v),
}


@cache
def _column_tests() -> dict[str, Callable[[Any, Any], Any]]:
    """The same on a column (built on first use: pyarrow.compute is not imported to
    validate a config)."""
    return {
        "below": pc.less, "above": pc.greater,
        "null": lambda v, _: pc.is_null(v),
        "zero": lambda v, _: pc.fill_null(pc.equal(v, 0), True),
        "set": lambda v, _: pc.is_valid(v), "true": lambda v, _: pc.fill_null(v, False),
    }


@dataclass(frozen=True)
class Rule:
    """One row of a rule table: drop with ``reason`` when ``measure`` ``fails``.

    ``fails`` is ``below``/``above`` the value of ``param`` (the limit), or, for rules
    that are not thresholds, ``null`` (nothing to measure), ``zero`` (0 or null),
    ``set`` (not null) or ``true``; their ``param``, if any, switches them on. A rule
    whose ``param`` is null or false is off; one without ``param`` is always on.

    - ``per_n``: ``param`` is a mapping n -> limit, and ``measure``/``reason`` hold
      ``{n}``: one rule per n, run in order of n (a run of such rows: by n, then by row);
    - ``unless(filter, m, doc)``: an exception that keeps the document, reading the
      measurements and the parameters in ``reads`` (materialize can change them);
    - ``needs``: a parameter without which the rule and its measure do not exist
      (it changes what is measured, so materialize cannot change it).
    """

    measure: str
    param: str | None
    fails: Fails
    reason: str
    per_n: bool = False
    unless: Callable[[Any, Mapping[str, Any], dict[str, Any]], bool] | None = None
    reads: tuple[str, ...] = ()
    needs: str | None = None


class Check(NamedTuple):
    """A rule as it runs: its measure and reason (n filled in) and its limit."""

    measure: str
    limit: Any
    test: Callable[[Any, Any], bool]
    reason: str
    unless: Callable[[Any, Mapping[str, Any], dict[str, Any]], bool] | None
    fails: str


class RuleTable:
    """A filter's measures (name -> Arrow type, in column order) and rules (run order)."""

    def __init__(self, measures: dict[str, pa.DataType], *rules: Rule):
        for r in rules:
            if r.measure not in measures:
                raise ValueError(f"rule {r.reason}: measure {r.measure!r} is not declared")
            if r.per_n != ("{n}" in r.measure) or (r.per_n and not r.param):
                raise ValueError(f"rule {r.reason}: per_n needs a param and {{n}} in measure")
        self.measures = measures
        self.rules = rules
        #: what materialize can change: the parameters the rules compare with or read
        self.params = frozenset(
            [r.param for r in rules if r.param] + [p for r in rules for p in r.reads])

    def checks(self, params: BaseModel) -> tuple[Check, ...]:
        """The rules that are on at ``params``, in the order they run."""
        out: list[Check] = []
        i = 0
        while i < len(self.rules):
            r = self.rules[i]
            if r.needs and not getattr(params, r.needs):
                i += 1
            elif r.per_n:  # this row and the next per-n ones run together, by n
                j = i
                while j < len(self.rules) and self.rules[j].per_n:
                    j += 1
                group = self.rules[i:j]
                limits = [getattr(params, g.param) or {} for g in group]  # type: ignore
                for n in sorted({n for lim in limits for n in lim}):
                    out += [_check(g, lim[n], n) for g, lim in zip(group, limits)
                            if n in lim and lim[n] is not None]
                i = j
            else:
                value = getattr(params, r.param) if r.param else None
                if r.param is None or (value is not None and value is not False):
                    out.append(_check(r, value, None))
                i += 1
        return tuple(out)

    def measure_types(self, params: BaseModel) -> dict[str, pa.DataType]:
        """Measure -> Arrow type at ``params`` (the annotate-mode columns, in order)."""
        out: dict[str, pa.DataType] = {}
        for name, type_ in self.measures.items():
            readers = [r for r in self.rules if r.measure == name]
            if readers and all(r.needs and not getattr(params, r.needs) for r in readers):
                continue  # only rules that do not exist read it
            if "{n}" in name:
                out |= {name.format(n=n): type_ for n in sorted(self._sizes(params, name))}
            else:
                out[name] = type_
        return out

    def measure_param(self, params: BaseModel, measure: str) -> str | None:
        """The parameter of the first rule that reads ``measure`` (for error messages)."""
        for r in self.rules:
            if not r.param:
                continue
            if r.per_n:
                pattern = re.escape(r.measure).replace(re.escape("{n}"), r"(\d+)")
                m = re.fullmatch(pattern, measure)
                if m:
                    return f"{r.param} (n = {m.group(1)})"
            elif r.measure == measure:
                return r.param
        return None

    def _sizes(self, params: BaseModel, measure: str) -> set[int]:
        return {n for r in self.rules if r.per_n and r.measure == measure
                for n in getattr(params, r.param) or {}}  # type: ignore[arg-type]


def _check(r: Rule, limit: Any, n: int | None) -> Check:
    name = (lambda s: s) if n is None else (lambda s: s.format(n=n))
    return Check(name(r.measure), limit, _TESTS[r.fails], name(r.reason), r.unless, r.fails)


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


class RuleFilter(Filter):
    """A filter decided by its ``rules`` table; see the module docstring.

    Columns are declared in ``__init__`` from the parameters, so what the stage reads
    and writes is known before ``setup`` loads anything.
    """

    rules: ClassVar[RuleTable]
    #: the key of this filter's rows in per-language threshold tables (its stage name)
    table_kind: ClassVar[str | None] = None
    #: parameters besides the rules' that a per-language table may set (they change what
    #: is measured, e.g. stop words: materialize re-decides on the stored measurements)
    per_language_extra: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "rules" in cls.__dict__:  # what materialize can change comes from the table
            cls.materialize_params = cls.rules.params | (
                {"thresholds"} if "thresholds" in cls.Params.model_fields else set())

    def __init__(self, params: Params | None = None, name: str | None = None):
        super().__init__(params, name)
        self.checks = self.rules.checks(self.params)
        self._measure_types = self.rules.measure_types(self.params)  # params are frozen
        self._by_language, self._table_path = self._language_params()
        self._language_checks = {lang: self.rules.checks(p)
                                 for lang, p in self._by_language.items()}
        if self.reads_language():
            self.columns = (*self.columns, LANGUAGE)
            self.required = (*self.required, LANGUAGE)
        if self.annotating:
            self.annotations = {**self.annotations, **self.measure_columns()}

    # ------------------------------------------------------------ per language
    def reads_language(self) -> bool:
        """Whether documents are measured or decided by their `language` column."""
        return bool(self._by_language) or uses_language(getattr(self.params, "tokenizer", ""))

    def _language_params(self) -> tuple[dict[str, Params], str | None]:
        spec = getattr(self.params, "thresholds", None)
        if spec is None:
            return {}, None
        table, path = per_language.load(spec, self.table_kind or self.name, self.name)
        allowed = {r.param for r in self.rules.rules if r.param and r.fails in
                   ("below", "above")} | self.per_language_extra
        base = self.params.model_dump()
        out: dict[str, Params] = {}
        for lang, row in sorted(table.items()):
            bad = sorted(set(row) - allowed)
            if bad:
                raise UserError(f"stage {self.name}: thresholds for {lang!r}: {', '.join(bad)} "
                                f"cannot differ per language; these can: "
                                f"{', '.join(sorted(allowed))}")
            merged = dict(base, thresholds=None)
            for k, v in row.items():
                old = base.get(k)
                merged[k] = {**old, **{int(n): x for n, x in v.items()}} \
                    if isinstance(old, dict) and isinstance(v, dict) else v
            try:
                out[lang] = type(self.params).model_validate(merged)
            except ValidationError as e:
                first = e.errors()[0]
                raise UserError(f"stage {self.name}: thresholds for {lang!r}: "
                                f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
        return out, path

    def params_for(self, language: str | None) -> Any:
        """The parameters documents of ``language`` are measured and decided with."""
        if not self._by_language:
            return self.params
        return per_language.lookup(self._by_language, language) or self.params

    def checks_for(self, language: str | None) -> tuple[Check, ...]:
        if not self._language_checks:
            return self.checks
        return per_language.lookup(self._language_checks, language) or self.checks

    def all_checks(self) -> tuple[Check, ...]:
        """The rules that are on for some language (what a batch may need measured)."""
        return self.checks + tuple(c for cs in self._language_checks.values() for c in cs)

    def batch_languages(self, table: pa.Table) -> list[str | None] | None:
        """The `language` of each row when per-language thresholds decide, else None."""
        if not self._language_checks:
            return None
        return table.column(LANGUAGE).to_pylist()

    def model_files(self) -> dict[str, str]:
        """The threshold table decides the output: the manifest records its sha256."""
        return per_language.sha256(self._table_path) if self._table_path else {}

    @property
    def annotating(self) -> bool:
        return getattr(self.params, "mode", "filter") == "annotate"

    def measure_types(self) -> dict[str, pa.DataType]:
        """Measure name -> Arrow type, for the current parameters."""
        return self._measure_types

    def measure_param(self, measure: str) -> str | None:
        """The parameter whose rule reads ``measure`` (for error messages)."""
        return self.rules.measure_param(self.params, measure)

    def measure_columns(self) -> dict[str, pa.DataType]:
        return {f"{self.name}_{k}": t for k, t in self.measure_types().items()}

    def decide_columns(self, m: Mapping[str, pa.Array | pa.ChunkedArray],
                       n: int, languages: list[str | None] | None = None) -> list[str | None]:
        """The first failing rule of each row, from whole columns of measurements."""
        reasons: list[str | None] = [None] * n
        for checks, rows in self._row_groups(languages, n):
            cols = m if rows is None else {k: v.take(rows) for k, v in m.items()}
            where = range(n) if rows is None else rows
            for c in checks:
                if c.unless is not None:
                    raise TypeError(f"rule {c.reason}: an `unless` rule is decided row by row")
                bads = _column_tests()[c.fails](cols[c.measure], c.limit).to_pylist()
                for i, bad in zip(where, bads):
                    if bad and reasons[i] is None:
                        reasons[i] = c.reason
        return reasons

    def _row_groups(self, languages: list[str | None] | None, n: int) -> list:
        """(checks, row indices or None for all) per distinct set of checks."""
        if not self._language_checks or languages is None:
            return [(self.checks, None)]
        groups: dict[int, tuple[tuple[Check, ...], list[int]]] = {}
        for i, lang in enumerate(languages):
            checks = self.checks_for(lang)
            groups.setdefault(id(checks), (checks, []))[1].append(i)
        return list(groups.values())

    def stored_measures(self, table: pa.Table) -> dict[str, pa.ChunkedArray]:
        """The measurement columns of an annotate run (one-line error for a missing one)."""
        out = {}
        for k in self.measure_types():
            col = f"{self.name}_{k}"
            if col not in table.schema.names:
                param = self.measure_param(k)
                needs = f"{param} needs" if param else "deciding needs"
                raise UserError(f"stage {self.name!r}: {needs} column {col!r}, which the run "
                                "does not have (annotate mode stores what its own parameters "
                                "measure; or output.drop_columns removed it); re-run the pipeline")
            out[k] = table.column(col)
        return out

    def decide_from_columns(self, table: pa.Table) -> list[str | None]:
        """`thresher materialize`: the rules at the current parameters on stored columns."""
        return self.decide_columns(self.stored_measures(table), table.num_rows,
                                   self.stored_languages(table))

    def stored_languages(self, table: pa.Table) -> list[str | None] | None:
        """The `language` column, when per-language thresholds need it."""
        if not self._language_checks:
            return None
        if LANGUAGE not in table.schema.names:
            raise UserError(f"stage {self.name!r}: per-language thresholds need the "
                            f"{LANGUAGE!r} column, which the run does not have")
        return table.column(LANGUAGE).to_pylist()


class MeasuredFilter(RuleFilter):
    """A rule filter decided one document at a time: ``decide(measure(doc))``."""

    def measure(self, doc: dict[str, Any], full: bool) -> Mapping[str, Any]:
        raise NotImplementedError

    def decide(self, m: Mapping[str, Any], doc: dict[str, Any] | None = None) -> str | None:
        """The reason of the first rule that fails, or None."""
        checks = self.checks_for(doc.get(LANGUAGE)) if doc and self._language_checks \
            else self.checks
        for c in checks:
            if c.test(m[c.measure], c.limit) and not (
                    c.unless is not None and c.unless(self, m, doc or {})):
                return c.reason
        return None

    def measured(self, m: Mapping[str, Any]) -> dict[str, Any]:
        """The annotate-mode columns of measurements ``m``."""
        return {f"{self.name}_{k}": m[k] for k in self.measure_types()}

    def check(self, doc: dict[str, Any]) -> str | None | tuple[str | None, dict[str, Any]]:
        m = self.measure(doc, self.annotating)
        reason = self.decide(m, doc)
        return (reason, self.measured(m)) if self.annotating else reason

    def decide_from_columns(self, table: pa.Table) -> list[str | None]:
        """`thresher materialize`: ``decide`` on the measurements an annotate run stored."""
        stored = self.stored_measures(table)
        names = list(stored)
        columns = [c.to_pylist() for c in stored.values()]
        ids = table.column("id").to_pylist() if "id" in table.schema.names \
            else [None] * table.num_rows
        langs = self.stored_languages(table) or [None] * table.num_rows
        rows = zip(*columns) if columns else (() for _ in range(table.num_rows))
        return [self.decide(dict(zip(names, row)), {"id": i, LANGUAGE: lang})
                for row, i, lang in zip(rows, ids, langs)]


# ----------------------------------------------------------------------------- validation

def refuse(model: BaseModel, field: str, message: str) -> ValidationError:
    """A validation error located at ``field`` from a model validator (the config loader
    turns it into ``FILE:LINE: stages[i].field: message, got VALUE``)."""
    return ValidationError.from_exception_data(type(model).__name__, [InitErrorDetails(
        type=PydanticCustomError("parameter_range", message), loc=(field,),
        input=getattr(model, field))])


def check_order(model: BaseModel, *pairs: tuple[str, str]) -> None:
    """Refuse a ``(low, high)`` pair of parameters with low > high (both set): no document
    could pass. The error names the one the user wrote (``high`` when both or neither)."""
    for low, high in pairs:
        lo, hi = getattr(model, low), getattr(model, high)
        if lo is not None and hi is not None and lo > hi:
            if low in model.model_fields_set and high not in model.model_fields_set:
                raise refuse(model, low, f"must be at most {high} ({hi:g})")
            raise refuse(model, high, f"must be at least {low} ({lo:g})")
