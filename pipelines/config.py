"""Pipeline configuration: pydantic models, YAML (de)serialisation, overrides.

The YAML file is the serialised form of a ``PipelineConfig``: ``load_config``
parses and validates it (errors name the file, line, key path and what was
expected), ``PipelineConfig.to_yaml`` writes it back. The *resolved* config
(every default filled in) is what a run directory stores and what every task
reads: it is the contract between the planner and the executors.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_serializer,
    model_validator,
)

from pipelines import registry
from pipelines.errors import ConfigError, ConfigErrors, UserError
from pipelines.stage import Params, Stage


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ----------------------------------------------------------------------------- input

class InputSample(Strict):
    n: int = Field(gt=0, description="how many listed paths to take")
    seed: int = Field(0, description="the same seed takes the same paths")


# input keys written out only when set (configs without them keep their fingerprint)
_UNSET_OMITTED = ("paths", "paths_file", "prefix", "limit", "sample", "storage_options",
                  "max_task_bytes")


class InputBase(Strict):
    paths: Annotated[list[str], Field(min_length=1)] | None = Field(
        None, description="glob patterns of input files: local paths, file://, s3://, gs://, "
                          "hf:// (or paths_file)")
    paths_file: str | None = Field(
        None, description="a listing of input paths, one per line (plain, .gz or .zst; "
                          "local or remote), e.g. Common Crawl's warc.paths.gz; instead of "
                          "`paths`")
    prefix: str | None = Field(
        None, description="joined in front of each path of `paths_file` (e.g. "
                          "s3://commoncrawl/); also the default root")
    limit: int | None = Field(None, gt=0, description="the first N paths of `paths_file`")
    sample: InputSample | None = Field(
        None, description="N paths of `paths_file` drawn with a seed (deterministic)")
    storage_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="filesystem options by scheme, e.g. {s3: {endpoint_url: ..., key: "
                    "'${AWS_KEY}'}}; secrets only as ${VAR} references (resolved from the "
                    "environment when used, never written out); also used for model "
                    "files and word lists given as URLs")
    root: str | None = Field(
        None, description="directory that `source` paths are relative to "
                          "(default: the fixed prefix of the first glob, or `prefix`)")
    batch_size: int = Field(256, gt=0, description="documents per Arrow batch")
    max_task_bytes: int | None = Field(
        None, gt=0,
        description="split input files larger than this into several tasks (bytes, or "
                    "'256MiB', '1GB'...): Parquet by row groups, plain JSONL and plain or "
                    "member-gzipped WARC/WET by byte ranges that resync on line and record "
                    "boundaries, gzip/zstd JSONL of several members/frames on a member "
                    "then a line (one member or frame: not split, said at planning). "
                    "Unset: one task a file")
    dataset: str | Annotated[dict[str, Annotated[list[str], Field(min_length=1)]],
                             Field(min_length=1)] | None = Field(
        None, description="fills a `dataset` column (stats per dataset, mixture targets): "
                          "one name for every input, or name -> globs of `source` paths "
                          "(relative to the root; first match wins, every input must match)")

    @pydantic.field_validator("max_task_bytes", mode="before")
    @classmethod
    def _byte_size(cls, v: Any) -> Any:
        if not isinstance(v, str):
            return v
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]i?[bB]?|[bB])?\s*", v)
        if m is None:
            raise ValueError(f"{v!r}: expected a byte count such as 268435456, '256MiB' "
                             "or '1GB'")
        unit = (m.group(2) or "b").lower().rstrip("b")
        base = 1024 if unit.endswith("i") else 1000
        return int(float(m.group(1)) * base ** " kmgt".index(unit[:1] or " "))

    @model_validator(mode="after")
    def _one_kind_of_listing(self) -> InputBase:
        if self.paths is None and self.paths_file is None:
            raise ConfigError("give `paths` (input globs) or `paths_file` (a listing of "
                              "input paths)", path="input.paths")
        if self.paths is not None and self.paths_file is not None:
            raise ConfigError("`paths` and `paths_file` exclude each other; give one",
                              path="input.paths_file")
        if self.paths_file is None:
            for key in ("prefix", "limit", "sample"):
                if getattr(self, key) is not None:
                    raise ConfigError(f"`{key}` applies to `paths_file` only",
                                      path=f"input.{key}")
        if self.limit is not None and self.sample is not None:
            raise ConfigError("`limit` and `sample` exclude each other; give one",
                              path="input.sample")
        if self.storage_options:
            from pipelines.io.storage import StorageError, StorageOptions, literal_secrets

            try:
                StorageOptions(self.storage_options)
            except StorageError as exc:
                raise ConfigError(str(exc).split(": ", 1)[1],
                                  path="input.storage_options") from None
            bad = literal_secrets(self.storage_options, "input.storage_options")
            if bad:
                raise ConfigError("write secrets as ${VAR} references to environment "
                                  "variables, never literally (the config is copied into "
                                  "the run directory)", path=bad[0])
        return self

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler) -> dict[str, Any]:
        out = handler(self)
        for key in _UNSET_OMITTED:
            if key in out and out[key] in (None, {}):
                del out[key]
        return out

    def dataset_of(self, source: str) -> str | None:
        """The dataset an input file belongs to (None: no `dataset` column is added)."""
        if self.dataset is None or isinstance(self.dataset, str):
            return self.dataset
        for name, globs in self.dataset.items():
            if any(fnmatch.fnmatchcase(source, g) for g in globs):
                return name
        raise ConfigError(f"input {source!r} matches none of the globs of input.dataset "
                          f"({', '.join(self.dataset)})", path="input.dataset")


class WarcInput(InputBase):
    format: Literal["warc"] = "warc"
    content_types: list[str] = Field(
        ["text/html", "application/xhtml+xml"], min_length=1,
        description="HTTP Content-Type values kept; other responses are counted as not_html")
    only_ok_status: bool = Field(
        True, description="drop responses whose HTTP status is not 2xx (reason http_status)")
    default_charset: str = Field(
        "cp1252", description="charset for pages that declare none and are not valid UTF-8")
    max_record_bytes: int | None = Field(
        10 * 2**20, gt=0, description="larger records are dropped without being read into "
                                      "memory (reason too_large); null: no limit")
    backend: Literal["warcio", "fastwarc"] = Field(
        "warcio", description="record parser: warcio, or fastwarc (faster, same output; "
                              "needs the fastwarc package)")


class WetInput(InputBase):
    format: Literal["wet"] = "wet"
    max_record_bytes: int | None = Field(
        10 * 2**20, gt=0, description="larger records are dropped without being read into "
                                      "memory (reason too_large); null: no limit")


class JsonlInput(InputBase):
    format: Literal["jsonl"] = "jsonl"
    text_key: str = "text"
    id_key: str = "id"
    url_key: str = "url"
    fields: list[str] = Field(
        [], description="further top-level keys kept as string/number columns "
                        "(the rest go into a `metadata` JSON column)")
    max_record_bytes: int | None = Field(
        64 * 2**20, gt=0, description="longer lines are skipped without being held in memory "
                                      "(reason too_large); null: no limit")


class ParquetInput(InputBase):
    format: Literal["parquet"] = "parquet"
    text_column: str = "text"
    id_column: str = "id"
    columns: list[str] | None = Field(None, description="columns to read (default: all)")


InputConfig = Annotated[WarcInput | WetInput | JsonlInput | ParquetInput,
                        Field(discriminator="format")]
INPUT_FORMATS = ("warc", "wet", "jsonl", "parquet")


# ----------------------------------------------------------------------------- output

class OutputConfig(Strict):
    path: str = Field(description="run directory; shards go to <path>/data/")
    format: Literal["parquet", "jsonl"] = "parquet"
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"
    compression_level: int | None = Field(
        None, description="zstd: up to 22 (negative: faster); gzip: 0-9; default: the "
                          "codec's own")
    intermediate_compression: Literal["auto", "zstd", "snappy", "gzip", "none"] = Field(
        "auto", description="codec of the intermediate shards between a run's phases "
                            "(phases/, removed when the run ends). auto: none on a local disk "
                            "(much faster to write and read, about twice the bytes: "
                            "docs/benchmarks.md), zstd in object storage or on a network "
                            "filesystem (NFS, Lustre, GPFS, ...); zstd also suits a short disk")
    rows_per_row_group: int = Field(10_000, gt=0)
    rows_per_file: int = Field(100_000, gt=0)
    drop_columns: list[str] = Field([], description="columns not written to the final shards")
    keep_intermediate: bool = Field(
        False, description="keep the intermediate shards of multi-phase runs (phases/) after "
                           "the run is finalized; global stages' side files (work/) are kept")

    @pydantic.field_validator("compression")
    @classmethod
    def _codec_of_the_format(cls, v: str, info: pydantic.ValidationInfo) -> str:
        if v == "snappy" and info.data.get("format") == "jsonl":
            raise ValueError("snappy is a Parquet codec; JSONL output takes zstd, gzip or none")
        return v

    @pydantic.field_validator("compression_level")
    @classmethod
    def _level_of_the_codec(cls, v: int | None, info: pydantic.ValidationInfo) -> int | None:
        codec = info.data.get("compression")
        if v is None or codec is None:
            return v
        if codec in ("snappy", "none"):
            raise ValueError(f"compression {codec} takes no level")
        if codec == "gzip" and info.data.get("format") == "jsonl":
            raise ValueError("JSONL gzip output is written at gzip's default level; "
                             "remove compression_level or use zstd")
        low, high = (0, 9) if codec == "gzip" else (-(2**17), 22)
        if not low <= v <= high:
            raise ValueError(f"a {codec} level is at most {high}" if v > high else
                             f"a {codec} level is at least {low}")
        return v


class SamplesConfig(Strict):
    """Samples of dropped documents (samples/<stage>.parquet); they do not change the output."""

    per_reason: int = Field(20, ge=0, description="documents kept per stage and reason (the "
                                                  "smallest hash of seed and id); 0: none")
    max_chars: int = Field(2000, gt=0, description="text of each sample cut to this length")


# ----------------------------------------------------------------------------- executor

class LocalExecutor(Strict):
    kind: Literal["local"] = "local"
    workers: int = Field(1, ge=1, description="worker processes")


class RayExecutor(Strict):
    kind: Literal["ray"] = "ray"
    address: str = Field(
        "local", description="local: start a private Ray cluster for this run; auto: join the "
                             "cluster started with `ray start`; or host:port")
    workers: int | None = Field(
        None, ge=1, description="at most this many tasks at once (and the CPUs of a local "
                                "cluster); default: all CPUs of the cluster")
    cpus_per_task: float = Field(1.0, gt=0)
    max_retries: int = Field(3, ge=0, description="retries of a task whose worker died")
    object_store_mb: int = Field(100, ge=80, description="object store of a local cluster")


class SlurmExecutor(Strict):
    kind: Literal["slurm"] = "slurm"
    partition: str | None = Field(None, description="sbatch --partition (default: the "
                                                    "cluster's default partition)")
    account: str | None = Field(None, description="sbatch --account")
    qos: str | None = Field(None, description="sbatch --qos")
    time: str | None = Field(None, description="time limit of one task, e.g. '2:00:00' (quoted: "
                                               "YAML reads 2:00:00 as a number)")
    cpus_per_task: int = Field(1, ge=1, description="sbatch --cpus-per-task")
    mem: str | None = Field(None, description="memory of one task, e.g. 4G (sbatch --mem)")
    max_parallel: int | None = Field(
        None, ge=1, validation_alias=pydantic.AliasChoices("max_parallel", "workers"),
        description="at most this many tasks running at once (array %throttle); "
                    "`workers` / --workers set it too")
    tasks_per_job: int = Field(
        1, ge=1, description="tasks one array job runs one after another in one process: "
                             "models and blocklists are loaded once for them, and the "
                             "scheduler sees that many times fewer jobs (`time` and `mem` "
                             "are then for the whole group)")
    sbatch_args: list[str] = Field([], description="extra sbatch arguments, e.g. [--exclusive]")
    setup: list[str] = Field([], description="shell lines run before each task "
                                             "(module load, venv activation)")
    template: str | None = Field(None, description="job script template; default "
                                                   "pipelines/executors/templates/task.sbatch")
    python: str | None = Field(None, description="python on the compute nodes; default: the "
                                                 "interpreter running thresher")

    @pydantic.field_validator("time", mode="before")
    @classmethod
    def _time_is_text(cls, v: Any) -> Any:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            raise ValueError("quote the time limit, e.g. time: '2:00:00' (YAML reads an "
                             "unquoted 2:00:00 as the number 7200)")
        return v

    @pydantic.field_validator("mem")
    @classmethod
    def _mem_is_slurm_size(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"\d+[KMGT]?", v):
            raise ValueError("expected a size as sbatch --mem takes it, e.g. 4G or 4000 (MB)")
        return v


ExecutorConfig = Annotated[LocalExecutor | RayExecutor | SlurmExecutor,
                           Field(discriminator="kind")]
EXECUTOR_KINDS = ("local", "ray", "slurm")


# ----------------------------------------------------------------------------- stages

@dataclass(frozen=True)
class StageSpec:
    """One configured stage: registered type, instance name, validated params."""

    stage: str
    name: str
    params: Params

    def build(self) -> Stage:
        return registry.get(self.stage)(self.params, name=self.name)

    def to_dict(self, resolved: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"stage": self.stage}
        if resolved or self.name != default_stage_name(self.stage):
            out["name"] = self.name
        out.update(self.params.model_dump(mode="json", exclude_unset=not resolved))
        return out


def stage(stage_name: str, name: str | None = None, **params: Any) -> StageSpec:
    """Build a StageSpec from Python: ``stage("langid", languages=["en"])``."""
    cls = registry.get(stage_name)
    try:
        p = cls.Params(**params)
    except ValidationError as e:
        loc, msg = _params_error(e, cls.Params)
        raise UserError(f"stage {stage_name!r}: {_loc_path(tuple(loc))}: {msg}") from None
    name = name or default_stage_name(stage_name)
    problem = _name_problem(name)
    if problem:
        raise UserError(f"stage {stage_name!r}: name {name!r}: {problem}")
    return StageSpec(stage_name, name, p)


def _check_error_rate(v: Any) -> Any:
    """``max_error_rate``: a fraction, or {stage name or `default`: fraction}."""
    def fraction(x: Any) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x <= 1

    if v is None or fraction(v):
        return v
    if isinstance(v, dict) and all(isinstance(k, str) and fraction(x) for k, x in v.items()):
        return v
    raise ValueError("expected a fraction between 0 and 1, or a mapping of stage name (or "
                     "`default`) to such a fraction")


ErrorRate = Annotated[float | dict[str, float] | None, BeforeValidator(_check_error_rate),
                      Field(description="a task fails when a stage's errors exceed this share of "
                                        "its documents (per stage: {read: 0.5, default: 0.1})")]


def default_stage_name(stage_type: str) -> str:
    """A stage's instance name: its registered name, or the class name for import paths."""
    return stage_type.rpartition(":")[2].lower() if ":" in stage_type else stage_type


class _Top(Strict):
    name: str = "run"
    seed: int = 0
    input: InputConfig
    output: OutputConfig
    samples: SamplesConfig = Field(default_factory=SamplesConfig)
    max_error_rate: ErrorRate = None
    executor: ExecutorConfig = Field(default_factory=LocalExecutor)
    stages: list[Any] = []  # each entry is validated against its stage's Params


class PipelineConfig(BaseModel):
    """A whole pipeline. Build it from YAML (``load_config``) or from Python."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    name: str = "run"
    seed: int = 0
    input: InputConfig
    output: OutputConfig
    samples: SamplesConfig = Field(default_factory=SamplesConfig)
    max_error_rate: ErrorRate = None
    executor: ExecutorConfig = Field(default_factory=LocalExecutor)
    stages: list[StageSpec] = []

    @model_validator(mode="after")
    def _unique_stage_names(self) -> PipelineConfig:
        seen: dict[str, int] = {}
        for i, s in enumerate(self.stages):
            if s.name in seen:
                raise ConfigError(_duplicate_message(s.name, seen[s.name]),
                                  path=f"stages[{i}].name")
            seen[s.name] = i
        return self

    @model_validator(mode="after")
    def _error_rate_names_stages(self) -> PipelineConfig:
        if isinstance(self.max_error_rate, dict):
            known = ["default", *PSEUDO_STAGES, *(s.name for s in self.stages)]
            for key in self.max_error_rate:
                if key not in known:
                    raise ConfigError(f"no stage named {key!r}; expected one of: "
                                      + ", ".join(known), path=f"max_error_rate.{key}")
        return self

    def error_rate_limit(self, stage: str) -> float | None:
        """The ``max_error_rate`` that applies to ``stage`` (None: no limit)."""
        m = self.max_error_rate
        return m.get(stage, m.get("default")) if isinstance(m, dict) else m

    def to_dict(self, resolved: bool = True) -> dict[str, Any]:
        def dump(m: BaseModel) -> dict:
            return m.model_dump(mode="json", exclude_unset=not resolved)

        out: dict[str, Any] = {}
        if resolved or "name" in self.model_fields_set:
            out["name"] = self.name
        if resolved or "seed" in self.model_fields_set:
            out["seed"] = self.seed
        out["input"] = dump(self.input)
        if not resolved:
            out["input"]["format"] = self.input.format
        out["output"] = dump(self.output)
        if resolved or "samples" in self.model_fields_set:
            out["samples"] = dump(self.samples)
        if resolved or "max_error_rate" in self.model_fields_set:
            out["max_error_rate"] = self.max_error_rate
        if resolved or "executor" in self.model_fields_set:
            out["executor"] = dump(self.executor)
            if not resolved:
                out["executor"].setdefault("kind", self.executor.kind)
        out["stages"] = [s.to_dict(resolved) for s in self.stages]
        return out

    def to_yaml(self, resolved: bool = True) -> str:
        return yaml.safe_dump(self.to_dict(resolved), sort_keys=False, allow_unicode=True)

    def fingerprint(self) -> str:
        """Hash of everything that decides the output (not the executor or output path)."""
        d = self.to_dict(resolved=True)
        d.pop("executor")
        d["output"].pop("path")
        d["output"].pop("keep_intermediate", None)  # housekeeping, not output
        d.pop("samples", None)  # what is shown about drops, not what is kept
        d.pop("max_error_rate", None)  # whether a task may finish, not what it writes
        d["input"].pop("storage_options", None)  # where and how to read, not what
        for spec, s in zip(self.stages, d["stages"]):  # a renamed parameter hashes as before
            for old, new in getattr(spec.params, "renamed", {}).items():
                s[old] = s.pop(new)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()

    def with_overrides(self, **kw: Any) -> PipelineConfig:
        data = self.to_dict(resolved=False)
        apply_overrides(data, **kw)
        return config_from_dict(data)

    def input_files(self, skipped: list[tuple[Path, str]] | None = None
                    ) -> list[tuple[Path, str]]:
        """(absolute path, source relative to the input root), sorted, deduplicated;
        directories the globs matched are appended to ``skipped``."""
        from pipelines.io.discovery import resolve_inputs

        return resolve_inputs(self.input, skipped)


# ----------------------------------------------------------------------------- loading

# The engine's re-reads of a run's resolved config (``check_inputs=False``): every phase
# of a run in one process reads the same file, validated once. Keyed by the text, so a
# changed file is read again; a PipelineConfig is frozen, so sharing it is safe.
_RESOLVED: dict[tuple[str, str], PipelineConfig] = {}


def load_config(path: str | os.PathLike, overrides: dict[str, Any] | None = None,
                check_inputs: bool = True) -> PipelineConfig:
    """Read, override and validate a YAML config; raises ConfigErrors with file:line.

    ``check_inputs=False`` is the engine re-reading a run's resolved config: its inputs
    and its chain were checked when the run was made (or, for a config built in Python,
    are left to run time), so neither is checked again, and a process validates the
    same text once (``_RESOLVED``)."""
    from pipelines.io import storage

    path = str(path)
    try:
        if storage.is_remote(path):
            text = storage.default_storage().read_bytes(path).decode("utf-8")
        else:
            text = Path(storage.local_path(path)).read_text(encoding="utf-8")
    except storage.StorageError as e:
        raise UserError(f"cannot read config: {e}") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read config: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: cannot read config: not UTF-8 text "
                        f"(byte {e.start}: {e.reason})") from None
    if check_inputs or overrides:
        return config_from_yaml(text, file=path, overrides=overrides,
                                check_inputs=check_inputs, check_chain=check_inputs)
    key = (path, text)
    if key not in _RESOLVED:
        _RESOLVED.clear()  # one run's config per process is the common case: keep one
        _RESOLVED[key] = config_from_yaml(text, file=path, check_chain=False)
    return _RESOLVED[key]


def read_yaml(text: str) -> Any:
    """``yaml.safe_load`` with libyaml's parser where PyYAML has it (several times faster on a
    resolved config, which every task reads); a document it refuses is parsed again by
    the pure-Python one, so what is accepted and every error message stay PyYAML's."""
    loader = getattr(yaml, "CSafeLoader", None)
    if loader is not None:
        try:
            return yaml.load(text, Loader=loader)  # noqa: S506 (a safe loader)
        except yaml.YAMLError:
            pass
    return yaml.safe_load(text)


def config_from_yaml(text: str, file: str | None = None, overrides: dict[str, Any] | None = None,
                     check_inputs: bool = False, check_chain: bool = True) -> PipelineConfig:
    """A config from YAML text: validated, and its chain checked (pipelines/chain.py):
    ``config_from_dict`` leaves the missing-column errors of a chain to run time."""
    try:
        data = read_yaml(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"invalid YAML: {problem}", file=file, line=line) from None
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping with keys input, output, stages", file=file)
    before = copy.deepcopy(data) if overrides else data  # to tell file errors from flag errors
    try:
        if overrides:
            apply_overrides(data, **overrides)
        cfg = config_from_dict(data)
        if check_chain:  # a stage placed before the one that writes its input
            from pipelines.chain import check_chain as check

            check(cfg)
        if check_inputs:
            cfg.input_files()
        return cfg
    except ConfigErrors as errs:
        root_node = yaml.compose(text)  # the line numbers, read only for an error
        raise ConfigErrors([_located(e, file, root_node, before, data)
                            for e in errs.errors]) from None
    except ConfigError as e:
        raise _located(e, file, yaml.compose(text), before, data) from None


def config_from_dict(data: dict[str, Any]) -> PipelineConfig:
    errors: list[ConfigError] = []
    top = None
    try:
        top = _Top.model_validate(data)
    except ValidationError as e:
        errors += [ConfigError(_pydantic_message(err), path=_error_path(err))
                   for err in _one_per_union(e.errors())]
    raw_stages = data.get("stages") if isinstance(data.get("stages"), list) else []
    specs: list[StageSpec] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_stages or []):
        try:
            spec = _stage_spec(raw, i)
        except ConfigError as e:
            errors.append(e)
            continue
        if spec.name in seen:
            errors.append(ConfigError(_duplicate_message(spec.name, seen[spec.name]),
                                      path=f"stages[{i}].name"))
        seen[spec.name] = i
        specs.append(spec)
    if errors:
        raise ConfigErrors(errors)
    assert top is not None
    fields = {k: getattr(top, k) for k in top.model_fields_set if k != "stages"}
    return PipelineConfig(stages=specs, **fields)


RESERVED = ("stage", "name")
# pydantic names the member of a union in error locations (`min_score.float`): not a key
_UNION_TAG = re.compile(r"^(float|int|str|bool|none|constrained-\w+|(list|dict|literal)\[.*\])$",
                        re.IGNORECASE)
PSEUDO_STAGES = ("read", "write")  # stats rows of the reader and the writer


def _duplicate_message(name: str, first: int) -> str:
    return (f"duplicate stage name {name!r} (also stages[{first}]); "
            "give one of them a distinct `name:`")


def _name_problem(name: Any) -> str | None:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        return "expected a name of letters, digits, _ . -"
    if name in PSEUDO_STAGES:
        return f"{name!r} is reserved for the reader/writer statistics; choose another `name:`"
    return None


def _stage_spec(raw: Any, i: int) -> StageSpec:
    where = f"stages[{i}]"
    if not isinstance(raw, dict) or "stage" not in raw:
        raise ConfigError("expected a mapping with a `stage:` key naming a registered stage",
                          path=where)
    kind = raw["stage"]
    if not isinstance(kind, str):
        raise ConfigError("expected a registered stage name or an import path module:Class, "
                          f"got {kind!r}", path=f"{where}.stage")
    try:
        cls = registry.get(str(kind))
    except UserError as e:
        raise ConfigError(str(e), path=f"{where}.stage") from None
    name = raw.get("name", default_stage_name(str(kind)))
    problem = _name_problem(name)
    if problem:
        raise ConfigError(problem, path=f"{where}.name")
    params = {k: v for k, v in raw.items() if k not in RESERVED}
    try:
        p = cls.Params.model_validate(params)
    except ValidationError as e:
        loc, msg = _params_error(e, cls.Params)
        raise ConfigError(f"{msg} (stage {kind!r})", path=_loc_path((where, *loc))) from None
    return StageSpec(str(kind), name, p)


def _params_error(e: ValidationError, model: type[BaseModel]) -> tuple[list, str]:
    """Key path inside the params and message of the first error of a stage's params."""
    errs = e.errors()
    # for a union param, report the member that got furthest (`min_score: {en: x}`
    # fails in the mapping branch at `.en`, not as "not a number"; `blocklist_file: []`
    # is a list too short, not "not a string")
    err = max((x for x in errs if x["loc"][:1] == errs[0]["loc"][:1]), key=_furthest)
    loc = [x for x in err["loc"] if not (isinstance(x, str) and _UNION_TAG.match(x))]
    return loc, _pydantic_message(err, model)


def _union_key(err: dict) -> tuple:
    """Errors of the members of one union (`dataset: {}` is neither a string nor a good
    mapping) share the location up to the first member tag."""
    loc = err["loc"]
    for i, x in enumerate(loc):
        if isinstance(x, str) and _UNION_TAG.match(x):
            return tuple(loc[:i])
    return (id(err),)


def _one_per_union(errs: list[dict]) -> list[dict]:
    """One error per union: the member that got furthest, as for stage params."""
    best: dict[tuple, dict] = {}
    for err in errs:
        key = _union_key(err)
        old = best.get(key)
        if old is None or _furthest(err) > _furthest(old):
            best[key] = err
    return list(best.values())


def _furthest(err: dict) -> tuple[int, bool]:
    return len(err["loc"]), not err["type"].endswith("_type")


def _error_path(err: dict) -> str:
    """Key path of a top-level validation error, as the user wrote it in the file."""
    loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and _UNION_TAG.match(x)))
    if err["type"] == "invalid_key":  # pydantic puts the offending key itself in loc
        return _loc_path(loc[:-1])
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        key = err.get("ctx", {}).get("discriminator", "").strip("'")
        return _loc_path((*loc, key)) if key else _loc_path(loc)
    return _loc_path(loc)


def _loc_path(loc: tuple) -> str:
    parts: list[str] = []
    for i, item in enumerate(loc):
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif i == 1 and loc[0] == "input" and item in INPUT_FORMATS:
            continue  # pydantic's discriminator tag, not a key in the file
        elif i == 1 and loc[0] == "executor" and item in EXECUTOR_KINDS:
            continue
        elif isinstance(item, str) and item.startswith("stages["):
            parts.append(item)
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def _pydantic_message(err: dict, model: type[BaseModel] | None = None) -> str:
    typ = err["type"]
    if typ == "extra_forbidden":
        if model is None:
            return "unknown key"
        known = ", ".join(model.model_fields) or "(none)"
        return f"unknown parameter; expected one of: {known}"
    if typ == "missing":
        return "required key is missing"
    if typ == "invalid_key":
        return f"key {err['input']!r} is not a string; quote it"
    if typ in ("union_tag_invalid", "union_tag_not_found"):
        key = err.get("ctx", {}).get("discriminator", "").strip("'")
        choices = INPUT_FORMATS if key == "format" else EXECUTOR_KINDS
        if typ == "union_tag_not_found":
            return "required key is missing; expected one of: " + ", ".join(choices)
        return f"unknown {key} {err['input'].get(key)!r}; expected one of: " + ", ".join(choices)
    got = err.get("input")
    got_s = "" if isinstance(got, (dict, list)) else f", got {got!r}"
    return err["msg"][0].lower() + err["msg"][1:] + got_s


def _located(e: ConfigError, file: str | None, node: yaml.Node | None,
             before: Any = None, after: Any = None) -> ConfigError:
    if e.path and before is not after:
        parts = _split_path(e.path)
        if _value_at(before, parts) != _value_at(after, parts):
            # the bad value came from an override: a line of the file would point elsewhere
            return ConfigError(f"{e.message} (set by an override)", file=file, path=e.path)
    return ConfigError(e.message, file=file, path=e.path, line=_line_of(node, e.path))


_MISSING = object()


def _value_at(data: Any, parts: list[str | int]) -> Any:
    for part in parts:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return _MISSING
    return data


def _line_of(node: yaml.Node | None, path: str) -> int | None:
    """Line number of the deepest YAML node that exists along ``path``."""
    if node is None or not path:
        return None
    line = node.start_mark.line + 1
    for part in _split_path(path):
        nxt = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for k, v in node.value:
                if k.value == part:
                    line, nxt = k.start_mark.line + 1, v
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if 0 <= part < len(node.value):
                nxt = node.value[part]
                line = nxt.start_mark.line + 1
        if nxt is None:
            break
        node = nxt
    return line


def _split_path(path: str) -> list[str | int]:
    out: list[str | int] = []
    for tok in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        out.append(int(tok[1:-1]) if tok.startswith("[") else tok)
    return out


# ----------------------------------------------------------------------------- overrides

def apply_overrides(data: dict[str, Any], output: str | None = None, workers: int | None = None,
                    executor: str | None = None, sets: list[str] | None = None) -> None:
    """Apply CLI overrides to raw config data, in place, before validation."""
    had_executor = data.get("executor") is not None
    if output is not None:
        data.setdefault("output", {})
        if not isinstance(data["output"], dict):
            raise ConfigError("expected a mapping", path="output")
        data["output"]["path"] = output
    if executor is not None:
        old = data.get("executor") if isinstance(data.get("executor"), dict) else {}
        if old.get("kind", "local") != executor:
            keep = {k: v for k, v in old.items() if k == "workers"}
            data["executor"] = {"kind": executor, **keep}
    if workers is not None:
        if not isinstance(data.get("executor"), dict):
            data["executor"] = {}
        data["executor"]["workers"] = workers
    for item in sets or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key.path=value")
        try:
            parsed = yaml.safe_load(value) if value != "" else ""
        except yaml.YAMLError as e:
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise ConfigError(f"--set {item!r}: value is not valid YAML ({problem}); "
                              "quote it to pass a string") from None
        set_path(data, key, parsed)
    if not had_executor and isinstance(data.get("executor"), dict):
        # the overrides created the executor section: it starts as the default executor
        data["executor"].setdefault("kind", "local")


def set_path(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``a.b[0].c`` (or ``stages.<stage name>.param``) in nested data."""
    parts = _split_path(key)
    cur: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(cur, list):
            if isinstance(part, str) and part.isdigit():
                part = int(part)
            if isinstance(part, str):  # a stage addressed by its name
                names = [s.get("name", default_stage_name(str(s.get("stage"))))
                         if isinstance(s, dict) else None for s in cur]
                idx = [j for j, n in enumerate(names) if n == part]
                if not idx:
                    have = ", ".join(str(n) for n in names if n is not None) or "none"
                    raise ConfigError(f"--set {key}: no stage named {part!r} (stages: {have})")
                part = idx[0]
            if not 0 <= part < len(cur):
                raise ConfigError(f"--set {key}: index {part} out of range")
            if last:
                cur[part] = value
            else:
                cur = cur[part]
        elif isinstance(cur, dict):
            if last:
                cur[str(part)] = value
            else:
                cur = cur.setdefault(str(part), {})
        else:
            raise ConfigError(f"--set {key}: {part!r} is not inside a mapping or list")


def dump_resolved(cfg: PipelineConfig) -> str:
    return "# resolved by thresher: every default filled in\n" + cfg.to_yaml(resolved=True)
