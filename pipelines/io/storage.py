"""One storage layer for every path thresher touches: local, file://, s3://, gs://, hf://, http(s)://.

fsspec does the talking; this module adds what a pipeline needs on top of it:

- **Commits.** ``atomic_write`` yields a binary (or text) file whose content becomes
  visible whole on a clean exit and never otherwise. Locally that is ``files.atomic_path``
  (temp + fsync + rename + dir fsync). On S3 it is one object: a single PUT, or a multipart
  upload whose completion is the commit; on an exception the upload is aborted. Two writers
  of one name each commit whole, the last one wins. Other object stores spool to a temp
  file and upload it whole.
- **Retries.** Transient errors (5xx, SlowDown/throttling, connection reset or cut,
  timeouts) are retried with exponential backoff and full jitter, bounded in attempts and
  seconds (``RetryPolicy``); each retry is counted by kind in a ``RetryCounter`` the caller
  merges into task stats. fsspec's and botocore's own retries are switched off so that
  every retry is seen and counted here. Anything else fails at once with one line naming
  the URL and the cause (``StorageError``).
- **Streaming reads.** ``open_read`` reads ahead a block at a time (range requests of
  ``block_size``), so memory stays bounded whatever the object's size; a read cut
  mid-body is retried from the reader's current offset, never from zero, and the object's
  ETag is pinned so the bytes returned are exactly one version of it.
- **Credentials** come from each filesystem's standard places (environment, profile files,
  instance metadata) plus ``storage_options`` from the config, whose ``${VAR}`` references
  are resolved only when a filesystem is built; ``StorageOptions.redacted()`` is the only
  form meant for configs and logs.
"""

from __future__ import annotations

import errno
import glob as _glob
import hashlib
import io
import os
import random
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from pipelines.errors import UserError
from pipelines.io.files import atomic_path

T = TypeVar("T")

READ_ONLY = ("http", "https", "hf")
# scheme -> (fsspec protocol, the thresher extra that installs it, the module it needs)
SCHEMES = {
    "s3": ("s3", "s3", "botocore"),  # pipelines/io/s3.py, not fsspec's s3fs
    "s3a": ("s3", "s3", "botocore"),
    "gs": ("gs", "gcs", "gcsfs"),
    "gcs": ("gs", "gcs", "gcsfs"),
    "hf": ("hf", None, "huggingface_hub"),
    "http": ("http", None, "aiohttp"),
    "https": ("https", None, "aiohttp"),
}
DEFAULT_BLOCK_SIZE = 8 << 20  # read-ahead per range request (measured ~140 MB/s on moto)
DEFAULT_PART_SIZE = 8 << 20  # S3 multipart part size (S3 needs >= 5 MiB but for the last)
_SCHEME_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


class StorageError(OSError):
    """One line naming the URL and the cause; raised for every failed storage call."""

    def __init__(self, url: str, cause: str):
        super().__init__(f"{url}: {cause}")
        self.url = url


class StorageNotFound(StorageError, FileNotFoundError):
    pass


class StorageForbidden(StorageError, PermissionError):
    pass


class RetrySettingError(UserError, ValueError):
    """``THRESHER_STORAGE_RETRY`` does not parse; one line naming the bad item."""


# ---------------------------------------------------------------------------------- URLs


def scheme(url: str) -> str:
    """``"file"`` for local paths and file:// URLs, else the URL's lower-case scheme."""
    m = _SCHEME_RE.match(str(url))
    return m.group(1).lower() if m else "file"


def is_remote(url: str | os.PathLike) -> bool:
    return scheme(str(url)) != "file"


# Filesystem types whose bytes cross a network (a cluster's shared storage, FUSE mounts of
# object stores): ``output.intermediate_compression: auto`` compresses there.
NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "lustre", "gpfs", "beegfs", "cifs", "smb3", "smbfs", "ceph", "glusterfs",
    "fuse.glusterfs", "fuse.cephfs", "fuse.sshfs", "fuse.s3fs", "fuse.gcsfuse", "fuse.rclone",
    "fuse.juicefs", "fuse.mountpoint-s3", "fuse.goofys", "fuse.blobfuse2", "fuse.weka"})


def filesystem_type(path: str | os.PathLike, mounts: str | None = None) -> str | None:
    """The type of the filesystem that holds (or would hold) local ``path``: its innermost
    mount point's, from ``mounts`` (``/proc/mounts``' text, read when None); None where
    there is no /proc/mounts."""
    if mounts is None:
        try:
            with open("/proc/mounts", encoding="utf-8", errors="replace") as fh:
                mounts = fh.read()
        except OSError:
            return None
    target = os.path.realpath(local_path(path))  # symlinks of the part that exists resolved
    best, kind = -1, None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= best:  # the last of equal mount points is on top
            best, kind = len(point), fields[2]
    return kind


def on_network_filesystem(path: str | os.PathLike, mounts: str | None = None) -> bool:
    return filesystem_type(path, mounts) in NETWORK_FILESYSTEMS


def local_path(url: str | os.PathLike) -> str:
    """The filesystem path of a local path or file:// URL."""
    url = str(url)
    return url[len("file://"):] if url.lower().startswith("file://") else url


def join(base: str | os.PathLike, *parts: str) -> str:
    """``base``/``parts`` in ``base``'s form (local path, file:// URL or remote URL)."""
    base = str(base)
    if not is_remote(base):
        joined = os.path.join(local_path(base), *parts)
        return "file://" + joined if base.lower().startswith("file://") else joined
    out = base
    for part in parts:
        if _SCHEME_RE.match(part):
            out = part
        else:
            out = out.rstrip("/") + "/" + part.lstrip("/")
    return out


def _bucket_path(url: str) -> str:
    """What fsspec calls the path: the URL without its scheme (http keeps it whole)."""
    return url if scheme(url) in ("http", "https") else _SCHEME_RE.sub("", url, count=1)


# ------------------------------------------------------------------------------- options

_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SECRET_KEY_RE = re.compile(r"secret|token|key|password|passwd|credential|auth|session",
                            re.IGNORECASE)


def map_strings(value: Any, fn: Callable[[str], Any]) -> Any:
    """``value`` with ``fn`` applied to every string in it, mappings and lists walked: the
    form of storage options, stage parameters and a datatrove step's arguments."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, Mapping):
        return {k: map_strings(v, fn) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(map_strings(v, fn) for v in value)
    return value


def _resolve(value: Any, where: str) -> Any:
    def sub(m: re.Match) -> str:
        if m.group(1) not in os.environ:
            raise StorageError(where, f"storage_options references ${{{m.group(1)}}}, "
                                      "which is not set in the environment")
        return os.environ[m.group(1)]

    return map_strings(value, lambda s: _VAR_RE.sub(sub, s))


def _redact(value: Any, secret: bool) -> Any:
    if isinstance(value, Mapping):
        return {k: _redact(v, secret or bool(_SECRET_KEY_RE.search(str(k))))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact(v, secret) for v in value]
    if secret and isinstance(value, str) and not _VAR_RE.fullmatch(value):
        return "***"
    return value


def literal_secrets(options: Mapping[str, Any], where: str = "storage_options") -> list[str]:
    """Key paths of ``options`` whose key looks secret and whose value is a literal
    string, not a ``${VAR}`` reference: written in a config, it would be copied into
    every run directory made from it."""
    out = []
    for k, v in options.items():
        path = f"{where}.{k}"
        if isinstance(v, Mapping):
            out += literal_secrets(v, path)
        elif isinstance(v, str) and _SECRET_KEY_RE.search(str(k)) and not _VAR_RE.fullmatch(v):
            out.append(path)
    return out


class StorageOptions:
    """Per-scheme fsspec options as written in a config, e.g.
    ``{"s3": {"endpoint_url": "...", "secret": "${MY_SECRET}"}}``.

    Only the written form is kept (and pickled, so a worker resolves ``${VAR}`` from its
    own environment); ``resolved`` is called when a filesystem is built and its result is
    handed to fsspec only. ``redacted()`` (also the repr) keeps ``${VAR}`` references and
    masks literal values under secret-like keys.
    """

    def __init__(self, options: Mapping[str, Mapping[str, Any]] | None = None):
        options = dict(options or {})
        for name, opts in options.items():
            if scheme(f"{name}://x") not in SCHEMES or not isinstance(opts, Mapping):
                raise StorageError("storage_options", f"{name!r} is not a remote scheme "
                                   f"with a mapping of options (known: {', '.join(SCHEMES)})")
        self._written = {k.lower(): dict(v) for k, v in options.items()}

    def resolved(self, name: str) -> dict[str, Any]:
        return _resolve(self._written.get(name, {}), f"storage_options.{name}")

    def redacted(self) -> dict[str, Any]:
        return _redact(self._written, False)

    def __repr__(self) -> str:
        return f"StorageOptions({self.redacted()!r})"


# ------------------------------------------------------------------------------- retries


RETRY_ENV = "THRESHER_STORAGE_RETRY"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: sleep U(0, min(cap, base * 2**n)) after the
    n-th failure, at most ``attempts`` tries and ``max_seconds`` in all.

    Retries change how long a run takes, never its bytes, so the policy is the
    environment's (``THRESHER_STORAGE_RETRY``, like botocore's ``AWS_MAX_ATTEMPTS``), not
    the config's: it is not part of the run's fingerprint.
    """

    attempts: int = 10
    max_seconds: float = 120.0
    base: float = 0.1
    cap: float = 10.0

    @classmethod
    def from_env(cls) -> RetryPolicy:
        """The defaults, overridden by ``THRESHER_STORAGE_RETRY="attempts=5,cap=2"``."""
        spec = os.environ.get(RETRY_ENV, "").strip()
        if not spec:
            return cls()
        kinds = {"attempts": int, "max_seconds": float, "base": float, "cap": float}
        values: dict[str, Any] = {}
        for item in spec.split(","):
            key, sep, value = (part.strip() for part in item.partition("="))
            try:
                if not sep or key not in kinds:
                    raise ValueError
                values[key] = kinds[key](value)
                if values[key] < (1 if key == "attempts" else 0):
                    raise ValueError
            except ValueError:
                raise RetrySettingError(
                    f"{RETRY_ENV}={spec!r}: expected comma-separated name=value with names "
                    f"{', '.join(kinds)} (attempts an integer >= 1, the rest seconds >= 0), "
                    f"got {item.strip()!r}") from None
        return cls(**values)


@dataclass
class RetryCounter:
    """Retries by kind (throttled, server_error, connection, timeout); thread-safe."""

    counts: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, kind: str, n: int = 1) -> None:
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + n

    def __getstate__(self) -> dict:
        return {"counts": self.as_dict()}

    def __setstate__(self, state: dict) -> None:
        self.counts, self._lock = dict(state["counts"]), threading.Lock()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self.counts.items()))


_THROTTLE_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
                   "TooManyRequests", "TooManyRequestsException", "RequestThrottled"}
_TRANSIENT_CODES = {"InternalError", "ServiceUnavailable", "RequestTimeout",
                    "RequestTimeoutException", "ExpiredToken"} | _THROTTLE_CODES
_CONNECTION_NAMES = {"ConnectionError", "HTTPClientError", "ClientPayloadError",
                     "ServerDisconnectedError", "ClientConnectionError", "ClientOSError",
                     "EndpointConnectionError", "ConnectionClosedError", "ProtocolError",
                     "ResponseStreamingError", "IncompleteReadError", "IncompleteRead",
                     "ResponseParserError", "ContentLengthError", "TransferEncodingError"}
_TIMEOUT_NAMES = {"TimeoutError", "ReadTimeoutError", "ConnectTimeoutError",
                  "FSTimeoutError", "ServerTimeoutError", "ConnectionTimeoutError",
                  "SocketTimeoutError", "timeout"}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)


def _http_status(exc: BaseException) -> tuple[int | None, str | None]:
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):  # botocore ClientError
        err = response.get("Error", {}) or {}
        status = (response.get("ResponseMetadata", {}) or {}).get("HTTPStatusCode")
        return (int(status) if status else None), err.get("Code")
    status = getattr(exc, "status", None)  # aiohttp ClientResponseError
    return (status, None) if isinstance(status, int) else (None, None)


def classify(exc: BaseException) -> str | None:
    """The retry kind of a transient error, or None if retrying cannot help."""
    chain = list(_chain(exc))
    for e in chain:  # an HTTP answer decides, however it was wrapped
        if type(e).__name__ == "HTTPClientError":  # botocore: the response was garbled
            return "connection"
        status, code = _http_status(e)
        if code in _THROTTLE_CODES or status in (429, 503):  # S3's 503 is SlowDown
            return "throttled"
        if code in _TRANSIENT_CODES or (status is not None and status >= 500):
            return "server_error"
        if status is not None or code is not None:
            return None
    for e in chain:
        names = {c.__name__ for c in type(e).__mro__}
        if names & _TIMEOUT_NAMES:
            return "timeout"
        if names & _CONNECTION_NAMES:
            return "connection"
    return None


def _cause(exc: BaseException) -> str:
    """The most telling line of an exception chain."""
    for e in _chain(exc):
        status, code = _http_status(e)
        if code or status:
            msg = ""
            response = getattr(e, "response", None)
            if isinstance(response, Mapping):
                msg = (response.get("Error", {}) or {}).get("Message") or ""
            parts = [str(status)] if status else []
            if code and code != str(status):
                parts.append(code)
            text = " ".join(parts) + (f": {msg}" if msg else "")
            return text
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return " ".join(text.split())[:300]


def _permanent(url: str, exc: BaseException) -> StorageError:
    if isinstance(exc, StorageError):
        return exc
    cause = _cause(exc)
    kinds = [type(e) for e in _chain(exc)]
    status = next((s for s, _ in map(_http_status, _chain(exc)) if s), None)
    if status == 404 or (status is None and any(issubclass(k, FileNotFoundError)
                                                for k in kinds)):
        return StorageNotFound(url, f"not found ({cause})" if status else "not found")
    if status == 403 or (status is None and any(issubclass(k, PermissionError)
                                                for k in kinds)):
        return StorageForbidden(url, f"access denied ({cause})")
    return StorageError(url, cause)


# ------------------------------------------------------------------------------- storage


class Storage:
    """Options, retry policy and retry counter for a task's storage calls.

    One per task is the intended use: ``storage.retries.as_dict()`` then holds that task's
    retries. The module-level functions use a default instance (environment only).
    """

    def __init__(self, options: StorageOptions | Mapping | None = None,
                 policy: RetryPolicy | None = None, counter: RetryCounter | None = None,
                 block_size: int = DEFAULT_BLOCK_SIZE, part_size: int = DEFAULT_PART_SIZE):
        self.options = options if isinstance(options, StorageOptions) else StorageOptions(
            options)
        self.policy = policy or RetryPolicy.from_env()
        self.retries = counter if counter is not None else RetryCounter()
        self.block_size, self.part_size = block_size, part_size
        self._rng = random.Random()

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_rng"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._rng = random.Random()

    # -- the retry loop
    def call(self, url: str, op: Callable[[], T]) -> T:
        """Run ``op`` (one storage request about ``url``) with bounded, counted retries."""
        start, attempt = time.monotonic(), 0
        while True:
            try:
                return op()
            except StorageError:
                raise
            except Exception as exc:
                kind = classify(exc)
                if kind is None:
                    raise _permanent(url, exc) from exc
                attempt += 1
                elapsed = time.monotonic() - start
                delay = self._rng.uniform(0, min(self.policy.cap,
                                                 self.policy.base * 2 ** (attempt - 1)))
                if attempt >= self.policy.attempts or elapsed + delay > self.policy.max_seconds:
                    raise StorageError(url, f"gave up after {attempt} attempts in "
                                            f"{elapsed:.1f}s ({kind}): {_cause(exc)}") from exc
                self.retries.add(kind)
                time.sleep(delay)

    # -- filesystems
    def filesystem(self, url: str):
        """The filesystem for ``url``'s scheme: fsspec's, or for S3 ``pipelines.io.s3``
        (botocore, synchronous, fsspec's method names); no retries of its own."""
        name = scheme(url)
        if name not in SCHEMES:
            raise StorageError(url, f"unsupported scheme {name}:// (supported: local paths, "
                                    f"file://, {', '.join(s + '://' for s in SCHEMES)})")
        protocol, extra, module = SCHEMES[name]
        try:
            __import__(module)
        except ImportError:
            hint = f"pip install 'thresher[{extra}]'" if extra else f"pip install {module}"
            raise StorageError(url, f"{name}:// needs {module}, which is not installed "
                                    f"({hint})") from None
        opts = self.options.resolved(name)
        if protocol == "s3":
            from pipelines.io import s3

            try:
                return s3.filesystem(opts)
            except ValueError as exc:
                raise StorageError(url, str(exc)) from None
        import fsspec

        opts.setdefault("use_listings_cache", False)  # other writers change the listing
        fs = fsspec.filesystem(protocol, **opts)
        return fs

    # -- reading
    def open_read(self, url: str | os.PathLike, block_size: int | None = None) -> IO[bytes]:
        """A binary, seekable reader; remote objects stream with read-ahead."""
        url = str(url)
        if not is_remote(url):
            try:
                return open(local_path(url), "rb")
            except OSError as exc:
                raise _permanent(url, exc) from exc
        raw = _RemoteReader(self, url, block_size or self.block_size)
        return io.BufferedReader(raw, buffer_size=1 << 16)

    def read_bytes(self, url: str | os.PathLike) -> bytes:
        with self.open_read(url) as fh:
            return fh.read()

    # -- writing
    @contextmanager
    def atomic_write(self, url: str | os.PathLike, mode: str = "wb",
                     encoding: str = "utf-8") -> Iterator[IO]:
        """A file whose content becomes ``url`` whole on a clean exit, and nothing
        otherwise (see the module docstring for how each store commits)."""
        url = str(url)
        if mode not in ("wb", "w"):
            raise ValueError(f"atomic_write mode must be 'wb' or 'w', not {mode!r}")
        name = scheme(url)
        if name in READ_ONLY:
            raise StorageError(url, f"{name}:// is read-only here")
        if not is_remote(url):
            with atomic_path(Path(local_path(url))) as tmp:
                with open(tmp, mode, **({"encoding": encoding} if mode == "w" else {})) as fh:
                    yield fh
            return
        fs = self.filesystem(url)
        if SCHEMES[name][0] == "s3":
            raw: _Writer = _S3Writer(self, url, fs, self.part_size)
        else:
            raw = _SpoolWriter(self, url, fs)
        buffered = io.BufferedWriter(raw, buffer_size=1 << 16)
        fh = io.TextIOWrapper(buffered, encoding=encoding) if mode == "w" else buffered
        try:
            yield fh
            fh.flush()
        except BaseException:
            raw.abort()
            raise
        try:
            raw.commit()
        except BaseException:
            raw.abort()
            raise

    def write_bytes(self, url: str | os.PathLike, data: bytes) -> None:
        with self.atomic_write(url) as fh:
            fh.write(data)

    # -- listing
    def exists(self, url: str | os.PathLike) -> bool:
        url = str(url)
        if not is_remote(url):
            return os.path.exists(local_path(url))
        fs = self.filesystem(url)
        try:
            return self.call(url, lambda: fs.exists(_bucket_path(url)))
        except StorageNotFound:
            return False

    def info(self, url: str | os.PathLike) -> dict[str, Any]:
        url = str(url)
        if not is_remote(url):
            try:
                st = os.stat(local_path(url))
            except OSError as exc:
                raise _permanent(url, exc) from exc
            return {"size": st.st_size, "type": "directory" if os.path.isdir(
                local_path(url)) else "file"}
        fs = self.filesystem(url)
        return self.call(url, lambda: fs.info(_bucket_path(url)))

    def size(self, url: str | os.PathLike) -> int:
        return int(self.info(url)["size"])

    def ls(self, url: str | os.PathLike) -> list[str]:
        """The direct children of a directory or prefix, sorted, in ``url``'s form."""
        url = str(url)
        if not is_remote(url):
            try:
                return sorted(join(url, n) for n in os.listdir(local_path(url)))
            except OSError as exc:
                raise _permanent(url, exc) from exc
        fs = self.filesystem(url)
        names = self.call(url, lambda: fs.ls(_bucket_path(url), detail=False))
        return sorted(self._unstrip(url, n) for n in names)

    def glob(self, pattern: str | os.PathLike) -> list[str]:
        """Matches of ``pattern`` (``*``, ``?``, ``[]``, ``**``), sorted, in its form."""
        return [url for url, _ in self.glob_info(pattern)]

    def glob_info(self, pattern: str | os.PathLike) -> list[tuple[str, dict[str, Any]]]:
        """(match, {"size", "type": "file" or "directory"}) for each match of ``pattern``,
        sorted: one listing, no request per match."""
        pattern = str(pattern)
        if not is_remote(pattern):
            found = _glob.glob(local_path(pattern), recursive=True)
            prefix = "file://" if pattern.lower().startswith("file://") else ""
            out = []
            for f in sorted(found):  # anything but a file is listed as a directory
                isfile = os.path.isfile(f)
                out.append((prefix + f, {"size": os.path.getsize(f) if isfile else 0,
                                         "type": "file" if isfile else "directory"}))
            return out
        if scheme(pattern) in ("http", "https"):
            raise StorageError(pattern, "http(s):// cannot be listed; name each URL")
        fs = self.filesystem(pattern)
        path = _bucket_path(pattern)
        parts = path.split("/")
        fixed = next((i for i, p in enumerate(parts) if any(c in p for c in "*?[")), None)
        if fixed is None:  # no wildcard: the object itself, if it is there
            try:
                info = self.info(pattern)
            except StorageNotFound:
                return []
            return [(pattern, {"size": int(info.get("size") or 0), "type": "directory"
                               if info.get("type") == "directory" else "file"})]
        # One recursive listing under the fixed part, matched here: fsspec's glob makes
        # several calls, and one of them takes a failed listing for an empty one.
        from fsspec.utils import glob_translate

        root = "/".join(parts[:fixed])
        found = self.call(pattern, lambda: fs.find(root, withdirs=True, detail=True))
        match = re.compile(glob_translate(path)).match
        return sorted((self._unstrip(pattern, name), {
            "size": int(info.get("size") or 0),
            "type": "directory" if info.get("type") == "directory" else "file"})
            for name, info in found.items() if match(name.rstrip("/")))

    def rm(self, url: str | os.PathLike, recursive: bool = False,
           missing_ok: bool = True) -> None:
        url = str(url)
        if not is_remote(url):
            path = local_path(url)
            try:
                if recursive and os.path.isdir(path):
                    shutil.rmtree(path)
                else:
                    os.remove(path)
            except FileNotFoundError:
                if not missing_ok:
                    raise StorageNotFound(url, "not found") from None
            return
        if scheme(url) in READ_ONLY:
            raise StorageError(url, f"{scheme(url)}:// is read-only here")
        fs = self.filesystem(url)
        try:
            self.call(url, lambda: fs.rm(_bucket_path(url), recursive=recursive))
        except StorageNotFound:
            if not missing_ok:
                raise

    def abort_uploads(self, prefix: str) -> int:
        """Abort the unfinished multipart uploads under an s3:// prefix (what killed
        writers leave: invisible, but billed); returns how many. Elsewhere 0."""
        if SCHEMES.get(scheme(prefix), ("",))[0] != "s3":
            return 0
        fs = self.filesystem(prefix)
        bucket, key, _ = fs.split_path(prefix)
        listing = self.call(prefix, lambda: fs.call_s3(
            "list_multipart_uploads", Bucket=bucket, Prefix=key))
        uploads = listing.get("Uploads", [])
        for up in uploads:
            self.call(prefix, lambda up=up: fs.call_s3(
                "abort_multipart_upload", Bucket=bucket, Key=up["Key"],
                UploadId=up["UploadId"]))
        return len(uploads)

    @staticmethod
    def _unstrip(like: str, name: str) -> str:
        name = str(name)
        return name if _SCHEME_RE.match(name) else f"{scheme(like)}://{name.lstrip('/')}"


# ------------------------------------------------------------------------------- readers


class _RemoteReader(io.RawIOBase):
    """A remote object read through fsspec's read-ahead cache, each read retried.

    A failed fetch leaves fsspec's file where it was (its cache and position change only
    on success), so the retry asks for the range from the reader's current offset. The
    file is opened once: s3fs then sends the first ETag with every range request
    (If-Match), so an object replaced mid-read fails rather than mixing versions.
    """

    def __init__(self, storage: Storage, url: str, block_size: int):
        self._storage, self._url = storage, url
        fs = storage.filesystem(url)
        path = _bucket_path(url)
        self._f = storage.call(url, lambda: fs.open(path, "rb", block_size=block_size,
                                                    cache_type="readahead"))
        self.size = self._f.size
        self._block = block_size
        self._pos = 0
        self.error: StorageError | None = None  # once a fetch failed for good, it stays

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise OSError(errno.EINVAL, "negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, b) -> int:
        want = min(len(b), self._block, max(0, self.size - self._pos))
        if want <= 0:
            return 0

        def fetch() -> bytes:
            self._f.seek(self._pos)
            return self._f.read(want)

        if self.error is not None:  # a reader that swallows errors must not retry forever
            raise self.error
        try:
            data = self._storage.call(self._url, fetch)
        except StorageError as exc:
            self.error = exc
            raise
        if not data:
            raise StorageError(self._url, f"object ended at {self._pos} of {self.size} bytes "
                                          "(changed while being read?)")
        n = len(data)
        b[:n] = data
        self._pos += n
        return n

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()


# ------------------------------------------------------------------------------- writers


class _Writer(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def commit(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError


class _S3Writer(_Writer):
    """One S3 object: a PUT if it fits one part, else a multipart upload; each request is
    retried on its own (a part is in memory until it is sent), so a fault costs one part,
    not the object. Nothing is visible until ``commit``; ``abort`` drops the upload."""

    def __init__(self, storage: Storage, url: str, fs, part_size: int):
        self._storage, self._url, self._fs = storage, url, fs
        self._bucket, self._key, _ = fs.split_path(url)
        if not self._key:
            raise StorageError(url, "names a bucket, not an object")
        self._part_size = max(part_size, 5 << 20)
        self._buf = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict] = []
        self._done = False

    def _s3(self, method: str, **kw) -> dict:
        return self._storage.call(self._url, lambda: self._fs.call_s3(
            method, Bucket=self._bucket, Key=self._key, **kw))

    def write(self, b) -> int:
        self._buf += b
        while len(self._buf) >= self._part_size:
            part = bytes(self._buf[:self._part_size])
            del self._buf[:self._part_size]
            self._send_part(part)
        return len(b)

    def _send_part(self, data: bytes) -> None:
        if self._upload_id is None:
            self._upload_id = self._s3("create_multipart_upload")["UploadId"]
        number = len(self._parts) + 1
        resp = self._s3("upload_part", UploadId=self._upload_id, PartNumber=number, Body=data)
        self._parts.append({"PartNumber": number, "ETag": resp["ETag"]})

    def commit(self) -> None:
        if self._upload_id is None:
            self._s3("put_object", Body=bytes(self._buf))
        else:
            if self._buf or not self._parts:
                self._send_part(bytes(self._buf))
            self._complete()
        self._buf = bytearray()
        self._done = True
        super().close()

    def _complete(self) -> None:
        tried = [False]

        def complete() -> dict:
            try:
                tried[0] = True
                return self._fs.call_s3(
                    "complete_multipart_upload", Bucket=self._bucket, Key=self._key,
                    UploadId=self._upload_id, MultipartUpload={"Parts": self._parts})
            except FileNotFoundError:
                # NoSuchUpload after a try whose answer was lost: it may have completed.
                if tried[0] and self._completed_here():
                    return {}
                raise

        self._storage.call(self._url, complete)

    def _completed_here(self) -> bool:
        """Does the object carry the ETag this upload's completion gives it?"""
        md5s = b"".join(bytes.fromhex(p["ETag"].strip('"')) for p in self._parts)
        want = f'"{hashlib.md5(md5s).hexdigest()}-{len(self._parts)}"'
        try:
            head = self._fs.call_s3("head_object", Bucket=self._bucket, Key=self._key)
        except Exception:
            return False
        return head.get("ETag") == want

    def abort(self) -> None:
        self._buf = bytearray()
        if self._upload_id is not None and not self._done:
            try:
                self._s3("abort_multipart_upload", UploadId=self._upload_id)
            except StorageError:
                pass  # best effort: abort_uploads() sweeps what is left
        self._done = True
        super().close()

    def close(self) -> None:  # io's close must not commit: only commit() does
        super().close()


class _SpoolWriter(_Writer):
    """Any other writable store: spooled locally, uploaded whole on commit with retries
    (each try a fresh upload that the store makes visible only when it completes)."""

    def __init__(self, storage: Storage, url: str, fs):
        self._storage, self._url, self._fs = storage, url, fs
        self._spool = tempfile.SpooledTemporaryFile(max_size=64 << 20)

    def write(self, b) -> int:
        return self._spool.write(b)

    def commit(self) -> None:
        def upload() -> None:
            self._spool.seek(0)
            f = self._fs.open(_bucket_path(self._url), "wb")
            try:
                shutil.copyfileobj(self._spool, f, 1 << 20)
            except BaseException:
                f.discard()
                f.closed = True  # or fsspec's __del__ would commit the part written
                raise
            f.close()

        try:
            self._storage.call(self._url, upload)
        finally:
            self._spool.close()
            super().close()

    def abort(self) -> None:
        self._spool.close()
        super().close()

    def close(self) -> None:
        super().close()


class URLPath(str):
    """A remote URL where code expects a ``Path`` for naming and logging: ``str`` is the
    URL itself (``Path`` would fold ``s3://`` into ``s3:/``), ``name`` its last part."""

    @property
    def name(self) -> str:
        return self.rstrip("/").rsplit("/", 1)[-1]

    def as_posix(self) -> str:
        return str(self)


def stream_error(fh: IO[bytes]) -> StorageError | None:
    """The error that ended a remote reader from ``open_read`` (None: none, or local).
    A caller that hands the reader to code which may swallow OSErrors checks it after."""
    return getattr(getattr(fh, "raw", fh), "error", None)


def as_path(url: str | os.PathLike) -> Path:
    """A local path or file:// URL as a ``Path``; a remote URL as a ``URLPath``."""
    url = str(url)
    return URLPath(url) if is_remote(url) else Path(local_path(url))  # type: ignore[return-value]


# ------------------------------------------------------------------- module-level helpers

_default: Storage | None = None


def default_storage() -> Storage:
    """Built on first use, so that ``THRESHER_STORAGE_RETRY`` is read then, not at import."""
    global _default
    if _default is None:
        _default = Storage()
    return _default


def open_read(url, block_size: int | None = None, storage: Storage | None = None) -> IO[bytes]:
    return (storage or default_storage()).open_read(url, block_size)


def atomic_write(url, mode: str = "wb", storage: Storage | None = None):
    return (storage or default_storage()).atomic_write(url, mode)


open_write = atomic_write


def exists(url, storage: Storage | None = None) -> bool:
    return (storage or default_storage()).exists(url)


def size(url, storage: Storage | None = None) -> int:
    return (storage or default_storage()).size(url)


def ls(url, storage: Storage | None = None) -> list[str]:
    return (storage or default_storage()).ls(url)


def glob(pattern, storage: Storage | None = None) -> list[str]:
    return (storage or default_storage()).glob(pattern)


def rm(url, recursive: bool = False, storage: Storage | None = None) -> None:
    (storage or default_storage()).rm(url, recursive=recursive)


__all__ = [
    "Storage", "StorageOptions", "RetryPolicy", "RetryCounter", "StorageError",
    "StorageNotFound", "StorageForbidden", "classify", "scheme", "is_remote", "local_path",
    "join", "open_read", "atomic_write", "open_write", "exists", "size", "ls", "glob", "rm",
    "default_storage", "literal_secrets", "URLPath", "as_path", "stream_error",
]
