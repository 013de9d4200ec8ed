"""Per-language thresholds for the rule filters (``thresholds:`` on gopher_quality,
gopher_repetition, fineweb_quality, c4, length and char_ratio).

A table maps a language (the ``language`` column langid writes) to parameter values
that replace the stage's own for documents of that language; languages not in the
table use the stage's parameters. It is given as

- ``per_language``: the built-in table (``thresholds/fineweb2.json``), FineWeb-2's
  published per-language values (its ``configs/{iso3}_{script}.yml``, mapped to thresher
  parameters by ``FINEWEB2_PARAMS``), keyed by the lid.176 code and by the
  ``{iso3}_{script}`` label (GlotLID);
- a file (path or URL, JSON or YAML): ``{language: {parameter: value}}``, or the
  built-in layout ``{"languages": {language: {stage kind: {parameter: value}}}}``;
- the same mapping inline in the config.

Only threshold parameters (those ``thresher materialize`` can change) may differ
per language, plus a few a filter lists in ``per_language_extra`` (Gopher's
``stop_words``); an n-gram mapping is merged over the stage's (same n).
A document's language is looked up as written, then by its part before ``_``.
The file's sha256 is recorded in the run manifest with the models.

Regenerate the built-in table from a FineWeb-2 checkout with
``python -m stages.heuristics.per_language FINEWEB2_DIR ASSIGNMENT_CSV`` (the second
file maps ISO 639-1 codes to 639-3 and script: datatrove's tokenizer_assignment.csv).
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field

from pipelines.errors import UserError
from pipelines.io.models import file_sha256, local_model, model_key
from pipelines.stage import FilterParams

PER_LANGUAGE = "per_language"
BUILTIN = Path(__file__).parent / "thresholds" / "fineweb2.json"
LANGUAGE = "language"

Table = dict[str, dict[str, Any]]

THRESHOLDS_HELP = (
    "per-language parameter values: `per_language` (the built-in table: FineWeb-2's "
    "published thresholds and stop words), a JSON/YAML file, or an inline mapping "
    "language -> {parameter: value}; other languages use this stage's values "
    "(docs/filters.md)")


class PerLanguageParams(FilterParams):
    thresholds: str | dict[str, dict[str, Any]] | None = Field(None, description=THRESHOLDS_HELP)


# FineWeb-2 config key -> (stage kind, thresher parameter, conversion)
FINEWEB2_PARAMS: dict[str, tuple[str, str]] = {
    "dup_line_frac": ("gopher_repetition", "max_dup_line_ratio"),
    "top_n_grams": ("gopher_repetition", "max_top_ngram_char_ratio"),
    "dup_n_grams": ("gopher_repetition", "max_dup_ngram_char_ratio"),
    "line_punct_thr": ("fineweb_quality", "min_terminal_punct_line_ratio"),
    "new_line_ratio": ("fineweb_quality", "max_newline_word_ratio"),
    "min_avg_word_length": ("gopher_quality", "min_avg_word_length"),
    "max_avg_word_length": ("gopher_quality", "max_avg_word_length"),
    # datatrove's name; the rule is "at least this share of words with a letter"
    "max_non_alpha_words_ratio": ("gopher_quality", "min_alpha_words_ratio"),
    "stopwords": ("gopher_quality", "stop_words"),
    "language_score": ("langid", "min_score"),
}


def load(spec: str | dict, kind: str, stage: str) -> tuple[Table, str | None]:
    """(language -> parameter values for stage kind ``kind``, the file it came from)."""
    if isinstance(spec, dict):
        return _select(spec, kind, stage, "thresholds"), None
    path = str(BUILTIN) if spec == PER_LANGUAGE else spec
    return _select(_read(path, stage), kind, stage, path), path


def sha256(path: str) -> dict[str, str]:
    """What ``model_files`` reports for the table file."""
    return {model_key(path): file_sha256(path)}


@lru_cache(maxsize=16)
def _read_cached(local: str) -> dict:
    text = Path(local).read_text(encoding="utf-8")
    if local.endswith((".yaml", ".yml")):
        import yaml

        return yaml.safe_load(text) or {}
    return json.loads(text)


def _read(path: str, stage: str) -> dict:
    try:
        local = local_model(path, what=f"stage {stage}: thresholds")
        data = _read_cached(str(local))
    except OSError as e:
        raise UserError(f"stage {stage}: cannot read thresholds {path}: "
                        f"{e.strerror or e}") from None
    except ValueError as e:
        raise UserError(f"stage {stage}: thresholds {path} is not valid JSON/YAML: "
                        f"{str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"stage {stage}: thresholds {path} must map languages to parameters")
    return data


def _select(data: dict, kind: str, stage: str, where: str) -> Table:
    """The rows for ``kind`` of a flat or per-stage-kind table."""
    langs = data.get("languages", data) if isinstance(data.get("languages"), dict) else data
    out: Table = {}
    for lang, row in langs.items():
        if not isinstance(row, dict):
            raise UserError(f"stage {stage}: thresholds {where}: language {lang!r} must map "
                            "to parameters")
        if any(isinstance(v, dict) and k in _KINDS for k, v in row.items()):
            row = row.get(kind, {})  # per-stage-kind layout
        row = {k: v for k, v in row.items() if not k.startswith("_")}
        if row:
            out[str(lang)] = row
    return out


_KINDS = {"gopher_quality", "gopher_repetition", "fineweb_quality", "c4", "length",
          "char_ratio", "langid"}


def lookup(table: dict[str, Any], language: str | None) -> Any:
    """The row for ``language``: as written, else by its part before ``_``."""
    if not language:
        return None
    row = table.get(language)
    if row is None and "_" in language:
        row = table.get(language.split("_", 1)[0])
    return row


# ---------------------------------------------------------------- the built-in table

def build_fineweb2(configs: Path, assignment_csv: Path, labels: list[str]) -> dict:
    """The built-in table from FineWeb-2's ``configs/*.yml`` for the given lid.176 labels."""
    import csv

    import yaml

    by_code: dict[str, str] = {}  # lid.176 label -> iso3_Script
    with open(assignment_csv, encoding="utf-8") as f:
        for row in csv.DictReader(f):
            label = f"{row['code_3']}_{row['script']}"
            if row["default_script"] != "TRUE":
                continue
            if row["code_1"] and row["default_code_1"] == "TRUE":
                by_code.setdefault(row["code_1"], label)
            by_code.setdefault(row["code_3"], label)
    languages: dict[str, Any] = {}
    for lab in sorted(labels):
        src = by_code.get(lab)
        path = configs / f"{src}.yml" if src else None
        if path is None or not path.is_file():
            continue
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
        row: dict[str, Any] = {"_source": src}
        for key, value in sorted(cfg.items()):
            if key not in FINEWEB2_PARAMS:
                continue
            kind, param = FINEWEB2_PARAMS[key]
            if key in ("top_n_grams", "dup_n_grams"):  # a share above 1 never fires: 1
                value = {int(n): min(float(v), 1.0) for n, v in value}
            elif key in ("dup_line_frac", "line_punct_thr", "max_non_alpha_words_ratio"):
                value = max(0.0, min(float(value), 1.0))  # -1 there: off; 0 here
            row.setdefault(kind, {})[param] = value
        languages[lab] = row
        languages.setdefault(src, row)
    return {"_about": "FineWeb-2's published per-language thresholds and stop words "
                      "(huggingface/fineweb-2 configs/, Apache-2.0), mapped to thresher "
                      "parameters; see stages/heuristics/per_language.py",
            "languages": languages}


if __name__ == "__main__":  # pragma: no cover - maintenance
    import fasttext

    from stages.language.langid import BUNDLED_MODEL

    fasttext.FastText.eprint = lambda *a, **k: None
    labels = [x.removeprefix("__label__") for x in
              fasttext.load_model(str(BUNDLED_MODEL)).get_labels()]
    table = build_fineweb2(Path(sys.argv[1]) / "configs", Path(sys.argv[2]), labels)
    BUILTIN.parent.mkdir(exist_ok=True)
    BUILTIN.write_text(json.dumps(table, ensure_ascii=False, indent=0, sort_keys=True) + "\n",
                       encoding="utf-8")
    print(f"{BUILTIN}: {len(table['languages'])} keys")
