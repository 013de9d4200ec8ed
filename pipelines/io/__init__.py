"""Readers (WARC, WET, JSONL, Parquet) and writers (Parquet, JSONL)."""

from .readers import Reader, make_reader
from .writers import ShardInfo, ShardWriter, make_writer

__all__ = ["Reader", "ShardInfo", "ShardWriter", "make_reader", "make_writer"]
