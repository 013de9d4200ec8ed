"""Model files, word lists and tokenizers that may live in object storage.

A stage names each file that decides its output by a local path or a URL (``s3://``,
``gs://``, ``hf://``, ``http(s)://``). ``local_model`` turns either into a local file to
load: a local path is returned as it is; a URL is downloaded through the storage layer
into a content-addressed cache, ``<cache>/models/<sha256>/<name>`` (``<cache>`` is
``$THRESHER_CACHE``, else ``~/.cache/thresher``), and checked against the expected sha256
when one is given. ``model_key`` and ``file_sha256`` give what ``Stage.model_files``
reports: the URL (not the cache path) for a remote file, so the manifest records
``s3://...`` and ``thresher reproduce`` checks the URL.

The cache is trusted by its name only after its hash was checked once in this process:
a file there was committed whole (temp, fsync, rename) and only after its hash matched,
so what could still be wrong with it is outside thresher (a disk error, a hand edit),
and hashing it once per process is what a local model costs already (stages hash their
local files in ``setup``, once per process). A URL without an expected sha256 cannot be
looked up in a cache keyed by content, so it is downloaded once per process.

Storage options (endpoint, ``${VAR}`` credentials) come from the ``storage_options``
argument, else from ``model_storage``, which the engine wraps around ``Stage.setup`` with
the config's ``input.storage_options``, else from the environment alone.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pipelines.errors import UserError
from pipelines.io import storage as st
from pipelines.io.files import commit, sha256_file, sweep_stale_temps, temp_path

Options = st.Storage | st.StorageOptions | Mapping[str, Any] | None

_OPTIONS: ContextVar[Options] = ContextVar("thresher_model_storage", default=None)
_LOCK = threading.Lock()  # one download at a time per process: rare, and no temp clashes
_VERIFIED: dict[str, tuple[Path, str]] = {}  # URL -> (cached file, its checked sha256)


@contextmanager
def model_storage(options: Options) -> Iterator[None]:
    """Storage options for the ``local_model`` calls made inside (the engine's hook)."""
    token = _OPTIONS.set(options)
    try:
        yield
    finally:
        _OPTIONS.reset(token)


def cache_dir() -> Path:
    """Where downloaded model files are kept, one directory per sha256."""
    root = os.environ.get("THRESHER_CACHE") or os.path.join("~", ".cache", "thresher")
    return Path(root).expanduser() / "models"


def _storage(options: Options) -> st.Storage:
    options = options if options is not None else _OPTIONS.get()
    return options if isinstance(options, st.Storage) else st.Storage(options or None)


def _name(url: str) -> str:
    """The file name a URL's object is cached under (its last path part)."""
    path = url.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    name = path.rsplit("/", 1)[-1]
    return name if name not in ("", ".", "..") else "model"


def model_key(path_or_url: str | os.PathLike) -> str:
    """What ``model_files`` reports: a URL as it is, a local file by its absolute path."""
    spec = str(path_or_url)
    if st.is_remote(spec):
        return spec
    return str(Path(st.local_path(spec)).expanduser().resolve())


def local_model(path_or_url: str | os.PathLike, sha256: str | None = None,
                storage_options: Options = None, *, what: str = "model") -> Path:
    """A local file holding ``path_or_url``: a local path as it is (the caller checks
    it), a URL downloaded once into the cache and checked against ``sha256``.

    ``what`` starts the one-line errors (``"stage langid: model"``), which name the URL."""
    spec = str(path_or_url)
    if not st.is_remote(spec):
        return Path(st.local_path(spec)).expanduser()
    want = sha256.lower() if sha256 else None
    with _LOCK:
        hit = _VERIFIED.get(spec)
        if hit and (want is None or hit[1] == want) and hit[0].is_file():
            return hit[0]
        name = _name(spec)
        if want is not None:
            cached = cache_dir() / want / name
            if cached.is_file():
                if sha256_file(cached) == want:
                    _VERIFIED[spec] = (cached, want)
                    return cached
                cached.unlink(missing_ok=True)  # damaged outside thresher: fetch it again
        path, got = _download(spec, name, want, _storage(storage_options), what)
        _VERIFIED[spec] = (path, got)
        return path


def _download(url: str, name: str, want: str | None, storage: st.Storage,
              what: str) -> tuple[Path, str]:
    """Stream ``url`` into a temp file beside the cache, hashing it, and commit it to
    ``<sha256>/<name>`` only if the hash is the one wanted."""
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(root)  # downloads killed earlier
    tmp = temp_path(root / name)
    h = hashlib.sha256()
    try:
        try:
            with storage.open_read(url) as src, open(tmp, "wb") as dst:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    h.update(chunk)
                    dst.write(chunk)
        except st.StorageError as exc:
            raise UserError(f"{what} {exc}") from None
        got = h.hexdigest()
        if want is not None and got != want:
            raise UserError(f"{what} {url} has sha256 {got}, expected {want}")
        final = root / got / name
        final.parent.mkdir(exist_ok=True)
        commit(tmp, final)
        return final, got
    finally:
        tmp.unlink(missing_ok=True)


def is_file(path_or_url: str | os.PathLike, storage_options: Options = None) -> bool:
    """Whether a path or URL names a file (an object, not a prefix); False if unreachable."""
    spec = str(path_or_url)
    try:
        if not st.is_remote(spec):
            return len(spec) < 4096 and Path(spec).is_file()
        return _storage(storage_options).info(spec).get("type") == "file"
    except (OSError, ValueError):
        return False


def file_sha256(path_or_url: str | os.PathLike, storage_options: Options = None) -> str:
    """sha256 of a model file: a local file is hashed; a URL's is the one checked when it
    was fetched in this process (fetching it now if it was not)."""
    spec = str(path_or_url)
    if not st.is_remote(spec):
        return sha256_file(Path(st.local_path(spec)).expanduser())
    if spec not in _VERIFIED:
        local_model(spec, storage_options=storage_options)
    return _VERIFIED[spec][1]


def model_hashes(paths: Iterable[str | os.PathLike],
                 storage_options: Options = None) -> dict[str, str]:
    """``model_key`` -> sha256 of each file: what ``Stage.model_files`` returns."""
    return {model_key(p): file_sha256(p, storage_options) for p in paths}


__all__ = ["local_model", "model_key", "is_file", "file_sha256", "model_hashes",
           "model_storage", "cache_dir"]
