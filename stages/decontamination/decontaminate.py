"""decontaminate: drop documents (or cut spans) that share n-grams with evaluation items.

The evaluation sets are files (JSONL, optionally gzipped, or Parquet; local paths or URLs
fetched through the model cache, pipelines/io/models.py) whose text fields are named in
the config. Their sha256 are reported by ``model_files``, so the manifest records them and
``thresher reproduce`` checks them like models.

Phases (a global stage, pipelines/global_stage.py):

- collect (the map phase before): nothing is collected; the corpus is not read twice;
- step ``index`` (one task): reads every evaluation item, normalises and tokenises it,
  hashes its word n-grams (``n`` = 13 by default, as GPT-3's contamination analysis) and
  writes ``index.parquet`` (n-gram hash, item), sorted, and ``items.parquet`` (set, item
  id, n-grams, a snippet), plus ``index.json`` holding the index's sha256, its size and
  the evaluation files' sha256; the step's metrics (stats.json) give items and n-grams
  per set. The index's sha256 also goes into the run's manifest (``artifacts``, see
  pipelines/manifest.py), which ``thresher verify`` and ``thresher reproduce`` check;
- apply: each task loads the index (about 12 bytes per distinct (n-gram, item) pair:
  memory is bounded by the index, never by the corpus), checks that its sha256 is the
  one index.json recorded, hashes each document's n-grams the same way and counts, per
  evaluation item, the distinct n-grams the document shares with it. A document shares
  enough with an item when that count reaches ``min_overlaps``. Then, by ``action``:

  - ``drop``: the document is dropped, reason ``contaminated:<set>`` (the set of the item
    it shares most n-grams with), so drop counts are hits per evaluation set;
  - ``remove``: the characters covered by the shared n-grams are cut out, and the
    document is counted (and sampled, before and after) as changed for
    ``contaminated:<set>``; a document that would lose more than
    ``max_removed_fraction`` of its characters is dropped (reason ``contaminated:<set>``);
  - ``annotate``: kept as it is, with ``<name>_overlaps`` (most n-grams shared with one
    item) and ``<name>_items`` (``set/item id`` of every item it reaches); each annotated
    document is counted under the stage's ``changed`` stats as ``contaminated:<set>``
    (the set of the item it shares most n-grams with, as in ``drop``), so hits per
    evaluation set are in ``thresher stats`` and the report whatever the action, and
    sampled (its text, unchanged: details ``before`` and ``after`` are equal).

  Every match (document id, set, item, shared n-grams, what was done) is written to
  the stage's work directory, which ``thresher report`` lists: one file per batch that
  has any, ``matches/part-<task>-<batch>.parquet``, named in ``matches/part-<task>.json``
  (``{"files": [...]}``, rewritten atomically when a file is added; a task that runs
  again starts it afresh). So an apply task holds the index and one batch, however many
  documents are contaminated (``read_matches`` reads them back).

Normalisation (the same for items and documents): Unicode normal form (NFKC by default),
lower case, digits to 0 if asked; tokens are runs of word characters (``\\w+``), so
punctuation and spacing never matter. Scripts written without spaces make one token of a
whole run of text: use a small ``n`` for them (see docs/decontamination.md). Items with fewer
than ``n`` tokens cannot match and are counted as ``too_short``.

N-gram hashes are 64-bit (BLAKE2b of each token, combined by a polynomial and a final mix);
with I index n-grams and D document n-grams the expected number of chance collisions is
about I x D / 2^64.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import unicodedata
from functools import cache
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipelines.errors import UserError
from pipelines.global_stage import GlobalContext, GlobalStage, Step
from pipelines.io.files import (
    read_bytes,
    read_json,
    read_table,
    write_bytes_atomic,
    write_json_atomic,
    write_table_atomic,
)
from pipelines.io.models import local_model, model_hashes, model_key
from pipelines.lazy import lazy_module
from pipelines.schema import ID, TEXT
from pipelines.stage import Params, set_column
from pipelines.stats import StageStats

np = lazy_module("numpy")
pa = lazy_module("pyarrow")
pq = lazy_module("pyarrow.parquet")

_WORD = re.compile(r"\w+")
_DIGIT = re.compile(r"\d")
SNIPPET = 300


@cache
def _poly_base() -> np.uint64:
    return np.uint64(0x100000001B3)  # polynomial base (odd)


@cache
def index_schema() -> pa.Schema:
    return pa.schema([("hash", pa.uint64()), ("item", pa.int32())])


@cache
def items_schema() -> pa.Schema:
    return pa.schema([("item", pa.int32()), ("set", pa.string()), ("item_id", pa.string()),
                      ("ngrams", pa.int32()), ("snippet", pa.string())])


@cache
def matches_schema() -> pa.Schema:
    return pa.schema([("doc_id", pa.string()), ("set", pa.string()),
                      ("item", pa.int32()), ("item_id", pa.string()),
                      ("overlaps", pa.int32()), ("action", pa.string())])


class EvalSet(BaseModel):
    """One evaluation set: its files and the fields holding an item's text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="set name (in drop reasons "
                                                               "and the report)")
    path: str | Annotated[list[str], Field(min_length=1)] = Field(
        description="JSONL (.jsonl, .jsonl.gz) or Parquet file(s): paths or URLs")
    fields: Annotated[list[str], Field(min_length=1)] = Field(
        description="fields whose text makes the item (joined with newlines), e.g. "
                    "[question, answer] or [context]")
    id_field: str | None = Field(None, description="field holding the item's id; default: "
                                                   "<file number>:<row number>")


class DecontaminateParams(Params):
    eval_sets: Annotated[list[EvalSet], Field(min_length=1)] = Field(
        description="evaluation sets, each {name, path: file(s) or URL(s), JSONL or "
                    "Parquet, fields: text fields joined to make an item, id_field: "
                    "optional id field}")
    n: int = Field(13, ge=1, le=64, description="n-gram length in words")
    min_overlaps: int = Field(1, ge=1, description="distinct n-grams a document must share "
                                                   "with one item to count as contaminated")
    action: Literal["drop", "remove", "annotate"] = Field(
        "drop", description="drop: drop the document; remove: cut the shared spans out; "
                            "annotate: keep everything and write `<name>_overlaps`/`_items`")
    max_removed_fraction: float = Field(
        0.5, ge=0, le=1, description="action remove: drop a document that would lose more "
                                     "than this share of its characters")
    column: str = Field(TEXT, description="text column to check")
    lowercase: bool = Field(True, description="compare case-insensitively")
    unicode: Literal["NFKC", "NFC", "none"] = Field("NFKC", description="Unicode normal form")
    normalize_digits: bool = Field(False, description="treat every digit as 0")

    @field_validator("eval_sets")
    @classmethod
    def _unique_names(cls, v: list[EvalSet]) -> list[EvalSet]:
        names = [s.name for s in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"evaluation set names must be unique: {', '.join(dup)}")
        return v


# ------------------------------------------------------------------------ tokens, n-grams
def _norm(s: str, p: DecontaminateParams) -> str:
    if p.unicode != "none" and not s.isascii():
        s = unicodedata.normalize(p.unicode, s)
    if p.lowercase:
        s = s.lower()
    if p.normalize_digits:
        s = _DIGIT.sub("0", s)
    return s


def tokens(text: str, p: DecontaminateParams) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Normalised tokens of ``text`` with their start and end offsets in ``text``."""
    found = list(_WORD.finditer(text))
    # each token is normalised on its own, so offsets stay those of the original text
    toks = [_norm(m.group(0), p) for m in found]
    starts = np.fromiter((m.start() for m in found), dtype=np.int64, count=len(found))
    ends = np.fromiter((m.end() for m in found), dtype=np.int64, count=len(found))
    return toks, starts, ends


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads the polynomial's bits."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class Hasher:
    """64-bit hashes of word n-grams; token hashes cached (bounded) across calls."""

    def __init__(self, n: int, cache_size: int = 1 << 18):
        self.n = n
        self._cache: dict[str, int] = {}
        self._cache_size = cache_size

    def token_hashes(self, toks: list[str]) -> np.ndarray:
        cache = self._cache
        out = np.empty(len(toks), dtype=np.uint64)
        for i, t in enumerate(toks):
            h = cache.get(t)
            if h is None:
                h = int.from_bytes(hashlib.blake2b(t.encode("utf-8", "surrogatepass"),
                                                   digest_size=8).digest(), "little")
                if len(cache) >= self._cache_size:
                    cache.clear()
                cache[t] = h
            out[i] = h
        return out

    def ngrams(self, toks: list[str]) -> np.ndarray:
        """Hash of the n-gram starting at each token (len(toks) - n + 1 of them)."""
        k = len(toks) - self.n + 1
        if k <= 0:
            return np.empty(0, dtype=np.uint64)
        th = self.token_hashes(toks)
        acc = np.zeros(k, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for i in range(self.n):
                acc = acc * _poly_base() + th[i:i + k]
            return _mix(acc)


# ------------------------------------------------------------------------ evaluation files
def _files(s: EvalSet) -> list[str]:
    return [s.path] if isinstance(s.path, str) else list(s.path)


def read_items(s: EvalSet, stage: str) -> list[tuple[str, str]]:
    """(item id, text) of every item of one evaluation set, in file order."""
    items: list[tuple[str, str]] = []
    for f, path in enumerate(_files(s)):
        what = f"stage {stage}: evaluation set {s.name!r}: cannot read"
        try:
            local = local_model(path, what=what)
            data = local.read_bytes()
        except OSError as e:
            raise UserError(f"{what} {path}: {e.strerror or e}") from None
        rows: list[dict]
        if path.endswith(".parquet"):
            try:
                rows = pq.read_table(io.BytesIO(data)).to_pylist()
            except pa.ArrowException as e:
                raise UserError(f"{what} {path}: not a Parquet file ({e})") from None
        else:
            if path.endswith(".gz"):
                data = gzip.decompress(data)
            rows = []
            for line_no, line in enumerate(data.decode("utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise UserError(f"{what} {path}: line {line_no} is not JSON "
                                    f"({e.msg})") from None
                if not isinstance(rows[-1], dict):
                    raise UserError(f"{what} {path}: line {line_no} is not a JSON object")
        for r, row in enumerate(rows):
            missing = [k for k in s.fields if k not in row]
            if missing:
                raise UserError(f"stage {stage}: evaluation set {s.name!r}: {path} item "
                                f"{r + 1} has no field {missing[0]!r} (fields: "
                                f"{', '.join(map(str, row))})")
            parts = []
            for k in s.fields:
                v = row[k]
                if isinstance(v, list):
                    parts += [str(x) for x in v if x is not None]
                elif v is not None:
                    parts.append(str(v))
            item_id = row.get(s.id_field) if s.id_field else None
            if s.id_field and item_id is None:
                raise UserError(f"stage {stage}: evaluation set {s.name!r}: {path} item "
                                f"{r + 1} has no id field {s.id_field!r}")
            items.append((str(item_id) if item_id is not None else f"{f}:{r}",
                          "\n".join(parts)))
    return items


# ------------------------------------------------------------------------ the stage
class Decontaminate(GlobalStage):
    """Drops documents sharing word n-grams with evaluation items (or cuts the shared spans).

    Reasons: `contaminated:<set>`. The index is built once per run (step `index`); see
    docs/decontamination.md."""

    Params: ClassVar[type[Params]] = DecontaminateParams
    params: DecontaminateParams

    @staticmethod
    def read_matches(work_dir, n_tasks: int) -> pa.Table:
        """The run's matches (``read_matches``), for ``thresher report``, which reaches the
        stage through the registry."""
        return read_matches(work_dir, n_tasks)

    def input_columns(self) -> tuple[str, ...]:
        return (self.params.column,)

    def output_columns(self) -> dict[str, pa.DataType | None]:
        if self.params.action == "annotate":
            return {f"{self.name}_overlaps": "int32",
                    f"{self.name}_items": pa.list_("string")}
        if self.params.action == "remove":
            return {self.params.column: "string"}
        return {}

    def setup(self) -> None:
        files = [f for s in self.params.eval_sets for f in _files(s)]
        try:
            self._sha256 = model_hashes(files)
        except FileNotFoundError as e:
            raise UserError(f"stage {self.name}: evaluation file {e.filename} does not "
                            f"exist") from None
        except OSError as e:
            raise UserError(f"stage {self.name}: cannot read evaluation file "
                            f"{e.filename}: {e.strerror}") from None

    def model_files(self) -> dict[str, str]:
        """The evaluation files decide the output: the manifest records their sha256."""
        return getattr(self, "_sha256", {})

    def steps(self, n_shards: int) -> list[Step]:
        return [Step("index", 1)]

    # ------------------------------------------------------------ collect: nothing
    def collect(self, table: pa.Table, keys: np.ndarray) -> None:
        if table.num_rows and self.params.column not in table.schema.names:
            self._missing(table)

    def _missing(self, table: pa.Table) -> None:
        raise UserError(f"stage {self.name!r} needs column {self.params.column!r}, which its "
                        f"input does not have; columns: {', '.join(table.schema.names)}")

    # ------------------------------------------------------------ step `index`
    def run_step(self, step: str, ctx: GlobalContext) -> dict[str, float]:
        p = self.params
        hasher = Hasher(p.n)
        hashes, owners = [], []
        item_rows: dict[str, list] = {k: [] for k in items_schema().names}
        metrics: dict[str, float] = {}
        sets = {}
        item = 0
        for s in p.eval_sets:
            n_items = short = n_grams = 0
            for item_id, text in read_items(s, self.name):
                toks = tokens(text, p)[0]
                g = np.unique(hasher.ngrams(toks))
                item_rows["item"].append(item)
                item_rows["set"].append(s.name)
                item_rows["item_id"].append(item_id)
                item_rows["ngrams"].append(len(g))
                item_rows["snippet"].append(text[:SNIPPET])
                if len(g):
                    hashes.append(g)
                    owners.append(np.full(len(g), item, dtype=np.int32))
                else:
                    short += 1
                n_items += 1
                n_grams += len(g)
                item += 1
            metrics[f"items:{s.name}"] = n_items
            metrics[f"ngrams:{s.name}"] = n_grams
            metrics[f"too_short:{s.name}"] = short
            sets[s.name] = {"items": n_items, "ngrams": n_grams, "too_short": short,
                            "files": {f: self.model_files().get(model_key(f)) for f in _files(s)}}
        h = np.concatenate(hashes) if hashes else np.empty(0, np.uint64)
        o = np.concatenate(owners) if owners else np.empty(0, np.int32)
        order = np.lexsort((o, h))
        index = pa.table({"hash": pa.array(h[order], pa.uint64()),
                          "item": pa.array(o[order], pa.int32())}, schema=index_schema())
        buf = io.BytesIO()
        pq.write_table(index, buf, compression="zstd")
        data = buf.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        write_bytes_atomic(ctx.path("index.parquet"), data)
        from pipelines.manifest import write_artifacts

        write_artifacts(ctx.work_dir, step, {"index.parquet": data})
        write_table_atomic(ctx.path("items.parquet"),
                           pa.table(item_rows, schema=items_schema()))
        write_json_atomic(ctx.path("index.json"), {
            "index": "index.parquet", "sha256": digest, "bytes": len(data),
            "entries": int(len(h)), "distinct_ngrams": int(len(np.unique(h))),
            "items": item, "n": p.n, "lowercase": p.lowercase, "unicode": p.unicode,
            "normalize_digits": p.normalize_digits, "sets": sets})
        metrics["index_entries"] = int(len(h))
        metrics["index_bytes"] = len(data)
        return metrics

    # ------------------------------------------------------------ apply
    def begin_apply(self, ctx: GlobalContext) -> None:
        meta = read_json(ctx.path("index.json"))
        data = read_bytes(ctx.path("index.parquet"))
        if hashlib.sha256(data).hexdigest() != meta["sha256"]:
            raise UserError(f"stage {self.name}: {ctx.path('index.parquet')} does not have "
                            f"the sha256 index.json records; re-run the index step")
        index = pq.read_table(io.BytesIO(data))
        self._hash = index.column("hash").to_numpy()
        self._item = index.column("item").to_numpy()
        items = pq.read_table(io.BytesIO(read_bytes(ctx.path("items.parquet"))),
                              columns=["set", "item_id"])
        self._item_set = items.column("set").to_pylist()
        self._item_id = items.column("item_id").to_pylist()
        self._set_rank = {s.name: i for i, s in enumerate(self.params.eval_sets)}
        self._hasher = Hasher(self.params.n)
        # matches: one file per batch that has any, listed in part-<task>.json (rewritten,
        # atomically, when a file is added): memory and I/O per batch, not per task
        self._task = ctx.task
        self._matches_list = ctx.path("matches", f"part-{ctx.task:05d}.json")
        self._batch = 0
        self._match_files: list[str] = []
        write_json_atomic(self._matches_list, {"files": []})

    def _hits(self, text: str) -> tuple[dict[int, int], list[str], np.ndarray,
                                        np.ndarray, np.ndarray, np.ndarray]:
        """Items reaching ``min_overlaps`` -> shared n-grams, plus what span removal needs."""
        toks, starts, ends = tokens(text, self.params)
        grams = self._hasher.ngrams(toks)
        empty = np.empty(0, np.int64)
        if not len(grams) or not len(self._hash):
            return {}, toks, starts, ends, empty, empty
        lo = np.searchsorted(self._hash, grams, side="left")
        hi = np.searchsorted(self._hash, grams, side="right")
        found = np.flatnonzero(hi > lo)
        if not len(found):
            return {}, toks, starts, ends, empty, empty
        pos = np.repeat(found, (hi - lo)[found])  # n-gram position, once per owning item
        offs = np.concatenate([np.arange(lo[j], hi[j]) for j in found])
        owners = self._item[offs].astype(np.int64)
        # distinct n-grams per item (a document may repeat an n-gram)
        pairs = np.unique(np.stack([owners, grams[pos].view(np.int64)]), axis=1)
        items, counts = np.unique(pairs[0], return_counts=True)
        hits = {int(i): int(c) for i, c in zip(items, counts) if c >= self.params.min_overlaps}
        return hits, toks, starts, ends, pos, owners

    def apply(self, table: pa.Table, keys: np.ndarray, stats: StageStats) -> pa.Table:
        p = self.params
        if table.num_rows == 0:
            return table
        if p.column not in table.schema.names:
            self._missing(table)
        texts = table.column(p.column).to_pylist()
        ids = table.column(ID).to_pylist() if ID in table.schema.names else \
            [str(int(k)) for k in keys]
        keep = np.ones(table.num_rows, dtype=bool)
        reasons: dict[str, list[int]] = {}
        new_texts = list(texts)
        overlaps = [0] * table.num_rows
        hit_items: list[list[str]] = [[] for _ in range(table.num_rows)]
        kept_hits: dict[str, list[int]] = {}
        matches: list[dict] = []
        for row, text in enumerate(texts):
            if not text:
                continue
            hits, toks, starts, ends, pos, owners = self._hits(text)
            if not hits:
                continue
            best = min(hits, key=lambda i: (-hits[i], self._set_rank[self._item_set[i]], i))
            reason = f"contaminated:{self._item_set[best]}"
            action = p.action
            if action == "remove":
                sel = np.isin(owners, np.fromiter(hits, dtype=np.int64))
                cut = _cut(text, starts, ends, np.unique(pos[sel]), p.n)
                removed = 1 - len(cut) / len(text)
                if removed > p.max_removed_fraction:
                    action = "drop"
                else:
                    new_texts[row] = cut
                    kept_hits.setdefault(reason, []).append(row)
                    action = "removed"
            if action == "drop":
                keep[row] = False
                reasons.setdefault(reason, []).append(row)
                action = "dropped"
            elif action == "annotate":
                kept_hits.setdefault(reason, []).append(row)  # kept as it is: `changed`
                overlaps[row] = hits[best]
                hit_items[row] = [f"{self._item_set[i]}/{self._item_id[i]}" for i in sorted(hits)]
                action = "annotated"
            for i in sorted(hits):
                matches.append({"doc_id": str(ids[row]), "set": self._item_set[i],
                                "item": i, "item_id": self._item_id[i],
                                "overlaps": hits[i], "action": action})
        if matches:
            name = f"part-{self._task:05d}-{self._batch:05d}.parquet"
            write_table_atomic(self._matches_list.parent / name,
                               pa.Table.from_pylist(matches, schema=matches_schema()))
            self._match_files.append(name)
            write_json_atomic(self._matches_list, {"files": self._match_files})
        self._batch += 1
        if p.action in ("remove", "annotate"):  # kept (rewritten or annotated): `changed`
            for reason, rows in sorted(kept_hits.items()):
                stats.change_rows(reason, table, rows, [texts[i] for i in rows],
                                  [new_texts[i] for i in rows])
        if p.action == "remove":
            table = set_column(table, p.column, new_texts, pa.string())
        if p.action == "annotate":
            table = set_column(table, f"{self.name}_overlaps", overlaps, pa.int32())
            table = set_column(table, f"{self.name}_items", hit_items, pa.list_(pa.string()))
            return table
        for reason, rows in reasons.items():
            stats.drop_rows(reason, table, rows)
        return table.filter(pa.array(keep, pa.bool_()))


def read_matches(work_dir, n_tasks: int) -> pa.Table:
    """Every match the apply tasks ``0..n_tasks-1`` recorded under ``work_dir`` (the
    stage's work directory), in task and batch order; files named, never listed."""
    parts = []
    for t in range(n_tasks):
        for name in read_json(work_dir / "matches" / f"part-{t:05d}.json")["files"]:
            parts.append(read_table(work_dir / "matches" / name))
    return pa.concat_tables(parts) if parts else matches_schema().empty_table()


def _cut(text: str, starts: np.ndarray, ends: np.ndarray, positions: np.ndarray,
         n: int) -> str:
    """``text`` without the characters of the n-grams starting at ``positions``."""
    spans: list[list[int]] = []
    for j in sorted(positions.tolist()):
        a, b = int(starts[j]), int(ends[j + n - 1])
        if spans and a <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], b)
        else:
            spans.append([a, b])
    parts, pos = [], 0
    for a, b in spans:
        parts.append(text[pos:a])
        pos = b
    parts.append(text[pos:])
    return "".join(parts)
