"""The funnel: a table of what every stage kept and dropped, from stats.json."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from pipelines.errors import UserError


def _fmt_reasons(counts: dict[str, int], limit: int = 3) -> str:
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    s = ", ".join(f"{k} {v:,}" for k, v in items[:limit])
    if len(items) > limit:
        s += f", +{len(items) - limit} more"
    return s


def funnel_table(stats: dict[str, Any], title: str | None = None) -> Table:
    t = Table(title=title, show_lines=False)
    tokens = any(st.get("tokens_out") for st in stats["stages"].values())
    cols = ["stage", "docs in", "docs out", "kept", "dropped", "errors", "chars out"]
    cols += ["tokens out"] if tokens else []
    for col in cols + ["wall s", "docs/s"]:
        t.add_column(col, justify="left" if col == "stage" else "right", no_wrap=True)
    for name, st in stats["stages"].items():
        kept = f"{st['docs_out'] / st['docs_in']:.1%}" if st["docs_in"] else "-"
        rate = f"{st['docs_in'] / st['wall_s']:,.0f}" if st["wall_s"] > 0 else "-"
        shown = f"{name}*" if st.get("carried_from") else name  # see carried_note
        row = [shown, f"{st['docs_in']:,}", f"{st['docs_out']:,}", kept,
               f"{sum(st['dropped'].values()):,}", f"{sum(st['errors'].values()):,}",
               f"{st['chars_out']:,}"]
        row += [f"{st.get('tokens_out', 0):,}"] if tokens else []
        t.add_row(*row, f"{st['wall_s']:.2f}", rate)
    return t


def carried_note(stats: dict[str, Any]) -> str | None:
    """What the ``*`` on a stage name means (a materialized run: thresher materialize)."""
    carried = {n: st for n, st in stats["stages"].items() if st.get("carried_from")}
    if not carried:
        return None
    whole = [n for n, st in carried.items() if st.get("carried_docs") == st["docs_in"]]
    part = [n for n in carried if n not in whole]
    src = next(iter(carried.values()))["carried_from"]
    note = f"* carried from {src}: " + ", ".join(whole) + (" (whole)" if whole else "")
    if part:
        note += ("; " if whole else "") + ", ".join(part) + " (what that run removed for good)"
    return note


def reason_lines(stats: dict[str, Any]) -> list[str]:
    """One line per stage that dropped, failed or rewrote anything: its reasons, largest
    first (rewritten documents, e.g. pii's, are kept: `changed`)."""
    out = []
    for name, st in stats["stages"].items():
        parts = []
        if st["dropped"]:
            parts.append("dropped " + _fmt_reasons(st["dropped"], limit=8))
        if st["errors"]:
            parts.append("errors " + _fmt_reasons(st["errors"], limit=8))
        if st.get("changed"):
            parts.append("changed " + _fmt_reasons(st["changed"], limit=8))
        if st.get("removed"):  # cut out of kept documents (sub-document dedup)
            parts.append("removed " + ", ".join(f"{k} {v:,}" for k, v in st["removed"].items()
                                                if k != "docs"))
        if parts:
            out.append(f"  {name}: " + "; ".join(parts))
    return out


def print_funnel(stats: dict[str, Any], console: Console | None = None,
                 title: str | None = None) -> None:
    console = console or make_console()
    console.print(funnel_table(stats, title))
    note = carried_note(stats)
    if note:
        console.print(note, highlight=False, soft_wrap=True)
    lines = reason_lines(stats)
    if lines:
        console.print("reasons:", highlight=False)
        for line in lines:
            console.print(line, highlight=False, soft_wrap=True)
    phases = stats.get("phases", {})
    if len(phases) > 1:  # multi-phase run: time, memory and what each global step found
        console.print("phases:", highlight=False)
        for name, ph in phases.items():
            head = f"  {name}: {ph['tasks']} task(s)"
            if ph.get("elapsed_s") is not None:
                head += f", {ph['elapsed_s']:.1f} s, max RSS {ph.get('max_rss_mb', 0):,.0f} MB"
            metrics = ph.get("metrics", {})
            shown = ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v:g}"
                              for k, v in list(metrics.items())[:12])
            more = f", +{len(metrics) - 12} more" if len(metrics) > 12 else ""
            console.print(head + (f"; {shown}{more}" if shown else ""), highlight=False,
                          soft_wrap=True)


def make_console(stderr: bool = False) -> Console:
    """A console that does not squeeze tables when output is piped to a file."""
    c = Console(stderr=stderr)
    if not c.is_terminal:
        c = Console(stderr=stderr, width=120)
    return c


def by_language_table(stats: dict[str, Any], stages: list[str] | None = None) -> Table:
    return breakdown_table(stats, "language", stages)


def breakdown_table(stats: dict[str, Any], by: str, stages: list[str] | None = None) -> Table:
    """Documents, characters and tokens per language (or dataset) after each of ``stages``.

    Default: the first stage that knew the column and the last one, side by side, so
    what filtering, dedup and rebalancing did to each language is one glance.
    """
    key = f"by_{by}"
    known = [name for name, st in stats["stages"].items() if st.get(key)]
    if stages is None:
        stages = list(dict.fromkeys(known[:1] + known[-1:]))
    elif stages == ["all"]:  # every stage that knew the column: a funnel per language
        stages = known
    unknown = [s for s in stages if s not in stats["stages"]]
    if unknown:
        raise UserError(f"no stage named {unknown[0]!r} in this run "
                        f"(have: {', '.join(stats['stages'])})")
    cols = ("docs", "chars", "tokens") if len(stages) <= 2 else ("docs",)  # a funnel: docs
    t = Table(title=f"by {by}, after " + " / ".join(stages) if len(stages) <= 2 else
              f"documents by {by} after each stage" if stages else f"by {by}")
    t.add_column(by)
    for s in stages:
        for col in cols:
            t.add_column(f"{col}\n{s}" if len(stages) == 2 else s if len(cols) == 1 else col,
                         justify="right")
    langs: dict[str, int] = {}
    for s in stages:
        for lang, v in stats["stages"][s].get(key, {}).items():
            langs[lang] = max(langs.get(lang, 0), v["docs_out"])
    for lang in sorted(langs, key=lambda k: (-langs[k], k)):
        row = [lang]
        for s in stages:
            v = stats["stages"][s].get(key, {}).get(lang)
            seen = bool(stats["stages"][s].get(key))  # the stage counted groups: absent = 0
            values = [f"{v['docs_out']:,}", f"{v['chars_out']:,}",
                      f"{v.get('tokens_out', 0):,}"] if v else \
                ["0", "0", "0"] if seen else ["-", "-", "-"]
            row += values[:len(cols)]
        t.add_row(*row)
    return t


def stats_csv(stats: dict[str, Any], by: str | None = None) -> str:
    """The stats as CSV for notebooks: per stage its in/out rows, one row per drop or
    error reason (``chars`` empty where a stage did not report the dropped texts) and one
    per reason of documents a stage rewrote and kept (kind ``changed``: pii's
    ``replaced:<kind>``, decontaminate's ``contaminated:<set>`` with ``action: remove``;
    ``chars`` empty), and what a stage cut out of documents it kept (kind ``removed``:
    sub-document dedup, pii's replaced matches): a row without reason holding documents
    changed and characters removed (``docs``/``chars`` of ``removed``, either empty when
    the stage did not count it), then one row per other metric (``spans``, ``tokens``,
    pii's ``email``, ``ip``, ...) with its count in ``docs``; with ``by="language"`` (or
    ``"dataset"``) one row per stage and value instead."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if by is not None:
        w.writerow(["stage", by, "docs", "chars", "tokens"])
        for name, st in stats["stages"].items():
            for lang, v in sorted(st.get(f"by_{by}", {}).items()):
                w.writerow([name, lang, v["docs_out"], v["chars_out"], v.get("tokens_out", 0)])
        return buf.getvalue()
    w.writerow(["stage", "kind", "reason", "docs", "chars"])
    for name, st in stats["stages"].items():
        chars = st.get("chars_by_reason", {})
        w.writerow([name, "in", "", st["docs_in"], st["chars_in"]])
        w.writerow([name, "out", "", st["docs_out"], st["chars_out"]])
        for kind, counts in (("dropped", st["dropped"]), ("error", st["errors"])):
            for reason, n in counts.items():
                w.writerow([name, kind, reason, n, chars.get(reason, "")])
        for reason, n in st.get("changed", {}).items():  # kept, rewritten: no chars dropped
            w.writerow([name, "changed", reason, n, ""])
        removed = st.get("removed", {})
        if removed:  # cut out of kept documents: docs changed, chars, then each metric
            w.writerow([name, "removed", "", removed.get("docs", ""), removed.get("chars", "")])
            for metric, n in removed.items():
                if metric not in ("docs", "chars"):
                    w.writerow([name, "removed", metric, n, ""])
    return buf.getvalue()


REMOVED_ORDER = ["docs", "spans", "sentences", "paragraphs", "tokens", "chars"]


def removed_table(stats: dict[str, Any], by: str) -> Table | None:
    """What stages cut out of kept documents (``removed_by_<by>`` in stats.json: documents
    changed, spans, tokens, characters, ...) per language (or dataset) and stage; None
    when no stage cut anything."""
    key = f"removed_by_{by}"
    stages = [n for n, st in stats["stages"].items() if st.get(key)]
    if not stages:
        return None
    metrics = list(dict.fromkeys(m for n in stages for v in stats["stages"][n][key].values()
                                 for m in v))
    metrics = sorted(metrics, key=lambda m: (REMOVED_ORDER.index(m) if m in REMOVED_ORDER
                                             else len(REMOVED_ORDER), m))
    t = Table(title=f"removed within kept documents, by {by}")
    t.add_column(by)
    t.add_column("stage")
    for m in metrics:
        t.add_column("docs changed" if m == "docs" else f"{m} removed", justify="right")
    for name in stages:
        groups = stats["stages"][name][key]
        for g in sorted(groups, key=lambda g: (-groups[g].get("docs", 0), g)):
            t.add_row(g, name, *(f"{groups[g][m]:,}" if m in groups[g] else "-"
                                 for m in metrics))
    return t
