"""Stage reference generated from the registry (``thresher stages``, docs/stages.md)."""

from __future__ import annotations

import inspect
import json
import re
from typing import Any

from pydantic.fields import FieldInfo

from pipelines import registry
from pipelines.stage import Annotator, Filter, Stage


def _type_name(annotation: Any) -> str:
    s = str(annotation) if not isinstance(annotation, type) else annotation.__name__
    s = s.replace("typing.", "").replace("NoneType", "None")
    return re.sub(r"<class '([^']+)'>", r"\1", s)


def _default(f: FieldInfo) -> str:
    if f.is_required():
        return "(required)"
    return json.dumps(f.get_default(call_default_factory=True), ensure_ascii=False)


def _kind(cls: type[Stage]) -> str:
    if cls.kind == "global":
        return "global"
    if issubclass(cls, Annotator):
        return "annotator"
    if issubclass(cls, Filter):
        return "filter"
    return "map"


def stage_rows() -> list[dict[str, Any]]:
    out = []
    for name in registry.names():
        cls = registry.get(name)
        doc = inspect.getdoc(cls) or ""
        params = [
            {"name": pname, "type": _type_name(f.annotation), "default": _default(f),
             "description": f.description or ""}
            for pname, f in cls.Params.model_fields.items()
        ]
        out.append({"name": name, "kind": _kind(cls), "doc": doc,
                    "module": f"{cls.__module__}.{cls.__qualname__}", "params": params})
    return out


def render_text() -> str:
    lines = []
    for s in stage_rows():
        lines.append(f"{s['name']}  [{s['kind']}]  {s['module']}")
        for dl in s["doc"].splitlines():
            lines.append(f"    {dl}".rstrip())
        for p in s["params"]:
            desc = f"  {p['description']}" if p["description"] else ""
            lines.append(f"    - {p['name']}: {p['type']} = {p['default']}{desc}")
        lines.append("")
    lines.append("tokenizer: auto  (language -> word segmenter, stages/text/segmenters.py)")
    for langs, name, what in segmenter_rows():
        lines.append(f"    {name}: {langs}  ({what})")
    lines.append("")
    return "\n".join(lines)


def segmenter_rows() -> list[tuple[str, str, str]]:
    """The language table of ``tokenizer: auto`` (languages, segmenter, what it is)."""
    from pipelines.registry import segmenter_table

    return segmenter_table()


def render_markdown() -> str:
    lines = ["# Stage reference", "",
             "Generated from the stage registry by `make docs` "
             "(`thresher stages --markdown`); CI checks it is current.", ""]
    for s in stage_rows():
        lines += [f"## `{s['name']}` ({s['kind']})", "", f"`{s['module']}`", ""]
        if s["doc"]:
            lines += [s["doc"], ""]
        if s["params"]:
            lines += ["| parameter | type | default | description |", "|---|---|---|---|"]
            for p in s["params"]:
                desc = p["description"].replace("|", "\\|")
                typ = p["type"].replace("|", "\\|")
                lines.append(f"| `{p['name']}` | `{typ}` | `{p['default']}` | {desc} |")
            lines.append("")
    lines += ["## `tokenizer: auto`: the word segmenter of each language", "",
              "Stages with a `tokenizer` parameter set to `auto` split each document with "
              "the segmenter of its `language` column (docs/filters.md):", "",
              "| languages | segmenter | what |", "|---|---|---|"]
    lines += [f"| {langs} | `{name}` | {what} |" for langs, name, what in segmenter_rows()]
    return "\n".join(lines).rstrip() + "\n"
