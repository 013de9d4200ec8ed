"""manifest.json: the snapshot lock of a run, and checking a run against it.

The manifest records what decides a corpus: the resolved config and its
fingerprint, thresher's version and git commit (with a dirty flag), Python and
every installed distribution, each input file (size, sha256), each model file
(sha256), each output shard (rows, bytes, sha256) and the merged stats.
Input hashes are taken by the task that reads the input, as its reader reads it
(io/hashing.py; Parquet, read footer first, gets one read of its own).
"""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from importlib.metadata import distributions
from pathlib import Path
from typing import Any

from . import __version__
from .config import PipelineConfig
from .plan import Plan
from .rundir import RunDir
from .stats import write_json_atomic

MANIFEST_VERSION = 1


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
    pkgs = {}
    for d in distributions():
        name = d.metadata.get("Name")
        if name:
            pkgs[name.lower()] = d.version
    return dict(sorted(pkgs.items()))


def build_manifest(run: RunDir, cfg: PipelineConfig, plan: Plan, stats: dict) -> dict[str, Any]:
    inputs, models = [], {}
    for phase in plan.phases:
        for t in range(phase.n_tasks):
            rec = run.load_task_stats(phase.name, t)
            if "input" in rec and phase.name == plan.phases[0].name:
                f = plan.inputs[t]
                inputs.append({"path": f.path, "source": f.source, "size": f.size,
                               "sha256": rec.get("input_sha256")})
            for path, digest in rec.get("models", {}).items():
                models[path] = digest
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
        "outputs": stats["output"]["shards"],
        "stats": stats["stages"],
    }


def write_manifest(run: RunDir, cfg: PipelineConfig, plan: Plan, stats: dict) -> dict:
    manifest = build_manifest(run, cfg, plan, stats)
    write_json_atomic(run.manifest, manifest)
    return manifest


def verify(manifest: dict, run_dir: Path) -> list[str]:
    """Differences between the manifest's output shards and those in ``run_dir``."""
    from .io.writers import sha256_file

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
            import pyarrow.parquet as pq

            rows = pq.ParquetFile(f).metadata.num_rows if path.endswith(".parquet") else None
        except Exception as exc:
            problem = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            problems.append(f"{path}: not readable as Parquet ({problem}); expected "
                            f"{s['rows']} rows")
            rows = None
        if rows is not None and rows != s["rows"]:
            problems.append(f"{path}: {rows} rows != expected {s['rows']}")
    for path in sorted(present - set(expected)):
        problems.append(f"unexpected shard {path}")
    return problems


def load_manifest(path: str | Path) -> dict:
    import json

    from .errors import UserError

    p = Path(path)
    if p.is_dir():
        p = p / "manifest.json"
    try:
        return json.loads(p.read_text())
    except OSError as e:
        raise UserError(f"{p}: cannot read manifest: {e.strerror}") from None
    except ValueError as e:
        raise UserError(f"{p}: not a JSON manifest: {e}") from None


def parse_remap(items: list[str]) -> list[tuple[str, str]]:
    """``OLD=NEW`` strings (``--remap``) as (old, new) prefix pairs."""
    from .errors import UserError

    pairs = []
    for item in items:
        old, sep, new = item.partition("=")
        if not sep or not old or not new:
            raise UserError(f"--remap {item!r}: expected OLD_PREFIX=NEW_PREFIX")
        pairs.append((old, new))
    return pairs


def remap_path(path: str, remap: list[tuple[str, str]]) -> str:
    """``path`` with the first matching old prefix replaced (whole path components only)."""
    for old, new in remap:
        o = old.rstrip("/")
        if o and (path == o or path.startswith(o + "/")):
            return new.rstrip("/") + path[len(o):]
    return path


def _remap_config(data: dict, remap: list[tuple[str, str]]) -> dict:
    """Input globs and root, and every string parameter of a stage (model and tokenizer
    paths), moved to where they live now."""
    data = dict(data)
    inp = dict(data["input"])
    inp["paths"] = [remap_path(p, remap) for p in inp["paths"]]
    if inp.get("root"):
        inp["root"] = remap_path(inp["root"], remap)
    data["input"] = inp
    data["stages"] = [{k: remap_path(v, remap) if isinstance(v, str) and k not in
                       ("stage", "name") else v for k, v in st.items()}
                      for st in data["stages"]]
    return data


def _warn_about_the_source(snap: dict, now: dict, warn) -> None:
    """Same release, other code: a different commit, or uncommitted changes either side."""
    if snap.get("commit") and now["commit"] and snap["commit"] != now["commit"]:
        warn(f"thresher commit {now['commit'][:12]} differs from the snapshot's "
             f"{snap['commit'][:12]}")
    if snap.get("dirty"):
        warn("the snapshot was made by a thresher checkout with uncommitted changes; "
             "their code is in no commit")
    if now["dirty"]:
        warn("this thresher checkout has uncommitted changes")


def reproduce(manifest_path: Path, out: str, workers: int | None = None,
              warn=lambda msg: None,
              remap: list[tuple[str, str]] | None = None) -> tuple[RunDir, list[str]]:
    """Check inputs and models against their hashes, re-run, and verify the outputs.

    ``remap`` ((old prefix, new prefix) pairs) reproduces a snapshot made where the
    inputs and models lived elsewhere: paths are moved, hashes are still checked."""
    from .config import config_from_dict
    from .errors import UserError
    from .io.writers import sha256_file
    from .runner import run_pipeline

    remap = remap or []
    m = load_manifest(manifest_path)
    bad = []  # every missing or changed file, so one attempt names them all
    for kind, files in (("input", m["inputs"]), ("model", m["models"])):
        for f in files:
            p = Path(remap_path(f["path"], remap))
            if not p.is_file():
                bad.append(f"{kind} {p} named in the manifest is missing")
            elif ("size" in f and p.stat().st_size != f["size"]) or \
                    sha256_file(p) != f["sha256"]:
                bad.append(f"{kind} {p} changed since the snapshot (sha256 differs)")
    if len(bad) == 1:
        raise UserError(bad[0])
    if bad:
        raise UserError(f"{len(bad)} files differ from the snapshot: " + "; ".join(bad))
    if m["thresher"]["version"] != __version__:
        warn(f"thresher {__version__} differs from the snapshot's {m['thresher']['version']}")
    _warn_about_the_source(m["thresher"], git_state(Path(__file__).resolve().parent), warn)
    now = installed_packages()
    for name, ver in m["packages"].items():
        if now.get(name) != ver:
            warn(f"package {name} {now.get(name, 'missing')} differs from the snapshot's {ver}")
    data = dict(m["config"])
    data["output"] = {**data["output"], "path": str(out)}
    if workers is not None:
        data["executor"] = {**data["executor"], "workers": workers}
    cfg = config_from_dict(data)
    if cfg.fingerprint() != m["config_fingerprint"]:
        warn("the config's fingerprint differs from the manifest's (defaults changed?)")
    if remap:
        cfg = config_from_dict(_remap_config(data, remap))
    run = run_pipeline(cfg)
    return run, verify(m, run.root)
