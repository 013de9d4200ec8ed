"""Histograms of document lengths and numeric columns that merge exactly across tasks.

Why fixed bins: each task counts its documents into bins whose edges are fixed here,
never derived from the data, so two tasks' counts add bin by bin and the merged
histogram is the same whatever the task split, the worker count or a resume (the
same associative ``+`` as every other counter in ``stats.py``). Counts are integers
and stored sparse (only non-empty bins), keyed by the bin's lower edge, so
``stats.json`` reads without this module.

Two schemes, chosen by the column's type only (so every task chooses the same):

- ``log10`` (lengths and integer columns): one bin per integer 0..9, then ten bins
  per decade at round numbers (10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 120, ...)
  up to 10^12, so thresholds such as 200 or 1000 fall on an edge.
- ``real`` (floating columns, e.g. ``language_score``): fifty bins of 0.02 over
  [0, 1] (1.0 itself goes to the last one), then the ``log10`` edges above 1.

Values below 0 are counted as ``under``; nulls and NaN as ``null``. The edges never
change: a different binning must be a new scheme name, so every stats.json keeps loading.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pipelines.lazy import lazy_module

np = lazy_module("numpy")
pa = lazy_module("pyarrow")
pc = lazy_module("pyarrow.compute")

LOG10, REAL = "log10", "real"
MAX_COLUMNS = 32  # numeric columns sketched per stage at most (the first, by name)


def _log10_edges() -> np.ndarray:
    steps = (10, 12, 15, 20, 25, 30, 40, 50, 60, 80)  # round numbers, ratios 1.2 to 1.33
    decades = [m * 10 ** d for d in range(11) for m in steps] + [10 ** 12]
    return np.array(list(range(10)) + decades, dtype=np.float64)


@cache
def _edges() -> dict[str, np.ndarray]:
    return {
        LOG10: _log10_edges(),
        REAL: np.concatenate([np.arange(51) / 50, _log10_edges()[2:]]),  # 0, 0.02, ..., 1, 2, 3
    }


_ONE = 49  # index of the real scheme's bin [0.98, 1], which takes 1.0 itself


def edges(scheme: str) -> np.ndarray:
    """Lower edges of every bin of ``scheme``; the last bin is open-ended."""
    return _edges()[scheme]


def edge_label(scheme: str, i: int) -> str:
    """The lower edge of bin ``i`` as written in stats.json ("0.64", "200")."""
    e = float(_edges()[scheme][i])
    return str(int(e)) if e.is_integer() else f"{e:g}"


@cache
def _index(scheme: str) -> dict[str, int]:
    """Bin label (as in stats.json) -> bin index."""
    return {edge_label(scheme, i): i for i in range(len(_edges()[scheme]))}


def scheme_for(type_: pa.DataType) -> str | None:
    """The scheme of a column type, or None for columns that are not sketched."""
    if pa.types.is_integer(type_):
        return LOG10
    if pa.types.is_floating(type_):
        return REAL
    return None


@dataclass
class Hist:
    """Counts per fixed bin of one scheme; ``+`` adds bin by bin."""

    scheme: str = LOG10
    counts: Counter = field(default_factory=Counter)  # bin index -> documents
    under: int = 0  # values below 0
    null: int = 0  # nulls and NaN

    @property
    def n(self) -> int:
        return sum(self.counts.values()) + self.under + self.null

    def add(self, values: pa.Array | pa.ChunkedArray | np.ndarray) -> None:
        """Count a column (or numbers) into the bins: one searchsorted + bincount."""
        if not isinstance(values, np.ndarray):
            self.null += values.null_count
            values = pc.drop_null(values).to_numpy(zero_copy_only=False)
        x = values.astype(np.float64, copy=False)
        nan = np.isnan(x)
        if nan.any():
            self.null += int(nan.sum())
            x = x[~nan]
        neg = x < 0
        if neg.any():
            self.under += int(neg.sum())
            x = x[~neg]
        if not len(x):
            return
        e = _edges()[self.scheme]
        idx = np.searchsorted(e, x, side="right") - 1
        if self.scheme == REAL:
            idx[x == 1.0] = _ONE
        binc = np.bincount(idx, minlength=0)
        for i in np.flatnonzero(binc):
            self.counts[int(i)] += int(binc[i])

    def __add__(self, other: Hist) -> Hist:
        if other.scheme != self.scheme:
            raise ValueError(f"cannot add histograms of schemes {self.scheme} and {other.scheme}")
        counts = Counter(self.counts)
        counts.update(other.counts)
        return Hist(self.scheme, counts, self.under + other.under, self.null + other.null)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"scheme": self.scheme,
                             "counts": {edge_label(self.scheme, i): self.counts[i]
                                        for i in sorted(self.counts) if self.counts[i]}}
        if self.under:
            d["under"] = self.under
        if self.null:
            d["null"] = self.null
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Hist:
        index = _index(d["scheme"])
        return cls(d["scheme"], Counter({index[k]: v for k, v in d.get("counts", {}).items()}),
                   d.get("under", 0), d.get("null", 0))


@dataclass
class Sketches:
    """A stage's histograms: content length of documents in and out, and every numeric
    column the stage added, as seen at its output."""

    length_in: Hist = field(default_factory=Hist)
    length_out: Hist = field(default_factory=Hist)
    columns: dict[str, Hist] = field(default_factory=dict)

    def observe_in(self, table: pa.Table | pa.RecordBatch, lengths) -> None:
        if lengths is not None:
            self.length_in.add(lengths)

    def observe_out(self, table: pa.Table | pa.RecordBatch, lengths,
                    names_in: frozenset[str] | None) -> None:
        """``names_in``: the columns the stage's input had (None: unknown, e.g. the reader),
        so only the columns the stage wrote are sketched."""
        if lengths is not None:
            self.length_out.add(lengths)
        if names_in is None or not table.num_rows:
            return
        new = [f for f in table.schema if f.name not in names_in and scheme_for(f.type)]
        for f in sorted(new, key=lambda f: f.name)[:MAX_COLUMNS]:
            h = self.columns.get(f.name)
            if h is None:
                h = self.columns[f.name] = Hist(scheme_for(f.type))
            h.add(table.column(f.name))

    def __add__(self, other: Sketches) -> Sketches:
        cols = dict(self.columns)
        for name, h in other.columns.items():
            cols[name] = cols[name] + h if name in cols else h
        return Sketches(self.length_in + other.length_in, self.length_out + other.length_out,
                        dict(sorted(cols.items())))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for key, h in (("length_in", self.length_in), ("length_out", self.length_out)):
            if h.n:
                d[key] = h.to_dict()
        if self.columns:
            d["columns"] = {k: h.to_dict() for k, h in sorted(self.columns.items())}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Sketches:
        d = d or {}
        return cls(Hist.from_dict(d["length_in"]) if "length_in" in d else Hist(),
                   Hist.from_dict(d["length_out"]) if "length_out" in d else Hist(),
                   {k: Hist.from_dict(v) for k, v in d.get("columns", {}).items()})


def bins(h: dict[str, Any]) -> list[tuple[float, float | None, int]]:
    """``(lower, upper, count)`` of every non-empty bin of a serialized histogram, in order
    (upper is None for the open-ended last bin); what the report plots."""
    index, e = _index(h["scheme"]), _edges()[h["scheme"]]
    out = []
    for k, n in sorted(h.get("counts", {}).items(), key=lambda kv: index[kv[0]]):
        i = index[k]
        out.append((float(e[i]), float(e[i + 1]) if i + 1 < len(e) else None, n))
    return out


def indexed(h: dict[str, Any]) -> dict[int, int]:
    """Bin index -> count of a serialized histogram (indices into ``edges(scheme)``)."""
    index = _index(h["scheme"])
    return {index[k]: n for k, n in h.get("counts", {}).items()}
