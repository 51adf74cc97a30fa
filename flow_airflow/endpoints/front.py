"""An endpoint's front: its stable URL, a small reverse proxy to the replicas of the version serving now.

``python -m flow_airflow.endpoints.front --folder <endpoint folder> --host H --port P`` serves on
``H:P`` (a Starlette app on uvicorn, forwarding with httpx: all three come with Airflow). Every
request goes, as it came (method, path, query, headers, body), to one replica of ``backends.json``
in turn; the answer comes back as the replica gave it. The file is read again whenever it changes
(:meth:`flow_airflow.endpoints.store.EndpointStore.set_backends`), so a new version takes over from
the next request on: the switch, without downtime. A replica that refuses the connection (it is
stopping or restarting) is skipped and the request goes to the next one (a refused connection
never reached an app, so sending it again is safe); when none answers within ``RETRY_SECONDS``,
503 with a JSON message. ``GET /_front`` says which version and replicas it forwards to (with the key).

Before it reads a body, the front checks the request's ``Cnvrg-Api-Key`` against the SHA-256 of the
endpoint's key that ``backends.json`` holds (``key_sha256``; none for an open endpoint): 401 as JSON
without a valid key, so an unauthenticated body is never read. ``GET /health`` (readiness, no body)
needs no key. A body over ``max_body`` bytes (``[flow_airflow] endpoint_max_body_mib``) is refused
with 413 as JSON, by its Content-Length or as soon as the bytes read pass it. Headers go to the
replica as the bytes they came as (a non-ASCII value is not an error); a replica that does not
answer within ``timeout`` seconds (``[flow_airflow] endpoint_timeout``) gets the request answered
504 as JSON. Any other failure is 502 as JSON and one log line, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
                        "transfer-encoding", "upgrade", "host", "content-length"})
RETRY_SECONDS = 10.0  # how long a request waits for a replica that accepts it (a restart, a switch)
READ_TIMEOUT = 300.0  # a prediction may take this long, unless backends.json says (``timeout``)
MAX_BODY = 64 * 1024 * 1024  # bytes of a request body, unless backends.json says (``max_body``)
HEADER = "Cnvrg-Api-Key"  # cnvrg's (flow_airflow.endpoints.keys.HEADER; this process imports no Airflow)
KEY_HEADER = HEADER.lower().encode()
UNGUARDED = {("GET", "/health")}  # answered without a key: readiness, no body
log = logging.getLogger("flow_airflow.endpoints.front")


def key_digest(key: str) -> str:
    """What ``backends.json`` keeps of an endpoint's key (``key_sha256``): its SHA-256, hex."""
    return hashlib.sha256(key.encode()).hexdigest()


class Backends:
    """The replicas of ``backends.json``, read again when the file changes; taken in turn."""

    def __init__(self, path: Path):
        self.path = path
        self.stamp: int | None = None
        self.version: int | None = None
        self.urls: list[str] = []
        self.key_sha256: str | None = None
        self.max_body = MAX_BODY
        self.timeout = READ_TIMEOUT
        self.turn = itertools.count()

    def current(self) -> list[str]:
        try:
            stamp = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            self.stamp, self.version, self.urls = None, None, []
            return []
        if stamp != self.stamp:
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return self.urls  # being replaced: keep the last good list
            self.stamp, self.version, self.urls = stamp, data.get("version"), list(data.get("replicas") or [])
            self.key_sha256 = data.get("key_sha256") or None
            self.max_body = int(data.get("max_body") or MAX_BODY)
            self.timeout = float(data.get("timeout") or READ_TIMEOUT)
        return self.urls

    def authorized(self, scope: dict[str, Any]) -> bool:
        """Whether the request of ``scope`` carries the endpoint's key (always, for an open endpoint)."""
        self.current()
        if self.key_sha256 is None:
            return True
        given = next((v for k, v in scope["headers"] if k.lower() == KEY_HEADER), b"")
        return hmac.compare_digest(hashlib.sha256(given).hexdigest(), self.key_sha256)

    def next(self) -> str | None:
        urls = self.current()
        return urls[next(self.turn) % len(urls)] if urls else None



def _refused(status: int, message: str) -> Any:
    from starlette.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status)


async def _read_body(request: Any, limit: int) -> bytes | None:
    """The body of ``request``, or None as soon as it is longer than ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _send(client: Any, backends: Backends, request: Any, body: bytes, name: str) -> Any:
    """The answer of a replica to ``request`` (the next that accepts it), or a JSON 503, 504 or 502."""
    import httpx
    from starlette.responses import Response

    headers = [(k, v) for k, v in request.scope["headers"] if k.decode("latin-1").lower() not in HOP_BY_HOP]
    deadline = time.monotonic() + RETRY_SECONDS
    while True:
        target = backends.next()
        if target is not None:
            try:
                answer = await client.request(request.method, target + request.url.path,
                                              params=request.url.query, headers=headers, content=body,
                                              timeout=httpx.Timeout(backends.timeout, connect=5.0))
            except (httpx.ConnectError, httpx.ConnectTimeout):
                pass  # not delivered: the next replica
            except httpx.TimeoutException:
                log.warning("%s %s: no answer from %s within %g s", request.method, request.url.path, target,
                            backends.timeout)
                return _refused(504, f"the endpoint did not answer within {backends.timeout:g} s "
                                     "([flow_airflow] endpoint_timeout)")
            except httpx.HTTPError as e:
                log.warning("%s %s: %s from %s", request.method, request.url.path, type(e).__name__, target)
                return _refused(502, f"the replica failed to answer: {type(e).__name__}")
            else:
                kept = {k: v for k, v in answer.headers.items()
                        if k.lower() not in HOP_BY_HOP and k.lower() != "content-encoding"}
                return Response(answer.content, status_code=answer.status_code, headers=kept)
        if time.monotonic() > deadline:
            return _refused(503, f"no replica of endpoint {name} answers")
        await asyncio.sleep(0.05)


def _guarded(view: Any) -> Any:
    """``view``, its unexpected failures answered 500 as JSON with one log line (no traceback)."""

    async def answer(request: Any) -> Any:
        try:
            return await view(request)
        except Exception as e:
            log.error("%s %s: %s: %s", request.method, request.url.path, type(e).__name__, e)
            return _refused(500, f"the endpoint's front failed: {type(e).__name__}")

    return answer


def create_app(folder: Path) -> Any:
    """The front's ASGI app for the endpoint in ``folder``."""
    import httpx
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    backends = Backends(folder / "backends.json")
    client = httpx.AsyncClient(timeout=httpx.Timeout(READ_TIMEOUT, connect=5.0), follow_redirects=False)
    no_key = f"a valid API key is needed in the {HEADER} header"

    async def forward(request: Request) -> Response:
        if (request.method, request.url.path) not in UNGUARDED and not backends.authorized(request.scope):
            return _refused(401, no_key)
        body = await _read_body(request, backends.max_body)
        if body is None:
            return _refused(413, f"the request body is larger than {backends.max_body} bytes "
                                 "([flow_airflow] endpoint_max_body_mib)")
        return await _send(client, backends, request, body, folder.name)

    async def about(request: Request) -> Response:
        urls = backends.current()
        if not backends.authorized(request.scope):
            return _refused(401, no_key)
        return JSONResponse({"endpoint": folder.name, "version": backends.version, "replicas": urls})

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]
    routes = [Route("/_front", _guarded(about), methods=["GET"]),
              Route("/{path:path}", _guarded(forward), methods=methods)]

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        yield
        await client.aclose()

    return Starlette(routes=routes, lifespan=lifespan)



def main(args: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m flow_airflow.endpoints.front")
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    given = parser.parse_args(args)
    uvicorn.run(create_app(given.folder), host=given.host, port=given.port, log_level="info",
                timeout_graceful_shutdown=int(RETRY_SECONDS + 5), access_log=False)


if __name__ == "__main__":
    main()
