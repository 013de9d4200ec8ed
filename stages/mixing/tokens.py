"""Token counts: an ``n_tokens`` column that every later stage's stats sum.

Counting once, in a column, makes token accounting cost one column sum per
stage instead of one tokenizer pass per stage. Two tokenizers:

- a ``tokenizer.json``, local or a URL (Hugging Face ``tokenizers``; sha256 recorded in
  the manifest and checked if ``tokenizer_sha256`` is given): exact counts for
  that model, without special tokens;
- ``approx``: ceil(UTF-8 bytes / 4), the usual rule of thumb for English BPE
  vocabularies (~4 characters a token). It is vectorised and needs no file, but
  is only an estimate: it overcounts for scripts with multi-byte characters
  relative to byte-level BPEs trained on them, and is wrong for CJK by a factor
  that depends on the vocabulary. Use a tokenizer.json when the numbers matter.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from pipelines.errors import UserError
from pipelines.io.models import file_sha256, local_model, model_key
from pipelines.lazy import lazy_module
from pipelines.schema import TEXT
from pipelines.stage import Params, Stage, require_columns, set_column
from pipelines.stats import TOKENS, StageStats

pa = lazy_module("pyarrow")
pc = lazy_module("pyarrow.compute")


def load_tokenizer(stage: str, spec: str, want: str | None, hint: str = ""):
    """A ``tokenizers`` tokenizer.json named by a path or URL (fetched through the model
    cache), checked against ``want`` when given: (tokenizer, its sha256). Every stage that
    takes ``tokenizer: <file>`` loads it here, so the errors read the same everywhere."""
    path = local_model(spec, want, what=f"stage {stage}: tokenizer")
    if not path.is_file():
        raise UserError(f"stage {stage}: tokenizer file {path} does not exist{hint}")
    sha256 = file_sha256(spec)
    if want is not None and want.lower() != sha256:
        raise UserError(f"stage {stage}: tokenizer {path} has sha256 {sha256}, "
                        f"expected {want}")
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(str(path)), sha256
    except Exception as exc:
        raise UserError(f"stage {stage}: {spec} is not a tokenizer.json: {exc}") from exc


class CountTokensParams(Params):
    tokenizer: str = Field(
        "approx", description="`approx` (UTF-8 bytes / 4) or the path or URL (s3://, gs://, "
                              "hf://, https://) of a tokenizer.json (Hugging Face tokenizers)")
    tokenizer_sha256: str | None = Field(None, description="expected sha256 of the file")
    column: str = Field(TEXT, description="text column to count")


class CountTokens(Stage):
    """Adds `n_tokens` (int64); stats then report tokens in/out for every later stage."""

    Params: ClassVar[type[Params]] = CountTokensParams
    params: CountTokensParams

    def input_columns(self) -> tuple[str, ...]:
        return (self.params.column,)

    def output_columns(self) -> dict[str, pa.DataType | None]:
        return {TOKENS: "int64"}

    def setup(self) -> None:
        self._tok = None
        self._sha256 = None
        if self.params.tokenizer == "approx":
            return
        self._tok, self._sha256 = load_tokenizer(
            self.name, self.params.tokenizer, self.params.tokenizer_sha256,
            " (use tokenizer: approx for the built-in estimate)")

    def model_files(self) -> dict[str, str]:
        return {model_key(self.params.tokenizer): self._sha256} if self._sha256 else {}

    def count(self, texts: pa.ChunkedArray | pa.Array) -> pa.Array:
        texts = pc.fill_null(texts, "")
        if self._tok is None:
            nbytes = pc.binary_length(texts).cast(pa.int64())
            return pc.divide(pc.add(nbytes, 3), 4)  # integer ceil(bytes / 4)
        enc = self._tok.encode_batch(texts.to_pylist(), add_special_tokens=False)
        return pa.array([len(e.ids) for e in enc], pa.int64())

    def process(self, table: pa.Table, stats: StageStats) -> pa.Table:
        require_columns(self, table, (self.params.column,))
        counts = self.count(table.column(self.params.column))
        if isinstance(counts, pa.ChunkedArray):
            counts = counts.combine_chunks()
        return set_column(table, TOKENS, counts, pa.int64())
