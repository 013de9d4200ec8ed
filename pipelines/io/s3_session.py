"""One botocore session per process, with S3's models parsed once, for every s3fs client.

Each ``S3FileSystem`` that s3fs builds makes its own session, and botocore then parses
S3's service model, its endpoint rules and the endpoint table for it (about 0.055 s here).
A process may build several: the inputs' storage options and the run directory's differ.
They share this session instead, so the parsing is done once a process.

The session holds parsed JSON and the credentials it resolves when its first client is
made, as s3fs's own would. Importing it in the local pool's forkserver, so that workers
start with the models parsed, was measured and is not done: the parsing then sits before
every worker's start (docs/benchmarks.md, "Object storage"). The storage layer uses it
only when the storage options leave the session to s3fs: options naming a ``profile`` or a
``session`` of their own, or any other argument that s3fs hands to the session it makes,
get the session s3fs would make.
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
