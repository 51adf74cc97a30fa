"""What the plugin registers for its pages: the FastAPI app and an entry per page in the UI's navigation.

Kept free of FastAPI imports: the plugin is loaded by every Airflow process, and only the
api-server serves the app, which is built on its first request.
"""

from __future__ import annotations

from typing import Any

from flow_airflow.web import PAGES, URL_PREFIX


class LazyApp:
    """An ASGI app that builds ``flow_airflow.web.app.create_app()`` when first called."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            from flow_airflow.web.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)

    def __repr__(self) -> str:
        return "flow_airflow.web.app:create_app()"


FASTAPI_APP = {"name": "flow-airflow", "app": LazyApp(), "url_prefix": URL_PREFIX}
# Each page in the UI's navigation, embedded at /plugin/<route> (e.g. /plugin/approvals).
EXTERNAL_VIEWS = [
    {"name": p.title, "href": URL_PREFIX + p.path, "url_route": p.route, "destination": "nav"} for p in PAGES
]
# The experiments page of a DAG run, as a tab of the run in the Airflow UI (the UI fills in the placeholders).
EXTERNAL_VIEWS.append({"name": "Experiments", "href": URL_PREFIX + "/experiments/{DAG_ID}/{RUN_ID}",
                       "url_route": "experiments-run", "destination": "dag_run"})
# A flow's recent runs compared, as a tab of the DAG in the Airflow UI.
EXTERNAL_VIEWS.append({"name": "Experiments", "href": URL_PREFIX + "/experiments/{DAG_ID}",
                       "url_route": "experiments-flow", "destination": "dag"})
