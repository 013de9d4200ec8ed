"""The chain check: every column a stage needs is written by an earlier stage or the reader.

Each stage declares, from its parameters alone, the columns it reads and writes
(``Stage.input_columns`` / ``output_columns`` / ``removed_columns``) and each
reader the columns it yields (``Reader.provides``). Walking the chain with them
finds, before any model is loaded or any input read, what would otherwise fail
at run time: ``langid`` before ``extract`` on WARC input, ``minhash_dedup``
with ``scope: language`` and no language ID. Only what is certain is refused: a
Parquet input (or a stage whose columns are known only at run time) may carry
any column, so after one nothing is refused; ``require_columns`` at run time
stays the backstop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipelines.errors import ConfigError, ConfigErrors
from pipelines.io.readers import provided_columns
from pipelines.stage import ANY_COLUMN

if TYPE_CHECKING:
    from pipelines.config import PipelineConfig, StageSpec

#: the built-in stage that writes a column, for the hint of an error
WRITERS = {"text": "extract", "language": "langid", "language_score": "langid",
           "quality_score": "quality_classifier", "n_tokens": "count_tokens",
           "minhash_cluster_id": "minhash_dedup", "minhash_cluster_size": "minhash_dedup",
           "exact_cluster_id": "exact_dedup", "exact_cluster_size": "exact_dedup"}


def check_chain(cfg: PipelineConfig) -> None:
    """Raise ConfigErrors, one per stage, for columns no earlier stage or reader gives."""
    have = provided_columns(cfg.input)
    anything = ANY_COLUMN in have
    built = [spec.build() for spec in cfg.stages]  # params only: no setup, no model loaded
    removed_by: dict[str, str] = {}  # column -> the earlier stage that dropped it
    errors: list[ConfigError] = []
    for i, (spec, st) in enumerate(zip(cfg.stages, built)):
        if not anything:
            missing = [c for c in st.input_columns() if c not in have]
            if missing:
                col = missing[0]
                msg = (f"stage {spec.name!r} needs column {col!r}, which stage "
                       f"{removed_by[col]!r} before it drops" if col in removed_by
                       else _message(cfg, spec, col, built[i + 1:]))
                errors.append(ConfigError(msg, path=f"stages[{i}].{_param_naming(spec, col)}"))
                have.update(dict.fromkeys(missing))  # one line per mistake, not a cascade
        out = st.output_columns()
        anything = anything or ANY_COLUMN in out
        for c in st.removed_columns():
            have.pop(c, None)
            removed_by[c] = st.name
        have.update(out)
        for c in out:
            removed_by.pop(c, None)
    if errors:
        raise ConfigErrors(errors)


def _message(cfg: PipelineConfig, spec: StageSpec, col: str, later: list) -> str:
    fmt = cfg.input.format
    msg = (f"stage {spec.name!r} needs column {col!r}, which no earlier stage writes and "
           f"the {fmt} reader does not provide")
    after = next((s.name for s in later if col in s.output_columns()), None)
    if after is not None:
        return f"{msg} (move {after!r} before it)"
    writer = WRITERS.get(col)
    if writer == "extract" and fmt != "warc":
        writer = None
    hints = [f"put {writer!r} before it"] if writer else []
    if fmt == "jsonl":
        hints.append("or list it in input.fields" if hints else "list it in input.fields")
    elif fmt == "parquet":
        hints.append("or list it in input.columns" if hints else "list it in input.columns")
    return f"{msg} ({' '.join(hints)})" if hints else msg


def _param_naming(spec: StageSpec, col: str) -> str:
    """The parameter whose value asks for ``col`` (``scope: language``), else ``stage``."""
    params = spec.params
    for key in type(params).model_fields:  # only keys the user wrote have a line to name
        if key in params.model_fields_set and _names(getattr(params, key), col):
            return key
    return "stage"


def _names(value: Any, col: str) -> bool:
    if isinstance(value, str):
        return value == col or value.endswith(":" + col)  # keep: max:<column>
    if isinstance(value, (list, tuple)):
        return col in value
    return False
