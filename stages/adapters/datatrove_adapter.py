"""Run a datatrove pipeline step (a filter, a formatter, ...) as a thresher stage.

    - stage: datatrove
      step: datatrove.pipeline.filters:GopherQualityFilter
      args: {min_doc_words: 100}

Each row becomes a ``datatrove.data.Document`` (``text``, ``id``, and the other
columns in ``metadata``). Filters (``BaseFilter``) are called per document, so a
drop keeps datatrove's reason (``(False, "gopher_short_doc")``), or ``filtered``
when it gives none, and an exception on one document is counted as an error.
Other steps run through their ``run`` generator on each batch and may only drop
or modify the documents they are given. Text the step rewrites replaces ``text``;
metadata keys it adds become columns (or only those listed in ``columns``).
"""

from __future__ import annotations

import importlib
import json
import logging
from typing import Any, ClassVar, Literal

from pydantic import Field

from pipelines.errors import UserError
from pipelines.io.models import is_file, local_model, model_hashes
from pipelines.io.storage import is_remote, map_strings
from pipelines.lazy import lazy_module
from pipelines.schema import ID, TEXT
from pipelines.stage import ANY_COLUMN, ErrorReason, Filter, FilterParams, Params, iter_docs

pa = lazy_module("pyarrow")

log = logging.getLogger(__name__)

_TYPES = {"string": "string", "int64": "int64", "float64": "float64",
          "bool": "bool", "json": "string"}


class DatatroveParams(FilterParams):
    step: str = Field(description="import path of the step class, e.g. "
                                  "datatrove.pipeline.filters:GopherQualityFilter")
    args: dict[str, Any] = Field(
        {}, description="keyword arguments for the step's constructor; one naming a remote "
                        "file (s3://, gs://, hf://, https://) is given the step as a local copy")
    metadata_columns: list[str] | None = Field(
        None, description="columns given to the step as metadata (default: all but id and text)")
    columns: dict[str, Literal["string", "int64", "float64", "bool", "json"]] | None = Field(
        None, description="metadata keys to write back as columns, with their types (default: "
                          "every key the step adds; numbers as float64, lists/dicts as json)")
    default_reason: str = Field("filtered", description="drop reason when the step gives none")


class Datatrove(Filter):
    """Any datatrove pipeline step by import path; its drops keep datatrove's reasons."""

    Params: ClassVar[type[Params]] = DatatroveParams
    params: DatatroveParams

    def output_columns(self) -> dict[str, pa.DataType | None]:
        """`text` (a step may rewrite it) and the metadata keys written back: those listed
        in ``columns``, else whatever keys the step adds (known only at run time)."""
        cols = self.params.columns
        out: dict[str, pa.DataType | None] = {TEXT: "string"}
        out.update({ANY_COLUMN: None} if cols is None else
                   {k: _TYPES[t] for k, t in cols.items()})
        if self.params.mode == "annotate":
            out[f"{self.name}_reason"] = "string"
        return out

    def setup(self) -> None:
        try:
            from datatrove.pipeline.base import PipelineStep
            from datatrove.pipeline.filters.base_filter import BaseFilter
        except ImportError as e:
            raise UserError(f"stage {self.name}: datatrove is not installed ({e}); "
                            "pip install datatrove") from None
        cls = _import(self.params.step, self.name)
        if not (isinstance(cls, type) and issubclass(cls, PipelineStep)):
            raise UserError(f"stage {self.name}: {self.params.step} is not a datatrove "
                            "PipelineStep class")
        files = [v for v in _strings(self.params.args) if is_file(v)]
        local = {v: str(local_model(v, what=f"stage {self.name}: file")) for v in files
                 if is_remote(v)}
        args = map_strings(self.params.args, lambda s: local.get(s, s))  # URL -> local copy
        try:
            self._step = cls(**args)
        except Exception as e:  # a bad argument or a missing optional dependency
            raise UserError(f"stage {self.name}: cannot build {self.params.step}"
                            f"({_args(self.params.args)}): {type(e).__name__}: {e}") from None
        self._is_filter = isinstance(self._step, BaseFilter)
        self._sha256 = model_hashes(files)

    def model_files(self) -> dict[str, str]:
        """Arguments naming a file (a model, a word list): the step reads it, so the
        manifest records it (by URL if remote). What datatrove ships or downloads itself
        goes with its version."""
        return self._sha256

    def check_batch(self, table: pa.Table) -> tuple[list[str | None], dict[str, list]]:
        from datatrove.data import Document

        meta_cols = self.params.metadata_columns
        if meta_cols is None:
            meta_cols = [c for c in table.schema.names if c not in (ID, TEXT)]
        rows = list(iter_docs(table, tuple(dict.fromkeys([ID, TEXT, *meta_cols]))))
        docs = [Document(text=r[TEXT] or "", id=str(r[ID] if r[ID] is not None else i),
                         metadata={c: r[c] for c in meta_cols})
                for i, r in enumerate(rows)]
        original = [r[TEXT] for r in rows]
        reasons = self._filter(docs) if self._is_filter else self._run(docs)
        texts = [d.text if r is None else t for d, r, t in zip(docs, reasons, original)]
        cols: dict[str, list] = {TEXT: texts}
        types: dict[str, pa.DataType] = {TEXT: pa.string()}
        for key, typ in self._new_keys(docs, set(table.schema.names)).items():
            values = [d.metadata.get(key) for d in docs]
            if typ == "json":
                values = [None if v is None else json.dumps(v, sort_keys=True, default=str)
                          for v in values]
            cols[key] = values
            types[key] = _TYPES[typ]
        self.annotations = types
        return reasons, cols

    def _filter(self, docs: list) -> list[str | None]:
        from datatrove.pipeline.filters.base_filter import get_filter_result

        step, reasons = self._step, []
        size = max(1, getattr(step, "batch_size", 1))
        for start in range(0, len(docs), size):
            chunk = docs[start:start + size]
            try:
                results = step.filter_batch(chunk) if size > 1 else [step.filter(chunk[0])]
            except Exception as e:  # one bad document (or batch) must not kill the task
                log.warning("stage %s: %s on document %s: %s", self.name, type(e).__name__,
                            chunk[0].id, e)
                reasons += [ErrorReason(f"exception:{type(e).__name__}")] * len(chunk)
                continue
            for res in results:
                keep, reason = get_filter_result(res)
                reasons.append(None if keep else (reason or self.params.default_reason))
        return reasons

    def _run(self, docs: list) -> list[str | None]:
        given = {id(d) for d in docs}
        out = set()
        for d in self._step.run(iter(docs), rank=0, world_size=1):
            if id(d) not in given:
                raise UserError(f"stage {self.name}: {self.params.step} yielded a document "
                                "that was not among its inputs; only steps that drop or "
                                "modify documents can run inside thresher")
            out.add(id(d))
        return [None if id(d) in out else self.params.default_reason for d in docs]

    def _new_keys(self, docs: list, existing: set[str]) -> dict[str, str]:
        """Metadata keys to write back, with their column type."""
        if self.params.columns is not None:
            return dict(self.params.columns)
        found: dict[str, str] = {}
        for d in docs:
            for key, value in d.metadata.items():
                if key in existing or value is None:
                    continue
                typ = ("bool" if isinstance(value, bool) else "string" if isinstance(value, str)
                       else "float64" if isinstance(value, (int, float)) else "json")
                if found.get(key, typ) != typ:
                    typ = "json"  # mixed types: keep every value, as JSON
                found[key] = typ
        return {k: found[k] for k in sorted(found)}


def _strings(value: Any) -> list[str]:
    """Every string in the step's arguments (lists and dicts walked)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return []


def _import(path: str, stage: str) -> Any:
    module, sep, attr = path.partition(":")
    if not sep:
        module, _, attr = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise UserError(f"stage {stage}: cannot import step {path}: {e}") from None


def _args(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in args.items())
