"""Input discovery: a config's inputs expanded into the sorted file list a run plans.

Inputs are named by globs (``input.paths``) or by a listing (``input.paths_file``, one
path per line, plain or compressed, with ``prefix`` joined to each, ``limit`` or
``sample`` applied in listing order). Either may be local paths, ``file://`` URLs or
remote URLs (``s3://``, ``gs://``, ``hf://``; a listing also ``http(s)://``), all
through the storage layer (storage.py): a remote glob is one listing, which also gives
the sizes; listed remote paths are asked their size, a few at a time.

Each file gets its ``source``, the path relative to the input root (``input.root``, else
``prefix``, else the fixed directory part of the first glob), which ids and the
``dataset`` mapping use; the root may be a URL. Local inputs are planned by their
absolute path, remote ones by their URL. Directories a glob matched are returned
separately (a run counts them as errors).
"""

from __future__ import annotations

import logging
import os
import random
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.errors import ConfigError
from pipelines.io import storage as st

if TYPE_CHECKING:
    from pipelines.config import InputBase

log = logging.getLogger(__name__)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_SIZE_THREADS = 16  # listed remote paths asked their size at once


@dataclass(frozen=True)
class Found:
    path: str  # absolute local path, or URL
    source: str  # relative to the input root
    size: int


def storage_for(inp: InputBase) -> st.Storage:
    """A storage object with the input's ``storage_options`` (its own retry counter)."""
    return st.Storage(getattr(inp, "storage_options", None) or None)


def glob_root(pattern: str) -> str:
    """The directory part of a glob before its first wildcard (a URL stays a URL)."""
    m = _SCHEME.match(pattern) if st.is_remote(pattern) else None
    if m:
        head, parts = m.group(0), pattern[m.end():].split("/")
    else:
        head, parts = "", list(Path(pattern).parts)
    fixed = []
    for p in parts:
        if any(ch in p for ch in "*?["):
            break
        fixed.append(p)
    else:  # a plain file path
        fixed = fixed[:-1]
    if m:
        return head + "/".join(fixed) if fixed else head
    return str(Path(*fixed)) if fixed else "."


def _norm(path: str) -> str:
    """A local path (or file:// URL) made absolute; a remote URL as it is."""
    if st.is_remote(path):
        return path
    return str(Path(os.path.expanduser(st.local_path(path))).resolve())


def _relative(path: str, root: str) -> str:
    if st.is_remote(path) or st.is_remote(root):
        base = root.rstrip("/") + "/"
        return path[len(base):] if path.startswith(base) and len(path) > len(base) else path
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).as_posix()


def discover(inp: InputBase, skipped: list[tuple[str, str]] | None = None,
             storage: st.Storage | None = None, sizes: bool = True) -> list[Found]:
    """The planned inputs, sorted by source; with ``sizes=False`` a listing's paths are
    not looked up (their size is -1), so a config check costs one read of the listing."""
    storage = storage or storage_for(inp)
    if inp.paths_file is not None:
        return _listed(inp, storage, sizes)
    first = inp.paths[0]
    root = _norm(inp.root or glob_root(os.path.expanduser(first)))
    seen: dict[str, Found] = {}
    dirs: dict[str, str] = {}
    for i, pattern in enumerate(inp.paths):
        pattern = os.path.expanduser(pattern) if not st.is_remote(pattern) else pattern
        try:
            matches = storage.glob_info(st.local_path(pattern)
                                        if not st.is_remote(pattern) else pattern)
        except st.StorageError as exc:
            raise ConfigError(str(exc), path=f"input.paths[{i}]") from None
        files = [(_norm(m), info["size"]) for m, info in matches if info["type"] == "file"]
        dirs.update((d, _relative(d, root)) for d in
                    (_norm(m) for m, info in matches if info["type"] != "file"))
        if not files:
            what = "only directories" if matches else "no files"
            where = "" if st.is_remote(pattern) else f" (relative to {os.getcwd()})"
            raise ConfigError(f"glob {pattern!r} matched {what}{where}; expected at least "
                              "one input file", path=f"input.paths[{i}]")
        for f, size in files:
            if f not in seen:
                seen[f] = Found(f, _relative(f, root), size)
    if skipped is not None:
        skipped.extend(sorted(dirs.items(), key=lambda kv: (kv[1], kv[0])))
    return sorted(seen.values(), key=lambda f: (f.source, f.path))


def read_listing(inp: InputBase, storage: st.Storage) -> list[str]:
    """The paths ``inp.paths_file`` lists (blank lines and ``#`` comments skipped), with
    ``prefix`` joined to each, then ``limit`` or ``sample`` applied, in listing order."""
    from pipelines.io.compression import decompressing

    url = inp.paths_file
    try:
        with storage.open_read(st.local_path(url) if not st.is_remote(url) else url) as raw:
            data = decompressing(raw, st.as_path(url).name).read()
    except st.StorageError as exc:
        raise ConfigError(str(exc), path="input.paths_file") from None
    except (OSError, EOFError) as exc:  # not gzip after all, a cut .gz...
        raise ConfigError(f"{url}: cannot read the listing ({exc})",
                          path="input.paths_file") from None
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{url}: the listing is not UTF-8 text (byte {exc.start})",
                          path="input.paths_file") from None
    entries: list[str] = []
    seen: set[str] = set()
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path = st.join(inp.prefix, line) if inp.prefix else line
        if path not in seen:
            seen.add(path)
            entries.append(path)
    if not entries:
        raise ConfigError(f"{url}: the listing names no path", path="input.paths_file")
    if inp.limit is not None:
        entries = entries[:inp.limit]
    elif inp.sample is not None and inp.sample.n < len(entries):
        chosen = random.Random(inp.sample.seed).sample(range(len(entries)), inp.sample.n)
        entries = [entries[i] for i in sorted(chosen)]
    return entries


def _listed(inp: InputBase, storage: st.Storage, sizes: bool) -> list[Found]:
    entries = [_norm(p) for p in read_listing(inp, storage)]
    root = _norm(inp.root or inp.prefix or glob_root(entries[0]))
    if sizes:
        def size_of(path: str) -> int:
            try:
                info = storage.info(path)
            except st.StorageError as exc:
                raise ConfigError(f"{exc} (listed in {inp.paths_file})",
                                  path="input.paths_file") from None
            if info.get("type") == "directory":
                raise ConfigError(f"{path}: listed in {inp.paths_file}, but is a "
                                  "directory", path="input.paths_file")
            return int(info["size"])

        with ThreadPoolExecutor(min(_SIZE_THREADS, len(entries))) as pool:
            found = list(pool.map(size_of, entries))
    else:
        found = [-1] * len(entries)
    files = {p: Found(p, _relative(p, root), n) for p, n in zip(entries, found)}
    return sorted(files.values(), key=lambda f: (f.source, f.path))


def resolve_inputs(inp: InputBase, skipped: list[tuple[Path, str]] | None = None
                   ) -> list[tuple[Path, str]]:
    """(path, source) of each input, sorted: a local path as an absolute ``Path``, a
    remote one as a ``storage.URLPath`` (a str with ``.name``)."""
    dirs: list[tuple[str, str]] = []
    found = discover(inp, dirs, sizes=False)
    if skipped is not None:
        skipped.extend((st.as_path(d), src) for d, src in dirs)
    return [(st.as_path(f.path), f.source) for f in found]


# ----------------------------------------------------------------------------- splitting

_COMPRESSED = (".gz", ".zst", ".zstd", ".bz2", ".xz", ".lz4", ".br")
#: a compressed JSONL file is split only if a second gzip member (zstd frame) starts in
#: its first this many bytes (a bounded read at planning time)
PROBE_BYTES = 4 << 20


def split_points(inp: InputBase, path: str, size: int, storage: st.Storage | None = None
                 ) -> list[tuple[int, int, tuple[int, int] | None]]:
    """The pieces ``input.max_task_bytes`` cuts a file into: (start, end, row groups)
    per piece, or [] to read the file as one task (small, or a format that cannot be
    entered in the middle). A pure function of the file and the config:

    - Parquet: consecutive row groups, as many as fit in ``max_task_bytes`` (at least
      one), read from the footer; a piece's byte range runs from its first row group's
      first page to the next piece's (the first piece from 0, the last to the end);
    - plain JSONL, plain WARC/WET (.warc, .wet) and gzip WARC/WET (one gzip member per
      record, as WARC writers make them): ranges of ``max_task_bytes`` bytes; a piece
      reads the lines (records) that start inside its range, found by resyncing
      (readers.py, warc_stream.first_record_at);
    - gzip or zstd JSONL made of several gzip members or zstd frames (bgzip, a member
      or frame per chunk): ranges of ``max_task_bytes``; a piece resyncs on the first
      member (frame) starting in its range, then on a line (readers.py). Only if a
      second one starts in the first ``PROBE_BYTES`` (read here): one gzip member or
      zstd frame cannot be entered mid-way, so such a file is one task, and a warning
      says so;
    - other compressed JSONL, ARC and other compressed WARCs: not split.
    """
    limit = getattr(inp, "max_task_bytes", None)
    if limit is None or size <= limit:
        return []
    name = st.as_path(path).name.lower()
    fmt = getattr(inp, "format", None)
    if fmt == "parquet":
        return _row_group_pieces(path, size, limit, storage or storage_for(inp))
    if fmt in ("warc", "wet"):
        ok = name.endswith((".warc.gz", ".wet.gz", ".warc", ".wet"))
    elif name.endswith(_COMPRESSED):  # jsonl
        ok = _members_apart(path, size, storage or storage_for(inp))
    else:
        ok = True
    if not ok:
        return []
    return [(a, min(a + limit, size), None) for a in range(0, size, limit)]


def _members_apart(path: str, size: int, storage: st.Storage) -> bool:
    """Whether a compressed JSONL file can be split: gzip or zstd with a second member
    (frame) in its first ``PROBE_BYTES``; else a warning names it (one task)."""
    from pipelines.io.compression import has_second_member, member_kind

    kind = member_kind(st.as_path(path).name)
    if kind is None:
        what = "this compression cannot be entered mid-way"
    else:
        try:
            with (storage.open_read(path) if st.is_remote(path) else open(path, "rb")) as fh:
                if has_second_member(fh, kind, size, PROBE_BYTES):
                    return True
        except (OSError, st.StorageError):  # unreadable: one task, which counts it
            return False
        one = "gzip member" if kind == "gzip" else "zstd frame"
        what = f"one {one} cannot be entered mid-way" + (
            f" (no second one in its first {PROBE_BYTES >> 20} MiB)" if size > PROBE_BYTES
            else "")
    log.warning("%s: not split by input.max_task_bytes, read as one task: %s", path, what)
    return False


def _row_group_pieces(path: str, size: int, limit: int, storage: st.Storage
                      ) -> list[tuple[int, int, tuple[int, int] | None]]:
    import pyarrow.parquet as pq

    try:
        if st.is_remote(path):
            with storage.open_read(path) as fh:  # the footer only: ranged reads
                meta = pq.ParquetFile(fh).metadata
        else:
            meta = pq.ParquetFile(path).metadata
    except Exception:  # unreadable: one task, which counts the file as corrupt
        return []
    starts = []
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        offsets = []
        for c in range(rg.num_columns):
            col = rg.column(c)
            first = col.data_page_offset
            if col.has_dictionary_page and col.dictionary_page_offset:
                first = min(first, col.dictionary_page_offset)
            offsets.append(first)
        if not offsets:
            return []
        starts.append(min(offsets))
    if len(starts) < 2 or any(b <= a for a, b in zip(starts, starts[1:])) \
            or starts[-1] >= size:
        return []  # one row group, or a layout not in file order: one task
    bounds = [*starts[1:], size]  # where each row group's bytes end (the last: the footer)
    pieces: list[tuple[int, int, tuple[int, int] | None]] = []
    first = 0
    for g in range(1, len(starts) + 1):
        if g == len(starts) or bounds[g] - starts[first] > limit:
            end = size if g == len(starts) else starts[g]
            pieces.append((starts[first] if pieces else 0, end, (first, g)))
            first = g
    return pieces if len(pieces) > 1 else []
