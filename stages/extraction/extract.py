"""HTML -> main text with trafilatura 2.x, or with resiliparse (faster, less precise).

trafilatura runs through stages/extraction/extract_fast.py: its own code, with its slowest XPath
expressions compiled to Python and the page parsed with a C-level element class lookup;
the text is byte-identical to ``trafilatura.extract`` (tested on every real page we have).

docs/benchmarks.md ("Extraction") measures both against the ScrapingHub gold text.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from pipelines.deadline import CpuDeadline
from pipelines.errors import UserError
from pipelines.lazy import lazy_module
from pipelines.schema import HTML, SOURCE, TEXT, URL
from pipelines.stage import Params, Stage, TaskContext, iter_docs, set_column
from pipelines.stats import StageStats

pa = lazy_module("pyarrow")

log = logging.getLogger(__name__)

TRAFILATURA_ONLY = ("favor_precision", "favor_recall", "include_formatting", "deduplicate",
                    "fast", "output_format", "target_language")


class ExtractParams(Params):
    extractor: Literal["trafilatura", "resiliparse"] = Field(
        "trafilatura", description="trafilatura, or resiliparse's main-content "
                                   "extract_plain_text (needs the resiliparse package; takes "
                                   "include_comments and include_links, not the "
                                   "trafilatura-only options)")
    favor_precision: bool = Field(False, description="prefer less text, less boilerplate")
    favor_recall: bool = Field(False, description="prefer more text")

    @field_validator("favor_recall")
    @classmethod
    def _not_both(cls, v: bool, info: ValidationInfo) -> bool:
        if v and info.data.get("favor_precision"):
            raise ValueError("favor_precision and favor_recall pull opposite ways "
                             "(trafilatura would ignore favor_precision); set one of them")
        return v
    include_comments: bool = Field(False, description="keep user comments below the content")
    include_tables: bool = Field(True, description="keep text inside <table>")
    include_links: bool = False
    include_formatting: bool = False
    deduplicate: bool = Field(
        False, description="drop repeated text segments (cache reset per task, so the "
                           "result does not depend on task order)")
    fast: bool = Field(False, description="skip trafilatura's fallback extractors")
    output_format: Literal["txt", "markdown"] = "txt"
    target_language: str | None = Field(None, description="ISO 639-1 code trafilatura keeps")
    keep_html: bool = Field(False, description="keep the `html` column after extraction")
    timeout_s: float | None = Field(
        60.0, gt=0, description="CPU seconds one page may take; a page that takes longer is "
                                "counted as error extract_timeout (null: no limit)")

    @model_validator(mode="after")
    def _options_of_the_extractor(self) -> ExtractParams:
        if self.extractor != "trafilatura":
            fields = type(self).model_fields
            bad = [k for k in TRAFILATURA_ONLY if getattr(self, k) != fields[k].default]
            if bad:
                raise ValueError(f"{', '.join(bad)}: only for extractor trafilatura, "
                                 f"not {self.extractor}")
        return self


def _docs(table: pa.Table, rows: int = 16):
    """The documents a few rows at a time: pages are large, and a whole batch of them as
    Python strings would double the memory the Arrow batch already takes."""
    for start in range(0, table.num_rows, rows):
        yield from iter_docs(table.slice(start, rows), ("id", HTML, URL, SOURCE))


class Extract(Stage):
    """Extracts main text from the `html` column (trafilatura or resiliparse); drops pages
    with none.

    Reasons: `no_text` (the extractor found no main content), `no_html`; errors:
    `extract_timeout` (the page took more than `timeout_s` CPU seconds),
    `exception:<Type>` (the extractor raised).
    """

    Params: ClassVar[type[Params]] = ExtractParams
    params: ExtractParams

    def input_columns(self) -> tuple[str, ...]:
        return (HTML,)

    def output_columns(self) -> dict[str, pa.DataType | None]:
        return {TEXT: "string"}

    def removed_columns(self) -> tuple[str, ...]:
        return () if self.params.keep_html else (HTML,)

    def setup(self) -> None:
        if self.params.extractor == "resiliparse":
            try:
                import resiliparse.extract.html2text  # noqa: F401
            except ImportError:
                raise UserError(f"stage {self.name}: extractor resiliparse needs the "
                                "resiliparse package (pip install resiliparse)") from None
        else:
            from stages.extraction import extract_fast

            extract_fast.install()  # imports trafilatura once per process
        self._deadline = CpuDeadline(self.params.timeout_s)

    def begin_task(self, ctx: TaskContext) -> None:
        self._dedup_cache = False
        if self.params.deduplicate:
            from trafilatura.deduplication import LRUCache

            self._dedup_cache = LRUCache(maxsize=2**20)

    def _trafilatura(self, html: str, url: str | None) -> str | None:
        """``trafilatura.extract`` through stages.extraction.extract_fast: the same text, byte for
        byte (tests/test_extract_fast.py), in less CPU time (docs/benchmarks.md)."""
        from stages.extraction import extract_fast

        p = self.params
        return extract_fast.extract(
            html, url=url, favor_precision=p.favor_precision, favor_recall=p.favor_recall,
            include_comments=p.include_comments, include_tables=p.include_tables,
            include_links=p.include_links, include_formatting=p.include_formatting, fast=p.fast,
            deduplicate=getattr(self, "_dedup_cache", False), output_format=p.output_format,
            target_language=p.target_language)

    def _resiliparse(self, html: str, url: str | None) -> str | None:
        """Main content as plain text with block structure (lines), like trafilatura's."""
        from resiliparse.extract.html2text import extract_plain_text

        p = self.params
        return extract_plain_text(
            html, main_content=True, preserve_formatting=True, comments=p.include_comments,
            links=p.include_links, skip_elements=None if p.include_tables else ["table"])

    def process(self, table: pa.Table, stats: StageStats) -> pa.Table:
        p = self.params
        extract = self._resiliparse if p.extractor == "resiliparse" else self._trafilatura
        if HTML not in table.schema.names:
            stats.drop_rows("no_html", table)
            return table.slice(0, 0)
        deadline = getattr(self, "_deadline", None) or CpuDeadline(p.timeout_s)
        texts: list[str | None] = []
        keep: list[bool] = []
        for doc in _docs(table):
            html = doc[HTML]
            text = None
            if html:
                try:
                    timed_out, text = deadline.call(partial(extract, html, doc[URL]))
                except Exception as exc:  # one bad page must not kill the task
                    log.warning("extract: %s on %s: %s", type(exc).__name__, doc["id"], exc)
                    stats.error(f"exception:{type(exc).__name__}", doc=doc)
                    texts.append(None)
                    keep.append(False)
                    continue
                if timed_out:
                    log.warning("extract: %s (%s, %d chars) took over %ss of CPU; skipped",
                                doc["id"], doc[URL], len(html), p.timeout_s)
                    stats.error("extract_timeout", doc=doc)
                    texts.append(None)
                    keep.append(False)
                    continue
            if not text or not text.strip():
                stats.drop("no_text" if html else "no_html", doc=doc)
                texts.append(None)
                keep.append(False)
            else:
                texts.append(text)
                keep.append(True)
        if TEXT in table.schema.names:
            table = set_column(table, TEXT, texts, pa.string())
        else:  # right after `id`, where readers of the output expect it
            table = table.add_column(1, pa.field(TEXT, pa.string()), pa.array(texts, pa.string()))
        if not p.keep_html:
            table = table.drop_columns([HTML])
        return table.filter(pa.array(keep, pa.bool_()))
