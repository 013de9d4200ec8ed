"""Inline SVG charts for the HTML report: horizontal stacked bars and histograms.

Why hand-written SVG: the report must open offline with no external resource and
no plotting dependency, and a chart of a few dozen rectangles is a few dozen lines
of markup. Every bar is a ``<rect class="bar">`` carrying its raw value in
``data-value`` (and a ``<title>`` tooltip), so a test can read the plotted numbers
back from the rendered page. Colours come from CSS classes (``s0``, ``s1``, ...)
defined in the report's stylesheet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

FONT = 11  # px; labels are sized from it
CHAR_W = 6.2  # rough width of one label character at FONT px


@dataclass
class Segment:
    value: float
    css: str  # colour class, e.g. "kept" or "s1"
    title: str  # tooltip


@dataclass
class Track:
    """One bar of a row: segments stacked left to right (one track per run)."""

    segments: list[Segment]
    note: str = ""  # text right of the bar

    @property
    def total(self) -> float:
        return sum(s.value for s in self.segments)


@dataclass
class Row:
    label: str
    tracks: list[Track] = field(default_factory=list)


def _num(x: float) -> str:
    """A coordinate: short and the same on every platform."""
    return f"{x:.2f}".rstrip("0").rstrip(".")


def _attrs(**kw) -> str:
    return " ".join(f'{k.replace("_", "-")}="{escape(str(v))}"' for k, v in kw.items())


def hbars(rows: list[Row], key: str, width: int = 520, track_h: int = 14,
          legend: list[tuple[str, str]] | None = None) -> str:
    """Horizontal bars, one row per label and one stacked track per run in each row."""
    label_w = min(220, max(40, int(max((len(r.label) for r in rows), default=4) * CHAR_W) + 8))
    note_w = min(170, max(40, int(max((len(t.note) for r in rows for t in r.tracks),
                                      default=0) * CHAR_W) + 8))
    plot_w = max(120, width - label_w - note_w)
    vmax = max((t.total for r in rows for t in r.tracks), default=0) or 1
    gap = 6
    top = 18 if legend else 4
    y, body = top, []
    for r in rows:
        n = max(1, len(r.tracks))
        row_h = n * track_h + (n - 1) * 2
        body.append(f'<text x="{label_w - 6}" y="{_num(y + row_h / 2 + FONT / 2.8)}" '
                    f'text-anchor="end" class="lbl">{escape(r.label)}</text>')
        for j, t in enumerate(r.tracks):
            ty, x = y + j * (track_h + 2), float(label_w)
            for s in t.segments:
                if s.value <= 0:
                    continue
                w = max(0.5, s.value / vmax * plot_w)  # tiny but visible
                body.append(f'<rect class="bar {escape(s.css)}" x="{_num(x)}" y="{ty}" '
                            f'width="{_num(w)}" height="{track_h}" '
                            f'{_attrs(data_value=_raw(s.value))}>'
                            f'<title>{escape(s.title)}</title></rect>')
                x += w
            if t.note:
                body.append(f'<text x="{_num(x + 4)}" y="{_num(ty + track_h / 2 + FONT / 2.8)}" '
                            f'class="note">{escape(t.note)}</text>')
        y += row_h + gap
    height = y + 2
    return _svg(key, width, height, _legend(legend, label_w) + "".join(body))


def histogram(labels: list[str], series: list[tuple[str, list[int], str]], key: str,
              title: str = "", width: int = 420, height: int = 180,
              ticks: list[int] | None = None, overlay: bool = False) -> str:
    """Vertical bars over categorical bins (``labels[i]`` names bin i); each series
    ``(name, counts, css class)`` side by side within each bin, or with ``overlay`` drawn
    over each other at full width (for a subset, e.g. documents out over documents in)."""
    left, right, top, bottom = 44, 8, 20 if title or len(series) > 1 else 8, 34
    pw, ph = width - left - right, height - top - bottom
    nb = max(1, len(labels))
    vmax = max((c for _, counts, _ in series for c in counts), default=0)
    ymax = _nice(vmax)
    bw = pw / nb
    sw = bw * 0.86 / (1 if overlay else max(1, len(series)))
    body = [f'<text x="{left}" y="12" class="ttl">{escape(title)}</text>'] if title else []
    if len(series) > 1:
        body.append(_legend([(name, css) for name, _, css in series],
                            width - right - 90 * len(series), y=4))
    for frac in (0, 0.5, 1):  # y grid and labels
        gy = top + ph - frac * ph
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{_num(gy)}" y2="{_num(gy)}" '
                    f'class="grid"/>')
        body.append(f'<text x="{left - 4}" y="{_num(gy + 3.5)}" text-anchor="end" '
                    f'class="tick">{_short(ymax * frac)}</text>')
    for i, (name, counts, css) in enumerate(series):
        for b, c in enumerate(counts):
            if not c:
                continue
            h = max(0.5, c / ymax * ph)
            x = left + b * bw + bw * 0.07 + (0 if overlay else i * sw)
            body.append(f'<rect class="bar {escape(css)}" x="{_num(x)}" y="{_num(top + ph - h)}" '
                        f'width="{_num(sw)}" height="{_num(h)}" '
                        f'{_attrs(data_value=c, data_bin=labels[b], data_series=name)}>'
                        f'<title>{escape(f"{name}: {labels[b]}: {c:,}")}</title></rect>')
    for b in ticks if ticks is not None else _tick_bins(nb):
        tx = left + b * bw
        body.append(f'<line x1="{_num(tx)}" x2="{_num(tx)}" y1="{top + ph}" '
                    f'y2="{top + ph + 4}" class="axis"/>')
        body.append(f'<text x="{_num(tx)}" y="{top + ph + 15}" text-anchor="middle" '
                    f'class="tick">{escape(labels[b].split("–")[0])}</text>')
    body.append(f'<line x1="{left}" x2="{width - right}" y1="{top + ph}" y2="{top + ph}" '
                f'class="axis"/>')
    return _svg(key, width, height, "".join(body))


def _svg(key: str, width: int, height: int, body: str) -> str:
    return (f'<svg class="plot" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'{_attrs(data_key=key)}>{body}</svg>')


def _legend(items: list[tuple[str, str]] | None, x: float, y: float = 2) -> str:
    if not items:
        return ""
    out = []
    for name, css in items:
        out.append(f'<rect class="{escape(css)}" x="{_num(x)}" y="{y + 2}" width="10" '
                   f'height="10"/><text x="{_num(x + 14)}" y="{y + 11}" class="lbl">'
                   f'{escape(name)}</text>')
        x += 24 + len(name) * CHAR_W
    return "".join(out)


def _tick_bins(n: int) -> list[int]:
    step = max(1, math.ceil(n / 8))
    return list(range(0, n, step))


def _nice(v: float) -> float:
    """The smallest 1/2/5 x 10^k >= v (the y axis top)."""
    if v <= 0:
        return 1
    k = 10 ** math.floor(math.log10(v))
    return next(m * k for m in (1, 2, 5, 10) if m * k >= v)


def _short(v: float) -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:g}{suffix}"
    return f"{v:g}"


def _raw(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))
