"""A flow across its recent runs (``GET /flow-airflow/api/experiments/<dag_id>``), on two real runs of
tests/flows/conditions (``dag.test()``): the second triggered with a changed param (a fourth route).

The caller is the one seam, as in test_api.py (the e2e test covers Airflow's own login).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from flow_airflow.experiments import compare
from flow_airflow.web import URL_PREFIX
from tests.experiments.test_api import client_for

pytestmark = pytest.mark.airflow
DAG = "conditions"
BASE = f"{URL_PREFIX}/api/experiments/{DAG}"


@pytest.fixture(scope="module")
def two_runs(airflow_home: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """The conditions flow run as written (3 Train routes), then with accuracy 0.70, 0.95, 0.85, 0.60."""
    from flow_airflow.local_run import run_flow

    target = tmp_path_factory.mktemp("flows") / "conditions"
    shutil.copytree(Path(__file__).parents[1] / "flows" / "conditions", target)
    first = run_flow(target / "flow.yaml")
    second = run_flow(target / "flow.yaml", conf={"Train": {"accuracy": "0.70, 0.95, 0.85, 0.60"}})
    assert (first.state, second.state) == ("success", "success")
    return first, second


@pytest.fixture
def client(two_runs: Any) -> TestClient:
    return client_for({DAG})


def without_run(e: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in e.items() if k != "run_id"}


def test_the_last_runs_compared_newest_first(two_runs: tuple[Any, Any], client: TestClient) -> None:
    first, second = two_runs
    body = client.get(BASE).json()
    assert [r["run_id"] for r in body["runs"]][:2] == [second.run_id, first.run_id]
    mine = [e for e in body["experiments"] if e["run_id"] in (first.run_id, second.run_id)]
    # every experiment of each run, as that run's own view gives it, with its run
    for result in (second, first):
        own = client.get(f"{BASE}/{quote(result.run_id, safe='')}").json()["experiments"]
        assert [without_run(e) for e in mine if e["run_id"] == result.run_id] == own
    assert [e["params"].get("accuracy") for e in mine if e["task"] == "Train" and e["run_id"] == second.run_id
            and e["has_record"]] == ["0.70", "0.95", "0.85", "0.60"]
    runs = {r["run_id"]: r for r in body["runs"]}
    assert runs[second.run_id]["conf"] == {"Train": {"accuracy": "0.70, 0.95, 0.85, 0.60"}}
    assert runs[first.run_id]["total"] == 5 and runs[first.run_id]["state"] == "success"
    assert {r["run_id"] for r in body["recent"]} >= {first.run_id, second.run_id}
    assert [t["task"] for t in body["tasks"]] == ["Train", "Compare", "Publish"]
    assert "accuracy" in body["differing"] and body["pending"] == []
    assert body["params"] == {"Train": {"accuracy": "0.70, 0.95, 0.85, 0.60"}}  # the newest run's: re-run's start


def test_chosen_runs_and_paging_across_them(two_runs: tuple[Any, Any], client: TestClient) -> None:
    first, second = two_runs
    only = client.get(BASE, params={"run": first.run_id}).json()
    assert [r["run_id"] for r in only["runs"]] == [first.run_id] and only["total"] == 5
    both = client.get(BASE, params=[("run", first.run_id), ("run", second.run_id)]).json()
    assert [r["run_id"] for r in both["runs"]] == [second.run_id, first.run_id]  # newest first, as chosen
    assert both["total"] == only["total"] + both["runs"][0]["total"]
    page = client.get(BASE, params=[("run", first.run_id), ("run", second.run_id), ("offset", 4), ("limit", 3)]).json()
    assert page["experiments"] == both["experiments"][4:7] and (page["offset"], page["limit"]) == (4, 3)
    newest = client.get(BASE, params={"last": 1}).json()
    assert len(newest["runs"]) == 1 and newest["runs"][0]["run_id"] == both["runs"][0]["run_id"]


def test_the_condition_reasons_of_every_run(two_runs: tuple[Any, Any], client: TestClient) -> None:
    first, second = two_runs
    body = client.get(BASE, params=[("run", first.run_id), ("run", second.run_id)]).json()
    sixty = [e for e in body["experiments"] if e["run_id"] == second.run_id and e["params"].get("accuracy") == "0.60"]
    assert [(c["task"], c["passed"], c["why"]) for c in sixty[0]["conditions"]] == [
        ("Compare", False, ["accuracy = 0.60 does not pass (the highest 'accuracy' of 'Train' is 0.95, "
                            "Train #1 [accuracy=0.95])"]),
        ("Publish", False, ["accuracy = 0.60 does not pass ('accuracy' > 0.8 on 'Train')"]),
    ]


def test_refusals_and_the_page(two_runs: tuple[Any, Any], client: TestClient,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    missing = client.get(BASE, params={"run": "no-such-run"})
    assert missing.status_code == 404 and missing.json() == {"detail": f"No run no-such-run of {DAG}"}
    too_many = [("run", f"r{i}") for i in range(compare.MAX_RUNS + 1)]
    assert client.get(BASE, params=too_many).status_code == 422
    assert client.get(BASE, params={"last": 0}).status_code == 422
    assert client_for(set()).get(BASE).status_code == 403
    from flow_airflow.web.app import create_app

    assert TestClient(create_app(), root_path=URL_PREFIX).get(BASE).status_code == 401
    monkeypatch.setattr(compare.api, "may_edit_runs", lambda user, dag_id: False)  # a viewer
    html = client.get(f"{URL_PREFIX}/experiments/{DAG}")
    assert html.status_code == 200 and 'data-run=""' in html.text and 'id="runs-chooser"' in html.text
    assert 'id="rerun-open"' not in html.text and "/static/vendor/echarts.min.js" in html.text
    monkeypatch.setattr(compare.api, "may_edit_runs", lambda user, dag_id: True)
    editor = client.get(f"{URL_PREFIX}/experiments/{DAG}").text
    assert 'id="rerun-open"' in editor and 'data-may-edit="true"' in editor
    assert 'id="stop"' not in editor  # a stop per running run, in the chooser
    refused = client_for(set()).get(f"{URL_PREFIX}/experiments/{DAG}")
    assert refused.status_code == 403
