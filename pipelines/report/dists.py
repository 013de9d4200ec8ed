"""Distribution sections of ``thresher report``: histograms from the stats' sketches,
duplicate clusters, and the dropped samples; same contract as report_sections."""

from __future__ import annotations

import json
from html import escape

from pipelines import sketches
from pipelines.report import html as h
from pipelines.report.html import figure, section
from pipelines.report.sections import RUN_CSS, run_tag, stage_names
from pipelines.report.svgplot import histogram

# ----------------------------------------------------------------------------- histograms

def _axis(hists: list[dict | None]) -> tuple[str, list[int], list[str], list[list[int]]]:
    """A common bin range of serialized histograms of one scheme: labels and counts."""
    present = [x for x in hists if x]
    scheme = present[0]["scheme"]
    idx = [sketches.indexed(x) if x else {} for x in hists]
    used = sorted({i for d in idx for i, n in d.items() if n})
    lo, hi = used[0], used[-1]
    e = sketches.edges(scheme)
    bins = list(range(lo, hi + 1))
    labels = [f"{_edge(e[i])}–{_edge(e[i + 1])}" if i + 1 < len(e) else f"≥{_edge(e[i])}"
              for i in bins]
    return scheme, bins, labels, [[d.get(i, 0) for i in bins] for d in idx]


def _edge(v: float) -> str:
    if v >= 1000:
        for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
            if v >= div:
                return f"{v / div:g}{suffix}"
    return f"{v:g}"


def _ticks(scheme: str, bins: list[int]) -> list[int]:
    """Bins (positions in ``bins``) labelled on the x axis: round edges, at most 9."""
    e = sketches.edges(scheme)

    def level(v: float) -> int:
        if v == 0 or (v >= 1 and f"{v:g}".lstrip("1").strip("0") in ("", "e+")):
            return 0  # 0, 1, 10, 100, ... (and 0.5 below)
        if v == 0.5 or (v >= 1 and f"{v:g}"[0] in "25" and set(f"{v:g}"[1:]) <= {"0"}):
            return 1
        if v < 1 and round(v * 10, 9).is_integer():
            return 1
        return 2

    best = [0]
    for lv in (2, 1, 0):
        t = [j for j, i in enumerate(bins) if level(float(e[i])) <= lv]
        if 2 <= len(t) <= 9:
            return t
        if t and len(t) < 2:
            best = t
    return best


def _hist_fig(key: str, title: str, series: list[tuple[str, dict | None, str]],
              caption: str, overlay: bool = False) -> str:
    scheme, bins, labels, counts = _axis([s[1] for s in series])
    svg = histogram(labels, [(name, c, css) for (name, _, css), c in zip(series, counts)], key,
                    title=title, ticks=_ticks(scheme, bins), width=580, overlay=overlay)
    return figure(svg, caption)


def _specials(hs: dict | None) -> str:
    if not hs:
        return ""
    bits = [f"{hs[k]:,} {k}" for k in ("under", "null") if hs.get(k)]
    return f" ({', '.join(bits)} not plotted)" if bits else ""


def histograms(runs):
    figs = []
    for n in stage_names(runs):
        if n == "write":  # the last stage's output again
            continue
        sks = [r.stages.get(n, {}).get("sketches", {}) for r in runs]
        if len(runs) == 1:
            series = [("in", sks[0].get("length_in"), "sin"),
                      ("out", sks[0].get("length_out"), "sout")]
            cap = "characters per document: in (grey), out drawn over it (blue)"
        else:
            series = [(f"{'AB'[i]} out", sk.get("length_out"), RUN_CSS[i])
                      for i, sk in enumerate(sks)]
            cap = "characters per document out of the stage, A and B"
        series = [s for s in series if s[1] and s[1].get("counts")]
        if series:
            figs.append(_hist_fig(f"hist|{n}|length", f"{n}: length", series, cap + "".join(
                _specials(s[1]) for s in series), overlay=len(runs) == 1))
        cols = list(dict.fromkeys(c for sk in sks for c in sk.get("columns", {})))
        for c in cols:
            hs = [sk.get("columns", {}).get(c) for sk in sks]
            series = [(c if len(runs) == 1 else "AB"[i], x, RUN_CSS[i])
                      for i, x in enumerate(hs) if x and x.get("counts")]
            if series:
                figs.append(_hist_fig(f"hist|{n}|col|{c}", f"{n}: {c}", series,
                                      f"{c} of the documents out of {n}"
                                      + "".join(_specials(x) for x in hs)))
    if not figs:
        return None
    note = ('<p class="empty">Fixed bins (pipelines/sketches.py): lengths and counts in ten '
            "bins per decade, scores in steps of 0.02; merged exactly across tasks.</p>")
    return "histograms", "Histograms", section(
        "histograms", "Histograms", note + f'<div class="figs">{"".join(figs)}</div>')


# ----------------------------------------------------------------------------- dedup

def dedup(runs):
    stages = [n for n in stage_names(runs) if any(
        c.endswith("_cluster_size") for r in runs
        for c in r.stages.get(n, {}).get("sketches", {}).get("columns", {}))]
    if not stages:
        return None
    parts = []
    for n in stages:
        annotate = runs[0].stage_params(n).get("mode") == "annotate"
        for c in dict.fromkeys(c for r in runs for c in
                               r.stages.get(n, {}).get("sketches", {}).get("columns", {})):
            if not c.endswith("_cluster_size"):
                continue
            hs = [r.stages.get(n, {}).get("sketches", {}).get("columns", {}).get(c)
                  for r in runs]
            multi = [_without_singletons(x) for x in hs]
            what = "documents" if annotate else "clusters"
            singles = [sketches.indexed(x).get(1, 0) if x else 0 for x in hs]
            cap = (f"{what} by cluster size (2 and more) after {n}; "
                   + ", ".join(f"{run_tag(runs, i)} {s:,} unique documents".strip()
                               for i, s in enumerate(singles)))
            if not annotate:
                cap += "; each kept document stands for its cluster"
            series = [("AB"[i] if len(runs) > 1 else what, x, RUN_CSS[i])
                      for i, x in enumerate(multi) if x and x.get("counts")]
            parts.append(f"<h3>{escape(n)}</h3>")
            if series:
                parts.append(_hist_fig(f"dedup|{n}|{c}", f"{n}: cluster size", series, cap))
            else:
                parts.append(f'<p class="empty">no duplicate clusters: {escape(cap)}</p>')
        for i, r in enumerate(runs):
            if r.clusters.get(n):
                parts.append(_clusters_table(r.clusters[n], n, run_tag(runs, i)))
    return "dedup", "Dedup", section("dedup", "Duplicate clusters", "".join(parts))


def _without_singletons(x: dict | None) -> dict | None:
    if not x:
        return None
    return {**x, "counts": {k: v for k, v in x.get("counts", {}).items() if float(k) >= 2}}


def _clusters_table(clusters: list[dict], stage: str, tag: str) -> str:
    rows = []
    for c in clusters:
        for m in c["members"][:3]:
            snippet = " ".join((m.get("snippet") or "").split())[:160]
            rows.append("<tr>" + h.cell(h.fmt_int(c["cluster_size"]),
                                        f"cluster|{stage}|{c['cluster_id']}|size",
                                        (tag or "a").lower(), c["cluster_size"])
                        + h.text_cell("kept" if m.get("keep") else "removed")
                        + h.text_cell(str(m.get("url") or m.get("id") or ""), "txt")
                        + h.text_cell(snippet, "txt") + "</tr>")
    title = f"largest clusters{f' of run {tag}' if tag else ''} (work/{stage}/clusters.parquet)"
    return (f"<h3>{escape(title)}</h3><table class=\"data clusters\"><thead><tr><th>size</th>"
            "<th></th><th>url</th><th>text</th></tr></thead><tbody>" + "".join(rows)
            + "</tbody></table>")


# ----------------------------------------------------------------------------- samples

def samples(runs):
    parts = []
    for i, r in enumerate(runs):
        if not r.samples:
            continue
        if len(runs) > 1:
            parts.append(f"<h3>run {'AB'[i]}: {escape(r.name)}</h3>")
        groups: dict[tuple[str, str], list[dict]] = {}
        for s in r.samples:
            groups.setdefault((s["stage"], s["reason"]), []).append(s)
        order = {n: j for j, n in enumerate(stage_names(runs))}
        for (stage, reason), items in sorted(groups.items(),
                                             key=lambda kv: (order.get(kv[0][0], 99), kv[0])):
            st = r.stages.get(stage, {})
            total = (st.get("dropped", {}).get(reason, 0) + st.get("errors", {}).get(reason, 0)
                     + st.get("changed", {}).get(reason, 0))
            what = {"error": "failed", "changed": "changed"}.get(items[0]["kind"], "dropped")
            head = (f"{stage} / {reason}: {total:,} {what}; {items[0].get('sampled', 0):,} "
                    f"sampled, {len(items)} shown")
            parts.append(f"<details><summary>{escape(head)}</summary>"
                         + "".join(_sample(s) for s in items) + "</details>")
    if not parts:
        return None
    note = ('<p class="empty">Per stage and reason, the documents with the smallest '
            "hash(seed, id) (thresher samples RUN STAGE shows them all).</p>")
    return "samples", "Samples", section("samples", "Dropped samples", note + "".join(parts))


def _sample(s: dict) -> str:
    meta = [s["id"]]
    if s.get("url"):
        meta.append(s["url"])
    if s.get("source"):
        meta.append(s["source"] + (f" record {s['record']}" if s.get("record") is not None
                                   else ""))
    if s.get("score") is not None:
        meta.append(f"score {s['score']:.4g}")
    if s.get("details"):
        meta += [f"{k} {v}" for k, v in json.loads(s["details"]).items()]
    text = s.get("text")
    if text is None:
        body = '<p class="empty">(no text)</p>'
    else:
        rest = (s.get("text_chars") or len(text)) - len(text)
        body = f"<pre>{escape(text)}{escape(f' … (+{rest:,} chars)') if rest > 0 else ''}</pre>"
    return f'<div class="sample"><div class="meta">{escape(" · ".join(meta))}</div>{body}</div>'
