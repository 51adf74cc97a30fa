"""The plugin's FastAPI app: every page of ``flow_airflow.web.PAGES`` as a router, and the static files.

Changes need a JSON body or a token: a POST, PUT, PATCH or DELETE signed in by the UI's cookie alone
must say ``Content-Type: application/json``, else 415 before any route runs. A form or a
``text/plain`` post from another site or another port of the same host carries the cookie but cannot
say that (a cross-origin JSON post needs a CORS preflight Airflow does not grant), so it changes
nothing; a request with ``Authorization`` (a bearer token) is no such forgery and passes.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from flow_airflow.web import PAGES

STATIC = Path(__file__).parent / "static"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def forged(request: Request) -> bool:
    """Whether ``request`` changes state on the cookie alone without a JSON body: what a cross-site form can send."""
    if request.method in SAFE_METHODS or request.headers.get("authorization"):
        return False
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media_type != "application/json"


async def json_or_token(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """The app's middleware: 415 as JSON for a :func:`forged` request, else the route's answer."""
    if forged(request):
        from flow_airflow.web.pages import error

        return error(415, f"{request.method} needs a JSON body (Content-Type: application/json) or a bearer token")
    return await call_next(request)


def create_app() -> FastAPI:
    """The app the plugin mounts at ``URL_PREFIX``; ``/`` leads to the first page."""
    app = FastAPI(title="flow-airflow", docs_url=None, redoc_url=None, openapi_url=None)
    app.middleware("http")(json_or_token)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for each in PAGES:
        app.include_router(importlib.import_module(each.module).router)

    @app.get("/", include_in_schema=False)
    def root(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{request.scope.get('root_path', '')}{PAGES[0].path}")

    return app
