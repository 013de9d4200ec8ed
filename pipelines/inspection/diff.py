"""`thresher diff A B`: what differs between two runs (run dirs or manifests).

The question after changing a threshold or a package is "what changed, and what did
it do to the counts?". A run is described by its manifest (or, for a run without
one, its config.yaml, plan.json and stats.json); this module compares two such
descriptions section by section: config parameters (stages by name, not position),
inputs (by source, by sha256 where known), model files (by sha256), the files global
steps built (the manifest's ``artifacts``, e.g. decontaminate's n-gram index: by path,
by sha256), thresher and package versions, and per-stage / per-reason document counts.
It reports; it never judges, so the exit code is 0 whether or not the runs differ.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipelines.errors import UserError
from pipelines.io.remote_path import run_path
from pipelines.manifest import load_manifest
from pipelines.rundir import RunDir

MISSING = None  # a key or package one side does not have


def load_side(arg: str | Path) -> dict[str, Any]:
    """A run dir or manifest, as {config, inputs, packages, thresher, stages, rows}."""
    p = run_path(arg)
    if not p.exists():
        raise UserError(f"{p}: no such run directory or manifest")
    if p.is_dir() and not (p / "manifest.json").exists():
        return _from_run_dir(p)
    path = p / "manifest.json" if p.is_dir() else p
    m = load_manifest(path)
    if not isinstance(m, dict) or not {"config", "stats", "inputs"} <= set(m):
        raise UserError(f"{path}: not a thresher manifest (no config, inputs and stats)")
    return {
        "label": str(arg),
        "config": m["config"],
        "fingerprint": m.get("config_fingerprint"),
        "inputs": {f["source"]: {k: f.get(k) for k in ("path", "size", "sha256")}
                   for f in m["inputs"]},
        "packages": m.get("packages", {}),
        "models": {x["path"]: x["sha256"] for x in m.get("models", [])},
        # a manifest without the key: its run's steps built nothing (pipelines/manifest.py)
        "artifacts": {x["path"]: {k: x.get(k) for k in ("stage", "step", "sha256", "bytes")}
                      for x in m.get("artifacts", [])},
        "thresher": m.get("thresher", {}),
        "stages": m["stats"],
        "rows": sum(o.get("rows", 0) for o in m.get("outputs", [])),
    }


def _from_run_dir(p: Path) -> dict[str, Any]:
    """A finished run without manifest.json: no hashes, versions or packages to compare."""
    run = RunDir.at(p)
    if not (run.config.exists() and run.stats_json.exists()):
        raise UserError(f"{p}: not a finished thresher run (no manifest.json, or no "
                        "config.yaml and stats.json)")
    config, stats = run.load_config_dict(), run.load_stats()
    plan = run.load_plan_json() if run.plan.exists() else {}
    return {
        "label": str(p), "config": config, "fingerprint": stats.get("config_fingerprint"),
        "inputs": {f["source"]: {"path": f["path"], "size": f["size"], "sha256": None}
                   for f in plan.get("inputs", [])},
        "packages": {}, "models": {}, "artifacts": None, "thresher": {},
        "stages": stats["stages"],
        "rows": stats.get("output", {}).get("rows", 0),
    }


# ----------------------------------------------------------------------------- comparing

def flatten_config(config: dict[str, Any]) -> dict[str, Any]:
    """Dotted key -> value; stages keyed by their name so a reorder is not a rewrite."""
    out: dict[str, Any] = {}

    def walk(prefix: str, v: Any) -> None:
        if isinstance(v, dict) and v:
            for k, x in v.items():
                walk(f"{prefix}.{k}" if prefix else str(k), x)
        else:
            out[prefix] = v

    walk("", {k: v for k, v in config.items() if k != "stages"})
    for st in config.get("stages", []):
        name = st.get("name") or st.get("stage")
        walk(f"stages.{name}", {k: v for k, v in st.items() if k != "name"})
    return out


def _config_changes(a: dict, b: dict) -> list[dict]:
    fa, fb = flatten_config(_without_output_path(a)), flatten_config(_without_output_path(b))
    changes = [{"key": k, "a": fa.get(k, MISSING), "b": fb.get(k, MISSING)}
               for k in list(fa) + [k for k in fb if k not in fa]
               if k not in fa or k not in fb or fa[k] != fb[k]]
    order_a = [s.get("name") or s.get("stage") for s in a.get("stages", [])]
    order_b = [s.get("name") or s.get("stage") for s in b.get("stages", [])]
    if order_a != order_b:
        changes.append({"key": "stages (order)", "a": order_a, "b": order_b})
    return changes


def _without_output_path(config: dict) -> dict:
    c = dict(config)
    if isinstance(c.get("output"), dict):
        c["output"] = {k: v for k, v in c["output"].items() if k != "path"}
    return c


def _input_changes(a: dict, b: dict) -> dict[str, list]:
    changed = []
    for src in sorted(set(a) & set(b)):
        x, y = a[src], b[src]
        if x.get("sha256") and y.get("sha256"):
            differs = x["sha256"] != y["sha256"]
        else:  # a run without manifest knows sizes only
            differs = x.get("size") != y.get("size")
        if differs:
            changed.append({"source": src, "a": x, "b": y})
    return {"added": sorted(set(b) - set(a)), "removed": sorted(set(a) - set(b)),
            "changed": changed}


def _version_changes(a: dict, b: dict) -> list[dict]:
    if not a or not b:  # a run without a manifest records no versions
        return []
    return [{"name": k, "a": a.get(k, MISSING), "b": b.get(k, MISSING)}
            for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _model_changes(a: dict[str, str], b: dict[str, str]) -> list[dict]:
    """Model files (path -> sha256) whose bytes differ; a file the other side has at
    another path with the same sha256 only moved, and is not listed."""
    if not a or not b:  # a run without a manifest records no model hashes
        return []
    rows = []
    for path in sorted(set(a) | set(b)):
        x, y = a.get(path, MISSING), b.get(path, MISSING)
        moved = (x is MISSING and y in a.values()) or (y is MISSING and x in b.values())
        if x != y and not moved:
            rows.append({"path": path, "a": x, "b": y})
    return rows


def _artifact_changes(a: dict | None, b: dict | None) -> list[dict]:
    """Files global steps built (path -> {stage, step, sha256, bytes}) that one side lacks
    (``change``: ``missing in A`` / ``missing in B``) or whose bytes differ (``changed``);
    a file the other side has at another path with the same sha256 only moved (a renamed
    stage: the config says so), and is not listed. A run without a manifest (None)
    records no artifacts: nothing to compare."""
    if a is None or b is None:
        return []
    sha_a = {x["sha256"] for x in a.values()}
    sha_b = {x["sha256"] for x in b.values()}
    rows = []
    for path in sorted(set(a) | set(b)):
        x, y = a.get(path), b.get(path)
        if (x is None and y["sha256"] in sha_a) or (y is None and x["sha256"] in sha_b):
            continue
        if x is not None and y is not None and x["sha256"] == y["sha256"]:
            continue
        change = "missing in A" if x is None else "missing in B" if y is None else "changed"
        side = x or y
        rows.append({"path": path, "stage": side["stage"], "step": side["step"],
                     "change": change,
                     "a": None if x is None else {"sha256": x["sha256"], "bytes": x["bytes"]},
                     "b": None if y is None else {"sha256": y["sha256"], "bytes": y["bytes"]}})
    return rows


def _count_changes(a: dict, b: dict) -> list[dict]:
    """Per stage: docs in/out and every drop/error reason whose count differs."""
    rows = []
    for stage in list(a) + [s for s in b if s not in a]:
        sa, sb = a.get(stage, {}), b.get(stage, {})
        items = [("docs_in", ""), ("docs_out", "")]
        for kind, key in (("dropped", "dropped"), ("error", "errors")):
            reasons = list(sa.get(key, {})) + [r for r in sb.get(key, {})
                                              if r not in sa.get(key, {})]
            items += [(kind, r) for r in reasons]
        for kind, reason in items:
            if reason:
                key = "dropped" if kind == "dropped" else "errors"
                x, y = sa.get(key, {}).get(reason, 0), sb.get(key, {}).get(reason, 0)
            else:
                x, y = sa.get(kind, 0), sb.get(kind, 0)
            if x != y:
                rows.append({"stage": stage, "kind": kind, "reason": reason, "a": x, "b": y,
                             "delta": y - x})
    return rows


def diff_runs(a_arg: str | Path, b_arg: str | Path) -> dict[str, Any]:
    a, b = load_side(a_arg), load_side(b_arg)
    return {
        "a": a["label"], "b": b["label"],
        "same_fingerprint": a["fingerprint"] is not None and a["fingerprint"] == b["fingerprint"],
        "config": _config_changes(a["config"], b["config"]),
        "inputs": _input_changes(a["inputs"], b["inputs"]),
        "thresher": _version_changes(a["thresher"], b["thresher"]),
        "packages": _version_changes(a["packages"], b["packages"]),
        "models": _model_changes(a["models"], b["models"]),
        "artifacts": _artifact_changes(a["artifacts"], b["artifacts"]),
        "counts": _count_changes(a["stages"], b["stages"]),
        "output_rows": {"a": a["rows"], "b": b["rows"], "delta": b["rows"] - a["rows"]},
    }


def differs(d: dict[str, Any]) -> bool:
    return bool(d["config"] or any(d["inputs"].values()) or d["thresher"] or d["packages"]
                or d["models"] or d.get("artifacts") or d["counts"])


# ----------------------------------------------------------------------------- display

def _short(v: Any, width: int = 60) -> str:
    s = "(none)" if v is MISSING else v if isinstance(v, str) else json.dumps(v)
    return s if len(s) <= width else s[:width - 1] + "…"


def print_diff(d: dict[str, Any], console) -> None:
    from rich.table import Table

    console.print(f"diff: A = {d['a']}\n      B = {d['b']}", highlight=False)
    if not differs(d):
        console.print("no differences in config, inputs, models, artifacts, versions or "
                      "counts",
                      highlight=False)
        return

    def table(title: str, cols: list[str], rows: list[list[str]], right: int = 0) -> None:
        t = Table(title=title, title_justify="left")
        for i, c in enumerate(cols):
            t.add_column(c, justify="right" if i >= len(cols) - right else "left",
                         overflow="fold")
        for r in rows:
            t.add_row(*r)
        console.print(t)

    def section(name: str, empty: str) -> None:
        console.print(f"{name}: {empty}", highlight=False)

    if d["config"]:
        table("config", ["parameter", "A", "B"],
              [[c["key"], _short(c["a"]), _short(c["b"])] for c in d["config"]])
    else:
        section("config", "identical" + (" (same fingerprint)" if d["same_fingerprint"] else ""))
    inp = d["inputs"]
    if any(inp.values()):
        rows = [[s, "added", ""] for s in inp["added"]]
        rows += [[s, "removed", ""] for s in inp["removed"]]
        for c in inp["changed"]:
            x, y = c["a"], c["b"]
            how = (f"sha256 {(x['sha256'] or '?')[:12]} → {(y['sha256'] or '?')[:12]}"
                   if x.get("sha256") and y.get("sha256") else "")
            if x.get("size") != y.get("size"):
                how = f"size {x.get('size'):,} → {y.get('size'):,}" + (f", {how}" if how else "")
            rows.append([c["source"], "changed", how])
        table("inputs", ["source", "change", "detail"], rows)
    else:
        section("inputs", "identical")
    if d["models"]:
        table("models", ["file", "A sha256", "B sha256"],
              [[m["path"], _short(m["a"] and m["a"][:12]), _short(m["b"] and m["b"][:12])]
               for m in d["models"]])
    if d.get("artifacts"):

        def built(x: dict | None) -> str:
            return "(none)" if x is None else f"{x['sha256'][:12]} {x['bytes']:,} B"

        table("artifacts (files global steps built; --json names stage and step)",
              ["file", "change", "A sha256, size", "B sha256, size"],
              [[x["path"], x["change"], built(x["a"]), built(x["b"])]
               for x in d["artifacts"]])
    versions = [["thresher " + v["name"], _short(v["a"]), _short(v["b"])] for v in d["thresher"]]
    versions += [[v["name"], _short(v["a"]), _short(v["b"])] for v in d["packages"]]
    if versions:
        table("versions", ["package", "A", "B"], versions)
    else:
        section("versions", "identical (or not recorded)")
    if d["counts"]:
        rows = [[c["stage"], c["reason"] or c["kind"].replace("_", " "),
                 c["kind"] if c["reason"] else "", f"{c['a']:,}", f"{c['b']:,}",
                 f"{c['delta']:+,}"] for c in d["counts"]]
        table("counts", ["stage", "reason", "kind", "A", "B", "Δ"], rows, right=3)
    else:
        section("counts", "identical")
    o = d["output_rows"]
    console.print(f"output: {o['a']:,} → {o['b']:,} documents ({o['delta']:+,})",
                  highlight=False)
