"""One planned input file -> Arrow tables, with what no format reader can see.

The format readers (readers.py) count the records inside a file. What the plan knows
about the file itself is handled here: a zero-byte file holds no record, yet the
funnel must show it (one ``empty_file`` error of the ``read`` stage); directories the
input globs matched are counted once, by task 0 (``input_is_directory``); and the
file's ``input.dataset`` name becomes the ``dataset`` column.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from ..config import InputBase
from ..plan import InputFile
from ..schema import ID, SOURCE, stable_id
from ..stats import DATASET, StageStats
from .readers import make_reader


def read_input(cfg: InputBase, inp: InputFile, stats: StageStats) -> Iterator[pa.Table]:
    if inp.size == 0:
        count_unreadable(stats, inp, "empty_file")
        return
    for table in make_reader(cfg).read(Path(inp.path), inp.source, stats):
        if inp.dataset is not None:
            table = _with_dataset(table, inp.dataset)
        yield table


def count_unreadable(stats: StageStats, inp: InputFile, reason: str) -> None:
    """One input path that yields no record, counted (and sampled) as one error."""
    stats.docs_in += 1
    doc = None
    if stats.sampler is not None:
        doc = {ID: stable_id(inp.source, -1), SOURCE: inp.source,
               "details": {"path": inp.path, "size": inp.size}}
    stats.error(reason, doc=doc)


def _with_dataset(table: pa.Table, name: str) -> pa.Table:
    col = pa.array([name] * table.num_rows, pa.string())
    if DATASET in table.schema.names:  # input.dataset wins over a column of the input
        return table.set_column(table.schema.get_field_index(DATASET), DATASET, col)
    return table.append_column(DATASET, col)
