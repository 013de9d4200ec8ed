"""``RemotePath``: a run directory (or any file thresher writes) in object storage.

The engine names the files of a run with ``pathlib`` operations (``root / "stats" /
phase``, ``.name``, ``.parent``, ``.exists()``, ``.glob()``). ``RemotePath`` gives that
same small API for a URL, backed by the storage layer (pipelines/io/storage.py: bounded,
counted retries; one object per commit), so the code that lays out a run does not care
where the run lives. ``run_path`` turns what the user wrote into a ``Path`` or a
``RemotePath``.

Writing is never done through ``open("w")``: files are committed whole by
``pipelines.io.files`` (``atomic_path``, ``commit``, ``write_*_atomic``), which write a
local temporary file and, for a ``RemotePath``, upload it as one object (``upload_from``)
whose completion is the commit. Reading goes through ``open_read`` (streamed, range
requests), which ``files.read_table`` / ``parquet_file`` / ``sha256_file`` use.

Directories do not exist in object stores: ``mkdir`` does nothing, a "directory"
exists when an object is under its prefix, and removing one removes every object
under it.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from pipelines.io import storage as st


@dataclass(frozen=True)
class _Stat:
    st_size: int


class RemotePath:
    """A URL with the part of ``pathlib.Path``'s API that a run directory needs."""

    __slots__ = ("url",)

    def __init__(self, url: str):
        if not st.is_remote(url):
            raise ValueError(f"not a remote URL: {url}")
        head, _, rest = url.partition("://")
        rest = posixpath.normpath(rest) if rest else rest
        self.url = f"{head}://{rest.rstrip('/')}" if rest not in ("", ".") else f"{head}://"

    # -- naming
    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"RemotePath({self.url!r})"

    def __fspath__(self) -> str:  # pragma: no cover - guard
        raise TypeError(f"{self.url} is in object storage; read it with the storage layer "
                        "(pipelines.io.files / storage), not as a local file")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemotePath) and other.url == self.url

    def __lt__(self, other: RemotePath) -> bool:
        return self.url < other.url

    def __hash__(self) -> int:
        return hash(self.url)

    def __truediv__(self, part: str | os.PathLike) -> RemotePath:
        return RemotePath(f"{self.url}/{str(part).lstrip('/')}")

    def joinpath(self, *parts: str) -> RemotePath:
        p = self
        for part in parts:
            p = p / part
        return p

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1] if "/" in self.url.split("://", 1)[1] else \
            self.url.split("://", 1)[1]

    @property
    def stem(self) -> str:
        return PurePosixPath(self.name).stem

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    @property
    def parent(self) -> RemotePath:
        head, rest = self.url.split("://", 1)
        return RemotePath(f"{head}://{rest.rsplit('/', 1)[0]}") if "/" in rest else self

    def with_name(self, name: str) -> RemotePath:
        return self.parent / name

    def with_suffix(self, suffix: str) -> RemotePath:
        return self.with_name(self.stem + suffix)

    def relative_to(self, other: RemotePath | str) -> PurePosixPath:
        base = str(other).rstrip("/") + "/"
        if not self.url.startswith(base):
            raise ValueError(f"{self.url} is not under {other}")
        return PurePosixPath(self.url[len(base):])

    def as_posix(self) -> str:
        return self.url

    def resolve(self) -> RemotePath:
        return self

    absolute = expanduser = resolve

    # -- looking
    def exists(self) -> bool:
        return st.default_storage().exists(self.url)

    def is_file(self) -> bool:
        try:
            return st.default_storage().info(self.url).get("type") == "file"
        except st.StorageNotFound:
            return False

    def is_dir(self) -> bool:
        return self.exists() and not self.is_file()

    def stat(self) -> _Stat:
        return _Stat(st.default_storage().size(self.url))

    def iterdir(self) -> Iterator[RemotePath]:
        try:
            names = st.default_storage().ls(self.url)
        except st.StorageNotFound:
            return iter(())
        return iter(RemotePath(n) for n in names if n.rstrip("/") != self.url)

    def glob(self, pattern: str) -> Iterator[RemotePath]:
        return iter(RemotePath(u) for u in st.default_storage().glob(f"{self.url}/{pattern}"))

    def rglob(self, pattern: str) -> Iterator[RemotePath]:
        return self.glob(f"**/{pattern}")

    # -- reading
    def open_read(self) -> IO[bytes]:
        return st.default_storage().open_read(self.url)

    def open(self, mode: str = "r", encoding: str | None = "utf-8") -> IO:
        if mode in ("r", "rt"):
            return io.TextIOWrapper(self.open_read(), encoding=encoding)
        if mode == "rb":
            return self.open_read()
        raise ValueError(f"{self.url}: object storage is written whole through "
                         "pipelines.io.files (atomic_path / write_*_atomic), not open()")

    def read_bytes(self) -> bytes:
        return st.default_storage().read_bytes(self.url)

    def read_text(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return self.read_bytes().decode(encoding, errors)

    # -- writing: whole objects
    def write_bytes(self, data: bytes) -> None:
        st.default_storage().write_bytes(self.url, data)

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        self.write_bytes(text.encode(encoding))

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: an object store has no directories."""

    def unlink(self, missing_ok: bool = False) -> None:
        st.default_storage().rm(self.url, missing_ok=missing_ok)

    def rmtree(self) -> None:
        """Remove every object under this prefix (and the object itself, if any)."""
        st.default_storage().rm(self.url, recursive=True)

    # -- the commit hooks pipelines.io.files uses
    def local_temp(self) -> Path:
        """A local file to write this object's content to before ``upload_from``."""
        d = _spool()
        tag = hashlib.sha1(self.url.encode()).hexdigest()[:16]
        return d / f"{tag}-{self.name}"

    def upload_from(self, tmp: Path) -> None:
        """Commit: ``tmp`` becomes this object whole (one PUT or a completed multipart
        upload), then ``tmp`` is removed."""
        with open(tmp, "rb") as src, st.default_storage().atomic_write(self.url) as dst:
            shutil.copyfileobj(src, dst, 8 << 20)
        tmp.unlink(missing_ok=True)


_SPOOL: Path | None = None


def _spool() -> Path:
    """This process's local directory for files on their way to object storage,
    ``<tmp>/thresher-<pid>``; made once, after removing those of dead processes
    (a killed task's half-written temporaries)."""
    global _SPOOL
    if _SPOOL is None or _SPOOL.name != f"thresher-{os.getpid()}" or not _SPOOL.is_dir():
        base = Path(tempfile.gettempdir())
        for d in base.glob("thresher-[0-9]*"):
            try:
                os.kill(int(d.name.split("-", 1)[1]), 0)
            except ProcessLookupError:
                shutil.rmtree(d, ignore_errors=True)
            except (ValueError, PermissionError):
                pass  # not ours, or another user's live process
        _SPOOL = base / f"thresher-{os.getpid()}"
        _SPOOL.mkdir(parents=True, exist_ok=True)
    return _SPOOL


def run_path(where: str | os.PathLike) -> Path | RemotePath:
    """A local path (made absolute) or a ``RemotePath`` for a URL; ``file://`` is local."""
    if isinstance(where, RemotePath):
        return where
    s = str(where)
    if st.is_remote(s):
        return RemotePath(s)
    return Path(st.local_path(s)).expanduser().resolve()


def remove_tree(path: Path | RemotePath) -> None:
    """Remove a directory (local) or every object under a prefix (remote)."""
    if isinstance(path, RemotePath):
        path.rmtree()
    else:
        shutil.rmtree(path)
