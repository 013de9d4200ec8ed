"""HTML building blocks of ``thresher report``: number cells, tables, the page shell.

Every number shown carries its raw value: ``<td data-key="funnel|langid|docs_out"
data-run="a" data-value="126">126</td>``; ``data-run`` is ``a``, ``b`` (compare mode),
``delta`` or ``pct``. So the page can be checked against stats.json by machine and
sorted by its small script, while people read thousands separators. Everything that
comes from the data is escaped; the page loads nothing (inline CSS, inline script).
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any, Callable

RUNS = ("a", "b")


def fmt_int(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) else f"{v:,.0f}"


def fmt_f2(v: Any) -> str:
    return f"{v:,.2f}"


def fmt_f1(v: Any) -> str:
    return f"{v:,.1f}"


def fmt_pct(v: Any) -> str:
    return f"{v:.1%}"


def raw(v: Any) -> str:
    """The value as stats.json writes it (ints as ints, floats by repr)."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, str):
        return v
    return str(v) if isinstance(v, int) else repr(float(v))


def cell(text: str, key: str | None = None, run: str | None = None, value: Any = None,
         css: str = "num", title: str | None = None) -> str:
    attrs = f' class="{css}"' if css else ""
    if key is not None:
        attrs += f' data-key="{escape(key)}"'
    if run is not None:
        attrs += f' data-run="{run}"'
    if value is not None:
        attrs += f' data-value="{escape(raw(value))}"'
    if title:
        attrs += f' title="{escape(title)}"'
    return f"<td{attrs}>{escape(text)}</td>"


def text_cell(text: str, css: str = "") -> str:
    return f'<td class="{css}">{escape(text)}</td>' if css else f"<td>{escape(text)}</td>"


@dataclass
class Metric:
    id: str  # last part of the data-key
    header: str
    fmt: Callable[[Any], str] = fmt_int
    ratio: bool = False  # deltas in percentage points, no relative delta


def delta_cells(key: str, a: Any, b: Any, m: Metric) -> str:
    """B - A and (B - A) / A of one number, or dashes where one side is missing."""
    if a is None or b is None:
        return cell("-", key, "delta") + cell("-", key, "pct")
    d = b - a
    if m.ratio:
        return cell(f"{d * 100:+.1f} pp", key, "delta", d, css=_sign(d)) + cell("-", key, "pct")
    text = m.fmt(d)
    if not text.strip("-+0.,"):  # rounds to zero: no sign
        text = m.fmt(0)
    elif d > 0:
        text = "+" + text
    out = cell(text, key, "delta", d, css=_sign(d))
    if a:
        p = d / a
        return out + cell(f"{p:+.1%}", key, "pct", p, css=_sign(d))
    return out + cell("-", key, "pct")


def _sign(d: float) -> str:
    return "num up" if d > 0 else "num down" if d < 0 else "num"


@dataclass
class TableRow:
    labels: list[str]  # the row's label cells (stage, reason, ...)
    key: str  # data-key prefix; the metric id is appended
    values: list[dict[str, Any]]  # per run: metric id -> value (missing: not in that run)


def metric_table(label_headers: list[str], rows: list[TableRow], metrics: list[Metric],
                 compare: bool, css: str = "") -> str:
    """One run: a wide table, one column per metric. Two runs: one row per label and
    metric with A, B, delta and relative delta side by side."""
    if not rows:
        return '<p class="empty">none</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in label_headers)
    body = []
    if not compare:
        head += "".join(f'<th class="num">{escape(m.header)}</th>' for m in metrics)
        for r in rows:
            tds = "".join(text_cell(lb, "lbl") for lb in r.labels)
            for m in metrics:
                v = r.values[0].get(m.id)
                tds += cell("-" if v is None else m.fmt(v), f"{r.key}|{m.id}", "a", v)
            body.append(f"<tr>{tds}</tr>")
    else:
        named = len(metrics) > 1  # one metric: no column naming it
        head += (("<th>metric</th>" if named else "") + '<th class="num">A</th>'
                 '<th class="num">B</th><th class="num">B - A</th><th class="num">%</th>')
        for r in rows:
            ms = [m for m in metrics if any(v.get(m.id) is not None for v in r.values)]
            for i, m in enumerate(ms):
                tds = "".join(f'<td class="lbl" rowspan="{len(ms)}">{escape(lb)}</td>'
                              for lb in r.labels) if i == 0 else ""
                k = f"{r.key}|{m.id}"
                a, b = (r.values[j].get(m.id) if j < len(r.values) else None for j in (0, 1))
                tds += text_cell(m.header) if named else ""
                tds += cell("-" if a is None else m.fmt(a), k, "a", a)
                tds += cell("-" if b is None else m.fmt(b), k, "b", b)
                body.append(f'<tr class="{"first" if i == 0 else ""}">{tds}'
                            f"{delta_cells(k, a, b, m)}</tr>")
    cls = f"data sortable {css}".strip() if not compare else f"data {css}".strip()
    return (f'<table class="{cls}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


CSS = """
:root{--a:#4c78a8;--b:#f58518;--kept:#4c78a8;--drop:#e45756;--err:#b279a2;--in:#bab0ac}
*{box-sizing:border-box}
body{font:13px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
 margin:0;color:#1f2328;background:#f6f8fa}
header{background:#24292f;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:20px}header p{margin:4px 0 0;color:#c9d1d9}
nav{position:sticky;top:0;z-index:2;background:#fff;border-bottom:1px solid #d0d7de;
 padding:6px 24px}
nav a{margin-right:14px;color:#0969da;text-decoration:none}
main{padding:8px 24px 40px;max-width:1400px}
section{background:#fff;border:1px solid #d0d7de;border-radius:6px;margin:14px 0;
 padding:10px 16px}
h2{font-size:16px;margin:4px 0 8px}h3{font-size:13px;margin:12px 0 6px}
table.data{border-collapse:collapse;margin:6px 0}
table.data th,table.data td{padding:3px 8px;border-bottom:1px solid #eaeef2;
 white-space:nowrap}
table.data th{background:#f6f8fa;text-align:left;font-weight:600}
table.sortable th{cursor:pointer}table.sortable th:hover{background:#eaeef2}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.up{color:#0550ae}td.down{color:#953800}
tr.first td{border-top:1px solid #afb8c1}
.figs{display:flex;flex-wrap:wrap;gap:10px 22px;align-items:flex-start}
figure{margin:4px 0}figcaption{color:#57606a;font-size:12px;max-width:440px}
svg.plot{display:block;max-width:100%;height:auto}
svg text{font:11px system-ui,"DejaVu Sans",sans-serif;fill:#1f2328}
svg text.tick,svg text.note{fill:#57606a}svg text.ttl{font-weight:600}
svg line.grid{stroke:#eaeef2}svg line.axis{stroke:#8c959f}
.s0,.kept{fill:var(--a)}.s1{fill:var(--b)}.drop{fill:var(--drop)}.err{fill:var(--err)}
.sin{fill:var(--in)}.sout{fill:var(--a)}
.s2{fill:#54a24b}.s3{fill:#b279a2}
details{margin:4px 0}summary{cursor:pointer}
.sample{border-left:3px solid #d0d7de;margin:6px 0 10px;padding:2px 10px}
.sample .meta{color:#57606a;font-size:12px;word-break:break-all}
.sample pre{white-space:pre-wrap;word-break:break-word;margin:4px 0;max-height:220px;
 overflow:auto;background:#f6f8fa;padding:6px;font-size:12px}
.empty{color:#57606a;font-style:italic}
table.clusters td.txt{max-width:460px;overflow:hidden;text-overflow:ellipsis}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:2px 16px;margin:0}
dt{color:#57606a}dd{margin:0;word-break:break-all}
"""

# Sorting by header click; and, once laid out, each plot records how many of its bars
# have a non-empty box on the page (data-drawn), which tells a headless check that the
# browser really drew them.
JS = """
(function(){
function val(td){var v=td.getAttribute('data-value');
 return v!==null&&v!==''&&!isNaN(+v)?+v:td.textContent.trim().toLowerCase();}
document.querySelectorAll('table.sortable').forEach(function(t){
 t.querySelectorAll('thead th').forEach(function(th,i){th.addEventListener('click',
 function(){var tb=t.tBodies[0],rows=Array.prototype.slice.call(tb.rows),
 d=th.getAttribute('data-dir')==='desc'?1:-1;th.setAttribute('data-dir',d>0?'asc':'desc');
 rows.sort(function(x,y){var a=val(x.cells[i]),b=val(y.cells[i]);
 return (a>b?1:a<b?-1:0)*d;});rows.forEach(function(r){tb.appendChild(r);});});});});
var drawn=0;document.querySelectorAll('svg.plot').forEach(function(s){var n=0;
 s.querySelectorAll('rect.bar').forEach(function(r){var b=r.getBoundingClientRect();
 if(b.width>0&&b.height>0)n++;});s.setAttribute('data-drawn',n);if(n)drawn++;});
document.documentElement.setAttribute('data-plots-drawn',drawn);
})();
"""


def page(title: str, subtitle: str, nav: list[tuple[str, str]], sections: list[str]) -> str:
    links = "".join(f'<a href="#{escape(i)}">{escape(t)}</a>' for i, t in nav)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{escape(title)}</h1><p>{escape(subtitle)}</p></header>"
            f"<nav>{links}</nav><main>{''.join(sections)}</main>"
            f"<script>{JS}</script></body></html>\n")


def section(id_: str, title: str, body: str) -> str:
    return f'<section id="{escape(id_)}"><h2>{escape(title)}</h2>{body}</section>'


def side_by_side(*parts: str) -> str:
    """Tables and figures in a row that wraps when the window is narrow."""
    return f'<div class="figs">{"".join(parts)}</div>'


def figure(svg: str, caption: str = "") -> str:
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f"<figure>{svg}{cap}</figure>"
