"""Token file writers: one output file (or file set) per writer, filled document by document.

Every writer takes documents in batches (``add(tokens, lengths)``: the flat token ids of
the batch in the file's dtype and each document's length) and commits its files whole
on ``close`` through ``pipelines.io.files.atomic_path``, so an output file is either
absent or complete (and, for an s3:// output, uploaded as one object).

The formats, as their own readers expect them (docs/export.md):

- ``megatron``: ``<name>.bin`` (the tokens, little-endian) and ``<name>.idx`` (header
  ``MMIDIDX\\0\\0``, version 1 as u64, dtype code as u8, sequence count u64, document
  count u64 = documents + 1, then int32 sequence lengths, int64 byte pointers and the
  int64 document indices 0..n). One sequence per document. Megatron has no uint32
  code, so a vocabulary above 65,536 ids is written as int32.
- ``nanotron``: ``<name>.ds`` (the tokens, uint16 or uint32 little-endian),
  ``<name>.ds.index`` (uint64 end offset of every document, in tokens) and
  ``<name>.ds.metadata`` (``<tokenizer>|<token bytes>`` and the token count, one a line):
  what datatrove's ``DocumentTokenizer`` writes and its ``DatatroveFolderDataset`` reads.
- ``npy``: ``<name>.npy`` (one 1-D array of every token) and ``<name>.offsets.npy``
  (int64, documents + 1 offsets): ``np.load(path, mmap_mode="r")`` reads both.
- ``mds``: a MosaicML Streaming shard ``<name>.mds`` of one column ``tokens``
  (encoding ``ndarray:<dtype>``) and its ``index.json`` entry, written by the exporter
  once every shard is known (``mds_index``).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import struct
from functools import cache
from pathlib import Path

from pipelines.io.files import atomic_path, sha256_file
from pipelines.lazy import lazy_module

np = lazy_module("numpy")

FORMATS = ("megatron", "nanotron", "npy", "mds")


@cache
def megatron_dtype_codes() -> dict:
    """Megatron's .idx code of each token dtype (built on first use: no numpy to load a
    config)."""
    return {np.dtype(np.uint8): 1, np.dtype(np.int8): 2, np.dtype(np.int16): 3,
            np.dtype(np.int32): 4, np.dtype(np.int64): 5, np.dtype(np.float64): 6,
            np.dtype(np.float32): 7, np.dtype(np.uint16): 8}


def file_names(fmt: str, name: str) -> list[str]:
    """The files one output shard ``name`` of format ``fmt`` consists of."""
    return {"megatron": [f"{name}.bin", f"{name}.idx"],
            "nanotron": [f"{name}.ds", f"{name}.ds.index", f"{name}.ds.metadata"],
            "npy": [f"{name}.npy", f"{name}.offsets.npy"],
            "mds": [f"{name}.mds"]}[fmt]


class TokenFileWriter:
    """Base: streams the tokens to a local temporary file and commits the set on close."""

    def __init__(self, out_dir: Path, name: str, dtype: np.dtype, tokenizer_name: str = ""):
        self.out_dir, self.name, self.dtype = out_dir, name, np.dtype(dtype)
        self.tokenizer_name = tokenizer_name
        self._stack = contextlib.ExitStack()
        self._paths = {f: self._stack.enter_context(atomic_path(out_dir / f))
                       for f in file_names(self.format, name)}
        self._lengths: list[np.ndarray] = []
        self.n_tokens = 0
        self.n_docs = 0
        self._tokens = self._stack.enter_context(self._token_sink().open("wb"))

    format = ""

    def _token_sink(self) -> Path:
        return next(iter(self._paths.values()))

    def add(self, tokens: np.ndarray, lengths: np.ndarray) -> None:
        tokens = np.ascontiguousarray(tokens, dtype=self.dtype.newbyteorder("<"))
        self._tokens.write(tokens.tobytes())
        self._lengths.append(np.asarray(lengths, dtype=np.int32))  # 4 bytes a document
        self.n_tokens += int(tokens.size)
        self.n_docs += int(len(lengths))

    def lengths(self) -> np.ndarray:
        return np.concatenate(self._lengths).astype(np.int64) if self._lengths else \
            np.zeros(0, np.int64)

    def _running(self, scale: int = 1):
        """(lengths, their cumulative sums * ``scale`` from 0) chunk by chunk: the index
        files are written in pieces, never as one more array the size of the index."""
        total = 0
        for c in self._lengths:
            c = c.astype(np.int64)
            ends = np.cumsum(c * scale) + total
            total = int(ends[-1]) if len(ends) else total
            yield c, ends

    def finish(self) -> None:
        """Write the side files (the token file is closed by then)."""

    def close(self) -> dict[str, tuple[int, str]]:
        """Commit every file; return name (relative to the output directory) -> (bytes,
        sha256), taken from the local temporary before it is committed."""
        self._tokens.close()
        self.finish()
        info = {f: (tmp.stat().st_size, sha256_file(tmp)) for f, tmp in self._paths.items()}
        self._stack.close()
        return info

    def abort(self) -> None:
        self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)


class MegatronWriter(TokenFileWriter):
    format = "megatron"

    def finish(self) -> None:
        n, size = self.n_docs, self.dtype.itemsize
        with self._paths[f"{self.name}.idx"].open("wb") as f:
            f.write(b"MMIDIDX\x00\x00")
            f.write(struct.pack("<Q", 1))
            f.write(struct.pack("<B", megatron_dtype_codes()[self.dtype]))
            f.write(struct.pack("<Q", n))
            f.write(struct.pack("<Q", n + 1))
            for c in self._lengths:  # sequence lengths
                f.write(c.astype("<i4").tobytes())
            for c, ends in self._running(size):  # byte offset of each sequence
                f.write((ends - c * size).astype("<i8").tobytes())
            for start in range(0, n + 1, 1 << 20):  # document i = sequence i
                f.write(np.arange(start, min(n + 1, start + (1 << 20)), dtype="<i8").tobytes())


class NanotronWriter(TokenFileWriter):
    format = "nanotron"

    def finish(self) -> None:
        with self._paths[f"{self.name}.ds.index"].open("wb") as f:
            for _, ends in self._running():
                f.write(ends.astype("<u8").tobytes())
        self._paths[f"{self.name}.ds.metadata"].write_text(
            f"{self.tokenizer_name}|{self.dtype.itemsize}\n{self.n_tokens}\n")


class NpyWriter(TokenFileWriter):
    """The token array's header needs its length: tokens go to a raw temporary first."""

    format = "npy"

    def _token_sink(self) -> Path:
        return self._paths[f"{self.name}.npy"].with_name(
            self._paths[f"{self.name}.npy"].name + ".raw")

    def finish(self) -> None:
        raw = self._token_sink()
        with self._paths[f"{self.name}.npy"].open("wb") as out:
            np.lib.format.write_array_header_1_0(out, {
                "descr": np.lib.format.dtype_to_descr(self.dtype.newbyteorder("<")),
                "fortran_order": False, "shape": (self.n_tokens,)})
            with raw.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 22)
        raw.unlink()
        with self._paths[f"{self.name}.offsets.npy"].open("wb") as out:
            np.lib.format.write_array_header_1_0(out, {
                "descr": "<i8", "fortran_order": False, "shape": (self.n_docs + 1,)})
            out.write(np.zeros(1, "<i8").tobytes())
            for _, ends in self._running():
                out.write(ends.astype("<i8").tobytes())


class MdsWriter(TokenFileWriter):
    """One MDS shard (MosaicML Streaming, version 2, no compression): u32 sample count,
    u32 offsets (count + 1, absolute), the shard's JSON config, then per sample the u32
    size of its one variable-size column ``tokens`` and the column's ``ndarray:<dtype>``
    encoding (one byte ``ndim << 2 | shape dtype``, the shape, the values)."""

    format = "mds"

    def _token_sink(self) -> Path:
        return self._paths[f"{self.name}.mds"].with_name(
            self._paths[f"{self.name}.mds"].name + ".raw")

    def config(self) -> bytes:
        return json.dumps({"column_encodings": [f"ndarray:{self.dtype.name}"],
                           "column_names": ["tokens"], "column_sizes": [None],
                           "compression": None, "format": "mds", "hashes": [],
                           "size_limit": None, "version": 2}, sort_keys=True).encode()

    @staticmethod
    def _shape_head(length: int) -> bytes:
        for code, dt in enumerate(("<u1", "<u2", "<u4", "<u8")):
            if length < 1 << (8 << code):
                return bytes([(1 << 2) | code]) + np.array([length], dt).tobytes()
        raise ValueError(length)

    def finish(self) -> None:
        lengths = self.lengths()
        heads = [self._shape_head(n) for n in lengths.tolist()]
        sizes = np.array([len(h) for h in heads], np.int64) + lengths * self.dtype.itemsize
        cfg = self.config()
        offsets = np.zeros(len(lengths) + 1, np.int64)
        np.cumsum(sizes + 4, out=offsets[1:])
        offsets += 4 + 4 * (len(lengths) + 1) + len(cfg)
        if offsets[-1] >= 2**32:
            raise ValueError("an MDS shard must stay under 4 GiB: lower shard_tokens")
        raw = self._token_sink()
        with self._paths[f"{self.name}.mds"].open("wb") as out, raw.open("rb") as src:
            out.write(struct.pack("<I", len(lengths)))
            out.write(offsets.astype("<u4").tobytes())
            out.write(cfg)
            for head, size, n in zip(heads, sizes.tolist(), lengths.tolist()):
                out.write(struct.pack("<I", size))
                out.write(head)
                out.write(src.read(n * self.dtype.itemsize))
        raw.unlink()


WRITERS = {"megatron": MegatronWriter, "nanotron": NanotronWriter, "npy": NpyWriter,
           "mds": MdsWriter}


def mds_index(shards: list[dict], dtype: np.dtype) -> str:
    """MosaicML Streaming's ``index.json`` for the MDS shards written (version 2)."""
    entries = [{"column_encodings": [f"ndarray:{np.dtype(dtype).name}"],
                "column_names": ["tokens"], "column_sizes": [None], "compression": None,
                "format": "mds", "hashes": [], "raw_data": {
                    "basename": s["files"][0], "bytes": s["bytes"][s["files"][0]],
                    "hashes": {}},
                "samples": s["documents"], "size_limit": None, "version": 2,
                "zip_data": None} for s in shards]
    return json.dumps({"shards": entries, "version": 2}, indent=1) + "\n"
