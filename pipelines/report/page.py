"""`thresher report RUN [--compare RUN2] -o report.html`: one self-contained HTML page.

Why one file with nothing external: a report gets mailed, attached to an issue or
opened on a cluster login node without network; so CSS and the small sorting script
are inline and every chart is inline SVG drawn here (svgplot.py). Everything shown is
read from the run directory: stats.json (counts, sketches, phases), manifest.json
(versions, inputs), the task records (CPU per phase), samples/ and work/*/clusters.parquet.
Nothing is recomputed from the data, so the page matches ``thresher stats`` exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.errors import UserError
from pipelines.inspection.dups import cluster_files
from pipelines.io.files import parquet_file, read_table, write_text_atomic
from pipelines.io.remote_path import run_path
from pipelines.report.html import page
from pipelines.rundir import RunDir

SAMPLES_SHOWN = 3  # per stage and reason
SAMPLE_CHARS = 600
TOP_CLUSTERS = 5


@dataclass
class RunData:
    """What the report reads of one run directory."""

    root: Path
    stats: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] | None = None
    plan: dict[str, Any] | None = None
    tasks: dict[str, list[dict]] = field(default_factory=dict)  # phase -> task records
    samples: list[dict] = field(default_factory=list)
    clusters: dict[str, list[dict]] = field(default_factory=dict)  # stage -> largest clusters

    @property
    def stages(self) -> dict[str, dict]:
        return self.stats["stages"]

    @property
    def name(self) -> str:
        return str(self.stats.get("run") or self.root.name)

    @property
    def shown_dir(self) -> str:
        """The run directory as the page shows it: relative to the current directory when
        it is below it, so a shared page does not reveal the machine's paths."""
        try:
            return self.root.relative_to(Path.cwd().resolve()).as_posix()
        except ValueError:
            return str(self.root)

    def stage_params(self, name: str) -> dict[str, Any]:
        for st in self.config.get("stages", []):
            if (st.get("name") or st.get("stage")) == name:
                return st
        return {}


def load_run(path: str | Path) -> RunData:
    run = RunDir.at(path)
    stats = run.load_stats()
    data = RunData(run.root, stats)
    if run.config.exists():
        data.config = run.load_config_dict()
    if run.manifest.exists():
        data.manifest = run.load_manifest()
    if run.plan.exists():
        data.plan = run.load_plan_json()
    for phase in stats.get("phases", {}):
        data.tasks[phase] = run.task_records(phase)
    data.samples = _samples(run)
    for stage, path in cluster_files(run).items():
        data.clusters[stage] = _largest_clusters(path)
    return data


def _samples(run: RunDir) -> list[dict]:
    """The first few samples of every stage and reason, texts cut short."""
    rows: list[dict] = []
    for path in sorted(run.samples.glob("*.parquet")):
        seen: dict[str, int] = {}
        for r in read_table(path).to_pylist():  # in sample order: reason, then hash
            n = seen.get(r["reason"], 0)
            seen[r["reason"]] = n + 1
            if n < SAMPLES_SHOWN:
                r["text"] = (r["text"] or "")[:SAMPLE_CHARS] if r["text"] is not None else None
                rows.append(r)
        for r in rows:
            if r["stage"] == path.stem:
                r["sampled"] = seen[r["reason"]]
    return rows


def _largest_clusters(path: Path) -> list[dict]:
    """The first members of the largest clusters (the file is sorted biggest first)."""
    out: list[dict] = []
    pf = parquet_file(path)
    cols = [c for c in ("cluster_id", "cluster_size", "keep", "id", "url", "length", "snippet")
            if c in pf.schema_arrow.names]
    for batch in pf.iter_batches(batch_size=1024, columns=cols):
        for r in batch.to_pylist():
            if not out or out[-1]["cluster_id"] != r["cluster_id"]:
                if len(out) == TOP_CLUSTERS:
                    return out
                out.append({**r, "members": []})
            out[-1]["members"].append(r)
    return out


def build_report(a: RunData, b: RunData | None = None) -> str:
    from pipelines.report import contamination as rc
    from pipelines.report import dists as rd
    from pipelines.report import export as rx
    from pipelines.report import sections as rs

    runs = [a] if b is None else [a, b]
    parts = [rs.overview(runs), rs.funnel(runs), rs.reasons(runs), rs.breakdowns(runs),
             rd.histograms(runs), rs.timing(runs), rd.dedup(runs), rc.contamination(runs),
             rx.export(runs), rd.samples(runs)]
    parts = [p for p in parts if p is not None]
    if b is None:
        title = f"thresher report: {a.name}"
        subtitle = a.shown_dir
    else:
        title = f"thresher report: {a.name} (A) vs {b.name} (B)"
        subtitle = f"A = {a.shown_dir}   B = {b.shown_dir}   deltas are B - A"
    return page(title, subtitle, [(i, t) for i, t, _ in parts], [html for _, _, html in parts])


def write_report(run: str | Path, out: str | Path, compare: str | Path | None = None) -> Path:
    a = load_run(run)
    b = load_run(compare) if compare is not None else None
    out = run_path(out)
    if out.is_dir():
        raise UserError(f"{out} is a directory; give the report's file name (-o report.html)")
    html = build_report(a, b)
    write_text_atomic(out, html)
    return out
