"""An endpoint's front: its stable URL, a small reverse proxy to the replicas of the version serving now.

``python -m flow_airflow.endpoints.front --folder <endpoint folder> --host H --port P`` serves on
``H:P`` (a Starlette app on uvicorn, forwarding with httpx: all three come with Airflow). Every
request goes, as it came (method, path, query, headers, body), to one replica of ``backends.json``
in turn; the answer comes back as the replica gave it. The file is read again whenever it changes
(:meth:`flow_airflow.endpoints.store.EndpointStore.set_backends`), so a new version takes over from
the next request on: the switch, without downtime. A replica that refuses the connection (it is
stopping or restarting) is skipped and the request goes to the next one (a refused connection
never reached an app, so sending it again is safe); when none answers within ``RETRY_SECONDS``,
503 with a JSON message. ``GET /_front`` says which version and replicas it forwards to.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
                        "transfer-encoding", "upgrade", "host", "content-length"})
RETRY_SECONDS = 10.0  # how long a request waits for a replica that accepts it (a restart, a switch)
READ_TIMEOUT = 300.0  # a prediction may take this long


class Backends:
    """The replicas of ``backends.json``, read again when the file changes; taken in turn."""

    def __init__(self, path: Path):
        self.path = path
        self.stamp: int | None = None
        self.version: int | None = None
        self.urls: list[str] = []
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
        return self.urls

    def next(self) -> str | None:
        urls = self.current()
        return urls[next(self.turn) % len(urls)] if urls else None


def create_app(folder: Path) -> Any:
    """The front's ASGI app for the endpoint in ``folder``."""
    import httpx
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    backends = Backends(folder / "backends.json")
    client = httpx.AsyncClient(timeout=httpx.Timeout(READ_TIMEOUT, connect=5.0), follow_redirects=False)

    async def forward(request: Request) -> Response:
        body = await request.body()
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        deadline = time.monotonic() + RETRY_SECONDS
        while True:
            target = backends.next()
            if target is not None:
                try:
                    answer = await client.request(request.method, target + request.url.path,
                                                  params=request.url.query, headers=headers, content=body)
                except (httpx.ConnectError, httpx.ConnectTimeout):
                    pass  # not delivered: the next replica
                else:
                    kept = {k: v for k, v in answer.headers.items()
                            if k.lower() not in HOP_BY_HOP and k.lower() != "content-encoding"}
                    return Response(answer.content, status_code=answer.status_code, headers=kept)
            if time.monotonic() > deadline:
                return JSONResponse({"error": f"no replica of endpoint {folder.name} answers"}, status_code=503)
            await asyncio.sleep(0.05)

    async def about(request: Request) -> Response:
        urls = backends.current()
        return JSONResponse({"endpoint": folder.name, "version": backends.version, "replicas": urls})

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]
    routes = [Route("/_front", about, methods=["GET"]), Route("/{path:path}", forward, methods=methods)]

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
