"""The document schema: canonical column names and stable document ids.

A document is one row of an Arrow table. Readers produce the canonical columns;
stages add flat, typed annotation columns (``language``, ``quality_score``...).
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

ID = "id"
TEXT = "text"
HTML = "html"
URL = "url"
SOURCE = "source"

CANONICAL = pa.schema(
    [
        pa.field(ID, pa.string(), nullable=False),
        pa.field(TEXT, pa.string()),
        pa.field(URL, pa.string()),
        pa.field(SOURCE, pa.string(), nullable=False),
    ]
)


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
