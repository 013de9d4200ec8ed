"""MinHash near-duplicate dedup as a global stage (FineWeb / SlimPajama style).

Phases (the numpy core is in stages/dedup/minhash_core.py):

1. collect, in the map phase before the stage: per shard, MinHash signatures
   of the normalized shingles, cut into ``bands`` band keys; the rows
   (band, key, doc key) are written partitioned by hash of the band key, and a
   members file (doc key, id, length, score, url, snippet) for the keep
   policy and for `thresher dups`.
2. step ``buckets`` (``partitions`` tasks): task p reads partition p of every
   shard, so every bucket is seen whole by exactly one task with memory
   bounded by 1/partitions of the band rows, and links each document to the
   smallest document of each bucket it shares (star edges, not all pairs).
3. step ``cluster`` (one task): connected components over all edges,
   vectorised with numpy (label propagation with pointer jumping; no
   per-edge Python), then the keep policy per component. Writes
   ``clusters.parquet`` (one row per document in a cluster) and the decisions
   partitioned by shard. It holds the edge list (16 bytes an edge) and reads
   the members files one shard at a time, not the documents. With ``cluster_memory``
   set, this is instead a series of sharded steps whose task counts are fixed at
   planning time (stages/dedup/minhash_sharded.py): connected components in
   large-star/small-star rounds over node-partitioned edge files when the edge list
   exceeds the budget, then labels, the keep policy and the clusters table per
   partition of clusters; the same clusters and decisions.
4. apply, in the map phase after: drop the non-survivors (reason
   ``near_duplicate``), write ``minhash_cluster_id`` and ``minhash_cluster_size``.

Candidates are not verified against an exact Jaccard: like FineWeb, a shared
band is the decision; bands x rows set the threshold curve.
"""

from __future__ import annotations

import hashlib
import logging
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from pipelines.global_stage import GlobalContext, Step
from pipelines.io.files import read_table, write_table_atomic
from pipelines.lazy import lazy_module
from pipelines.partitioned import read_partition, write_partitioned
from pipelines.schema import URL
from pipelines.stage import Params
from stages.dedup.common import DedupParams, DedupStage, decisions_schema

np = lazy_module("numpy")
pa = lazy_module("pyarrow")
# the numpy kernels, imported when a document is hashed (or `threshold` is turned into
# bands and rows), not when a config naming the stage is loaded
core = lazy_module("stages.dedup.minhash_core")
sh = lazy_module("stages.dedup.minhash_sharded")
pc = lazy_module("pyarrow.compute")

log = logging.getLogger(__name__)
LANGUAGE = "language"
SNIPPET_CHARS = 300


@cache
def bucket_schema() -> pa.Schema:
    return pa.schema([("band", pa.int32()), ("bkey", pa.uint64()), ("doc", pa.uint64())])


@cache
def edge_schema() -> pa.Schema:
    return pa.schema([("u", pa.uint64()), ("v", pa.uint64())])


_WARNED: set[str] = set()  # deprecated names already warned about in this process


class MinHashParams(DedupParams):
    unit: Literal["word", "char"] = Field("word", description="shingle unit")
    n: int = Field(5, ge=1, description="shingle size in units")
    bands: int = Field(14, ge=1, description="LSH bands (FineWeb: 14)")
    rows: int = Field(8, ge=1, description="hashes per band (FineWeb: 8)")
    threshold: float | None = Field(
        None, gt=0, lt=1, description="target Jaccard; if set, bands x rows are derived from "
                                      "it and `num_perm` as datasketch does")
    num_perm: int = Field(112, ge=2, description="permutations when `threshold` is set")
    seed: int = Field(1, ge=0, lt=2**64,
                      description="seed of the hash permutations (hashing is always 64-bit)")
    lowercase: bool = Field(True, description="lowercase every character")
    punctuation_as_space: bool = Field(
        True, description="punctuation and symbols count as a space (the old name "
                          "`strip_punctuation` still works, with a warning)")
    normalize_digits: bool = Field(True, description="treat every digit as 0")
    unicode: Literal["NFKC", "NFC", "none"] = Field(
        "NFKC", description="Unicode normalization; NFKC also folds fullwidth forms and "
                            "ligatures (format characters such as zero-width spaces are "
                            "always deleted unless `none`)")
    collapse_whitespace: bool = Field(True, description="runs of whitespace count as one "
                                                        "space (matters for unit: char)")
    tokenizer: Literal["auto"] | None = Field(
        None, description="word units (unit: word): null: whitespace words, each character "
                          "of scripts without spaces its own unit; auto: the words of the "
                          "segmenter of each document's `language` (as `tokenizer: auto` of "
                          "the heuristic filters), for the languages that have one")

    cluster_memory: int | None = Field(
        None, gt=0,
        description="memory budget of clustering (bytes, or '2GB', '512MiB'). null: one "
                    "`cluster` task holds the whole edge list (about 100 bytes an edge). "
                    "Set: clustering is planned as sharded steps of `partitions` tasks; at "
                    "run time an edge list within the budget is still clustered by one task, "
                    "a larger one by up to `cluster_rounds` large-star/small-star rounds over "
                    "hash-partitioned edge files, and the keep policy runs per partition of "
                    "clusters (docs/architecture.md)")
    cluster_rounds: int = Field(
        16, ge=1, le=64,
        description="large-star/small-star rounds planned when `cluster_memory` is set (2 "
                    "steps each; rounds after convergence are no-ops). Not converged by "
                    "then: the rest is clustered in memory if it fits `cluster_memory`, "
                    "else the step fails naming this parameter")

    # old name -> new name; the config fingerprint hashes the old name, so runs made before
    # the rename keep their fingerprint (--resume, reproduce)
    renamed: ClassVar[dict[str, str]] = {"strip_punctuation": "punctuation_as_space"}

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        """``strip_punctuation`` meant "count as a space" here but "delete" in exact_dedup:
        read it as ``punctuation_as_space``, saying so once per process."""
        if not isinstance(data, dict) or not cls.renamed.keys() & data.keys():
            return data
        data = dict(data)
        for old, new in cls.renamed.items():
            if old not in data:
                continue
            if new in data:
                raise ValueError(f"`{old}` is the old name of `{new}`; give only `{new}`")
            data[new] = data.pop(old)
            if old not in _WARNED:
                _WARNED.add(old)
                log.warning("minhash_dedup: `%s` is deprecated, write `%s` (same meaning: "
                            "punctuation and symbols count as a space)", old, new)
        return data

    @field_validator("cluster_memory", mode="before")
    @classmethod
    def _byte_size(cls, v: Any) -> Any:
        return _byte_size(v)

    @model_validator(mode="after")
    def _derive(self):
        if self.threshold is not None:
            b, r = core.params_for_threshold(self.threshold, self.num_perm)
            given = {k: v for k, v in (("bands", self.bands), ("rows", self.rows))
                     if k in self.model_fields_set}
            if any(v != {"bands": b, "rows": r}[k] for k, v in given.items()):
                # a resolved config repeats the derived values: only a contradiction fails
                raise ValueError(f"threshold {self.threshold:g} with num_perm {self.num_perm} "
                                 f"means bands {b} x rows {r}, not "
                                 + ", ".join(f"{k} {v}" for k, v in given.items())
                                 + ": give threshold or bands and rows")
            object.__setattr__(self, "bands", b)
            object.__setattr__(self, "rows", r)
        return self


class MinHashDedup(DedupStage):
    """Near-duplicate removal with MinHash LSH; one survivor per connected cluster.

    Reason: `near_duplicate`. Kept documents get `minhash_cluster_id` (the survivor's id)
    and `minhash_cluster_size`; `work/<stage>/clusters.parquet` lists every clustered
    document (`thresher dups RUN`). Every hash is 64-bit (tokens, shingles, the
    `bands x rows` permutations, band keys); there is no 32-bit mode, as signatures are
    never stored and 32 bits would only add collisions. Clustering is one task,
    vectorised with numpy (docs/benchmarks.md, bench_cluster.py); with `cluster_memory`
    set, an edge list over that budget is clustered in sharded large-star/small-star
    rounds and the keep policy runs per partition of clusters, with the same result.
    """

    Params: ClassVar[type[Params]] = MinHashParams
    params: MinHashParams
    drop_reason = "near_duplicate"
    column_prefix = "minhash"

    def setup(self) -> None:
        p = self.params
        self.spec = core.MinHashSpec(
            unit=p.unit, n=p.n, bands=p.bands, rows=p.rows, seed=p.seed,
            lowercase=p.lowercase, punctuation_as_space=p.punctuation_as_space,
            normalize_digits=p.normalize_digits, unicode=p.unicode,
            collapse_whitespace=p.collapse_whitespace)
        if p.tokenizer:  # the segmenters (and their regexes) only when asked for
            from stages.text import segmenters

            segmenters.check_installed()  # one line naming the extra, before any document

    def input_columns(self) -> tuple[str, ...]:
        cols = super().input_columns()
        return (*cols, LANGUAGE) if self.params.tokenizer and LANGUAGE not in cols else cols

    def _signatures(self, table: pa.Table) -> np.ndarray:
        """MinHash signatures; with ``tokenizer: auto`` segmented words for the documents
        whose language has a segmenter (the rest as without it)."""
        column = table.column(self.params.column)
        if not self.params.tokenizer or self.params.unit != "word":
            return core.column_signatures(column, self.spec)
        from stages.text import segmenters

        texts = [t or "" for t in column.to_pylist()]
        langs = table.column(LANGUAGE).to_pylist() if LANGUAGE in table.schema.names \
            else [None] * len(texts)
        seg = [i for i, lang in enumerate(langs) if segmenters.segmenter_name(lang)]
        if not seg:
            return core.signatures(texts, self.spec)
        sigs = np.empty((len(texts), self.spec.num_perm), np.uint64)
        rest = np.setdiff1d(np.arange(len(texts)), seg)
        if len(rest):
            sigs[rest] = core.signatures([texts[i] for i in rest], self.spec)
        tok, lens = segmented_token_hashes([texts[i] for i in seg], [langs[i] for i in seg],
                                           self.spec)
        sigs[seg] = core._minhash(*core._shingles(tok, lens, self.spec.n), self.spec)
        return sigs

    @property
    def sharded(self) -> bool:
        """Clustering planned as sharded steps (``cluster_memory`` set)."""
        return self.params.cluster_memory is not None

    def steps(self, n_shards: int) -> list[Step]:
        P = self.params.partitions
        if not self.sharded:
            return [Step("buckets", P), Step("cluster", 1)]
        return [Step("buckets", P),
                *(Step(name, P) for name in sh.star_steps(self.params.cluster_rounds)),
                Step("label", P), Step("cluster", P), Step("clusters", 1)]

    # ------------------------------------------------------------ collect
    def begin_collect(self, ctx: GlobalContext) -> None:
        self._ctx = ctx
        self._buckets: list[pa.Table] = []
        self._members: list[pa.Table] = []

    def collect(self, table: pa.Table, keys: np.ndarray) -> None:
        self.check_columns(table)
        if table.num_rows == 0:
            return
        sigs = self._signatures(table)
        bands, bkeys, docs = core.band_rows(sigs, keys, self.spec)  # docs with shingles only
        if self.params.scope != "global":  # same text, other scope value: other bucket
            scope = _scope_hashes(self.scope_values(table))[core.nonempty(sigs)]
            bkeys = bkeys ^ np.repeat(scope, self.spec.bands)
        self._buckets.append(pa.table({"band": bands, "bkey": bkeys, "doc": docs},
                                      schema=bucket_schema()))
        info = self.member_info(table, keys)
        url = table.column(URL) if URL in table.schema.names else pa.nulls(table.num_rows,
                                                                           pa.string())
        snippet = pc.utf8_slice_codeunits(table.column(self.params.column), 0, SNIPPET_CHARS)
        self._members.append(pa.table({**info, "url": url.cast(pa.string()),
                                       "snippet": snippet}))

    def end_collect(self) -> None:
        ctx, P = self._ctx, self.params.partitions
        buckets = pa.concat_tables(self._buckets) if self._buckets else \
            bucket_schema().empty_table()
        part = core.bucket_partition(buckets.column("bkey").to_numpy(), P)
        write_partitioned(self._path(ctx, "buckets", ctx.task), buckets, part, P)
        members = pa.concat_tables(self._members) if self._members else \
            self._member_schema().empty_table()
        if self.sharded:  # the label step reads the members of its node partition
            write_partitioned(self._path(ctx, "members", ctx.task), members,
                              core.node_partition(members.column("key").to_numpy(), P), P)
        else:
            write_table_atomic(self._path(ctx, "members", ctx.task), members)
        self._buckets, self._members = [], []

    def _member_schema(self) -> pa.Schema:
        fields = [("key", pa.uint64()), ("id", pa.string()), ("length", pa.int64())]
        if self.params.keep.startswith("max:"):
            fields.append(("score", pa.float64()))
        return pa.schema(fields + [("url", pa.string()), ("snippet", pa.string())])

    def _path(self, ctx: GlobalContext, kind: str, i: int) -> Path:
        return ctx.path(kind, f"part-{i:05d}.parquet")

    # ------------------------------------------------------------ steps
    def run_step(self, step: str, ctx: GlobalContext) -> dict[str, float]:
        if step == "buckets":
            return self._buckets_step(ctx)
        if not self.sharded:
            if step == "cluster":
                return self._cluster_step(ctx)
            raise ValueError(f"unknown step {step!r}")
        return sh.run_sharded_step(self, step, ctx)

    def _buckets_step(self, ctx: GlobalContext) -> dict[str, float]:
        files = [self._path(ctx, "buckets", s) for s in range(ctx.n_shards)]
        rows = read_partition(files, ctx.task, schema=bucket_schema())
        edges = core.candidate_edges(rows.column("band").to_numpy(),
                                     rows.column("bkey").to_numpy(),
                                     rows.column("doc").to_numpy())
        edges = np.asarray(edges, dtype=np.uint64).reshape(-1, 2)
        if self.sharded:
            return {"band_rows": rows.num_rows, "edges": len(edges),
                    **sh.write_first_edges(self, ctx, edges)}
        write_table_atomic(self._path(ctx, "edges", ctx.task),
                           pa.table({"u": edges[:, 0], "v": edges[:, 1]}, schema=edge_schema()))
        return {"band_rows": rows.num_rows, "edges": len(edges)}

    def _cluster_step(self, ctx: GlobalContext) -> dict[str, float]:
        parts = [read_table(self._path(ctx, "edges", p)) for p in
                 range(self.params.partitions)]
        edges = pa.concat_tables(parts) if parts else edge_schema().empty_table()
        pairs = np.stack([edges.column("u").to_numpy(), edges.column("v").to_numpy()], axis=1) \
            if edges.num_rows else np.zeros((0, 2), np.uint64)
        nodes, labels = core.connected_components(pairs)
        nodes = np.asarray(nodes, dtype=np.uint64)
        labels = np.asarray(labels, dtype=np.uint64)
        order = np.argsort(nodes)
        nodes, labels = nodes[order], labels[order]
        members = []
        for s in range(ctx.n_shards):  # one shard's members at a time: bounded memory
            m = read_table(self._path(ctx, "members", s))
            k = m.column("key").to_numpy()
            sel = np.isin(k, nodes)
            if sel.any():
                m = m.filter(pa.array(sel))
                lab = labels[np.searchsorted(nodes, m.column("key").to_numpy())]
                members.append(m.append_column("cluster", pa.array(lab, pa.uint64())))
        if members:
            clustered = pa.concat_tables(members)
            decisions = self.decide(clustered.drop_columns(["url", "snippet"]), "cluster")
        else:
            clustered, decisions = None, decisions_schema().empty_table()
        self.write_decisions(self._path(ctx, "decisions", 0), decisions, ctx.n_shards)
        self._write_clusters(ctx, clustered, decisions)
        n_clusters = int(np.sum(decisions.column("keep").to_numpy(zero_copy_only=False)))
        return {"clusters": n_clusters, "documents_in_clusters": decisions.num_rows,
                "near_duplicates": decisions.num_rows - n_clusters,
                "largest_cluster": int(pc.max(decisions.column("cluster_size")).as_py() or 0)}

    def _write_clusters(self, ctx: GlobalContext, clustered: pa.Table | None,
                        decisions: pa.Table) -> None:
        """clusters.parquet: every document in a cluster, biggest clusters first."""
        write_table_atomic(ctx.work_dir / "clusters.parquet",
                           sh.clusters_table(clustered, decisions),
                           row_group_size=sh.CLUSTERS_ROW_GROUP)  # `thresher dups` reads the first

    def decision_files(self, ctx: GlobalContext) -> list[Path]:
        n = self.params.partitions if self.sharded else 1
        return [self._path(ctx, "decisions", q) for q in range(n)]


_WORD_HASH: dict[str, int] = {}


def segmented_token_hashes(texts: list[str], langs: list[str | None], spec: core.MinHashSpec
                           ) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of the segmented, normalized words of each text, and words per text.

    Each text is split by its language's segmenter, the words are normalized as
    shingling normalizes text (case, digits, Unicode form, punctuation as a space, which
    may cut a word), and each unit is hashed with BLAKE2b: a function of the text and
    its language alone, whatever the batch or worker.
    """
    from stages.text.words import AUTO, splitter_for

    split_for = splitter_for(AUTO, memoize=False)
    out: list[int] = []
    lens = np.zeros(len(texts), np.int64)
    cache = _WORD_HASH
    for i, (text, lang) in enumerate(zip(texts, langs)):
        units = core.normalize(" ".join(split_for(lang)(text)), spec).split()
        for u in units:
            h = cache.get(u)
            if h is None:
                h = int.from_bytes(hashlib.blake2b(u.encode("utf-8", "surrogatepass"),
                                                   digest_size=8).digest(), "little")
                if len(cache) < 1_000_000:
                    cache[u] = h
            out.append(h)
        lens[i] = len(units)
    return np.array(out, np.uint64), lens


def _byte_size(v: Any) -> Any:
    """'2GB' -> 2000000000, '512MiB' -> 536870912; numbers and None as given."""
    if not isinstance(v, str):
        return v
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]i?[bB]?|[bB])?\s*", v)
    if m is None:
        raise ValueError("expected a byte count such as 2000000000, '2GB' or '512MiB'")
    unit = (m.group(2) or "b").lower().rstrip("b")
    base = 1024 if unit.endswith("i") else 1000
    return int(float(m.group(1)) * base ** " kmgt".index(unit[:1] or " "))


def _scope_hashes(values: list[str]) -> np.ndarray:
    import hashlib

    out = np.empty(len(values), dtype=np.uint64)
    cache: dict[str, int] = {}
    for i, v in enumerate(values):
        if v not in cache:
            cache[v] = int.from_bytes(hashlib.blake2b(v.encode("utf-8", "surrogatepass"),
                                                      digest_size=8).digest(), "little")
        out[i] = cache[v]
    return out
