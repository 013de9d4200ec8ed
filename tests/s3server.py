"""A real S3 API server for tests and benchmarks, and a fault-injecting proxy before it.

``MotoServer`` runs moto's standalone server (``moto_server``) as a subprocess on a free
port of 127.0.0.1: clients speak the S3 wire protocol to it over HTTP, as to AWS.
``FaultProxy`` is a reverse proxy on 127.0.0.1 that answers a seeded fraction of the
requests with 503 SlowDown or 500 InternalError, or forwards them and cuts the
response mid-body: the failures object stores really produce, on demand.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class MotoServer:
    """``moto_server -H 127.0.0.1 -p PORT`` in a subprocess; a context manager."""

    def __init__(self, port: int | None = None, log: Path | None = None):
        self.port = port or free_port()
        self.endpoint = f"http://{HOST}:{self.port}"
        self._log = log
        self._proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> MotoServer:
        exe = Path(sys.executable).with_name("moto_server")
        out = open(self._log, "wb") if self._log else subprocess.DEVNULL
        self._proc = subprocess.Popen([str(exe), "-H", HOST, "-p", str(self.port)],
                                      stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self._proc.returncode}")
            try:
                urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto_server did not answer on {self.endpoint} in {timeout} s")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def reset(self) -> None:
        """Forget every bucket and object (moto's reset API)."""
        req = urllib.request.Request(self.endpoint + "/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=10).close()

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, **CREDENTIALS)

    def make_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def env(self) -> dict[str, str]:
        """Environment that points every AWS client at this server and nowhere else."""
        return client_env(self.endpoint)

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextmanager
def serving(log: Path, bucket: str, env: dict[str, str] | None = None) -> Iterator[MotoServer]:
    """A started server with ``bucket`` made, and this process's environment (which the
    CLI subprocesses of a test inherit) pointing AWS clients at it, plus ``env``, until
    the block ends."""
    with MotoServer(log=log) as srv:
        new = {**srv.env(), **(env or {})}
        saved = {k: os.environ.get(k) for k in new}
        os.environ.update(new)
        try:
            srv.make_bucket(bucket)
            yield srv
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing",
               "region_name": "us-east-1"}


def client_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",  # never ask 169.254.169.254 for credentials
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


# -------------------------------------------------------------------------- fault proxy

_SLOWDOWN = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
             b"<Message>Please reduce your request rate.</Message></Error>")
_INTERNAL = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>InternalError</Code>"
             b"<Message>We encountered an internal error. Please try again.</Message></Error>")


def _error_response(status: int, reason: str, body: bytes, head_only: bool) -> bytes:
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + (
                b"" if head_only else body)


class FaultProxy:
    """A reverse proxy on 127.0.0.1 in a thread of its own (one request per connection).

    Request number i (in arrival order) fails with probability ``fraction``, drawn from
    ``random.Random(f"{seed}:{i}")``, as one of ``kinds``: "503" (SlowDown), "500"
    (InternalError) or "cut" (forwarded, then the response is cut halfway through its
    body, or through its head if it has no body). It stops serving after ``max_requests``
    requests or ``max_seconds``, whichever comes first, so a runaway client cannot keep
    it busy. ``injected`` counts the faults by kind, ``requests`` all requests, ``log`` lists them.
    """

    def __init__(self, upstream_port: int, fraction: float, seed: int = 0,
                 kinds: tuple[str, ...] = ("503", "500", "cut"), max_requests: int = 5000,
                 max_seconds: float = 300.0, only=None):
        self.upstream_port, self.fraction, self.seed, self.kinds = (
            upstream_port, fraction, seed, kinds)
        self.only = only  # a predicate on the request line: only those may fail (None: all)
        self.max_requests, self.max_seconds = max_requests, max_seconds
        self.port = free_port()
        self.endpoint = f"http://{HOST}:{self.port}"
        self.requests = 0
        self.injected: dict[str, int] = {}
        self.cut_heads = 0  # cuts of responses without a body
        # (request line, Range header or "", fault or None) per request
        self.log: list[tuple[str, str, str | None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None

    # -- lifecycle
    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
        self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, HOST, self.port)
        self._started.set()
        try:
            await asyncio.wait_for(self._stop.wait(), self.max_seconds)
        except asyncio.TimeoutError:
            pass
        server.close()
        await server.wait_closed()

    # -- one connection, one request
    def _fault(self, number: int) -> str | None:
        rng = random.Random(f"{self.seed}:{number}")
        if rng.random() < self.fraction:
            return rng.choice(self.kinds)
        return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        try:
            await asyncio.wait_for(self._serve(reader, writer), 60)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = [ln for ln in lines[1:] if ln]
        names = {ln.split(":", 1)[0].strip().lower(): ln.split(":", 1)[1].strip()
                 for ln in headers}
        if names.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
        if "chunked" in names.get("transfer-encoding", "").lower():
            body = await self._read_chunked(reader)
        else:
            body = await reader.readexactly(int(names.get("content-length", "0")))
        if self.requests >= self.max_requests:
            return  # over budget: close without an answer
        number = self.requests
        self.requests += 1
        fault = self._fault(number) if self.only is None or self.only(lines[0]) else None
        self.log.append((lines[0], names.get("range", ""), fault))
        if fault in ("503", "500"):
            self.injected[fault] = self.injected.get(fault, 0) + 1
            head_only = lines[0].startswith("HEAD ")  # a HEAD answer has no body
            writer.write(_error_response(503, "Slow Down", _SLOWDOWN, head_only)
                         if fault == "503" else
                         _error_response(500, "Internal Server Error", _INTERNAL, head_only))
            await writer.drain()
            return
        keep = [ln for ln in headers
                if ln.split(":", 1)[0].strip().lower() not in ("connection", "expect")]
        upstream_head = "\r\n".join([lines[0], *keep, "Connection: close", "", ""])
        up_r, up_w = await asyncio.open_connection(HOST, self.upstream_port)
        try:
            up_w.write(upstream_head.encode("latin-1") + body)
            await up_w.drain()
            response = await up_r.read()  # to EOF: upstream closes after one response
        finally:
            up_w.close()
        resp_head, sep, resp_body = response.partition(b"\r\n\r\n")
        resp_lines = [ln for ln in resp_head.split(b"\r\n")
                      if not ln.lower().startswith(b"connection:")]
        out_head = b"\r\n".join([*resp_lines, b"Connection: close"]) + sep
        if fault == "cut":
            self.injected["cut"] = self.injected.get("cut", 0) + 1
            # half the body; with no body, half the head (aiohttp resends an idempotent
            # request whose connection dropped before the body once, on its own: such a
            # fault may go unseen by the caller, so they are counted apart)
            self.cut_heads += not resp_body
            cut = out_head + resp_body[: len(resp_body) // 2] if resp_body else (
                out_head[: len(out_head) // 2])
            writer.write(cut)
            await writer.drain()
            writer.transport.abort()  # a reset, not a clean end
            return
        writer.write(out_head + resp_body)
        await writer.drain()

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        """The raw chunked body, forwarded as it came (its framing included)."""
        raw = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            raw += size_line
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while True:  # trailers, then the empty line
                    line = await reader.readuntil(b"\r\n")
                    raw += line
                    if line == b"\r\n":
                        return bytes(raw)
            raw += await reader.readexactly(size + 2)
