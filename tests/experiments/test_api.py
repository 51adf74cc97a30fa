"""The experiments API and page on a real run (``dag.test()`` on the metadata DB): the records
``flow-airflow run`` summarizes, paging, condition marks, artifacts, and the refusals.

The caller is the one seam: Airflow's auth manager needs the api-server's app, so the tests give
the routes a caller with known read access (the e2e test covers Airflow's own login).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from flow_airflow.experiments import api
from flow_airflow.web import URL_PREFIX
from flow_airflow.web.app import create_app
from flow_airflow.web.auth import Caller, caller

pytestmark = pytest.mark.airflow
DAG = "conditions"


class User:
    def get_name(self) -> str:
        return "bob"

    def get_id(self) -> str:
        return "7"


class Reader(Caller):
    """A signed-in caller who may read the DAGs ``readable``."""

    def __init__(self, readable: set[str]):
        super().__init__(User())
        self.readable = readable

    def readable_dag_ids(self, session: Any) -> set[str]:
        return self.readable


@pytest.fixture(scope="module")
def conditions_run(airflow_home: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One run of tests/flows/conditions: Train 3 (accuracy 0.70, 0.95, 0.85), Compare 1, Publish 1."""
    import shutil

    from flow_airflow.local_run import run_flow

    target = tmp_path_factory.mktemp("flows") / "conditions"
    shutil.copytree(Path(__file__).parents[1] / "flows" / "conditions", target)
    result = run_flow(target / "flow.yaml")
    assert result.state == "success"
    return result


def client_for(readable: set[str]) -> TestClient:
    app = create_app()
    app.dependency_overrides[caller] = lambda: Reader(readable)
    return TestClient(app, root_path=URL_PREFIX)


@pytest.fixture
def client(conditions_run: Any) -> Iterator[TestClient]:
    yield client_for({conditions_run.dag_id})


def url(result: Any, **params: Any) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    base = f"{URL_PREFIX}/api/experiments/{result.dag_id}/{quote(result.run_id, safe='')}"
    return base + (f"?{query}" if query else "")


def test_the_api_returns_the_records_flow_airflow_run_summarizes(conditions_run: Any, client: TestClient) -> None:
    body = client.get(url(conditions_run)).json()
    assert body["dag_id"] == DAG and body["state"] == "success" and body["total"] == 5
    assert [{k: v for k, v in e.items() if k not in ("conditions", "artifacts")} for e in body["experiments"]] == [
        e.as_json() for e in conditions_run.experiments]
    assert [(e["task"], e["label"], e["tags"]) for e in body["experiments"]] == [
        ("Train", "accuracy=0.70", {"accuracy": "0.70"}),
        ("Train", "accuracy=0.95", {"accuracy": "0.95"}),
        ("Train", "accuracy=0.85", {"accuracy": "0.85"}),
        ("Compare", "Train: accuracy=0.95", {"winner_accuracy": "0.95"}),  # the max only
        ("Publish", "Train: accuracy=0.95 / accuracy=0.85", {"published": "2"}),  # both > 0.8
    ]
    compare = body["experiments"][3]
    # a gathered parent is no step of the route (lineage); what it gave is in upstream
    assert compare["lineage"] == {"Compare": 0} and compare["upstream"]["Train"]["tags"] == {"accuracy": "0.95"}
    assert body["experiments"][0]["lineage"] == {"Train": 0}
    assert all(e["state"] == "success" and e["duration"] >= 0 and e["start_date"] for e in body["experiments"])
    assert [t["task"] for t in body["tasks"]] == ["Train", "Compare", "Publish"]
    assert body["tasks"][1]["condition"] == "compare.condition" and body["tasks"][1]["parents"] == ["Train"]
    assert (body["param_keys"], body["tag_keys"], body["differing"]) == (
        ["accuracy"], ["accuracy", "winner_accuracy", "published"], ["accuracy"])
    assert body["params"] == {"Train": {"accuracy": ["0.70", "0.95", "0.85"]}} and body["pending"] == []


def test_conditions_mark_what_passed_and_what_was_left_out(conditions_run: Any, client: TestClient) -> None:
    train = client.get(url(conditions_run)).json()["experiments"][:3]
    assert [[(c["task"], c["passed"]) for c in e["conditions"]] for e in train] == [
        [("Compare", False), ("Publish", False)],  # 0.70: not the max, not > 0.8
        [("Compare", True), ("Publish", True)],  # 0.95
        [("Compare", False), ("Publish", True)],  # 0.85
    ]


def test_conditions_say_why_in_words(conditions_run: Any, client: TestClient) -> None:
    train = client.get(url(conditions_run)).json()["experiments"][:3]
    assert [{c["task"]: c["why"] for c in e["conditions"]} for e in train] == [
        {"Compare": ["accuracy = 0.70 does not pass (the highest 'accuracy' of 'Train' is 0.95, "
                     "Train #1 [accuracy=0.95])"],
         "Publish": ["accuracy = 0.70 does not pass ('accuracy' > 0.8 on 'Train')"]},
        {"Compare": ["accuracy = 0.95 passes (the highest 'accuracy' of 'Train')"],
         "Publish": ["accuracy = 0.95 passes ('accuracy' > 0.8 on 'Train')"]},
        {"Compare": ["accuracy = 0.85 does not pass (the highest 'accuracy' of 'Train' is 0.95, "
                     "Train #1 [accuracy=0.95])"],
         "Publish": ["accuracy = 0.85 passes ('accuracy' > 0.8 on 'Train')"]},
    ]


NOTHING_PASSES = """flow: Nothing Passes
tasks:
  - title: Train
    type: exec
    input: python3 -c "import sys; print('cnvrg_tag_loss:', sys.argv[2])"
    computes: [local]
    params:
      - key: loss
        value: [0.3, 0.5]
  - title: Deploy
    type: exec
    input: echo deploy
    computes: [local]
    conditions:
      - task: Train
        objective: lt
        tag_key: loss
        target: 0.1
relations:
  - from: Train
    to: Deploy
"""


def test_a_condition_that_lets_nothing_through_still_says_why(airflow_home: Any, tmp_path: Path) -> None:
    from flow_airflow.local_run import run_flow

    (tmp_path / "flow.yaml").write_text(NOTHING_PASSES)
    result = run_flow(tmp_path / "flow.yaml")
    body = client_for({result.dag_id}).get(url(result)).json()
    assert [(e["task"], e["state"]) for e in body["experiments"]] == [
        ("Train", "success"), ("Train", "success"), ("Deploy", "skipped")]
    assert [e["conditions"] for e in body["experiments"][:2]] == [
        [{"task": "Deploy", "condition": "deploy.condition", "passed": False,
          "why": [f"loss = {v} does not pass ('loss' < 0.1 on 'Train')"]}] for v in ("0.3", "0.5")]


def test_paging_and_artifacts(conditions_run: Any, client: TestClient) -> None:
    page = client.get(url(conditions_run, offset=1, limit=2)).json()
    assert (page["total"], page["offset"], page["limit"]) == (5, 1, 2)
    assert [(e["task"], e["index"]) for e in page["experiments"]] == [("Train", 1), ("Train", 2)]
    assert page["experiments"][0]["artifacts"] == ["output/accuracy.txt"]
    file = client.get(url(conditions_run).split("?")[0] + "/artifacts/train.run/1/output/accuracy.txt")
    assert file.status_code == 200 and file.text == "0.95"
    assert "attachment" in file.headers["content-disposition"]
    outside = client.get(url(conditions_run) + "/artifacts/train.run/1/..%2F..%2F..%2F0%2Foutput%2Faccuracy.txt")
    assert outside.status_code == 404
    assert client.get(url(conditions_run, limit=5000)).status_code == 422


def test_refusals(conditions_run: Any) -> None:
    assert client_for(set()).get(url(conditions_run)).status_code == 403
    refused = client_for(set()).get(url(conditions_run).replace("/api/experiments", "/experiments"))
    assert refused.status_code == 403 and "may not see the runs of conditions" in refused.text
    missing = client_for({DAG}).get(f"{URL_PREFIX}/api/experiments/{DAG}/no-such-run")
    assert missing.status_code == 404 and missing.json() == {"detail": "No run no-such-run of conditions"}
    anonymous = TestClient(create_app(), root_path=URL_PREFIX).get(url(conditions_run))
    assert anonymous.status_code == 401


def test_the_run_page_and_the_runs_of_the_flow(conditions_run: Any, client: TestClient,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "may_edit_runs", lambda user, dag_id: True)
    html = client.get(url(conditions_run).replace("/api/experiments", "/experiments"))
    assert html.status_code == 200 and 'id="experiments"' in html.text and "/static/vendor/echarts.min.js" in html.text
    assert 'id="stop"' in html.text
    runs = client.get(f"{URL_PREFIX}/experiments/{DAG}")
    assert runs.status_code == 200 and quote(conditions_run.run_id, safe="") in runs.text
    assert client.get(f"{URL_PREFIX}/experiments").status_code == 200


def test_an_unknown_dag_has_no_flow_tasks(airflow_home: Any, run: Callable[..., Any]) -> None:
    from airflow.utils.session import create_session

    from flow_airflow import run_experiments

    with create_session() as session:
        assert run_experiments.flow_tasks(session, "no_such_dag") == []
        assert api.run_view(session, "no_such_dag", "x") is None


SERIES_FLOW = """flow: Series
tasks:
  - title: Fit
    type: exec
    input: python3 fit.py
    computes: [local]
    params:
      - key: lr
        value: [0.1, 0.2]
relations: []
"""
FIT = """import sys
from cnvrg import Experiment
lr = float(sys.argv[2])
e = Experiment()
e.log_metric("loss", Ys=[1.0, 0.5])
e.log_metric("loss", Ys=[lr])
"""


def test_log_metric_series_reach_the_api(airflow_home: Any, tmp_path: Path) -> None:
    from flow_airflow.local_run import run_flow

    (tmp_path / "flow.yaml").write_text(SERIES_FLOW)
    (tmp_path / "fit.py").write_text(FIT)
    result = run_flow(tmp_path / "flow.yaml")
    assert result.state == "success"
    body = client_for({result.dag_id}).get(url(result)).json()
    assert [(e["params"], e["tags"], e["series"]) for e in body["experiments"]] == [
        ({"lr": "0.1"}, {"loss": "0.1"}, {"loss": {"ys": [1.0, 0.5, 0.1], "xs": [0, 1, 2]}}),
        ({"lr": "0.2"}, {"loss": "0.2"}, {"loss": {"ys": [1.0, 0.5, 0.2], "xs": [0, 1, 2]}}),
    ]


def _mid_run(result: Any) -> None:
    """Put a finished run of grid_two back to the middle of its run, as the metadata DB has it then:
    Grid Search B #0 ended (its record kept), #1 runs, #2 is queued, the rest and flow-outcome wait."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import delete, select

    with create_session() as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == result.dag_id, DagRun.run_id == result.run_id))
        run.state, run.end_date = "running", None
        where = (TI.dag_id == result.dag_id, TI.run_id == result.run_id)
        for ti in session.scalars(select(TI).where(*where)):
            if ti.task_id == "grid_search_b.run" and ti.map_index == 1:
                ti.state, ti.end_date = "running", None
            elif (ti.task_id == "grid_search_b.run" and ti.map_index > 1) or ti.task_id == "flow-outcome":
                ti.state = "queued" if ti.map_index == 2 else "scheduled"
                ti.start_date = ti.end_date = None
        session.execute(delete(XComModel).where(
            XComModel.dag_id == result.dag_id, XComModel.run_id == result.run_id,
            XComModel.task_id == "grid_search_b.run", XComModel.map_index > 0))


def _states(result: Any) -> dict[tuple[str, int], tuple[str, bool]]:
    """(task id, map index) -> (state, has a start date), from the task instance rows."""
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(select(TI.task_id, TI.map_index, TI.state, TI.start_date).where(
            TI.dag_id == result.dag_id, TI.run_id == result.run_id)).all()
    return {(r.task_id, r.map_index): (str(r.state), r.start_date is not None) for r in rows}


def test_stop_keeps_what_ended_fails_what_runs_and_skips_what_did_not_start(
        run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 27: the page's Stop failed all 9 Grid Search B instances, #0 that had ended too."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from flow_airflow import run_experiments

    result = run("grid_two")
    _mid_run(result)
    client = client_for({result.dag_id})
    monkeypatch.setattr(api, "may_edit_runs", lambda user, dag_id: False)
    assert client.post(url(result) + "/stop", json={}).status_code == 403
    monkeypatch.setattr(api, "may_edit_runs", lambda user, dag_id: True)
    stopped = client.post(url(result) + "/stop", json={})
    assert stopped.status_code == 200, stopped.text
    note = stopped.json()["note"]
    assert stopped.json()["state"] == "failed" and note.startswith("Stopped by bob at ") and note.endswith(" UTC")
    states = _states(result)
    assert states[("grid_search_b.run", 0)] == ("success", True)  # ended: as it ended
    assert states[("grid_search_b.run", 1)] == ("failed", True)  # ran: failed, its worker ends it
    assert {states[("grid_search_b.run", i)] for i in range(2, 9)} == {("skipped", False)}  # never started
    assert states[("flow-outcome", -1)] == ("skipped", False)
    assert all(states[("grid_search_a.run", i)] == ("success", True) for i in range(3))
    with create_session() as session:
        dag_run = session.scalar(select(DagRun).where(DagRun.dag_id == result.dag_id,
                                                      DagRun.run_id == result.run_id))
        assert (dag_run.state, dag_run.note) == ("failed", note) and dag_run.dag_run_note.user_id == "7"
        b = [e for e in run_experiments.of_run(session, result.dag_id, result.run_id)
             if e.task_id == "grid_search_b.run"]
    assert b[0].record is not None and b[0].tags == result.experiments[3].tags  # its record kept
    body = client.get(url(result)).json()
    assert body["note"] == note and body["state"] == "failed"
    assert [e["state"] for e in body["experiments"] if e["task_id"] == "grid_search_b.run"] == [
        "success", "failed", *["skipped"] * 7]
    again = client.post(url(result) + "/stop", json={})
    assert again.status_code == 409 and again.json()["detail"].endswith("has ended (failed): there is nothing to stop")


def test_a_run_failed_by_airflow_still_shows_the_experiments_that_ended_well(run: Callable[..., Any]) -> None:
    """Airflow's own "mark run as failed" (``PATCH dagRuns state=failed``) fails every instance of a mapped
    task of which one runs: the experiment that had ended with a record of success stays ``success``."""
    from airflow.api.common.mark_tasks import set_dag_run_state_to_failed
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session

    from flow_airflow import run_experiments

    result = run("grid_two")
    _mid_run(result)
    with create_session() as session:
        dag = SerializedDagModel.get_dag(result.dag_id, session=session)
        set_dag_run_state_to_failed(dag=dag, run_id=result.run_id, commit=True, session=session)
    assert _states(result)[("grid_search_b.run", 0)][0] == "failed"  # what Airflow does
    with create_session() as session:
        b = [e for e in run_experiments.of_run(session, result.dag_id, result.run_id)
             if e.task_id == "grid_search_b.run"]
    assert [e.state for e in b] == ["success", *["failed"] * 8]
