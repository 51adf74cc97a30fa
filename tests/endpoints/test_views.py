"""The endpoints page and its JSON API (endpoints/views.py) on an endpoint a real run deployed (local compute):
listed with its probed status, try-it, roll back, stop; 401, 404 (no such endpoint, or no read access:
the same answer), 403 (no edit access).
The same in headless Chromium on airflow standalone: tests/e2e/test_endpoints_e2e.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from flow_airflow.endpoints import keys
from flow_airflow.endpoints.store import EndpointStore
from flow_airflow.endpoints.views import KEY_EVENT
from flow_airflow.local_run import run_flow
from flow_airflow.web import URL_PREFIX
from flow_airflow.web.app import create_app
from flow_airflow.web.auth import Caller, caller

pytestmark = pytest.mark.airflow
API = URL_PREFIX + "/api/endpoints"
IRIS = {"input_params": {"sepal_length": 5.0, "sepal_width": 3.4}}


class User:
    def __init__(self, name: str):
        self.name = name

    def get_name(self) -> str:
        return self.name

    def get_id(self) -> str:
        return self.name


class Reader(Caller):
    """alice reads and edits every DAG, carol reads them, dave reads none."""

    def readable_dag_ids(self, session: Any) -> set[str]:
        return set() if self.name == "dave" else {"iris_to_endpoint"}


@pytest.fixture
def as_user(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str | None], TestClient]]:
    monkeypatch.setattr("flow_airflow.experiments.api.may_edit_runs", lambda user, dag_id: user.get_name() == "alice")
    app = create_app()

    def client(name: str | None) -> TestClient:
        app.dependency_overrides[caller] = lambda: Reader(User(name) if name else None)
        return TestClient(app, root_path=URL_PREFIX)

    yield client


def test_the_page_and_its_api(endpoints: EndpointStore, datasets: Path, project: Callable[..., Path],
                              airflow_home: Path, as_user: Callable[[str | None], TestClient]) -> None:
    from flow_airflow.datasets.cli import push_flow_datasets

    file = project("data_and_deploy")
    push_flow_datasets(file.parent, no_event=True)
    first = run_flow(file)
    predict_py = file.parent / "predict.py"
    predict_py.write_text(predict_py.read_text().replace("return min(", "return 'v2:' + min("))
    second = run_flow(file)
    assert (first.state, second.state) == ("success", "success")

    assert as_user(None).get(URL_PREFIX + "/endpoints").status_code == 401
    dave = as_user("dave")
    assert dave.get(API).json() == {"endpoints": []}
    refused, unknown = dave.get(f"{API}/iris-classifier"), dave.get(f"{API}/iris-classifer")
    assert refused.status_code == unknown.status_code == 404  # the same answer: dave cannot tell which names exist
    assert refused.json()["detail"] == "No endpoint iris-classifier" and unknown.json()["detail"] == \
        "No endpoint iris-classifer"
    for path in ("predict", "stop", "rollback"):
        assert dave.post(f"{API}/iris-classifier/{path}", json=IRIS).json() == {"detail": "No endpoint iris-classifier"}
    assert dave.get(f"{API}/iris-classifier/logs").status_code == 404
    assert "No endpoint of a flow you may see" in dave.get(URL_PREFIX + "/endpoints").text

    carol = as_user("carol")
    shown = carol.get(f"{API}/iris-classifier").json()
    assert shown["status"] == "up" and shown["current"]["version"] == 2 and shown["current"]["run_id"] == second.run_id
    assert shown["previous"]["version"] == 1 and [r["healthy"] for r in shown["replicas"]] == [True]
    assert shown["curl"].startswith(f"curl -X POST {shown['predict_url']} -H 'Content-Type: application/json' "
                                    '-H "Cnvrg-Api-Key: $CNVRG_API_KEY" -d ')
    assert carol.post(f"{API}/iris-classifier/predict", json=IRIS).json() == {
        "status": 200, "answer": {"prediction": "v2:setosa"}}
    assert carol.post(f"{API}/iris-classifier/predict", json={"input_params": {"sepal_length": 1}}).json()[
        "status"] == 500
    stats = carol.get(f"{API}/iris-classifier").json()
    assert (stats["requests"], stats["errors"]) == (2, 1)
    page = carol.get(URL_PREFIX + "/endpoints").text
    assert 'id="endpoint-iris-classifier"' in page and shown["predict_url"] in page
    assert 'class="reject stop"' not in page  # carol may not stop it
    assert carol.post(f"{API}/iris-classifier/stop", json={}).status_code == 403
    assert carol.post(f"{API}/iris-classifier/rollback", json={}).json()["detail"] == \
        "carol may not change the runs of iris_to_endpoint"
    assert carol.get(f"{API}/nope").status_code == 404

    assert 'class="plain reveal"' not in page and "users who may change this flow's runs can show it" in page
    assert carol.post(f"{API}/iris-classifier/key", json={}).status_code == 403
    hidden = as_user("dave").post(f"{API}/iris-classifier/key", json={})
    assert hidden.json() == {"detail": "No endpoint iris-classifier"}

    alice = as_user("alice")
    assert 'class="reject stop"' in alice.get(URL_PREFIX + "/endpoints").text
    assert 'class="plain reveal"' in alice.get(URL_PREFIX + "/endpoints").text
    assert alice.post(f"{API}/iris-classifier/key", content=b"", headers={"Content-Type": "text/plain"}).status_code \
        == 415
    revealed = alice.post(f"{API}/iris-classifier/key", json={}).json()
    assert revealed == {"key": keys.get("iris-classifier"), "header": "Cnvrg-Api-Key",
                        "variable": "flow_airflow_endpoint_iris_classifier_api_key"}
    from airflow.models.log import Log
    from airflow.utils.session import create_session

    with create_session() as db:  # audited, in Airflow's own audit log
        [entry] = db.query(Log).filter(Log.event == KEY_EVENT, Log.owner == "alice").all()
        assert entry.dag_id == "iris_to_endpoint" and "iris-classifier" in entry.extra
        db.delete(entry)
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):  # a same-site form: refused, no change
        for action in ("rollback", "stop"):
            forged = alice.post(f"{API}/iris-classifier/{action}", content=b"x=1",
                                headers={"Content-Type": content_type})
            assert forged.status_code == 415 and "application/json" in forged.json()["detail"]
    unchanged = alice.get(f"{API}/iris-classifier").json()
    assert unchanged["status"] == "up" and unchanged["current"]["version"] == 2
    assert [e["what"] for e in unchanged["history"]] == [e["what"] for e in shown["history"]]
    rolled = alice.post(f"{API}/iris-classifier/rollback", json={}).json()
    assert rolled["current"]["version"] == 1 and rolled["history"][0]["by"] == "alice (endpoints page)"
    assert alice.post(f"{API}/iris-classifier/predict", json=IRIS).json()["answer"] == {"prediction": "setosa"}
    assert alice.post(f"{API}/iris-classifier/rollback", json={}).status_code == 409  # nothing before version 1
    logs = alice.get(f"{API}/iris-classifier/logs?lines=5").json()
    assert "front" in logs and any("version 1 replica 0" in name for name in logs)
    stopped = alice.post(f"{API}/iris-classifier/stop", json={}).json()
    assert stopped["status"] == "stopped" and stopped["current"] is None
    assert alice.post(f"{API}/iris-classifier/predict", json=IRIS).json()["status"] == 503
