"""``tokenize_export``: documents -> tokenised, shuffled, mixture-weighted token files.

The last step to training (docs/export.md). As a global stage it runs in the phases of
the run; ``thresher export RUN`` runs the same two steps over a finished run's shards:

1. **spill** (one task per shard, in parallel): tokenise each document with the
   ``tokenizers`` library (no special tokens; the EOS id appended when ``eos`` is on),
   expand it into its copies (a ``repeat_index`` row of ``rebalance`` is a copy already;
   a ``weight`` gives ``floor(w)`` copies plus one more when a keyed hash of the id,
   uniform in [0, 1), is below the fraction), give each copy its order key and append
   it to the shard's spill file, grouped in buckets by key.
2. **write** (one task): bucket after bucket, read that bucket's pieces of every shard,
   sort them by key and append the documents to the output files, starting a new file
   once one holds ``shard_tokens`` tokens (documents are never split).

The order: with ``shuffle``, ascending ``blake2b(id, repeat index; key = seed)`` (64
bits), ties broken by (shard, row, repeat index); without, the run's order (shard, row,
repeat index). Both depend on the documents alone, never on the worker count, the
executor or a resume, so the files are byte-identical across them. A bucket larger
than ``memory_mb`` is sorted in key sub-ranges, one read of its pieces each, so the
write task holds at most about ``memory_mb`` of documents plus one output file's index.
A document whose text has no token (empty text) is not written, EOS or not.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipelines import exports
from pipelines.errors import UserError
from pipelines.exports import artifact_records
from pipelines.global_stage import GlobalContext, GlobalStage, Step
from pipelines.io.files import (
    atomic_path,
    open_binary,
    read_json,
    write_json_atomic,
    write_text_atomic,
)
from pipelines.io.models import model_key
from pipelines.lazy import lazy_module
from pipelines.manifest import ARTIFACTS
from pipelines.schema import ID, TEXT
from pipelines.stage import Params
from pipelines.stats import StageStats
from stages.export.formats import WRITERS, mds_index, megatron_dtype_codes
from stages.mixing.tokens import load_tokenizer

np = lazy_module("numpy")
pa = lazy_module("pyarrow")
pc = lazy_module("pyarrow.compute")

log = logging.getLogger(__name__)

#: special tokens taken as the end of a document, in this order of preference
EOS_NAMES = ("<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>", "[EOS]", "<|eos|>")
FLUSH_BYTES = 32 << 20  # spill buffer of a shard task before its buckets are written
ENCODE_DOCS = 256  # texts per tokenizers call


class ShuffleParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    seed: int = Field(0, description="key of the document-order hash")
    window: Literal["documents"] = Field("documents", description="what is shuffled: whole "
                                                                  "documents, corpus-wide")
    buckets: int = Field(64, ge=1, le=65536, description="key ranges a shard's spill is "
                                                         "grouped in (the write step sorts "
                                                         "one at a time)")


class TokenizeExportParams(Params):
    tokenizer: str = Field(description="path or URL of a tokenizer.json (Hugging Face "
                                       "tokenizers)")
    tokenizer_sha256: str | None = Field(None, description="expected sha256 of the file")
    format: Literal["megatron", "nanotron", "npy", "mds"] = Field(
        "megatron", description="megatron (.bin/.idx), nanotron (.ds, datatrove's), npy, "
                                "mds (MosaicML Streaming)")
    eos: bool | int | str = Field(True, description="append an end-of-document token: true "
                                                    "(the tokenizer's EOS), a token, an id, "
                                                    "or false")
    dtype: Literal["auto", "uint16", "uint32", "int32"] = Field(
        "auto", description="auto: uint16 when every id fits, else uint32 (int32 for "
                            "megatron, which has no uint32)")
    shard_tokens: int = Field(1_000_000_000, gt=0, description="target tokens per output "
                                                                "file (whole documents)")
    shuffle: ShuffleParams | None = Field(None, description="deterministic global shuffle "
                                                            "of documents (none: run order)")
    weights_from: Literal["rebalance", "none"] = Field(
        "rebalance", description="rebalance: a `weight` column gives copies (see the stage "
                                 "doc); none: ignore it. repeat_index rows are always copies")
    column: str = Field(TEXT, description="text column to tokenise")
    group_by: list[str] = Field(["dataset", "language"],
                                description="columns whose values the written-token "
                                            "counts are split by (absent ones are skipped)")
    output: str | None = Field(None, description="directory or URL of the token files "
                                                 "(default: <run>/tokens)")
    memory_mb: float = Field(1024, gt=0, description="MiB of documents the write step sorts "
                                                     "at once")
    name_prefix: str = Field("part", description="output files are <prefix>-00000.<ext>")


class TokenizeExport(GlobalStage):
    """Tokenises documents into Megatron, nanotron, npy or MDS token files (docs/export.md)."""

    Params: ClassVar[type[Params]] = TokenizeExportParams
    params: TokenizeExportParams
    passes_through: ClassVar[bool] = True  # last in a chain: no apply phase (plan.py)

    def input_columns(self) -> tuple[str, ...]:
        return (self.params.column,)

    def output_columns(self) -> dict[str, pa.DataType | None]:
        return {}

    # ------------------------------------------------------------ tokenizer
    def setup(self) -> None:
        p = self.params
        self._tok, self._sha256 = load_tokenizer(self.name, p.tokenizer, p.tokenizer_sha256)
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        self.eos_id = self._eos_id()
        self.dtype = self._dtype()

    def _eos_id(self) -> int | None:
        eos = self.params.eos
        if eos is False:
            return None
        if eos is True:
            for name in EOS_NAMES:
                i = self._tok.token_to_id(name)
                if i is not None:
                    return i
            raise UserError(f"stage {self.name}: the tokenizer has none of the usual EOS tokens "
                            f"({', '.join(EOS_NAMES)}): give `eos: <token>` or an id")
        if isinstance(eos, int):
            if not 0 <= eos < self.vocab_size:
                raise UserError(f"stage {self.name}: eos id {eos} is not in the vocabulary "
                                f"(size {self.vocab_size})")
            return eos
        i = self._tok.token_to_id(eos)
        if i is None:
            raise UserError(f"stage {self.name}: eos token {eos!r} is not in the vocabulary")
        return i

    def _dtype(self) -> np.dtype:
        p = self.params
        if p.dtype == "auto":
            if self.vocab_size <= 1 << 16:
                return np.dtype(np.uint16)
            return np.dtype(np.int32 if p.format == "megatron" else np.uint32)
        dt = np.dtype(p.dtype)
        if p.format == "megatron" and dt not in megatron_dtype_codes():
            raise UserError(f"stage {self.name}: megatron has no {p.dtype} (use int32)")
        if self.vocab_size - 1 > np.iinfo(dt).max:
            raise UserError(f"stage {self.name}: a vocabulary of {self.vocab_size} ids does "
                            f"not fit {p.dtype}")
        return dt

    def model_files(self) -> dict[str, str]:
        sha = getattr(self, "_sha256", None)
        return {model_key(self.params.tokenizer): sha} if sha else {}

    def tokenize(self, texts: list[str]) -> pa.LargeListArray:
        """Token ids (in the output dtype) of each text (no special tokens), plus the EOS id.

        Encoded ``ENCODE_DOCS`` texts at a time: an ``Encoding`` carries far more than
        its ids (tokens, offsets, masks), so a whole batch of them would dominate RSS."""
        encode = getattr(self._tok, "encode_batch_fast", self._tok.encode_batch)
        extra = 0 if self.eos_id is None else 1
        parts, lens = [], []
        for i in range(0, len(texts), ENCODE_DOCS):
            for e in encode(texts[i:i + ENCODE_DOCS], add_special_tokens=False):
                ids = np.asarray(e.ids, self.dtype)
                parts.append(ids)
                lens.append(len(ids) + extra)
                if extra:
                    parts.append(np.array([self.eos_id], self.dtype))
        offsets = np.zeros(len(lens) + 1, np.int64)
        np.cumsum(np.asarray(lens, np.int64), out=offsets[1:])
        flat = np.concatenate(parts) if parts else np.zeros(0, self.dtype)
        return pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(flat))

    # ------------------------------------------------------------ spill (per shard)
    def begin_spill(self, path: Path, shard: int) -> None:
        self._spill = _Spill(self, path, shard)

    def spill(self, table: pa.Table, rows: np.ndarray) -> None:
        self._spill.add(table, rows)

    def end_spill(self) -> dict:
        return self._spill.close()

    # ------------------------------------------------------------ the global stage
    def steps(self, n_shards: int) -> list[Step]:
        return [Step("write", 1)]

    def begin_collect(self, ctx: GlobalContext) -> None:
        self._ctx = ctx
        self.begin_spill(ctx.path("spill", f"shard-{ctx.task:05d}.arrow"), ctx.task)

    def collect(self, table: pa.Table, keys: np.ndarray) -> None:
        self.spill(table, (keys & np.uint64(0xFFFFFFFF)).astype(np.int64))

    def end_collect(self) -> None:
        write_json_atomic(self._ctx.path("spill", f"shard-{self._ctx.task:05d}.json"),
                          self.end_spill())

    def run_step(self, step: str, ctx: GlobalContext) -> dict[str, float]:
        spills = [(s, ctx.work_dir / "spill" / f"shard-{s:05d}.arrow",
                   read_json(ctx.work_dir / "spill" / f"shard-{s:05d}.json"))
                  for s in range(ctx.n_shards)]
        if self.params.output:
            from pipelines.io.remote_path import run_path

            out = run_path(self.params.output)
        else:
            out = ctx.work_dir.parent.parent / "tokens"
        summary = self.write(spills, out)
        # the token files go into the run's manifest (``artifacts``: pipelines/manifest.py),
        # so `thresher verify` and `thresher reproduce` check them byte for byte
        write_json_atomic(ctx.work_dir / ARTIFACTS.format(step=step), {
            "files": artifact_records(summary, out, ctx.work_dir.parent.parent)})
        metrics: dict[str, float] = {"documents_written": summary["documents"],
                                     "tokens_written": summary["tokens"],
                                     "files_written": len(summary["shards"])}
        for col, counts in summary["tokens_by"].items():
            for value, n in counts.items():
                metrics[f"tokens_written:{col}={value}"] = n
        return metrics

    def begin_apply(self, ctx: GlobalContext) -> None:
        """Nothing to load: the documents pass on unchanged."""

    def apply(self, table: pa.Table, keys: np.ndarray, stats: StageStats) -> pa.Table:
        return table

    def export_run(self, run_dir, out=None, workers: int = 1, keep_work: bool = False) -> dict:
        """``thresher export RUN``: the two steps over a finished run's output shards."""
        return export_run(self, run_dir, out, workers, keep_work)

    @staticmethod
    def verify_export(out) -> list[str]:
        """Differences between ``out``'s token files and its export.json (``thresher
        export --verify``): missing, changed or unexpected files."""
        return exports.verify_export(out)

    # ------------------------------------------------------------ write (one task)
    def write(self, spills: list[tuple[int, Path, dict]], out: Path) -> dict:
        """Sort the spilled documents and write the output files; return export.json."""
        writer = _Output(self, out)
        readers = _Readers({s: path for s, path, _ in spills})
        try:
            summary = self._write(spills, readers, writer)
        finally:
            readers.close()
        write_json_atomic(out / "export.json", summary)
        return summary

    def _write(self, spills: list[tuple[int, Path, dict]], readers: _Readers,
               writer: _Output) -> dict:
        p = self.params
        if p.shuffle is None:
            for s, _, summ in spills:
                for b in range(len(summ["batches"])):
                    writer.add(readers.batch(s, b).column("tokens"))
        else:
            budget = max(1, int(p.memory_mb * 2**20))
            for bucket in range(p.shuffle.buckets):
                pieces = [(s, i, nbytes) for s, _, summ in spills
                          for i, (b, _, _, nbytes) in enumerate(summ["batches"]) if b == bucket]
                size = sum(n for _, _, n in pieces)
                n_sub = max(1, math.ceil(size / budget))
                lo, hi = _bucket_range(bucket, p.shuffle.buckets)
                edges = [lo + (hi - lo) * j // n_sub for j in range(n_sub)] + [hi]
                for j in range(n_sub):
                    parts = []
                    for s, i, _ in pieces:
                        batch = readers.batch(s, i)
                        if n_sub > 1:
                            k = batch.column("key").to_numpy()
                            m = k >= np.uint64(edges[j])
                            if edges[j + 1] < 1 << 64:
                                m &= k < np.uint64(edges[j + 1])
                            batch = batch.filter(pa.array(m))
                        parts.append(pa.Table.from_batches([batch]).append_column(
                            "shard", pa.array(np.full(batch.num_rows, s, np.int64))))
                    if not parts:
                        continue
                    t = pa.concat_tables(parts)
                    order = pc.sort_indices(t, [("key", "ascending"), ("shard", "ascending"),
                                                ("row", "ascending"), ("rep", "ascending")])
                    writer.add(t.column("tokens").take(order).combine_chunks())
        summary = writer.close()
        tokens_by: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for _, _, summ in spills:
            for col, counts in summ["tokens_by"].items():
                for v, n in counts.items():
                    tokens_by[col][v] += n
        summary["tokens_by"] = {c: dict(sorted(v.items())) for c, v in sorted(tokens_by.items())}
        return summary


class _Readers:
    """Record batches of the spill files, read with plain reads (a memory map would count
    every page read in the write task's RSS), at most ``MAX_OPEN`` files open at once; a
    remote spill is first copied to a local temporary (streamed), removed on ``close``."""

    MAX_OPEN = 64

    def __init__(self, paths: dict[int, Path]):
        self.paths = paths
        self.open: dict[int, tuple] = {}  # shard -> (file, reader), oldest first
        self.spool: list[Path] = []

    def _local(self, s: int) -> Path:
        path = self.paths[s]
        if getattr(path, "open_read", None) is not None:
            fd, local = tempfile.mkstemp(suffix=".arrow", prefix="thresher-spill-")
            os.close(fd)
            self.spool.append(Path(local))
            with open_binary(path) as src, Path(local).open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 22)
            self.paths[s] = path = Path(local)
        return path

    def batch(self, s: int, i: int) -> pa.RecordBatch:
        if s not in self.open:
            if len(self.open) >= self.MAX_OPEN:
                f, _ = self.open.pop(next(iter(self.open)))
                f.close()
            f = pa.OSFile(str(self._local(s)), "rb")
            self.open[s] = (f, pa.ipc.open_file(f))
        return self.open[s][1].get_batch(i)

    def close(self) -> None:
        for f, _ in self.open.values():
            f.close()
        self.open.clear()
        for f in self.spool:
            f.unlink(missing_ok=True)


def _bucket_range(bucket: int, n: int) -> tuple[int, int]:
    """The keys [lo, hi) of ``bucket`` of ``n``: bucket = (key >> 32) * n >> 32."""
    lo = (-(-(bucket << 32) // n)) << 32
    hi = min((-(-((bucket + 1) << 32) // n)) << 32, 1 << 64)
    return lo, hi


def order_keys(ids: list[str], reps: np.ndarray, seed: int) -> np.ndarray:
    """64-bit order key of each (document id, repeat index): keyed blake2b."""
    key = f"order:{seed}".encode()[:64]
    out = np.empty(len(ids), np.uint64)
    for i, (d, r) in enumerate(zip(ids, reps.tolist())):
        h = hashlib.blake2b(f"{d}\x1f{r}".encode("utf-8", "surrogatepass"), digest_size=8,
                            key=key)
        out[i] = int.from_bytes(h.digest(), "little")
    return out


def weight_uniform(ids: list[str], seed: int) -> np.ndarray:
    """The uniform draw in [0, 1) that rounds a fractional weight: keyed blake2b of the id."""
    key = f"weight:{seed}".encode()[:64]
    out = np.empty(len(ids))
    for i, d in enumerate(ids):
        h = hashlib.blake2b(str(d).encode("utf-8", "surrogatepass"), digest_size=8, key=key)
        out[i] = int.from_bytes(h.digest(), "little") / 2.0**64
    return out


class _Spill:
    """One shard's spill file: record batches of (key, row, rep, tokens), one bucket each."""

    def __init__(self, stage: TokenizeExport, path: Path, shard: int):
        self.stage, self.shard = stage, shard
        p = stage.params
        self.n_buckets = p.shuffle.buckets if p.shuffle else 1
        self.seed = p.shuffle.seed if p.shuffle else 0
        self._ctx = atomic_path(path)
        self._tmp = self._ctx.__enter__()
        self._schema = pa.schema([("key", pa.uint64()), ("row", pa.int64()), ("rep", pa.int32()),
                                  ("tokens", pa.large_list(pa.from_numpy_dtype(stage.dtype)))])
        self._sink = pa.OSFile(str(self._tmp), "wb")
        self._writer = pa.ipc.new_file(self._sink, self._schema)
        self._buf: dict[int, list[pa.Table]] = defaultdict(list)
        self._buf_bytes = 0
        self.batches: list[list[int]] = []  # [bucket, rows, tokens, bytes] per record batch
        self.tokens_by: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.docs = 0
        self.tokens = 0

    def add(self, table: pa.Table, rows: np.ndarray) -> None:
        st, p = self.stage, self.stage.params
        if table.num_rows == 0:
            return
        if p.column not in table.schema.names:
            raise UserError(f"stage {st.name!r} needs column {p.column!r}; columns: "
                            f"{', '.join(table.schema.names)}")
        ids = table.column(ID).to_pylist() if ID in table.schema.names else \
            [str(r) for r in rows.tolist()]
        if "repeat_index" in table.schema.names:
            reps = pc.fill_null(table.column("repeat_index"), 0).to_numpy().astype(np.int32)
        else:
            reps = np.zeros(table.num_rows, np.int32)
        copies = np.ones(table.num_rows, np.int64)
        if p.weights_from == "rebalance" and "weight" in table.schema.names:
            w = pc.fill_null(table.column("weight").cast(pa.float64()), 1.0).to_numpy()
            copies = np.floor(w).astype(np.int64)
            frac = w - copies
            if (frac > 0).any():
                copies += (weight_uniform(ids, self.seed) < frac).astype(np.int64)
        texts = pc.fill_null(table.column(p.column), "").to_pylist()
        tokens = st.tokenize(texts)
        lengths = pc.list_value_length(tokens).to_numpy()
        copies[lengths == (0 if st.eos_id is None else 1)] = 0  # no token of text: skipped
        src = np.repeat(np.arange(table.num_rows), copies)
        if len(src) == 0:
            return
        first = np.repeat(np.cumsum(copies) - copies, copies)
        rep = (reps[src] + (np.arange(len(src)) - first)).astype(np.int32)
        out_ids = [ids[i] for i in src.tolist()]
        if p.shuffle is not None:
            keys = order_keys(out_ids, rep, self.seed)
            bucket = (((keys >> np.uint64(32)) * np.uint64(self.n_buckets)) >> np.uint64(32))
            bucket = bucket.astype(np.int64)
        else:
            keys = np.zeros(len(src), np.uint64)
            bucket = np.zeros(len(src), np.int64)
        tok = tokens.take(pa.array(src))
        for col in [c for c in p.group_by if c in table.schema.names]:
            vals = table.column(col).to_pylist()
            for i, n in zip(src.tolist(), lengths[src].tolist()):
                self.tokens_by[col]["" if vals[i] is None else str(vals[i])] += n
        self.docs += len(src)
        self.tokens += int(lengths[src].sum())
        t = pa.table({"key": pa.array(keys, pa.uint64()), "row": pa.array(rows[src], pa.int64()),
                      "rep": pa.array(rep, pa.int32()), "tokens": tok}, schema=self._schema)
        if self.n_buckets == 1:
            self._buf[0].append(t)
        else:
            order = np.argsort(bucket, kind="stable")
            b_sorted = bucket[order]
            t = t.take(pa.array(order))
            starts = np.flatnonzero(np.r_[True, b_sorted[1:] != b_sorted[:-1]])
            ends = np.r_[starts[1:], len(order)]
            for s, e in zip(starts.tolist(), ends.tolist()):
                self._buf[int(b_sorted[s])].append(t.slice(s, e - s))
        self._buf_bytes += t.nbytes
        if self._buf_bytes >= FLUSH_BYTES:
            self._flush()

    def _flush(self) -> None:
        for b in sorted(self._buf):
            t = pa.concat_tables(self._buf[b]).combine_chunks()
            for batch in t.to_batches():
                self._writer.write_batch(batch)
                n_tok = int(pc.sum(pc.list_value_length(batch.column("tokens"))).as_py() or 0)
                self.batches.append([b, batch.num_rows, n_tok, batch.nbytes])
        self._buf.clear()
        self._buf_bytes = 0

    def close(self) -> dict:
        self._flush()
        self._writer.close()
        self._sink.close()
        self._ctx.__exit__(None, None, None)
        return {"shard": self.shard, "documents": self.docs, "tokens": self.tokens,
                "batches": self.batches,
                "tokens_by": {c: dict(v) for c, v in self.tokens_by.items()}}


class _Output:
    """The sequence of output files: a new one once the current holds ``shard_tokens``."""

    def __init__(self, stage: TokenizeExport, out: Path):
        self.stage, self.out = stage, out
        self.shards: list[dict] = []
        self._w = None

    def _open(self):
        p = self.stage.params
        name = f"{p.name_prefix}-{len(self.shards):05d}"
        return WRITERS[p.format](self.out, name, self.stage.dtype, p.tokenizer)

    def add(self, tokens: pa.LargeListArray) -> None:
        """Append documents (a list array of token ids) in order."""
        limit = self.stage.params.shard_tokens
        lengths = pc.list_value_length(tokens).to_numpy().astype(np.int64)
        flat = pc.list_flatten(tokens).to_numpy()
        start, tok0 = 0, 0
        while start < len(lengths):
            if self._w is None:
                self._w = self._open()
            room = limit - self._w.n_tokens
            csum = np.cumsum(lengths[start:])
            # documents up to and including the first that reaches the limit
            stop = start + int(np.searchsorted(csum, room, side="left")) + 1
            stop = min(stop, len(lengths))
            n_tok = int(csum[stop - start - 1])
            self._w.add(flat[tok0:tok0 + n_tok], lengths[start:stop])
            start, tok0 = stop, tok0 + n_tok
            if self._w.n_tokens >= limit:
                self._close_current()

    def _close_current(self) -> None:
        w, self._w = self._w, None
        info = w.close()
        self.shards.append({"name": w.name, "files": list(info), "documents": w.n_docs,
                            "tokens": w.n_tokens,
                            "bytes": {f: n for f, (n, _) in info.items()},
                            "sha256": {f: h for f, (_, h) in info.items()}})

    def close(self) -> dict:
        if self._w is not None and self._w.n_docs:
            self._close_current()
        st, p = self.stage, self.stage.params
        extra = {}
        if p.format == "mds":
            text = mds_index(self.shards, st.dtype)
            write_text_atomic(self.out / "index.json", text)
            extra["index.json"] = hashlib.sha256(text.encode()).hexdigest()
        return {
            "format": p.format, "dtype": st.dtype.name,
            "tokenizer": {"path": model_key(p.tokenizer), "sha256": st._sha256,
                          "vocab_size": st.vocab_size, "eos_id": st.eos_id},
            "order": ("shuffle: ascending keyed blake2b(id, repeat index), ties by shard, "
                      "row, repeat index" if p.shuffle else "run order: shard, row, "
                                                            "repeat index"),
            "shuffle_seed": p.shuffle.seed if p.shuffle else None,
            "shard_tokens": p.shard_tokens,
            "documents": sum(s["documents"] for s in self.shards),
            "tokens": sum(s["tokens"] for s in self.shards),
            "shards": self.shards, "extra_files": extra,
            # what `thresher reproduce` re-runs an export made on a finished run with
            "params": {**p.model_dump(mode="json", exclude={"output"}),
                       "tokenizer": model_key(p.tokenizer), "tokenizer_sha256": st._sha256},
        }


# ---------------------------------------------------------------- on a finished run
def export_run(stage: TokenizeExport, run_dir, out, workers: int = 1,
               keep_work: bool = False) -> dict:
    """``thresher export``: spill every output shard of a finished run (``workers`` in
    parallel; a shard whose summary exists is not spilled again), then write."""
    from concurrent.futures import ProcessPoolExecutor

    from pipelines.io.remote_path import remove_tree, run_path
    from pipelines.rundir import RunDir

    run = RunDir.at(run_dir)
    shards = run.load_stats()["output"]["shards"]
    out = run_path(out) if out is not None else run.root / "tokens"
    work = out / "_work"
    jobs = [(stage.params.model_dump(), stage.name, i, str(run.root / s["path"]),
             str(work / f"shard-{i:05d}.arrow")) for i, s in enumerate(shards)]
    todo = [j for j in jobs if not (work / f"shard-{j[2]:05d}.json").exists()]
    if workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(min(workers, len(todo))) as pool:
            list(pool.map(_spill_shard, todo))
    else:
        for j in todo:
            _spill_shard(j, stage)
    spills = [(i, work / f"shard-{i:05d}.arrow", read_json(work / f"shard-{i:05d}.json"))
              for i in range(len(shards))]
    summary = stage.write(spills, out)
    if not keep_work:
        remove_tree(work)
    return summary


def _spill_shard(job: tuple, stage: TokenizeExport | None = None) -> None:
    from pipelines.io.files import parquet_file
    from pipelines.io.remote_path import run_path

    params, name, shard, path, spill = job
    if stage is None:
        stage = TokenizeExport(TokenizeExportParams(**params), name=name)
        stage.setup()
    p = stage.params
    pf = parquet_file(run_path(path))
    names = pf.schema_arrow.names
    cols = [c for c in dict.fromkeys([ID, p.column, "repeat_index", "weight", *p.group_by])
            if c in names]
    stage.begin_spill(run_path(spill), shard)
    row = 0
    for batch in pf.iter_batches(batch_size=4096, columns=cols):
        table = pa.Table.from_batches([batch])
        stage.spill(table, np.arange(row, row + table.num_rows, dtype=np.int64))
        row += table.num_rows
    write_json_atomic(run_path(spill).with_suffix(".json"), stage.end_spill())
