"""``thresher reproduce``: re-run a snapshot from its manifest and prove the bytes match.

Every input and model file is checked against its recorded size and sha256 first (all
differences named in one error), version and source differences are warned about, the
resolved config is run again (``--remap`` moves paths that live elsewhere now), and the
new outputs are verified against the manifest's shard hashes. A token export that
``thresher export`` made in the snapshot's run directory (``<run>/tokens``) is made again
on the new run from the parameters its export.json records and compared file by file
(pipelines/exports.py); a pipeline's tokenize_export is in the manifest already.

An input split into pieces (``input.max_task_bytes``) is checked piece by piece: each
byte range against the sha256 its task recorded (manifest.py says why a split file has
no plain sha256). Remote inputs and model files (``s3://``...) are checked the same way, through the
storage layer with the config's ``input.storage_options`` (size from a listing call where
the manifest has one, sha256 from a streamed read). ``--remap`` swaps path prefixes as
strings, so it works across schemes: ``s3://bucket/crawl=/mnt/mirror`` checks and reads a
local mirror of an S3 snapshot, ``s3://bucket/models=/local/models`` local copies of its
models (the stages' own ``*_sha256`` checks still apply), and ``/data/warc=s3://bucket/warc``
the reverse.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pipelines.io.storage import (
    Storage,
    StorageError,
    StorageNotFound,
    is_remote,
    map_strings,
)
from pipelines.manifest import git_state, installed_packages, load_manifest, verify
from pipelines.rundir import RunDir
from pipelines.version import __version__


def parse_remap(items: list[str]) -> list[tuple[str, str]]:
    """``OLD=NEW`` strings (``--remap``) as (old, new) prefix pairs."""
    from pipelines.errors import UserError

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
    """Input globs and root, and every string in a stage's parameters (model, tokenizer
    and word-list paths or URLs), moved to where they live now."""
    data = dict(data)
    inp = dict(data["input"])
    if inp.get("paths"):
        inp["paths"] = [remap_path(p, remap) for p in inp["paths"]]
    for key in ("root", "paths_file", "prefix"):
        if inp.get(key):
            inp[key] = remap_path(inp[key], remap)
    data["input"] = inp
    data["stages"] = [{k: v if k in ("stage", "name") else _remap_value(v, remap)
                       for k, v in st.items()} for st in data["stages"]]
    return data


def _remap_value(value, remap: list[tuple[str, str]]):
    """Every string in a parameter, lists and mappings walked (a list of blocklists, a
    bad-word file per language, a datatrove step's arguments)."""
    return map_strings(value, lambda s: remap_path(s, remap))


def _remote_differs(storage: Storage, kind: str, url: str, f: dict) -> list[str]:
    """What is wrong with a remote file against its manifest entry ([] if nothing)."""
    try:
        if "size" in f and storage.size(url) != f["size"]:
            return [f"{kind} {url} changed since the snapshot (sha256 differs)"]
        with storage.open_read(url) as fh:
            h = hashlib.sha256()
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except StorageNotFound:
        return [f"{kind} {url} named in the manifest is missing"]
    except StorageError as exc:
        return [f"{kind} {exc}"]
    if h.hexdigest() != f["sha256"]:
        return [f"{kind} {url} changed since the snapshot (sha256 differs)"]
    return []


def _pieces_differ(storage: Storage, where: str, f: dict) -> list[str]:
    """What is wrong with a split input against its manifest entry ([] if nothing)."""
    from pipelines.io.hashing import pieces_differ

    try:
        size = storage.size(where) if is_remote(where) else Path(where).stat().st_size
        if size != f["size"]:
            return [f"input {where} changed since the snapshot (size {f['size']} -> {size})"]
        bad = pieces_differ(where, f["pieces"], storage)
    except (StorageNotFound, FileNotFoundError):
        return [f"input {where} named in the manifest is missing"]
    except StorageError as exc:
        return [f"input {exc}"]
    if bad:
        p = f["pieces"][bad[0]]
        return [f"input {where} changed since the snapshot (sha256 of {len(bad)} of its "
                f"{len(f['pieces'])} pieces differs, the first bytes {p['start']}-{p['end']})"]
    return []


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
    from pipelines.config import config_from_dict
    from pipelines.errors import UserError
    from pipelines.io.files import sha256_file
    from pipelines.run import run_pipeline

    remap = remap or []
    m = load_manifest(manifest_path)
    storage = Storage(m["config"].get("input", {}).get("storage_options") or None)
    bad = []  # every missing or changed file, so one attempt names them all
    for kind, files in (("input", m["inputs"]), ("model", m["models"])):
        for f in files:
            where = remap_path(f["path"], remap)
            if f.get("pieces"):
                bad += _pieces_differ(storage, where, f)
                continue
            if is_remote(where):
                bad += _remote_differs(storage, kind, where, f)
                continue
            p = Path(where)
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
    return run, verify(m, run.root) + _reproduce_exports(manifest_path, m, run, remap, warn)


def _reproduce_exports(manifest_path, m: dict, run: RunDir, remap, warn) -> list[str]:
    """Exports made on the snapshot's run directory by `thresher export`, made again on
    the new run and compared with their export.json (pipelines/exports.py)."""
    from pipelines.exports import reproduce_exports
    from pipelines.io.remote_path import run_path

    p = run_path(manifest_path)
    snapshot = p if p.is_dir() else p.parent
    return reproduce_exports(snapshot, m, run.root, lambda s: remap_path(s, remap), warn)[0]
