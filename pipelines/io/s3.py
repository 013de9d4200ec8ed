"""S3 for the storage layer, through botocore's synchronous client.

s3fs runs botocore on asyncio (aiobotocore, aiohttp). Importing that stack and building a
client cost a process about 0.3 s here, paid by the planner before it can list the inputs
and again by every worker before its first read: on a short run, most of the cost of
reading from S3 rather than local disk (docs/benchmarks.md, "Object storage"). What the
storage layer asks of S3 is a dozen kinds of request, each one botocore call, so this
module makes them itself, synchronously, and offers them under the fsspec method names
``storage.py`` calls (``info``, ``exists``, ``ls``, ``find``, ``rm``, ``open``,
``split_path``, ``call_s3``). botocore alone imports and builds a client in about 0.15 s.

Options keep s3fs's names, so configs written for s3fs work unchanged: ``key``,
``secret``, ``token``, ``anon``, ``endpoint_url``, ``profile``, ``client_kwargs`` (handed to
``create_client``), ``config_kwargs`` (botocore's ``Config``), ``requester_pays``; the
listing-cache options are accepted and mean nothing here (listings are never cached).
Any other option is an error naming it. s3fs stays in the test dependencies as the
reference these requests are checked against (tests/test_storage.py).

botocore's own retries are off: the storage layer retries, and counts every retry. A
reader pins the object's ETag from its first request and sends it with every range
(If-Match), so it returns one version's bytes or fails with 412.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import botocore.session
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

OPTIONS = frozenset({"key", "secret", "token", "anon", "endpoint_url", "profile",
                     "client_kwargs", "config_kwargs", "requester_pays"})
IGNORED = frozenset({"use_listings_cache", "listings_expiry_time", "skip_instance_cache",
                     "max_paths"})
# requests that take RequestPayer (a requester-pays bucket refuses the others' callers)
_PAYER_METHODS = frozenset({"get_object", "head_object", "put_object", "list_objects_v2",
                            "create_multipart_upload", "upload_part",
                            "complete_multipart_upload", "abort_multipart_upload",
                            "delete_object", "delete_objects"})
_NOT_FOUND = {"404", "NoSuchKey", "NoSuchBucket", "NoSuchUpload", "NotFound"}
_FORBIDDEN = {"403", "AccessDenied", "Forbidden", "AllAccessDisabled"}

_lock = threading.RLock()
_sessions: dict[str | None, botocore.session.Session] = {}
_filesystems: dict[str, S3] = {}


def _forget() -> None:  # a forked child must open its own connections
    _sessions.clear()
    _filesystems.clear()


os.register_at_fork(after_in_child=_forget)


def filesystem(opts: dict[str, Any]) -> S3:
    """This process's ``S3`` for ``opts`` (resolved options): clients are built once."""
    unknown = sorted(set(opts) - OPTIONS - IGNORED)
    if unknown:
        raise ValueError(f"unknown s3 storage option(s) {', '.join(unknown)} (known: "
                         f"{', '.join(sorted(OPTIONS))})")
    # botocore reads the endpoint from the environment too; made explicit so that it is
    # part of the key under which the process keeps the client
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    client = dict(opts.get("client_kwargs") or {})
    if endpoint and "endpoint_url" not in client and "endpoint_url" not in opts:
        opts = {**opts, "client_kwargs": {**client, "endpoint_url": endpoint}}
    cache_key = json.dumps(opts, sort_keys=True, default=repr)
    with _lock:
        fs = _filesystems.get(cache_key)
        if fs is None:
            fs = _filesystems[cache_key] = S3(opts)
        return fs


def _session(profile: str | None) -> botocore.session.Session:
    """One session a profile a process: S3's models are then parsed once a process."""
    session = _sessions.get(profile)
    if session is None:
        session = _sessions[profile] = botocore.session.Session(profile=profile)
    return session


class S3:
    """One botocore S3 client and the fsspec-named operations the storage layer uses.
    Paths are fsspec's: ``bucket/key``, no scheme."""

    def __init__(self, opts: dict[str, Any]):
        config = dict(opts.get("config_kwargs") or {})
        config["retries"] = {"total_max_attempts": 1}  # the storage layer retries, and counts
        if opts.get("anon"):
            config["signature_version"] = UNSIGNED
        kwargs = dict(opts.get("client_kwargs") or {})
        if opts.get("endpoint_url"):
            kwargs.setdefault("endpoint_url", opts["endpoint_url"])
        for ours, theirs in (("key", "aws_access_key_id"), ("secret", "aws_secret_access_key"),
                             ("token", "aws_session_token")):
            if opts.get(ours):
                kwargs.setdefault(theirs, opts[ours])
        try:
            with _lock:  # botocore sessions are not thread-safe; clients are
                self.client = _session(opts.get("profile")).create_client(
                    "s3", config=Config(**config), **kwargs)
        except (BotoCoreError, TypeError) as exc:  # no such profile, a bad option value
            raise ValueError(f"s3 storage options: {exc}") from None
        self._payer = {"RequestPayer": "requester"} if opts.get("requester_pays") else {}

    # -- requests
    def call_s3(self, method: str, **kw) -> dict:
        """One request; a missing object or upload raises FileNotFoundError (alone: "not
        found" says it all) and a refusal PermissionError chained to botocore's error, as
        s3fs does."""
        if method in _PAYER_METHODS:
            kw = {**self._payer, **kw}
        try:
            return getattr(self.client, method)(**kw)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            where = "/".join(str(kw.get(k)) for k in ("Bucket", "Key") if kw.get(k))
            if code in _NOT_FOUND or status == "404":
                raise FileNotFoundError(f"{where}: {code or status}") from None
            if code in _FORBIDDEN or status == "403":
                raise PermissionError(f"{where}: {code or status}") from exc
            raise

    @staticmethod
    def split_path(path: str) -> tuple[str, str, None]:
        """(bucket, key, None) of ``bucket/key`` or ``s3://bucket/key``, as s3fs's."""
        bucket, _, key = path.split("://", 1)[-1].lstrip("/").partition("/")
        return bucket, key, None

    def _pages(self, bucket: str, prefix: str, delimiter: str = "") -> Any:
        token: str | None = None
        while True:
            kw: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
            if delimiter:
                kw["Delimiter"] = delimiter
            if token:
                kw["ContinuationToken"] = token
            page = self.call_s3("list_objects_v2", **kw)
            yield page
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]

    # -- the fsspec methods storage.py calls
    def head(self, bucket: str, key: str) -> dict:
        head = self.call_s3("head_object", Bucket=bucket, Key=key)
        if "ContentLength" not in head:  # an answer cut before its headers ended
            raise ConnectionError(f"{bucket}/{key}: HEAD answer without Content-Length")
        return head

    def info(self, path: str) -> dict[str, Any]:
        bucket, key, _ = self.split_path(path)
        if not key:
            self.call_s3("head_bucket", Bucket=bucket)
            return {"name": bucket, "size": 0, "type": "directory"}
        try:
            head = self.head(bucket, key)
            return {"name": f"{bucket}/{key}", "size": head["ContentLength"], "type": "file",
                    "ETag": head.get("ETag")}
        except FileNotFoundError:
            page = self.call_s3("list_objects_v2", Bucket=bucket,
                                Prefix=key.rstrip("/") + "/", MaxKeys=1)
            if page.get("KeyCount"):
                return {"name": f"{bucket}/{key.rstrip('/')}", "size": 0, "type": "directory"}
            raise

    def exists(self, path: str) -> bool:
        try:
            self.info(path)
            return True
        except FileNotFoundError:
            return False

    def ls(self, path: str, detail: bool = False) -> list[str]:
        """Direct children (objects and common prefixes); a file lists as itself."""
        bucket, key, _ = self.split_path(path)
        prefix = key.rstrip("/") + "/" if key else ""
        names = []
        for page in self._pages(bucket, prefix, "/"):
            names += [f"{bucket}/{c['Prefix'].rstrip('/')}" for c in page.get("CommonPrefixes", [])]
            names += [f"{bucket}/{o['Key']}" for o in page.get("Contents", [])
                      if o["Key"] != prefix]
        if names:
            return sorted(names)
        if self.info(path)["type"] == "file":  # raises FileNotFoundError if nothing is there
            return [path.rstrip("/")]
        return []

    def find(self, path: str, withdirs: bool = False, detail: bool = False) -> Any:
        """Every object under ``path`` (and, with ``withdirs``, every directory between),
        as fsspec's ``find``: name -> {"name", "size", "type"}."""
        bucket, key, _ = self.split_path(path)
        prefix = key.rstrip("/") + "/" if key else ""
        out: dict[str, dict[str, Any]] = {}
        for page in self._pages(bucket, prefix):
            for obj in page.get("Contents", []):
                name = f"{bucket}/{obj['Key']}"
                if obj["Key"].endswith("/"):  # a directory marker
                    if withdirs and obj["Key"] != prefix:
                        out[name.rstrip("/")] = {"name": name.rstrip("/"), "size": 0,
                                                 "type": "directory"}
                    continue
                out[name] = {"name": name, "size": obj["Size"], "type": "file"}
                if withdirs:
                    parts = obj["Key"][len(prefix):].split("/")[:-1]
                    for i in range(1, len(parts) + 1):
                        d = f"{bucket}/{prefix}{'/'.join(parts[:i])}"
                        out.setdefault(d, {"name": d, "size": 0, "type": "directory"})
        if withdirs and out and key:  # fsspec lists the root too
            root = f"{bucket}/{key.rstrip('/')}"
            out[root] = {"name": root, "size": 0, "type": "directory"}
        out = dict(sorted(out.items()))
        return out if detail else list(out)

    def rm(self, path: str, recursive: bool = False) -> None:
        bucket, key, _ = self.split_path(path)
        if not recursive:
            self.info(path)  # S3 deletes a missing key without complaint; fsspec does not
            self.call_s3("delete_object", Bucket=bucket, Key=key)
            return
        prefix = key.rstrip("/") + "/" if key else ""
        keys = [o["Key"] for page in self._pages(bucket, prefix)
                for o in page.get("Contents", [])]
        if key:  # the object at the key itself, if there is one
            try:
                self.head(bucket, key)
                keys.append(key)
            except FileNotFoundError:
                pass
        if not keys:
            raise FileNotFoundError(path)
        for i in range(0, len(keys), 1000):
            resp = self.call_s3("delete_objects", Bucket=bucket, Delete={
                "Objects": [{"Key": k} for k in keys[i:i + 1000]], "Quiet": True})
            if resp.get("Errors"):
                err = resp["Errors"][0]
                raise OSError(f"{bucket}/{err.get('Key')}: {err.get('Code')} "
                              f"{err.get('Message', '')}".strip())

    def open(self, path: str, mode: str = "rb", block_size: int = 8 << 20,
             cache_type: str = "readahead") -> S3File:
        if mode != "rb":
            raise ValueError("S3.open reads only; the storage layer writes through call_s3")
        return S3File(self, path, block_size)


class S3File:
    """A seekable read of one object version: ``read`` fetches ``block_size`` ranges with
    the ETag of the first answer (If-Match); a failed fetch changes neither the position
    nor the cached block, so a retry asks again from where the reader is."""

    def __init__(self, fs: S3, path: str, block_size: int):
        self._fs = fs
        self._bucket, self._key, _ = fs.split_path(path)
        head = fs.head(self._bucket, self._key)
        self.size = int(head["ContentLength"])
        self._etag = head.get("ETag")
        self._block = max(1, block_size)
        self._pos = 0
        self._cache = b""
        self._cache_start = 0

    def seek(self, pos: int) -> int:
        self._pos = pos
        return pos

    def tell(self) -> int:
        return self._pos

    def read(self, n: int) -> bytes:
        if self._pos >= self.size or n <= 0:
            return b""
        end = min(self.size, self._pos + n)
        start = self._pos
        if not (self._cache_start <= start and end <= self._cache_start + len(self._cache)):
            length = max(end - start, self._block)
            last = min(self.size, start + length) - 1
            kw = {"IfMatch": self._etag} if self._etag else {}
            resp = self._fs.call_s3("get_object", Bucket=self._bucket, Key=self._key,
                                    Range=f"bytes={start}-{last}", **kw)
            body = resp["Body"]
            try:
                data = body.read()
            finally:
                body.close()
            self._cache, self._cache_start = data, start
        out = self._cache[start - self._cache_start:end - self._cache_start]
        self._pos = start + len(out)
        return out

    def close(self) -> None:
        self._cache = b""
