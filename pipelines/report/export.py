"""The report's export section: the token files of a run's exports and the tokens they
wrote per dataset and language (tokenize_export as a stage, or ``thresher export RUN``).

It reads each export's export.json (pipelines/exports.py finds them: every
tokenize_export stage's output, and any direct subdirectory of the run holding one).
Two tables: the exports (directory, format, output shards, files, documents, tokens;
dtype and tokenizer sha256 below) and the tokens written per value of each ``group_by``
column, with its share of the export's tokens. A run without an export has no section.
"""

from __future__ import annotations

from html import escape

from pipelines.exports import run_exports
from pipelines.report import html as h
from pipelines.report.html import Metric, TableRow, metric_table, section


def export(runs) -> tuple[str, str, str] | None:
    found = [{e["where"]: e for e in run_exports(r.root, r.config)} for r in runs]
    names = list(dict.fromkeys(w for f in found for w in f))
    if not names:
        return None
    compare = len(runs) > 1
    keys = ("shards", "files", "documents", "tokens")
    rows = [TableRow([w, next(f[w] for f in found if w in f)["format"]], f"export|{w}",
                     [{k: f[w][k] for k in keys} if w in f else {} for f in found])
            for w in names]
    body = metric_table(["directory", "format"], rows, [
        Metric("shards", "shards"), Metric("files", "files"), Metric("documents", "documents"),
        Metric("tokens", "tokens")], compare)
    tok = "; ".join(f"{escape(w)}: {escape(e['dtype'])}, tokenizer sha256 "
                    f"<code>{escape(e['tokenizer_sha256'])}</code>"
                    for f in found[:1] for w, e in f.items())
    if tok:
        body += f'<p class="empty">{tok}</p>'
    by = []
    for w in names:
        cols = list(dict.fromkeys(c for f in found if w in f for c in f[w]["tokens_by"]))
        for c in cols:
            vals = list(dict.fromkeys(v for f in found if w in f
                                      for v in f[w]["tokens_by"].get(c, {})))
            vals.sort(key=lambda v: -max(f[w]["tokens_by"].get(c, {}).get(v, 0)
                                          for f in found if w in f))
            for v in vals:
                by.append(TableRow([w, c, v or "(none)"], f"export|{w}|{c}|{v}", [
                    {"tokens": f[w]["tokens_by"][c][v],
                     "share": f[w]["tokens_by"][c][v] / f[w]["tokens"] if f[w]["tokens"]
                     else None} if w in f and v in f[w]["tokens_by"].get(c, {}) else {}
                    for f in found]))
    if by:
        body += "<h3>tokens written per dataset and language</h3>" + metric_table(
            ["directory", "column", "value"], by,
            [Metric("tokens", "tokens"), Metric("share", "of export", h.fmt_pct, ratio=True)],
            compare)
    return "export", "Export", section("export", "Export to training: token files", body)
