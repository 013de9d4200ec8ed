"""Partitioned side files: one Parquet file per writing task, one row group per partition.

A global stage's tasks exchange data shuffle-style: each of T writers splits
its rows into P partitions, and reader ``p`` needs partition ``p`` of every
writer. Writing one file per (writer, partition) makes T x P small files;
instead each writer writes ONE file whose row groups are its partitions, in
order, with a ``partition -> row groups`` index in the file's key-value
metadata. A reader opens each writer's file and reads only its row groups, so
memory is bounded by one partition and the file count by T.

Files are written to a temporary name and renamed, so a file that exists is
complete.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.io.files import atomic_path, parquet_file
from pipelines.lazy import lazy_module

np = lazy_module("numpy")
pa = lazy_module("pyarrow")
pq = lazy_module("pyarrow.parquet")

INDEX_KEY = b"thresher.partitions"


def write_partitioned(path: Path, table: pa.Table, partition: np.ndarray, n_partitions: int,
                      max_rows_per_group: int = 1_000_000) -> None:
    """Write ``table`` grouped by ``partition`` (ints in [0, n_partitions)), stably."""
    partition = np.asarray(partition, dtype=np.int64)
    if len(partition) != table.num_rows:
        raise ValueError("one partition id per row is needed")
    if len(partition) and (partition.min() < 0 or partition.max() >= n_partitions):
        raise ValueError(f"partition ids must be in [0, {n_partitions})")
    order = np.argsort(partition, kind="stable")
    table = table.take(pa.array(order))
    counts = np.bincount(partition, minlength=n_partitions)
    index: dict[str, list[int]] = {}
    schema = table.schema.with_metadata({INDEX_KEY: b"{}"})
    with atomic_path(path) as tmp:
        writer = pq.ParquetWriter(tmp, schema, compression="zstd")
        try:
            start, group = 0, 0
            for p in range(n_partitions):
                n = int(counts[p])
                for off in range(0, n, max_rows_per_group):
                    writer.write_table(table.slice(start + off, min(max_rows_per_group, n - off)),
                                       row_group_size=max_rows_per_group)
                    index.setdefault(str(p), []).append(group)
                    group += 1
                start += n
            writer.add_key_value_metadata({INDEX_KEY: json.dumps(index).encode()})
        finally:
            writer.close()


def read_partition(paths: list[Path], p: int, columns: list[str] | None = None,
                   schema: pa.Schema | None = None) -> pa.Table:
    """Partition ``p`` of every file in ``paths``, concatenated in the order given."""
    tables = []
    for path in paths:
        pf = parquet_file(path)
        meta = pf.metadata.metadata or {}
        index = json.loads(meta.get(INDEX_KEY, b"{}"))
        groups = index.get(str(p), [])
        if groups:
            tables.append(pf.read_row_groups(groups, columns=columns))
        elif schema is None:
            schema = pf.schema_arrow
    if not tables:
        sch = schema if schema is not None else pa.schema([])
        if columns is not None and len(sch):
            sch = pa.schema([sch.field(c) for c in columns])
        return sch.remove_metadata().empty_table()
    return pa.concat_tables(tables).replace_schema_metadata(None)
