"""Token exports of a run (tokenize_export, ``thresher export``): export.json, read and checked.

An export's output directory holds ``export.json`` (docs/export.md): the format, the
tokenizer (path, sha256), every output file (bytes, sha256) and the tokens written per
value of its ``group_by`` columns (``tokens_by``: dataset, language). This module reads
and checks them for the engine without importing the stage (the engine reaches stages
only through the registry):

- ``export_files``: every file an export.json lists, with its sha256.
- ``verify_export``: an export directory against its export.json (``thresher export
  --verify``): a missing, changed or unexpected file is one line each.
- ``find_exports``: the exports of a run directory: each tokenize_export stage's output
  (its ``output`` parameter, default ``<run>/tokens``) and any direct subdirectory of the
  run holding an export.json (``thresher export RUN`` writes ``<run>/tokens`` unless ``-o``).
- ``verify_run_exports``: ``verify_export`` of each, for ``thresher verify`` (files that
  the manifest lists already, a pipeline stage's, are left to the manifest's check).
- ``run_exports`` / ``export_lines``: what ``thresher report`` / ``thresher stats`` show of
  each export: totals, and the tokens written per dataset and language.
- ``artifact_records``: what a pipeline's tokenize_export puts in the manifest
  (``artifacts``, pipelines/manifest.py): every token file, path relative to the run
  directory (or absolute / a URL for an output outside it), bytes and sha256.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipelines.errors import UserError
from pipelines.io.files import sha256_file
from pipelines.io.remote_path import RemotePath, run_path
from pipelines.io.storage import is_remote

EXPORT_JSON = "export.json"
STAGE = "tokenize_export"


def load_export(out: Path | RemotePath) -> dict[str, Any]:
    try:
        return json.loads((out / EXPORT_JSON).read_bytes())
    except FileNotFoundError:
        raise UserError(f"{out}: no {EXPORT_JSON}: not a finished export") from None


def export_files(summary: dict[str, Any]) -> dict[str, str]:
    """File name -> sha256 of every file an export wrote (token files, MDS index.json)."""
    files = {f: h for sh in summary["shards"] for f, h in sh["sha256"].items()}
    files.update(summary.get("extra_files", {}))
    return files


def verify_export(out, skip: frozenset[str] = frozenset(), prefix: str = "") -> list[str]:
    """Differences between ``out``'s files and its export.json: missing, changed (sha256)
    or unexpected files, one line each, each file named ``prefix + name``; files named
    in ``skip`` are not re-hashed."""
    out = run_path(out)
    expected = export_files(load_export(out))
    problems = []
    for f, want in sorted(expected.items()):
        if f in skip:
            continue
        if not (out / f).exists():
            problems.append(f"missing {prefix}{f}")
        elif (got := sha256_file(out / f)) != want:
            problems.append(f"{prefix}{f}: sha256 {got[:12]}… != expected {want[:12]}…")
    present = {p.name for p in out.iterdir() if p.is_file() and not p.name.startswith(".")}
    for f in sorted(present - set(expected) - {EXPORT_JSON}):
        problems.append(f"unexpected file {prefix}{f}")
    return problems


def _where(path: Path | RemotePath, run_root: Path | RemotePath) -> str:
    """``path`` as the manifest and messages name it: relative to the run directory when
    it is inside it, else absolute (or its URL)."""
    s, root = str(path), str(run_root).rstrip("/") + "/"
    return s[len(root):] if s.startswith(root) else s


def find_exports(run_root: Path | RemotePath, config: dict | None) -> list[Path | RemotePath]:
    """Export directories of a run: its tokenize_export stages' outputs, then any direct
    subdirectory with an export.json (in name order), each once; only those that exist."""
    found: list = []
    for st in (config or {}).get("stages", []):
        if st.get("stage") == STAGE:
            found.append(run_path(st["output"]) if st.get("output") else run_root / "tokens")
    if not is_remote(str(run_root)):
        found += sorted(p.parent for p in Path(run_root).glob(f"*/{EXPORT_JSON}"))
    out, seen = [], set()
    for d in found:
        if str(d) not in seen and (d / EXPORT_JSON).exists():
            seen.add(str(d))
            out.append(d)
    return out


def verify_run_exports(run_root: Path | RemotePath, manifest: dict) -> tuple[list[str], int]:
    """Problems of every export of the run, each line naming the file relative to the run
    (or absolutely), and how many files were checked. Files the manifest lists under
    ``artifacts`` (a pipeline stage's export) are checked by ``manifest.verify``."""
    listed = {a["path"] for a in manifest.get("artifacts", [])}
    problems, n = [], 0
    for d in find_exports(run_root, manifest.get("config")):
        where = _where(d, run_root)
        files = export_files(load_export(d))
        skip = frozenset(f for f in files if f"{where}/{f}" in listed)
        n += len(files)
        problems += verify_export(d, skip, prefix=f"{where}/")
    return problems, n


def artifact_records(summary: dict[str, Any], out: Path | RemotePath,
                     run_root: Path | RemotePath) -> dict[str, dict[str, Any]]:
    """The manifest's entries for an export's files: name -> path, sha256, bytes."""
    sizes = {f: n for sh in summary["shards"] for f, n in sh["bytes"].items()}
    recs = {}
    for f, h in sorted(export_files(summary).items()):
        n = sizes.get(f)
        if n is None:
            n = (out / f).stat().st_size
        recs[f] = {"path": _where(out / f, run_root), "sha256": h, "bytes": n}
    return recs


def run_exports(run_root: Path | RemotePath, config: dict | None) -> list[dict[str, Any]]:
    """What ``thresher stats`` and ``thresher report`` show of each export of a run:
    where (as ``_where`` names it), format, dtype, files, documents, tokens, tokenizer
    sha256, and the tokens written per value of each ``group_by`` column."""
    out = []
    for d in find_exports(run_root, config):
        s = load_export(d)
        out.append({"where": _where(d, run_root), "format": s["format"], "dtype": s["dtype"],
                    "shards": len(s["shards"]), "files": len(export_files(s)),
                    "documents": s["documents"],
                    "tokens": s["tokens"], "tokenizer_sha256": s["tokenizer"]["sha256"],
                    "tokens_by": s.get("tokens_by", {})})
    return out


def export_lines(run_root: Path | RemotePath, config: dict | None) -> list[str]:
    """``thresher stats``: two lines or more per export (totals, then tokens by column)."""
    lines = []
    for e in run_exports(run_root, config):
        lines.append(f"export {e['where']}/: {e['tokens']:,} tokens of {e['documents']:,} "
                     f"documents in {e['shards']} {e['format']} shard(s) ({e['files']} files, "
                     f"{e['dtype']}), "
                     f"tokenizer sha256 {e['tokenizer_sha256'][:12]}…")
        for col, counts in e["tokens_by"].items():
            lines.append(f"  tokens written by {col}: " + ", ".join(
                f"{v or '(none)'} {n:,}" for v, n in sorted(counts.items(),
                                                            key=lambda kv: -kv[1])))
    return lines


def reproduce_exports(snapshot_root: Path | RemotePath, manifest: dict,
                      new_root: Path | RemotePath, remap_path=lambda s: s,
                      warn=lambda msg: None) -> tuple[list[str], int]:
    """``thresher reproduce``: each export made on the snapshot's run directory by
    ``thresher export`` (a subdirectory with an export.json whose files the manifest does
    not list) is made again on the reproduced run, into the same subdirectory, from the
    parameters its export.json records (the tokenizer held to its recorded sha256), and
    its files are compared with that export.json's: problems, and files compared."""
    from pipelines.registry import get

    listed = {a["path"] for a in manifest.get("artifacts", [])}
    problems, n = [], 0
    for d in find_exports(snapshot_root, None):
        where = _where(d, snapshot_root)
        snap = load_export(d)
        want = export_files(snap)
        if any(f"{where}/{f}" in listed for f in want):
            continue  # a pipeline stage's: the re-run made it, manifest.verify checks it
        if "params" not in snap:
            warn(f"{where}/{EXPORT_JSON} records no parameters; its export is not reproduced")
            continue
        cls = get(STAGE)
        params = {**snap["params"], "tokenizer": remap_path(snap["params"]["tokenizer"])}
        stage = cls(cls.Params(**params), name="export")
        stage.setup()
        got = export_files(stage.export_run(new_root, new_root / where))
        n += len(want)
        for f in sorted(set(want) | set(got)):
            if f not in got:
                problems.append(f"{where}/{f}: in the snapshot's export, not written again")
            elif f not in want:
                problems.append(f"{where}/{f}: written again, not in the snapshot's export")
            elif got[f] != want[f]:
                problems.append(f"{where}/{f}: sha256 {got[f][:12]}… != the snapshot's "
                                f"{want[f][:12]}…")
    return problems, n
