"""Every state-changing route of the plugin's web app needs a JSON body or a bearer token: a form or a
``text/plain`` post (what a page of another site or another port can send with the user's cookie) is
refused 415 as JSON before any route runs. The refusal on a real endpoint, which stays as it was:
tests/endpoints/test_views.py."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from flow_airflow.web import URL_PREFIX
from flow_airflow.web.app import create_app

pytestmark = pytest.mark.airflow
FORMS = [("text/plain", b"x=1"), ("application/x-www-form-urlencoded", b"decision=approve"),
         ("multipart/form-data; boundary=b", b"--b--\r\n"), (None, b"")]


def changing_routes() -> list[tuple[str, str]]:
    """(method, path) of every route of the app that is not GET, a sample value for each path parameter."""
    found = []
    for route in create_app().routes:
        if isinstance(route, APIRoute):
            path = route.path.replace("{name}", "iris").replace("{dag_id}", "d").replace("{run_id}", "r") \
                .replace("{task_id}", "t")
            found += [(method, path) for method in sorted(route.methods - {"GET", "HEAD"})]
    return found


def test_every_state_changing_route_refuses_a_form_post_with_the_cookie() -> None:
    routes = changing_routes()
    assert ("POST", "/api/endpoints/iris/stop") in routes and ("POST", "/api/endpoints/iris/rollback") in routes
    assert ("POST", "/api/approvals/d/r/t") in routes
    client = TestClient(create_app(), root_path=URL_PREFIX, cookies={"_token": "a-session-cookie"})
    for method, path in routes:
        for content_type, body in FORMS:
            headers = {"Content-Type": content_type} if content_type else {}
            answer = client.request(method, URL_PREFIX + path, content=body, headers=headers)
            assert answer.status_code == 415, (method, path, content_type, answer.text)
            assert "application/json" in answer.json()["detail"]


def test_a_json_post_or_a_bearer_token_reaches_the_route() -> None:
    client = TestClient(create_app(), root_path=URL_PREFIX)
    # not signed in (no valid token): the route itself answers (401, or 422 for a body it cannot take)
    for method, path in changing_routes():
        assert client.request(method, URL_PREFIX + path, json={}).status_code in (401, 422), path
        assert client.request(method, URL_PREFIX + path,
                              headers={"Authorization": "Bearer not-a-token"}).status_code in (401, 422), path
    assert client.get(URL_PREFIX + "/api/endpoints").status_code == 401  # reading needs neither
