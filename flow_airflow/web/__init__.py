"""The plugin's pages in the Airflow UI: one FastAPI app, at ``URL_PREFIX`` in the api-server.

Kept free of FastAPI imports (the plugin, which reads ``PAGES``, is loaded by every Airflow
process; only the api-server builds the app). The parts:

- ``app``: ``create_app()``, the app: static files, a router per page of ``PAGES``;
- ``auth``: ``CallerDep``, the authentication dependency (Airflow's own login: its JWT);
- ``pages``: ``page()`` / ``error()`` / ``signed_out()`` / ``session()``, what a router answers with;
- ``templates/base.html`` (header, navigation between the pages, styles from ``static/``),
  ``templates/message.html`` (a titled message: 401, 403, 404 pages);
- ``plugin``: what the plugin registers (the lazily built app, a navigation entry per page).

A new page is a router module with a ``templates/`` folder beside it, and one ``Page`` here::

    # flow_airflow/experiments/views.py
    from fastapi import APIRouter, Request
    from fastapi.responses import HTMLResponse

    from flow_airflow.web.auth import CallerDep
    from flow_airflow.web.pages import error, page, session, signed_out

    router = APIRouter()

    @router.get("/experiments/{dag_id}/{run_id}", response_class=HTMLResponse)
    def run_page(request: Request, dag_id: str, run_id: str, who: CallerDep) -> HTMLResponse:
        if who.user is None:
            return signed_out(request, "Experiments")
        with session() as db:
            if dag_id not in who.readable_dag_ids(db):
                return page(request, "message.html", who, status_code=403, title="Not allowed", text="...")
            found = run_experiments.of_run(db, dag_id, run_id)
        return page(request, "experiments.html", who, experiments=found)  # {% extends "base.html" %}

    # and here, in PAGES:
    Page("Experiments", "/experiments", "flow_airflow.experiments.views")
"""

from __future__ import annotations

from dataclasses import dataclass

URL_PREFIX = "/flow-airflow"  # where the plugin mounts its FastAPI app in the api-server


@dataclass(frozen=True)
class Page:
    """One page of the plugin: its name in the navigation, its path below ``URL_PREFIX``, and the module
    that holds its ``router`` (a FastAPI ``APIRouter``) with a ``templates/`` folder beside it."""

    title: str
    path: str
    module: str

    @property
    def route(self) -> str:
        """The page's name in the Airflow UI's own URL (``/plugin/<route>``, where the UI embeds it)."""
        return self.path.strip("/")


PAGES: tuple[Page, ...] = (
    Page("Approvals", "/approvals", "flow_airflow.approvals.views"),
    Page("Experiments", "/experiments", "flow_airflow.experiments.views"),
    Page("Endpoints", "/endpoints", "flow_airflow.endpoints.views"),
)
