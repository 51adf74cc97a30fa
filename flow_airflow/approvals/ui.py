"""What the plugin registers for approvals: the FastAPI app and its entry in the UI's navigation.

Kept free of FastAPI imports: the plugin is loaded by every Airflow process, and only the
api-server serves the app, which is built on its first request.
"""

from __future__ import annotations

from typing import Any

from flow_airflow.approvals import URL_PREFIX


class LazyApp:
    """An ASGI app that builds ``flow_airflow.approvals.app.create_app()`` when first called."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            from flow_airflow.approvals.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)

    def __repr__(self) -> str:
        return "flow_airflow.approvals.app:create_app()"


APPROVALS_APP = {"name": "flow-airflow approvals", "app": LazyApp(), "url_prefix": URL_PREFIX}
# Shown in the UI's navigation, the page embedded at /plugin/approvals.
APPROVALS_VIEW = {
    "name": "Approvals", "href": f"{URL_PREFIX}/approvals", "url_route": "approvals", "destination": "nav"
}
