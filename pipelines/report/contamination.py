"""The report's contamination section: per `decontaminate` stage of a run, the evaluation
items that documents matched and the matched documents.

It reads what the stage wrote in its work directory: ``items.parquet`` (every evaluation
item) and the match files of each task of the stage's apply phase (named by
``matches/part-<task>.json``; tasks from the plan, files never listed). Two tables: the
contaminated items (set, id, documents matching it, most shared n-grams, the item's text),
most matched first, and the matched documents (id, what was done, the items each matched,
most shared n-grams), by id; each shows its first 50 rows and says how many there are and
where the full list is. A run without such a stage has no section.
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
    apply = [ph for ph in phases if ph.get("kind") == "map" and ph.get("stages", [])[:1] == [name]]
    if not apply:
        return None
    from pipelines.registry import get

    try:
        out = get(STAGE).read_matches(work, apply[0]["n_tasks"]).to_pylist()
        items = read_table(work / "items.parquet", columns=["item", "snippet"]).to_pylist()
    except (OSError, ValueError):  # the apply phase has not run (yet)
        return None
    snippets = {r["item"]: r["snippet"] for r in items}
    for m in out:
        m["snippet"] = snippets.get(m["item"], "")
    return out


def _more(shown: int, total: int, what: str, name: str) -> str:
    if total <= shown:
        return ""
    return (f'<p class="empty">first {shown:,} of {total:,} {what}; every match is in '
            f"work/{escape(name)}/matches/ (part-&lt;task&gt;.json names the files)</p>")


def _tables(matches: list[dict], name: str, tag: str) -> str:
    by_item: dict[tuple, dict] = {}
    by_doc: dict[str, dict] = {}
    for m in matches:
        e = by_item.setdefault((m["set"], m["item_id"]), {"docs": 0, "max": 0,
                                                          "snippet": m["snippet"]})
        e["docs"] += 1
        e["max"] = max(e["max"], m["overlaps"])
        d = by_doc.setdefault(m["doc_id"], {"action": m["action"], "items": [], "max": 0})
        d["items"].append(f"{m['set']}/{m['item_id']}")
        d["max"] = max(d["max"], m["overlaps"])
    items = sorted(by_item.items(), key=lambda kv: (-kv[1]["docs"], kv[0]))
    rows = ["<tr>" + h.text_cell(s) + h.text_cell(i) + h.text_cell(h.fmt_int(e["docs"]))
            + h.text_cell(h.fmt_int(e["max"]))
            + h.text_cell(" ".join((e["snippet"] or "").split())[:160], "txt") + "</tr>"
            for (s, i), e in items[:ITEMS_SHOWN]]
    of = f" of run {tag}" if tag else ""
    out = [f"<h3>{escape(name)}: {len(by_item):,} contaminated evaluation items{of}</h3>",
           '<table class="data"><thead><tr><th>set</th><th>item</th><th>documents</th>'
           "<th>most shared n-grams</th><th>item text</th></tr></thead><tbody>",
           *rows, "</tbody></table>", _more(ITEMS_SHOWN, len(by_item), "items", name)]
    docs = sorted(by_doc.items())
    out += [f"<h3>{escape(name)}: {len(by_doc):,} matched documents{of} "
            f"({len(matches):,} matches)</h3>",
            '<table class="data"><thead><tr><th>document</th><th>action</th>'
            "<th>items matched</th><th>most shared n-grams</th></tr></thead><tbody>",
            *("<tr>" + h.text_cell(doc_id, "txt") + h.text_cell(d["action"])
              + h.text_cell(", ".join(sorted(d["items"]))) + h.text_cell(h.fmt_int(d["max"]))
              + "</tr>" for doc_id, d in docs[:DOCS_SHOWN]),
            "</tbody></table>", _more(DOCS_SHOWN, len(by_doc), "documents", name)]
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
