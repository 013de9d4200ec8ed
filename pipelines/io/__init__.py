"""Reading inputs and writing shards and files.

``inputs`` turns one planned input into batches (``readers``: WARC through ``warc_stream``
or ``fastwarc_reader``, WET, JSONL, Parquet; ``html_charset`` decodes pages, ``compression``
opens compressed files, ``hashing`` takes an input's sha256 while it is read);
``discovery`` expands a config's input globs into the planned file list; ``writers``
write Parquet or JSONL shards; ``files`` commits any file whole and hashes files.
"""
