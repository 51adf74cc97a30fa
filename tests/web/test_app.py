"""The plugin's web app without an Airflow process (fast tier): routing, refusals before any DB
access, static files, the navigation of the base template, and how a page plugs in."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.testclient import TestClient

from flow_airflow.web import PAGES, URL_PREFIX
from flow_airflow.web.app import create_app
from flow_airflow.web.auth import Caller
from flow_airflow.web.pages import page

APPROVAL = "/api/approvals/approval_gate/manual__2026-01-01T00%3A00%3A00%2B00%3A00/deploy_model.approval"


@pytest.fixture
def client() -> TestClient:
    """The app as the api-server mounts it: at ``URL_PREFIX``."""
    return TestClient(create_app(), root_path=URL_PREFIX)


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/api/approvals", None),
    ("GET", APPROVAL, None),
    ("POST", APPROVAL, {"decision": "approve"}),
    ("GET", "/api/endpoints", None),
    ("GET", "/api/endpoints/iris-classifier", None),
    ("POST", "/api/endpoints/iris-classifier/predict", {"input_params": {}}),
    ("POST", "/api/endpoints/iris-classifier/stop", {}),  # JSON, as the page posts (else 415: test_csrf.py)
    ("POST", "/api/endpoints/iris-classifier/rollback", {}),
    ("GET", "/api/endpoints/iris-classifier/logs", None),
])
def test_the_api_refuses_a_caller_without_login(client: TestClient, method: str, path: str, body: Any) -> None:
    answer = client.request(method, URL_PREFIX + path, json=body)
    assert answer.status_code == 401
    assert answer.json()["detail"].startswith("Not signed in to Airflow")


def test_root_leads_to_the_first_page_and_static_files_are_served(client: TestClient) -> None:
    root = client.get(URL_PREFIX + "/", follow_redirects=False)
    assert root.status_code == 307 and root.headers["location"] == f"{URL_PREFIX}/approvals"
    css = client.get(URL_PREFIX + "/static/flow-airflow.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css") and "--pending" in css.text


def test_plugin_registers_one_app_and_a_navigation_entry_per_page() -> None:
    from flow_airflow.plugin import FlowAirflowPlugin

    assert [a["url_prefix"] for a in FlowAirflowPlugin.fastapi_apps] == [URL_PREFIX]
    assert FlowAirflowPlugin.external_views == [
        {"name": "Approvals", "href": "/flow-airflow/approvals", "url_route": "approvals", "destination": "nav"},
        {"name": "Experiments", "href": "/flow-airflow/experiments", "url_route": "experiments", "destination": "nav"},
        {"name": "Endpoints", "href": "/flow-airflow/endpoints", "url_route": "endpoints", "destination": "nav"},
        {"name": "Experiments", "href": "/flow-airflow/experiments/{DAG_ID}/{RUN_ID}", "url_route": "experiments-run",
         "destination": "dag_run"},  # a tab of each DAG run in the UI
        {"name": "Experiments", "href": "/flow-airflow/experiments/{DAG_ID}", "url_route": "experiments-flow",
         "destination": "dag"},  # a tab of each DAG: its runs compared
    ]
    assert [p.title for p in PAGES] == ["Approvals", "Experiments", "Endpoints"]


class User:
    def get_name(self) -> str:
        return "bob"

    def get_id(self) -> str:
        return "7"


def test_a_router_renders_pages_on_the_base_template(client: TestClient) -> None:
    """What a new page does: a router whose routes answer with ``page()`` (here the shared message page)."""
    router = APIRouter()

    @router.get("/hello", response_class=HTMLResponse)
    def hello(request: Request) -> HTMLResponse:
        return page(request, "message.html", Caller(User()), status_code=404, title="Nothing <here>", text="a & b")

    app = create_app()
    app.include_router(router)
    html = TestClient(app, root_path=URL_PREFIX).get(URL_PREFIX + "/hello")
    assert html.status_code == 404
    assert '<b id="user">bob</b>' in html.text
    assert f'href="{URL_PREFIX}/static/flow-airflow.css"' in html.text
    assert f'<a href="{URL_PREFIX}/approvals">Approvals</a>' in html.text  # the navigation, not this page
    assert "Nothing &lt;here&gt;" in html.text and "a &amp; b" in html.text  # escaped
