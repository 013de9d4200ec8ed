"""`thresher dups RUN`: the largest duplicate clusters of a run, survivor first.

Reads ``work/<stage>/clusters.parquet``, which minhash_dedup's clustering step
writes (one row per document in a cluster of two or more, with its url and
the first characters of its text), so nothing is recomputed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
from rich.console import Console
from rich.text import Text

from pipelines.errors import UserError
from pipelines.io.files import parquet_file, read_table
from pipelines.lazy import lazy_module
from pipelines.rundir import RunDir

pc = lazy_module("pyarrow.compute")


def cluster_files(run: RunDir) -> dict[str, Path]:
    work = run.root / "work"
    if not work.is_dir():
        return {}
    return {p.parent.name: p for p in sorted(work.glob("*/clusters.parquet"))}


def print_dups(run_dir: str | Path, console: Console, stage: str | None = None,
               top: int = 10, per_cluster: int = 3, width: int = 160) -> None:
    run = RunDir.at(run_dir)
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
        pf = parquet_file(path)
        n_docs = pf.metadata.num_rows
        if n_docs == 0:
            console.print(f"[bold]{name}[/]: no duplicate clusters")
            continue
        # one survivor per cluster: counted from the small `keep` column alone, so a
        # corpus-sized table is never loaded as a whole
        n_clusters = int(pc.sum(read_table(path, columns=["keep"]).column("keep")).as_py())
        console.print(f"[bold]{name}[/]: {n_clusters:,} clusters, {n_docs:,} documents in "
                      f"them, {n_docs - n_clusters:,} removed; the {min(top, n_clusters)} "
                      "largest:")
        for members in _largest(pf, top):
            _print_cluster(console, members, per_cluster, width)
        console.print()


def _largest(pf: pq.ParquetFile, top: int) -> Iterator[list[dict]]:
    """The members of the ``top`` first clusters (the file is sorted by size, biggest
    first, survivor first), read batch by batch until they are complete."""
    members: list[dict] = []
    shown = 0
    for batch in pf.iter_batches(batch_size=1024):
        for r in batch.to_pylist():
            if members and r["cluster_id"] != members[0]["cluster_id"]:
                yield members
                shown, members = shown + 1, []
                if shown == top:
                    return
            members.append(r)
    if members:
        yield members


def _print_cluster(console: Console, members: list[dict], per_cluster: int,
                   width: int) -> None:
    first = members[0]
    console.print(f"\n[bold]cluster {first['cluster_id']}[/] ({first['cluster_size']} documents)")
    for m in members[:per_cluster + 1]:
        tag = "[green]kept   [/]" if m["keep"] else "[red]removed[/]"
        console.print(f"  {tag} {m['id']}  {m['url'] or ''}  ({m['length']:,} chars)",
                      overflow="ellipsis", no_wrap=True, highlight=False)
        snippet = " ".join((m["snippet"] or "").split())[:width]
        console.print(Text("          " + snippet, style="dim"), overflow="ellipsis",
                      no_wrap=True)
    if len(members) > per_cluster + 1:
        console.print(f"  ... and {len(members) - per_cluster - 1} more")
