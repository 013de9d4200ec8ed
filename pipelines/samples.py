"""Samples of dropped documents: per stage and reason, the N with the smallest hash.
Stages that rewrite documents (``pii``) sample them the same way, as kind ``changed``:
the text after the change, and in ``details`` the span that changed, before and after.

Why bottom-N by hash: a document's rank is ``hash(seed, id)``, which depends on
nothing but the document, so each task can keep its own N smallest per (stage,
reason) and the union of all tasks, cut again to N, is exactly the N smallest of
the whole run. The sample is therefore the same whatever the task split, the
worker count, the executor, or a kill and resume, and it merges like the stats.

Each map task writes ``samples/<phase>/task-NNNNN.parquet`` before its stats file
(which marks the task done); ``merge_samples`` (run by finalize) writes
``samples/<stage>.parquet``. Texts are cut to ``max_chars`` so samples stay small.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.io.files import read_table, write_table_atomic
from pipelines.lazy import lazy_module
from pipelines.rundir import RunDir
from pipelines.schema import HTML, ID, SOURCE, TEXT, URL

if TYPE_CHECKING:
    from pipelines.plan import SourceRun

np = lazy_module("numpy")
pa = lazy_module("pyarrow")
pc = lazy_module("pyarrow.compute")

log = logging.getLogger(__name__)


@cache
def sample_schema() -> pa.Schema:
    """The columns of a samples file (built on first use: no Arrow to load a config)."""
    return pa.schema([
        pa.field("stage", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("kind", pa.string()),  # drop | error | changed
        pa.field("key", pa.uint64()),  # hash(seed, id): the sample order
        pa.field(ID, pa.string()),
        pa.field(URL, pa.string()),
        pa.field(SOURCE, pa.string()),
        pa.field("record", pa.int64()),  # index of the record/line/row in `source`, if known
        pa.field("score", pa.float64()),
        pa.field(TEXT, pa.string()),  # the text (or the HTML before extraction), cut to max_chars
        pa.field("text_chars", pa.int64()),  # its length before cutting
        pa.field("details", pa.string()),  # JSON of small extra fields (annotations, headers)
    ])


PER_REASON_META = b"thresher.samples.per_reason"
DETAIL_CHARS = 200  # longest string kept in `details`


def sample_key(seed: int, doc_id: str) -> int:
    """The rank of a document in every sample: 64 bits of BLAKE2b over seed and id."""
    h = hashlib.blake2b(f"{seed}\x00{doc_id}".encode(), digest_size=8)
    return int.from_bytes(h.digest(), "big")


def sample_keys(seed: int, ids: list[str]) -> np.ndarray:
    """``sample_key`` of many ids at once (uint64)."""
    pre, b2 = f"{seed}\x00".encode(), hashlib.blake2b
    digests = b"".join([b2(pre + i.encode(), digest_size=8).digest() for i in map(str, ids)])
    return np.frombuffer(digests, dtype=">u8").astype(np.uint64)


def _order(e: dict) -> tuple:
    """Total order of sample entries (ties on key only for the same id)."""
    rec = e["record"]
    return (e["key"], e[ID], e[SOURCE] or "", -1 if rec is None else rec, e[TEXT] or "")


class _Bucket:
    """The N smallest entries of one (stage, reason) seen so far."""

    __slots__ = ("items", "limit")

    def __init__(self):
        self.items: list[dict] = []
        self.limit: int | None = None  # keys above this can no longer enter

    def trim(self, n: int) -> None:
        self.items.sort(key=_order)
        del self.items[n:]
        if len(self.items) == n and n:
            self.limit = self.items[-1]["key"]


class StageSampler:
    """Keeps the sample of one stage in one task; reached through ``StageStats.sampler``."""

    def __init__(self, stage: str, seed: int, per_reason: int, max_chars: int):
        self.stage, self.seed = stage, seed
        self.per_reason, self.max_chars = per_reason, max_chars
        self.buckets: dict[str, _Bucket] = {}

    def _bucket(self, reason: str) -> _Bucket:
        b = self.buckets.get(reason)
        if b is None:
            b = self.buckets[reason] = _Bucket()
        return b

    def _admit(self, reason: str, key: int) -> _Bucket | None:
        b = self._bucket(reason)
        if b.limit is not None and key > b.limit:
            return None
        return b

    def _add(self, b: _Bucket, entry: dict) -> None:
        b.items.append(entry)
        if len(b.items) >= 2 * self.per_reason:
            b.trim(self.per_reason)

    def offer(self, reason: str, doc: Mapping[str, Any], error: bool = False,
              kind: str | None = None) -> None:
        """One dropped document, as a mapping with ``id`` and any of ``url``, ``source``,
        ``record``, ``text`` (or ``html``), ``score`` and ``details`` (a dict); ``kind``
        ``"changed"`` for a kept document the stage rewrote (its own text and details)."""
        doc_id = doc.get(ID)
        if doc_id is None or self.per_reason <= 0:
            return
        key = sample_key(self.seed, str(doc_id))
        b = self._admit(reason, key)
        if b is None:
            return
        text, from_html = doc.get(TEXT), False
        if text is None and doc.get(HTML) is not None:
            text, from_html = doc.get(HTML), True
        details = dict(doc.get("details") or {})
        if from_html:
            details["text_column"] = HTML
        score = doc.get("score")
        self._add(b, self._entry(reason, error, key, str(doc_id), doc.get(URL), doc.get(SOURCE),
                                 doc.get("record"), score, text, details, kind=kind))

    def offer_rows(self, reason: str, table: pa.Table, rows: Sequence[int], error: bool = False,
                   score: str | None = None, details: Iterable[str] = ()) -> None:
        """Rows ``rows`` of ``table``, all dropped for ``reason``; only rows that enter the
        sample are read beyond their id. ``score`` names a column to report as the score,
        ``details`` columns to keep in ``details``."""
        if self.per_reason <= 0 or ID not in table.schema.names or not len(rows):
            return
        names = table.schema.names
        text_col = TEXT if TEXT in names else HTML if HTML in names else None
        details = [c for c in details if c in names and c != score]
        rows = np.asarray(rows, dtype=np.int64)
        ids = table.column(ID).take(pa.array(rows, pa.int64())).to_pylist()
        present = [j for j, x in enumerate(ids) if x is not None]
        if len(present) < len(ids):
            rows, ids = rows[present], [ids[j] for j in present]
        if not ids:
            return
        keys = sample_keys(self.seed, ids)
        # only rows that can enter the sample go on: under the bucket's limit, and not
        # beyond the batch's own N smallest (ties on the N-th key all go on)
        b = self._bucket(reason)
        cand = np.arange(len(keys)) if b.limit is None else \
            np.flatnonzero(keys <= np.uint64(b.limit))
        if len(cand) > self.per_reason:
            kth = np.partition(keys[cand], self.per_reason - 1)[self.per_reason - 1]
            cand = cand[keys[cand] <= kth]
        for j in cand:
            i, doc_id, key = int(rows[j]), ids[j], int(keys[j])
            if self._admit(reason, key) is None:
                continue

            def value(col: str | None, i: int = i) -> Any:
                return table.column(col)[i].as_py() if col in names else None

            extra = {c: value(c) for c in details}
            if text_col == HTML:
                extra["text_column"] = HTML
            s = value(score) if score else None
            self._add(b, self._entry(reason, error, key, doc_id, value(URL), value(SOURCE),
                                     None, s, value(text_col), extra))

    def offer_changes(self, reason: str, table: pa.Table, rows: Sequence[int],
                      before: Sequence[str | None], after: Sequence[str | None]) -> None:
        """Rows ``rows`` of ``table``, rewritten for ``reason``: ``before[j]`` and
        ``after[j]`` are the text of ``rows[j]`` before and after the change. A sampled
        row keeps the text after and, in ``details``, the first changed span before and
        after, with some context (``before``/``after``, at most DETAIL_CHARS each)."""
        if self.per_reason <= 0 or ID not in table.schema.names or not len(rows):
            return
        names = table.schema.names
        ids = [table.column(ID)[int(i)].as_py() for i in rows]
        have = [j for j, x in enumerate(ids) if x is not None]
        if not have:
            return
        keys = sample_keys(self.seed, [str(ids[j]) for j in have])
        for k in np.argsort(keys, kind="stable")[:self.per_reason]:
            j, key = have[int(k)], int(keys[k])
            b = self._admit(reason, key)
            if b is None:
                continue
            i = int(rows[j])

            def value(col: str, i: int = i) -> Any:
                return table.column(col)[i].as_py() if col in names else None

            self._add(b, self._entry(reason, False, key, str(ids[j]), value(URL),
                                     value(SOURCE), None, None, after[j],
                                     changed_span(before[j] or "", after[j] or ""),
                                     kind="changed"))

    def _entry(self, reason, error, key, doc_id, url, source, record, score, text,
               details, kind: str | None = None) -> dict:
        n = None if text is None else len(text)
        if text is not None and n > self.max_chars:
            text = text[:self.max_chars]
        if isinstance(score, (bool, np.bool_)) or not isinstance(score, (int, float, np.number)):
            score = None
        kind = kind or ("error" if error else "drop")
        return {"stage": self.stage, "reason": str(reason), "kind": kind,
                "key": key, ID: doc_id, URL: url, SOURCE: source, "record": record,
                "score": None if score is None else float(score), TEXT: text, "text_chars": n,
                "details": _details_json(details)}

    def entries(self) -> list[dict]:
        out = []
        for reason in sorted(self.buckets):
            b = self.buckets[reason]
            b.trim(self.per_reason)
            out += b.items
        return out


def changed_span(before: str, after: str, context: int = 60) -> dict[str, str]:
    """The first region where ``after`` differs from ``before`` (common prefix and suffix
    cut off), with ``context`` characters before it, in both texts."""
    p = 0
    while p < min(len(before), len(after)) and before[p] == after[p]:
        p += 1
    s = 0
    while s < min(len(before), len(after)) - p and before[-1 - s] == after[-1 - s]:
        s += 1
    start = max(0, p - context)
    return {"before": before[start:len(before) - s][:DETAIL_CHARS],
            "after": after[start:len(after) - s][:DETAIL_CHARS]}


def _details_json(d: dict) -> str | None:
    clean = {}
    for k, v in d.items():
        if isinstance(v, str) and len(v) > DETAIL_CHARS:
            v = v[:DETAIL_CHARS] + "…"
        elif not isinstance(v, (str, int, float, bool, type(None))):
            v = str(v)[:DETAIL_CHARS]
        clean[k] = v
    return json.dumps(clean, sort_keys=True, ensure_ascii=False) if clean else None


class TaskSampler:
    """The samples of every stage of one task."""

    def __init__(self, seed: int, per_reason: int, max_chars: int):
        self.seed, self.per_reason, self.max_chars = seed, per_reason, max_chars
        self.stages: dict[str, StageSampler] = {}

    def stage(self, name: str) -> StageSampler:
        if name not in self.stages:
            self.stages[name] = StageSampler(name, self.seed, self.per_reason, self.max_chars)
        return self.stages[name]

    def to_table(self) -> pa.Table:
        rows = [e for name in sorted(self.stages) for e in self.stages[name].entries()]
        return _table(rows, self.per_reason)

    def write(self, path: Path) -> None:
        write_table_atomic(path, self.to_table(), row_group_size=10_000)


def _table(rows: list[dict], per_reason: int) -> pa.Table:
    t = pa.Table.from_pylist(rows, schema=sample_schema())
    return t.replace_schema_metadata({PER_REASON_META: str(per_reason).encode()})


# ----------------------------------------------------------------------------- the run

def merge_samples(run: RunDir, phases: Iterable[tuple[str, int]], per_reason: int,
                  extra: Iterable[pa.Table] = ()) -> dict:
    """Merge the task files of ``phases`` ((name, n_tasks) of map phases), and ``extra``
    sample tables (a materialized run's, carried from its source run), into one file per
    stage, keeping per (stage, reason) the N smallest keys. N is the configured
    ``per_reason``, or less if a task was run with less (after a resume with a smaller N):
    cutting every task to the smallest N keeps the merge exact. Returns stage -> rows."""
    for old in run.samples.glob("*.parquet"):
        old.unlink()  # from an earlier finalize; rewritten below
    if per_reason <= 0:
        return {}
    tables, missing = list(extra), []
    for phase, n_tasks in phases:
        for t in range(n_tasks):
            path = run.task_samples(phase, t)
            if path.exists():
                tables.append(read_table(path))
            else:
                missing.append(f"{phase}/{t}")
    for i, table in enumerate(tables):
        meta = table.schema.metadata or {}
        per_reason = min(per_reason, int(meta.get(PER_REASON_META, per_reason)))
        tables[i] = table.replace_schema_metadata(None)
    if missing:
        log.warning("no samples for %d task(s) (first: %s); their drops are not sampled",
                    len(missing), missing[0])
    if not tables:
        return {}
    rows = pa.concat_tables(tables).to_pylist()
    by_stage: dict[str, dict[str, list[dict]]] = {}
    for r in rows:
        by_stage.setdefault(r["stage"], {}).setdefault(r["reason"], []).append(r)
    counts = {}
    for stage in sorted(by_stage):
        kept = []
        for reason in sorted(by_stage[stage]):
            kept += sorted(by_stage[stage][reason], key=_order)[:per_reason]
        if kept:
            write_table_atomic(run.stage_samples(stage), _table(kept, per_reason),
                               row_group_size=10_000)
            counts[stage] = len(kept)
    return counts


def load_samples(run_dir: str | Path, stage: str | None = None,
                 reason: str | None = None) -> list[dict]:
    """Merged samples of a finished run, in sample order (by reason, then key)."""
    from pipelines.errors import UserError

    run = RunDir.at(run_dir)
    run_root = run.root
    have = sorted(p.stem for p in run.samples.glob("*.parquet"))
    if stage is None:
        stages = have
    elif stage in have:
        stages = [stage]
    else:
        st = run.load_stats()["stages"].get(stage)
        if st is not None and not st["dropped"] and not st["errors"]:
            raise UserError(f"stage {stage!r} dropped nothing in {run_root}")
        raise UserError(f"no samples for stage {stage!r} in {run_root} (stages with samples: "
                        f"{', '.join(have) or 'none'})")
    rows = []
    for s in stages:
        rows += read_table(run.stage_samples(s)).to_pylist()
    if reason is not None:
        reasons = sorted({r["reason"] for r in rows})
        rows = [r for r in rows if r["reason"] == reason]
        if not rows:
            raise UserError(f"no samples for reason {reason!r} of stage {stage!r} (reasons: "
                            f"{', '.join(reasons) or 'none'})")
    return rows


# ----------------------------------------------------------------------------- display

def print_samples(run_dir: str | Path, stage: str, reason: str | None = None, n: int = 10,
                  chars: int = 600, console=None) -> None:
    """``thresher samples``: per reason, how many were dropped, then up to ``n`` samples."""
    from rich.panel import Panel
    from rich.text import Text

    from pipelines.inspection.funnel import make_console

    console = console or make_console()
    counts = RunDir.at(run_dir).load_stats()["stages"].get(stage, {})
    rows = load_samples(run_dir, stage, reason)
    by_reason: dict[str, list[dict]] = {}
    for r in rows:
        by_reason.setdefault(r["reason"], []).append(r)
    for rsn, items in by_reason.items():
        total = (counts.get("dropped", {}).get(rsn, 0) + counts.get("errors", {}).get(rsn, 0)
                 + counts.get("changed", {}).get(rsn, 0))
        what = {"error": "failed", "changed": "changed"}.get(items[0]["kind"], "dropped")
        shown = items[:n]
        console.print(Text.assemble((f"{stage} / {rsn}", "bold"),
                                    f": {total:,} {what}, {len(items)} sampled, "
                                    f"showing {len(shown)}"))
        for i, r in enumerate(shown, 1):
            console.print(Panel(_sample_body(r, chars), title=Text(f"{i}. {r['id']}"),
                                title_align="left", subtitle=Text(r["url"] or ""),
                                subtitle_align="left"))


def _sample_body(r: dict, chars: int):
    from rich.text import Text

    where = r["source"] or ""
    if r["record"] is not None:
        where += f" record {r['record']}"
    meta = [where] if where else []
    if r["score"] is not None:
        meta.append(f"score {r['score']:.4g}")
    if r["details"]:
        meta += [f"{k} {v}" for k, v in json.loads(r["details"]).items()]
    body = Text(" · ".join(meta), style="dim")
    text = r["text"]
    if text is None:
        body.append("\n(no text)", style="italic")
        return body
    cut = text[:chars]
    body.append("\n" + cut)
    rest = (r["text_chars"] or len(text)) - len(cut)
    if rest > 0:
        body.append(f" … (+{rest:,} chars)", style="dim")
    return body


def carried_samples(source: SourceRun) -> list[pa.Table]:
    """The annotated run's samples of what the new run carries over (finalize merges them
    with the new run's own): every sample of a stage carried whole or applied, the error
    samples of a deciding stage."""
    src = RunDir.at(source.run)
    out = []
    for name in source.carried:
        path = src.stage_samples(name)
        if not path.is_file():
            continue
        # cut at the annotated run's N already; its N must not cut the new run's samples
        table = read_table(path).select(sample_schema().names).cast(sample_schema())
        if source.roles.get(name, {}).get("how", "applied") != "applied":
            table = table.filter(pc.equal(table.column("kind"), "error"))
        out.append(table)
    return out
