"""The document schema: canonical column names and stable document ids.

A document is one row of an Arrow table. Readers produce the canonical columns;
stages add flat, typed annotation columns (``language``, ``quality_score``...).
"""

from __future__ import annotations

import hashlib
from functools import cache

from pipelines.lazy import lazy_module

pa = lazy_module("pyarrow")

ID = "id"
TEXT = "text"
HTML = "html"
URL = "url"
SOURCE = "source"



@cache
def canonical() -> pa.Schema:
    """The canonical columns as an Arrow schema."""
    return pa.schema([
        pa.field(ID, pa.string(), nullable=False),
        pa.field(TEXT, pa.string()),
        pa.field(URL, pa.string()),
        pa.field(SOURCE, pa.string(), nullable=False),
    ])


def arrow_type(t: pa.DataType | str) -> pa.DataType:
    """A declared column type as an Arrow type. Built-in stages declare theirs by Arrow
    alias (``"string"``, ``"float64"``), so that loading a config and checking its chain
    import no pyarrow; a ``pa.DataType`` (what a user's stage may declare) passes as is."""
    if not isinstance(t, str):
        return t
    return pa.type_for_alias(t)


def stable_id(source: str, index: int) -> str:
    """Id for a record with no id of its own: depends only on where it came from.

    ``source`` is the input path relative to the input root and ``index`` the
    record's position in that file, so the id never depends on the worker,
    executor, time or content.
    """
    return hashlib.sha1(f"{source}:{index}".encode()).hexdigest()


def content_column(table: pa.Table | pa.RecordBatch) -> str | None:
    """The column whose size the statistics report: ``text``, else ``html``."""
    names = table.schema.names
    if TEXT in names:
        return TEXT
    if HTML in names:
        return HTML
    return None
