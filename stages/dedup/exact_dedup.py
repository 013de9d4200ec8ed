"""Exact dedup: drop documents whose normalized text is identical to another's.

Phases: while the previous map phase writes its shards, each task hashes the
normalized text of its documents (BLAKE2b, 128 bits, with the scope value) and
writes (doc key, hash, id, length[, score]) partitioned by hash. Step
``group`` runs ``partitions`` tasks; task p reads partition p of every shard,
groups equal hashes, picks the survivor by the keep policy and writes the
decisions partitioned by shard. The apply phase drops the others (reason
``duplicate``) and writes ``exact_cluster_id`` / ``exact_cluster_size``.
Memory per grouping task is about 1/partitions of the corpus's ~80 bytes per
document.
"""

from __future__ import annotations

import hashlib
import re
import string
import unicodedata
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from pipelines.global_stage import GlobalContext, Step
from pipelines.lazy import lazy_module
from pipelines.partitioned import read_partition, write_partitioned
from pipelines.stage import Params
from stages.dedup.common import DedupParams, DedupStage

np = lazy_module("numpy")
pa = lazy_module("pyarrow")

_SPACE = re.compile(r"\s+")
_DIGIT = re.compile(r"\d")
_PUNCT = str.maketrans("", "", string.punctuation + "«»‘’“”„–—…¿¡")


class ExactDedupParams(DedupParams):
    lowercase: bool = Field(False, description="compare case-insensitively")
    strip_punctuation: bool = Field(False, description="delete ASCII and common Unicode "
                                                      "punctuation before comparing")
    normalize_digits: bool = Field(False, description="treat every digit as 0")
    unicode: Literal["NFKC", "NFC", "none"] = Field("NFC", description="Unicode normalization")
    collapse_whitespace: bool = Field(True, description="runs of whitespace count as one "
                                                        "space; leading/trailing ignored")


def normalize(text: str, p: ExactDedupParams) -> str:
    if p.unicode != "none":
        text = unicodedata.normalize(p.unicode, text)
    if p.lowercase:
        text = text.lower()
    if p.strip_punctuation:
        text = text.translate(_PUNCT)
    if p.normalize_digits:
        text = _DIGIT.sub("0", text)
    if p.collapse_whitespace:
        text = _SPACE.sub(" ", text).strip()
    return text


class ExactDedup(DedupStage):
    """Drop exact duplicates of the (normalized) text; keeps one per cluster.

    Reason: `duplicate`. Kept documents get `exact_cluster_id` (the survivor's id) and
    `exact_cluster_size`. The text is hashed with 128-bit BLAKE2b.
    """

    Params: ClassVar[type[Params]] = ExactDedupParams
    params: ExactDedupParams
    drop_reason = "duplicate"
    column_prefix = "exact"

    def steps(self, n_shards: int) -> list[Step]:
        return [Step("group", self.params.partitions)]

    # collect (map phase before)
    def begin_collect(self, ctx: GlobalContext) -> None:
        self._ctx = ctx
        self._parts: list[pa.Table] = []

    def collect(self, table: pa.Table, keys: np.ndarray) -> None:
        self.check_columns(table)
        scopes = self.scope_values(table)
        texts = table.column(self.params.column).to_pylist()
        digests = []
        for scope, text in zip(scopes, texts):
            h = hashlib.blake2b(digest_size=16)
            h.update(scope.encode("utf-8", "surrogatepass") + b"\x00")
            h.update(normalize(text or "", self.params).encode("utf-8", "surrogatepass"))
            digests.append(h.digest())
        info = self.member_info(table, keys)
        self._parts.append(pa.table({"hash": pa.array(digests, pa.binary(16)), **info}))

    def end_collect(self) -> None:
        fields = [("hash", pa.binary(16)), ("key", pa.uint64()), ("id", pa.string()),
                  ("length", pa.int64())]
        if self.params.keep.startswith("max:"):
            fields.append(("score", pa.float64()))
        schema = pa.schema(fields)
        t = pa.concat_tables(self._parts).cast(schema) if self._parts else schema.empty_table()
        digests = b"".join(t.column("hash").to_pylist())
        head = np.frombuffer(digests, dtype=">u8")[::2].astype(np.uint64)  # first 8 bytes
        part = (head % np.uint64(self.params.partitions)).astype(np.int64)
        write_partitioned(self._collect_path(self._ctx, self._ctx.task), t, part,
                          self.params.partitions)
        self._parts = []

    def _collect_path(self, ctx: GlobalContext, shard: int) -> Path:
        return ctx.path("collect", f"part-{shard:05d}.parquet")

    # step `group`
    def run_step(self, step: str, ctx: GlobalContext) -> dict[str, float]:
        files = [self._collect_path(ctx, s) for s in range(ctx.n_shards)]
        members = read_partition(files, ctx.task)
        decisions = self.decide(members, "hash")
        self.write_decisions(self._decision_path(ctx, ctx.task), decisions, ctx.n_shards)
        n_clusters = int(np.sum(decisions.column("keep").to_numpy(zero_copy_only=False)))
        return {"documents": members.num_rows, "duplicate_clusters": n_clusters,
                "documents_in_clusters": decisions.num_rows,
                "duplicates": decisions.num_rows - n_clusters}

    def _decision_path(self, ctx: GlobalContext, p: int) -> Path:
        return ctx.path("decisions", f"part-{p:05d}.parquet")

    def decision_files(self, ctx: GlobalContext) -> list[Path]:
        return [self._decision_path(ctx, p) for p in range(self.params.partitions)]
