"""`thresher dups RUN`: the largest duplicate clusters of a run, survivor first.

Reads ``work/<stage>/clusters.parquet``, which minhash_dedup's clustering step
writes (one row per document in a cluster of two or more, with its url and
the first characters of its text), so nothing is recomputed.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
from rich.console import Console
from rich.text import Text

from .errors import UserError
from .rundir import RunDir


def cluster_files(run: RunDir) -> dict[str, Path]:
    work = run.root / "work"
    if not work.is_dir():
        return {}
    return {p.parent.name: p for p in sorted(work.glob("*/clusters.parquet"))}


def print_dups(run_dir: str | Path, console: Console, stage: str | None = None,
               top: int = 10, per_cluster: int = 3, width: int = 160) -> None:
    run = RunDir(Path(run_dir).resolve())
    files = cluster_files(run)
    if not files:
        exact = sorted(p.parent.name for p in (run.root / "work").glob("*/decisions")) \
            if (run.root / "work").is_dir() else []
        raise UserError(f"{run.root} has no duplicate clusters table: only minhash_dedup writes "
                        "one, and none ran there (or its clustering step has not finished)"
                        + (f"; exact_dedup's counts are in `thresher stats` ({', '.join(exact)})"
                           if exact else ""))
    if stage is not None:
        if stage not in files:
            raise UserError(f"no clusters for stage {stage!r} in {run.root} "
                            f"(have: {', '.join(files)})")
        files = {stage: files[stage]}
    for name, path in files.items():
        t = pq.read_table(path)
        if t.num_rows == 0:
            console.print(f"[bold]{name}[/]: no duplicate clusters")
            continue
        ids = t.column("cluster_id")
        n_clusters = len(pc.unique(ids))
        removed = t.num_rows - n_clusters
        console.print(f"[bold]{name}[/]: {n_clusters:,} clusters, {t.num_rows:,} documents in "
                      f"them, {removed:,} removed; the {min(top, n_clusters)} largest:")
        rows = t.to_pylist()  # sorted by size desc, cluster, survivor first
        shown, i = 0, 0
        while i < len(rows) and shown < top:
            cid, size = rows[i]["cluster_id"], rows[i]["cluster_size"]
            members = []
            while i < len(rows) and rows[i]["cluster_id"] == cid:
                members.append(rows[i])
                i += 1
            shown += 1
            console.print(f"\n[bold]cluster {cid}[/] ({size} documents)")
            for m in members[:per_cluster + 1]:
                tag = "[green]kept   [/]" if m["keep"] else "[red]removed[/]"
                console.print(f"  {tag} {m['id']}  {m['url'] or ''}  ({m['length']:,} chars)",
                              overflow="ellipsis", no_wrap=True, highlight=False)
                snippet = " ".join((m["snippet"] or "").split())[:width]
                console.print(Text("          " + snippet, style="dim"), overflow="ellipsis",
                              no_wrap=True)
            if len(members) > per_cluster + 1:
                console.print(f"  ... and {len(members) - per_cluster - 1} more")
        console.print()
