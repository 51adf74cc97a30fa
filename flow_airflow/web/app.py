"""The plugin's FastAPI app: every page of ``flow_airflow.web.PAGES`` as a router, and the static files."""

from __future__ import annotations

import importlib
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from flow_airflow.web import PAGES

STATIC = Path(__file__).parent / "static"


def create_app() -> FastAPI:
    """The app the plugin mounts at ``URL_PREFIX``; ``/`` leads to the first page."""
    app = FastAPI(title="flow-airflow", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for each in PAGES:
        app.include_router(importlib.import_module(each.module).router)

    @app.get("/", include_in_schema=False)
    def root(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{request.scope.get('root_path', '')}{PAGES[0].path}")

    return app
