"""The sections of ``thresher report``; each takes the runs (one, or A and B) and returns
``(anchor, title, html)`` or None when the runs have nothing for it."""

from __future__ import annotations

from typing import Any

from pipelines.report import html as h
from pipelines.report.html import Metric, TableRow, figure, metric_table, section, side_by_side
from pipelines.report.svgplot import Row, Segment, Track, hbars

RUN_CSS = ("s0", "s1")
BREAKDOWNS = (("by_language", "language"), ("by_dataset", "dataset"), ("by_source", "source"))
TOP_ROWS = 60  # rows of a breakdown table; the chart shows fewer


def stage_names(runs) -> list[str]:
    """Stages in pipeline order; stages only B has come last."""
    names = list(runs[0].stages)
    for r in runs[1:]:
        names += [n for n in r.stages if n not in names]
    return names


def run_tag(runs, i: int) -> str:
    """"A"/"B" in compare mode, nothing for a single run."""
    return "" if len(runs) == 1 else "AB"[i]


# ----------------------------------------------------------------------------- overview

def overview(runs):
    rows = []
    for r in runs:
        m = r.manifest or {}
        inputs = m.get("inputs") or (r.plan or {}).get("inputs") or []
        thr = m.get("thresher", {})
        version = thr.get("version", "")
        if thr.get("commit"):
            version += f" ({thr['commit'][:12]}{', dirty' if thr.get('dirty') else ''})"
        rows.append({
            "run": r.name, "directory": r.shown_dir,
            "config fingerprint": r.stats.get("config_fingerprint", ""),
            "thresher": version, "created (UTC)": m.get("created_utc", ""),
            "python": (m.get("python") or {}).get("version", ""),
            "stages": ", ".join(s for s in r.stages if s not in ("read", "write")),
            "inputs": len(inputs), "input bytes": sum(i.get("size", 0) for i in inputs),
            "output documents": r.stats.get("output", {}).get("rows", 0),
            "output shards": len(r.stats.get("output", {}).get("shards", [])),
            "phases": len(r.stats.get("phases", {})),
        })
    keys = list(rows[0])
    if len(runs) == 1:  # what ran, and how much, side by side
        first = [k for k in keys if not isinstance(rows[0][k], int)]
        body = side_by_side(_meta_table(runs, rows, first),
                            _meta_table(runs, rows, [k for k in keys if k not in first]))
    else:
        body = _meta_table(runs, rows, keys)
    return "overview", "Run", section("overview", "Run", body)


def _meta_table(runs, rows: list[dict], keys: list[str]) -> str:
    body = ['<table class="data"><thead><tr><th></th>'
            + "".join(f"<th>{x}</th>" for x in (["value"] if len(runs) == 1 else
                                               ["A", "B", "B - A", "%"]))
            + "</tr></thead><tbody>"]
    for k in keys:
        tds = h.text_cell(k, "lbl")
        vals = [row[k] for row in rows]
        for i, v in enumerate(vals):
            run = "ab"[i]
            if isinstance(v, int):
                tds += h.cell(h.fmt_int(v), f"meta|{k}", run, v)
            elif len(v) > 40:  # fingerprints, paths: the start, all of it on hover
                tds += h.cell(v[:16] + "…", f"meta|{k}", run, v, css="txt", title=v)
            else:
                tds += h.cell(v, f"meta|{k}", run, css="txt")
        if len(runs) == 2:
            tds += h.delta_cells(f"meta|{k}", *vals, Metric(k, k)) if isinstance(vals[0], int) \
                else "<td></td><td></td>"
        body.append(f"<tr>{tds}</tr>")
    body.append("</tbody></table>")
    return "".join(body)


# ----------------------------------------------------------------------------- funnel

def funnel(runs):
    names = stage_names(runs)
    tokens = any(st.get("tokens_out") for r in runs for st in r.stages.values())
    metrics = [Metric("docs_in", "docs in"), Metric("docs_out", "docs out"),
               Metric("kept", "kept", h.fmt_pct, ratio=True), Metric("dropped", "dropped"),
               Metric("errors", "errors"), Metric("chars_in", "chars in"),
               Metric("chars_out", "chars out")]
    if tokens:
        metrics += [Metric("tokens_in", "tokens in"), Metric("tokens_out", "tokens out")]

    def values(st: dict | None) -> dict:
        if st is None:
            return {}
        v = {m.id: st.get(m.id, 0) for m in metrics if m.id in st}
        v["dropped"], v["errors"] = sum(st["dropped"].values()), sum(st["errors"].values())
        v["kept"] = st["docs_out"] / st["docs_in"] if st["docs_in"] else None
        return v

    rows = [TableRow([n], f"funnel|{n}", [values(r.stages.get(n)) for r in runs]) for n in names]
    table = metric_table(["stage"], rows, metrics, len(runs) > 1)
    figs = [figure(_funnel_bars(runs, names, "docs"), "documents per stage: out, dropped, "
                   "failed (in = the whole bar)")]
    figs.append(figure(_funnel_bars(runs, names, "chars"),
                       "characters per stage: out and removed (read and extract count HTML in, "
                       "text out)"))
    if tokens:
        figs.append(figure(_funnel_bars(runs, names, "tokens"), "tokens per stage"))
    body = side_by_side(table, figs[0]) + side_by_side(*figs[1:])
    return "funnel", "Funnel", section("funnel", "Funnel", body)


def _funnel_bars(runs, names: list[str], what: str) -> str:
    rows = []
    for n in names:
        row = Row(n)
        for i, r in enumerate(runs):
            st = r.stages.get(n)
            if st is None:
                row.tracks.append(Track([]))
                continue
            out_css = "kept" if len(runs) == 1 else RUN_CSS[i]
            tag = run_tag(runs, i)
            if what == "docs":
                drop, err = sum(st["dropped"].values()), sum(st["errors"].values())
                segs = [Segment(st["docs_out"], out_css, f"{tag} {n}: {st['docs_out']:,} out"),
                        Segment(drop, "drop", f"{tag} {n}: {drop:,} dropped"),
                        Segment(err, "err", f"{tag} {n}: {err:,} failed")]
                note = f"{st['docs_out']:,}"
            else:
                vin, vout = st.get(f"{what}_in", 0), st.get(f"{what}_out", 0)
                gone = max(0, vin - vout)
                segs = [Segment(vout, out_css, f"{tag} {n}: {vout:,} {what} out"),
                        Segment(gone, "drop", f"{tag} {n}: {gone:,} {what} removed")]
                note = h.fmt_int(vout)
            row.tracks.append(Track([s for s in segs if s.value], f"{tag} {note}".strip()))
        rows.append(row)
    legend = [("out", "kept")] if len(runs) == 1 else [("A out", "s0"), ("B out", "s1")]
    legend += [("dropped" if what == "docs" else "removed", "drop")]
    if what == "docs":
        legend.append(("failed", "err"))
    return hbars(rows, f"funnel|{what}", legend=legend)


# ----------------------------------------------------------------------------- reasons

def reasons(runs):
    keys: list[tuple[str, str, str]] = []
    for n in stage_names(runs):
        for kind, field_ in (("dropped", "dropped"), ("error", "errors")):
            seen = []
            for r in runs:
                st = r.stages.get(n, {})
                seen += [x for x in sorted(st.get(field_, {}), key=lambda x: -st[field_][x])
                         if x not in seen]
            keys += [(n, kind, x) for x in seen]
    if not keys:
        return None
    metrics = [Metric("docs", "docs"), Metric("share", "of stage in", h.fmt_pct, ratio=True),
               Metric("chars", "chars")]

    def values(st: dict | None, kind: str, reason: str) -> dict:
        if st is None:
            return {}
        counts = st["dropped"] if kind == "dropped" else st["errors"]
        if reason not in counts:
            return {}
        v = {"docs": counts[reason],
             "share": counts[reason] / st["docs_in"] if st["docs_in"] else None}
        chars = st.get("chars_by_reason", {})
        if reason in chars:
            v["chars"] = chars[reason]
        return v

    rows = [TableRow([n, kind, reason], f"reason|{n}|{kind}|{reason}",
                     [values(r.stages.get(n), kind, reason) for r in runs])
            for n, kind, reason in keys]
    table = metric_table(["stage", "kind", "reason"], rows, metrics, len(runs) > 1)
    bars = []
    for n, kind, reason in keys:
        row = Row(f"{n}: {reason}")
        for i, r in enumerate(runs):
            v = values(r.stages.get(n), kind, reason).get("docs", 0)
            css = ("drop" if kind == "dropped" else "err") if len(runs) == 1 else RUN_CSS[i]
            row.tracks.append(Track([Segment(v, css, f"{run_tag(runs, i)} {n} {reason}: {v:,}")],
                                    f"{run_tag(runs, i)} {v:,}".strip()))
        bars.append(row)
    legend = None if len(runs) == 1 else [("A", "s0"), ("B", "s1")]
    fig = figure(hbars(bars, "reasons|docs", width=540, legend=legend),
                 "documents per drop or error reason")
    return "reasons", "Drop reasons", section("reasons", "Drop reasons", side_by_side(table, fig))


# ----------------------------------------------------------------------------- breakdowns

def breakdowns(runs):
    parts = []
    for field_, what in BREAKDOWNS:
        stages = [n for n in stage_names(runs) if any(r.stages.get(n, {}).get(field_)
                                                       for r in runs)]
        if not stages:
            continue
        shown = list(dict.fromkeys([stages[0], stages[-1]]))
        last = shown[-1]
        tokens = any(v.get("tokens_out") for r in runs for s in shown
                     for v in r.stages.get(s, {}).get(field_, {}).values())
        metrics = []
        for s in shown:
            metrics += [Metric(f"{s}|docs_out", f"docs {s}"), Metric(f"{s}|chars_out",
                                                                     f"chars {s}")]
            if tokens:
                metrics.append(Metric(f"{s}|tokens_out", f"tokens {s}"))
        size: dict[str, int] = {}
        for r in runs:
            for s in shown:
                for k, v in r.stages.get(s, {}).get(field_, {}).items():
                    size[k] = max(size.get(k, 0), v["docs_out"])
        order = sorted(size, key=lambda k: (-size[k], k))
        rows = []
        for k in order[:TOP_ROWS]:
            vals = []
            for r in runs:
                d = {}
                for s in shown:
                    v = r.stages.get(s, {}).get(field_, {}).get(k)
                    if v is not None:
                        d.update({f"{s}|{c}": v.get(c, 0) for c in
                                  ("docs_out", "chars_out", "tokens_out")})
                vals.append(d)
            rows.append(TableRow([k], f"{field_}|{k}", vals))
        more = (f'<p class="empty">+{len(order) - TOP_ROWS} more {what}s</p>'
                if len(order) > TOP_ROWS else "")
        bars = []
        for k in order[:15]:
            row = Row(k)
            for i, r in enumerate(runs):
                v = r.stages.get(last, {}).get(field_, {}).get(k, {}).get("docs_out", 0)
                row.tracks.append(Track([Segment(v, RUN_CSS[i], f"{run_tag(runs, i)} {k}: {v:,}")],
                                        f"{run_tag(runs, i)} {v:,}".strip()))
            bars.append(row)
        legend = None if len(runs) == 1 else [("A", "s0"), ("B", "s1")]
        parts.append(f"<h3>per {what}, after {' and '.join(shown)}</h3>"
                     + side_by_side(metric_table([what], rows, metrics, len(runs) > 1) + more,
                                    figure(hbars(bars, f"{field_}|docs", legend=legend),
                                           f"documents per {what} after {last} (largest 15)")))
        parts.append(_removed_part(runs, field_, what))
    if not parts:
        return None
    return "breakdown", "Breakdown", section("breakdown", "Per language / dataset / source",
                                             "".join(parts))


def _removed_part(runs, field_: str, what: str) -> str:
    """What stages cut out of kept documents (sub-document dedup), per value: documents
    changed, spans, tokens, characters (``removed_by_<what>`` in stats.json)."""
    key = "removed_" + field_
    stages = [n for n in stage_names(runs) if any(r.stages.get(n, {}).get(key) for r in runs)]
    if not stages:
        return ""
    names = list(dict.fromkeys(m for r in runs for n in stages
                               for v in r.stages.get(n, {}).get(key, {}).values() for m in v))
    from pipelines.inspection.funnel import REMOVED_ORDER

    names = sorted(names, key=lambda m: (REMOVED_ORDER.index(m) if m in REMOVED_ORDER
                                         else len(REMOVED_ORDER), m))
    metrics = [Metric(m, "docs changed" if m == "docs" else f"{m} removed") for m in names]
    keys = list(dict.fromkeys((n, g) for r in runs for n in stages
                              for g in sorted(r.stages.get(n, {}).get(key, {}))))
    rows = [TableRow([n, g], f"{key}|{n}|{g}",
                     [dict(r.stages.get(n, {}).get(key, {}).get(g, {})) for r in runs])
            for n, g in keys[:TOP_ROWS]]
    return (f"<h3>removed within kept documents, per {what}</h3>"
            + metric_table(["stage", what], rows, metrics, len(runs) > 1))


# ----------------------------------------------------------------------------- time

def timing(runs):
    names = stage_names(runs)
    metrics = [Metric("wall_s", "wall s", h.fmt_f2), Metric("cpu_s", "cpu s", h.fmt_f2),
               Metric("docs_per_s", "docs/s", h.fmt_int), Metric("chars_per_s", "chars/s",
                                                                 h.fmt_int)]

    def values(st: dict | None) -> dict:
        if st is None:
            return {}
        w = st.get("wall_s", 0)
        chars = st.get("chars_in") or st.get("chars_out", 0)
        return {"wall_s": w, "cpu_s": st.get("cpu_s", 0),
                "docs_per_s": st["docs_in"] / w if w > 0 else None,
                "chars_per_s": chars / w if w > 0 else None}

    rows = [TableRow([n], f"time|{n}", [values(r.stages.get(n)) for r in runs]) for n in names]
    table = metric_table(["stage"], rows, metrics, len(runs) > 1)
    bars = []
    for n in names:
        row = Row(n)
        for i, r in enumerate(runs):
            w = r.stages.get(n, {}).get("wall_s", 0)
            row.tracks.append(Track([Segment(w, RUN_CSS[i], f"{run_tag(runs, i)} {n}: {w:.2f} s")],
                                    f"{run_tag(runs, i)} {w:,.2f} s".strip()))
        bars.append(row)
    legend = None if len(runs) == 1 else [("A", "s0"), ("B", "s1")]
    body = side_by_side(table, figure(hbars(bars, "time|wall", legend=legend),
                                      "wall time per stage, summed over tasks (all workers)"))
    body += "<h3>phases</h3>" + _phases_table(runs)
    return "time", "Time", section("time", "Time and throughput", body)


def _phases_table(runs) -> str:
    names = list(runs[0].stats.get("phases", {}))
    for r in runs[1:]:
        names += [p for p in r.stats.get("phases", {}) if p not in names]
    metrics = [Metric("tasks", "tasks"), Metric("elapsed_s", "elapsed s", h.fmt_f2),
               Metric("task_wall_s", "task wall s", h.fmt_f2),
               Metric("task_cpu_s", "task cpu s", h.fmt_f2), Metric("docs_in", "docs in"),
               Metric("docs_per_s", "docs/s", h.fmt_int),
               Metric("max_rss_mb", "max RSS MB", h.fmt_f1)]

    def values(r, p: str) -> dict:
        ph = r.stats.get("phases", {}).get(p)
        if ph is None:
            return {}
        recs = r.tasks.get(p, [])
        docs = sum(next(iter(rec["stages"].values()))["docs_in"] for rec in recs
                   if rec.get("stages"))
        el = ph.get("elapsed_s")
        v = {"tasks": ph["tasks"], "elapsed_s": el, "task_wall_s": ph.get("task_wall_s"),
             "task_cpu_s": round(sum(rec.get("cpu_s", 0) for rec in recs), 3),
             "max_rss_mb": ph.get("max_rss_mb")}
        if docs:
            v["docs_in"] = docs
            v["docs_per_s"] = docs / el if el else None
        return v

    rows = [TableRow([p, r0.get("kind", "")], f"phase|{p}", [values(r, p) for r in runs])
            for p in names for r0 in [_first_phase(runs, p)]]
    out = metric_table(["phase", "kind"], rows, metrics, len(runs) > 1)
    mrows = []
    for p in names:
        keys = list(dict.fromkeys(k for r in runs for k in
                                  r.stats.get("phases", {}).get(p, {}).get("metrics", {})))
        for k in keys:
            mrows.append(TableRow([p, k], f"metric|{p}|{k}", [
                {"value": r.stats.get("phases", {}).get(p, {}).get("metrics", {}).get(k)}
                for r in runs]))
    if mrows:
        out += "<h3>what the global steps found</h3>" + metric_table(
            ["phase", "metric"], mrows, [Metric("value", "value", _fmt_num)], len(runs) > 1)
    return out


def _first_phase(runs, p: str) -> dict:
    return next(r.stats["phases"][p] for r in runs if p in r.stats.get("phases", {}))


def _fmt_num(v: Any) -> str:
    return h.fmt_int(v) if isinstance(v, int) or float(v).is_integer() else f"{v:,.4g}"
