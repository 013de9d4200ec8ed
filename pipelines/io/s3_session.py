"""One botocore session per process with S3's models already parsed, for every s3fs client.

A process's first ``s3://`` request builds a client, and botocore then parses S3's service
model, its endpoint rules and the partition table: about half of that first request's
0.1 s on this machine. Importing this module does that parsing once. The local pool's
forkserver imports it (pipelines/executors/local.py), so every worker it forks starts with
the session built and only makes its client.

The session holds parsed JSON and nothing else: no credentials (each process resolves its
own when it makes its client), no socket, no event loop, so it is safe to fork. The storage
layer uses it only when the storage options leave the session to s3fs: options naming a
``profile`` or a ``session`` of their own, or any other argument that s3fs hands to the
session it makes, get the session s3fs would make.
"""

from __future__ import annotations

import inspect
from typing import Any

import s3fs
from aiobotocore.session import AioSession

# S3FileSystem arguments (its own and fsspec's) that do not go to the session it makes
_CLIENT_ARGS = frozenset(inspect.signature(s3fs.S3FileSystem.__init__).parameters) - {
    "self", "kwargs", "session"} | {"use_listings_cache", "listings_expiry_time", "max_paths",
                                    "skip_instance_cache"}


def _parsed_session() -> AioSession:
    session = AioSession()
    loader = session.get_component("data_loader")
    for kind in ("service-2", "endpoint-rule-set-1"):
        loader.load_service_model("s3", kind)
    for name in ("endpoints", "partitions", "sdk-default-configuration"):
        loader.load_data_with_path(name)  # the loader keeps what it parsed
    return session


SESSION = _parsed_session()


def with_session(opts: dict[str, Any]) -> dict[str, Any]:
    """``opts`` for ``S3FileSystem``, given this process's parsed session when none of them
    configures the session itself."""
    if set(opts) <= _CLIENT_ARGS:
        return {**opts, "session": SESSION}
    return opts
