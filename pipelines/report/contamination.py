"""The report's contamination section: per `decontaminate` stage of a run, the evaluation
items that documents matched and the matched documents.

It reads what the stage wrote in its work directory: ``items.parquet`` (every evaluation
item) and ``matches/part-<task>.parquet`` (one per task of the map phases around the stage,
named from the plan, never listed). A run without such a stage has no section.
"""

from __future__ import annotations

from html import escape

from pipelines.io.files import read_table
from pipelines.report import html as h
from pipelines.report.html import section
from pipelines.report.sections import run_tag

ITEMS_SHOWN = 50
DOCS_SHOWN = 50
STAGE = "decontaminate"


def _stages(run) -> list[str]:
    return [st.get("name") or st["stage"] for st in run.config.get("stages", [])
            if st.get("stage") == STAGE]


def _matches(run, name: str) -> list[dict] | None:
    work = run.root / "work" / name
    phases = (run.plan or {}).get("phases") or []
    if not phases:
        return None
    out: list[dict] = []
    try:
        for t in range(phases[0]["n_tasks"]):
            out += read_table(work / "matches" / f"part-{t:05d}.parquet").to_pylist()
        items = read_table(work / "items.parquet", columns=["item", "snippet"]).to_pylist()
    except (OSError, ValueError):  # the apply phase has not run (yet)
        return None
    snippets = {r["item"]: r["snippet"] for r in items}
    for m in out:
        m["snippet"] = snippets.get(m["item"], "")
    return out


def _tables(matches: list[dict], name: str, tag: str) -> str:
    by_item: dict[tuple, dict] = {}
    for m in matches:
        e = by_item.setdefault((m["set"], m["item_id"]), {"docs": 0, "max": 0,
                                                          "snippet": m["snippet"]})
        e["docs"] += 1
        e["max"] = max(e["max"], m["overlaps"])
    items = sorted(by_item.items(), key=lambda kv: (-kv[1]["docs"], kv[0]))
    rows = ["<tr>" + h.text_cell(s) + h.text_cell(i) + h.text_cell(h.fmt_int(e["docs"]))
            + h.text_cell(h.fmt_int(e["max"]))
            + h.text_cell(" ".join((e["snippet"] or "").split())[:160], "txt") + "</tr>"
            for (s, i), e in items[:ITEMS_SHOWN]]
    of = f" of run {tag}" if tag else ""
    out = [f"<h3>{escape(name)}: {len(by_item):,} contaminated evaluation items{of}</h3>",
           '<table class="data"><thead><tr><th>set</th><th>item</th><th>documents</th>'
           "<th>most shared n-grams</th><th>item text</th></tr></thead><tbody>",
           *rows, "</tbody></table>"]
    docs = sorted(matches, key=lambda m: (m["doc_id"], m["set"], m["item_id"]))[:DOCS_SHOWN]
    out += [f"<h3>{escape(name)}: matched documents{of} ({len(matches):,} matches)</h3>",
            '<table class="data"><thead><tr><th>document</th><th>set</th><th>item</th>'
            "<th>shared n-grams</th><th>action</th></tr></thead><tbody>",
            *("<tr>" + h.text_cell(m["doc_id"], "txt") + h.text_cell(m["set"])
              + h.text_cell(m["item_id"]) + h.text_cell(h.fmt_int(m["overlaps"]))
              + h.text_cell(m["action"]) + "</tr>" for m in docs),
            "</tbody></table>"]
    return "".join(out)


def contamination(runs):
    parts = []
    for i, run in enumerate(runs):
        for name in _stages(run):
            matches = _matches(run, name)
            if matches is None:
                continue
            if not matches:
                parts.append(f'<p class="empty">{escape(name)}: no document shares enough '
                             f"n-grams with an evaluation item</p>")
                continue
            parts.append(_tables(matches, name, run_tag(runs, i)))
    if not parts:
        return None
    return "contamination", "Contamination", section(
        "contamination", "Contaminated evaluation items", "".join(parts))
