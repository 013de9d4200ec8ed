"""manifest.json: the snapshot lock of a run, and checking a run against it.

The manifest records what decides a corpus: the resolved config and its
fingerprint, thresher's version and git commit (with a dirty flag), Python and
every installed distribution, each input file (size, sha256), each model file
(sha256; a remote one by its URL), each output shard (rows, bytes, sha256) and the merged stats.
Input hashes are taken by the task that reads the input, as its reader reads it
(io/hashing.py; Parquet, read footer first, gets one read of its own).

A file split into pieces (``input.max_task_bytes``) is read by several tasks, each
hashing its own byte range; no task reads the whole file. Its entry lists the pieces
(``pieces``: start, end, sha256 of bytes [start, end)) and its ``sha256`` is
``pieces_sha256`` of them: the sha256 of the lines ``"<start> <end> <sha256>\n"``, one
per piece in file order. So it is still one hash per file that changes whenever a byte
of it does, but not the file's plain sha256 (``sha256sum`` gives another); ``split``
says so, and ``thresher reproduce`` checks the pieces.

A global stage's step may build a file the output depends on (decontaminate's n-gram
index). It names it in ``<run>/work/<stage>/<step>.artifacts.json`` (``{"files": {path
relative to the stage's work directory: {"sha256", "bytes"}}}``, written by
``write_artifacts``), and the manifest lists it under ``artifacts`` (stage, step, path
relative to the run directory, sha256, bytes). ``verify`` (so ``thresher verify`` and
``thresher reproduce``) checks each against the run directory: a reproduced run must
have built the same index, byte for byte. Manifests of runs without such a step have no
``artifacts`` key. A record may name its own ``path``: tokenize_export's write step lists
the token files it wrote (pipelines/exports.py), relative to the run directory, or
absolute (a URL) when its ``output`` is outside it.
"""

from __future__ import annotations

import hashlib
import platform
import re
import subprocess
import sys
import time
from importlib.metadata import distributions
from pathlib import Path
from typing import Any

from pipelines.config import PipelineConfig
from pipelines.io.files import write_json_atomic
from pipelines.io.remote_path import RemotePath, run_path
from pipelines.io.storage import is_remote
from pipelines.plan import Plan
from pipelines.rundir import RunDir
from pipelines.version import __version__

MANIFEST_VERSION = 1
ARTIFACTS = "{step}.artifacts.json"  # in <run>/work/<stage>/: what a step built


def git_state(path: Path) -> dict[str, Any]:
    """Commit and dirty flag of the source tree thresher runs from (None if not a checkout)."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(path), *args], capture_output=True,
                                 text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status)}


def installed_packages() -> dict[str, str]:
    """Name -> version of every installed distribution, as ``importlib.metadata`` reads
    them, from the header of each metadata file only: parsing the body too (a package's
    long description), twice (``d.metadata``, then ``d.version``), took ~0.2 s a run, and
    the header with ``email`` still ~0.04 s (tests/test_manifest.py holds the two equal)."""
    pkgs = {}
    for d in distributions():
        text = d.read_text("METADATA") or d.read_text("PKG-INFO") or d.read_text("") or ""
        fields = _header_fields(text, ("name", "version"))
        if fields.get("name"):  # the first on sys.path: the one imported, as version() says
            pkgs.setdefault(fields["name"].lower(), fields.get("version"))
    return dict(sorted(pkgs.items()))


_LINE_END = re.compile(r"\r\n|\r|\n")


def _header_fields(text: str, names: tuple[str, ...]) -> dict[str, str]:
    """The first value of each field in ``names`` (lower case) in the RFC 822 header that
    starts ``text``, as ``email`` gives it: the text after the colon, leading whitespace
    and line ends stripped, continuation lines (starting with a space or tab) joined."""
    out: dict[str, str] = {}
    key = None
    for line in _LINE_END.split(text.split("\n\n", 1)[0]):
        if line[:1] in (" ", "\t"):
            if key is not None:
                out[key] += "\n" + line
            continue
        key = None
        name, colon, value = line.partition(":")
        name = name.lower()
        if colon and name in names and name not in out:
            out[name], key = value.lstrip(" \t"), name
    return out


def pieces_sha256(pieces: list[dict]) -> str:
    """One hash for a split file: of its pieces' ranges and range hashes, in file order."""
    lines = "".join(f"{p['start']} {p['end']} {p['sha256']}\n" for p in pieces)
    return hashlib.sha256(lines.encode()).hexdigest()


def write_artifacts(work_dir: Path, step: str, files: dict[str, bytes]) -> None:
    """Record the files a global stage's step built (path relative to the stage's work
    directory -> their bytes) for the manifest: see the module docstring."""
    write_json_atomic(work_dir / ARTIFACTS.format(step=step), {"files": {
        name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        for name, data in sorted(files.items())}})


def _artifacts(run: RunDir, plan: Plan) -> list[dict[str, Any]]:
    from pipelines.io.files import read_json

    out = []
    for phase in plan.phases:
        if phase.kind != "step" or not phase.stages:
            continue
        stage = phase.stages[0]
        f = run.work_dir(stage) / ARTIFACTS.format(step=phase.step)
        if not f.exists():
            continue
        for name, rec in read_json(f)["files"].items():
            out.append({"stage": stage, "step": phase.step,
                        "path": f"work/{stage}/{name}", **rec})
    return out


def build_manifest(run: RunDir, cfg: PipelineConfig, plan: Plan, stats: dict) -> dict[str, Any]:
    inputs, models = [], {}
    for phase in plan.phases:
        for t in range(phase.n_tasks):
            rec = run.load_task_stats(phase.name, t)
            if "input" in rec and phase.name == plan.phases[0].name:
                f = plan.inputs[t]
                piece = {"start": f.start, "end": f.end, "sha256": rec.get("input_sha256")}
                if not f.is_piece:
                    inputs.append({"path": f.path, "source": f.source, "size": f.size,
                                   "sha256": rec.get("input_sha256")})
                elif inputs and inputs[-1].get("split") and inputs[-1]["path"] == f.path:
                    inputs[-1]["pieces"].append(piece)  # pieces are planned in file order
                else:
                    inputs.append({"path": f.path, "source": f.source, "size": f.size,
                                   "split": True, "pieces": [piece]})
            for path, digest in rec.get("models", {}).items():
                models[path] = digest
    for f in inputs:
        if f.get("split"):
            f["sha256"] = pieces_sha256(f["pieces"]) if all(
                p["sha256"] for p in f["pieces"]) else None
    artifacts = _artifacts(run, plan)
    return {
        "manifest_version": MANIFEST_VERSION,
        "run": cfg.name,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config_fingerprint": cfg.fingerprint(),
        "config": cfg.to_dict(resolved=True),
        "thresher": {"version": __version__, **git_state(Path(__file__).resolve().parent)},
        "python": {"version": platform.python_version(), "implementation":
                   platform.python_implementation(), "platform": sys.platform},
        "packages": installed_packages(),
        "inputs": inputs,
        "models": [{"path": p, "sha256": h} for p, h in sorted(models.items())],
        **({"artifacts": artifacts} if artifacts else {}),
        "outputs": stats["output"]["shards"],
        "stats": stats["stages"],
    }


def write_manifest(run: RunDir, cfg: PipelineConfig, plan: Plan, stats: dict) -> dict:
    manifest = build_manifest(run, cfg, plan, stats)
    write_json_atomic(run.manifest, manifest)
    return manifest


def verify(manifest: dict, run_dir: Path | RemotePath) -> list[str]:
    """Differences between the manifest's output shards and those in ``run_dir``."""
    from pipelines.io.files import parquet_file, sha256_file

    problems = []
    expected = {s["path"]: s for s in manifest["outputs"]}
    present = {p.relative_to(run_dir).as_posix()
               for p in (run_dir / "data").glob("*") if p.is_file() and not p.name.startswith(".")}
    for path, s in sorted(expected.items()):
        f = run_dir / path
        if not f.exists():
            problems.append(f"missing shard {path}")
            continue
        got = sha256_file(f)
        if got != s["sha256"]:
            problems.append(f"{path}: sha256 {got[:12]}… != expected {s['sha256'][:12]}…")
        try:
            rows = parquet_file(f).metadata.num_rows if path.endswith(".parquet") else None
        except Exception as exc:
            problem = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            problems.append(f"{path}: not readable as Parquet ({problem}); expected "
                            f"{s['rows']} rows")
            rows = None
        if rows is not None and rows != s["rows"]:
            problems.append(f"{path}: {rows} rows != expected {s['rows']}")
    for path in sorted(present - set(expected)):
        problems.append(f"unexpected shard {path}")
    for a in manifest.get("artifacts", []):  # what global steps built (decontaminate's index)
        f = run_path(a["path"]) if is_remote(a["path"]) else run_dir / a["path"]
        if not f.exists():
            problems.append(f"missing {a['stage']} {a['step']} file {a['path']}")
        elif (got := sha256_file(f)) != a["sha256"]:
            problems.append(f"{a['path']} ({a['stage']} {a['step']}): sha256 {got[:12]}… != "
                            f"expected {a['sha256'][:12]}…")
    return problems


def load_manifest(path: str | Path) -> dict:
    import json

    from pipelines.errors import UserError

    p = run_path(path)
    if p.is_dir():
        p = p / "manifest.json"
    try:
        return json.loads(p.read_bytes())
    except OSError as e:
        raise UserError(f"{p}: cannot read manifest: {e.strerror}") from None
    except ValueError as e:
        raise UserError(f"{p}: not a JSON manifest: {e}") from None
