"""Trigger-time params through the REST API of a real ``airflow standalone`` (issue 11, section 4)."""

from __future__ import annotations

import pytest

from flow_airflow.cli import LOADER

pytestmark = pytest.mark.e2e
DAG_ID = "trigger_params_e2e"
FLOW = """\
flow: Trigger Params E2E
tasks:
  - title: Train
    type: exec
    input: python3 step.py
    computes: [local]
    params:
      - key: lr
        value: ["0.1", "0.01"]
  - title: Evaluate
    type: exec
    input: python3 step.py
    computes: [local]
    params:
      - key: split
        value: test
relations:
  - {from: Train, to: Evaluate}
"""
STEP = 'import sys\nprint("cnvrg_tag_args:", " ".join(sys.argv[1:]))\n'


@pytest.fixture(scope="module")
def server(airflow_server):
    airflow_server.add_file("flows.py", LOADER)
    airflow_server.add_file("trigger_params/step.py", STEP)
    airflow_server.add_file("trigger_params/flow.yaml", FLOW)
    airflow_server.touch("flows.py")
    airflow_server.wait_for_dag(DAG_ID, timeout=120)
    return airflow_server


def test_a_trigger_with_conf_overriding_a_grid_runs_the_overridden_routes(server) -> None:
    params = server.api("GET", f"/dags/{DAG_ID}/details")["params"]
    assert params["Train"]["value"] == {"lr": ["0.1", "0.01"]}  # what the trigger form shows
    assert params["Evaluate"]["value"] == {"split": "test"}

    conf = {"Train": {"lr": ["0.5", "0.05", "0.005"]}, "Evaluate": {"split": "val, test"}}
    run_id, state = server.run_dag(DAG_ID, conf=conf, timeout=300)
    assert state == "success"
    # the DAG has 2 task instances of Train (its file's grid): each runs its share of the 3 routes
    train = records(server, run_id, "train.run")
    assert [(r["params"], r["tags"]) for r in train] == [
        ({"lr": lr}, {"args": f"--lr {lr}"}) for lr in ("0.5", "0.05", "0.005")]
    assert [r["label"] for r in train] == ["lr=0.5", "lr=0.05", "lr=0.005"]
    evaluate = records(server, run_id, "evaluate.run")
    assert sorted(r["label"] for r in evaluate) == sorted(
        f"split={s} | Train: lr={lr}" for s in ("val", "test") for lr in ("0.5", "0.05", "0.005"))
    assert sorted(r["tags"]["args"] for r in evaluate) == ["--split test"] * 3 + ["--split val"] * 3
    labels = [ti["rendered_map_index"] for ti in server.task_instances(DAG_ID, run_id, "train.run")]
    assert labels == ["2 routes: lr=0.5 … lr=0.05", "lr=0.005"]
    log = server.task_log(DAG_ID, run_id, "train.run", 0)
    assert "param 'lr' from the run's conf: ['0.5', '0.05', '0.005']" in log
    assert "'Train' has 3 route(s) in this run (the DAG has 2 task instances of it)" in log


def records(server, run_id: str, task_id: str) -> list[dict]:
    """The experiment records of a task in a run, in route order (a task instance holds one or a list)."""
    found: list[dict] = []
    for ti in server.task_instances(DAG_ID, run_id, task_id):
        if ti["state"] == "success":
            value = server.xcom(DAG_ID, run_id, task_id, ti["map_index"])
            found += value if isinstance(value, list) else [value]
    return sorted(found, key=lambda r: r["index"])


def test_a_conf_that_does_not_fit_is_refused(server) -> None:
    refused = server.session.post(f"/dags/{DAG_ID}/dagRuns",
                                  json={"logical_date": None, "conf": {"Train": {"learning_rate": "1"}}})
    assert refused.status_code == 400 and "learning_rate" in refused.text  # Airflow checks the task's schema

    run_id, state = server.run_dag(DAG_ID, conf={"Trian": {"lr": "1"}}, timeout=300)
    assert state == "failed"
    log = server.task_log(DAG_ID, run_id, "train.run", 0)
    assert ("the run's conf names 'Trian', which is no task with params of this flow "
            "(tasks with params: 'Train', 'Evaluate')") in log
    assert server.ti_states(DAG_ID, run_id) == {("train.run", 0): "failed", ("train.run", 1): "failed",
                                                ("evaluate.run", 0): "skipped", ("evaluate.run", 1): "skipped",
                                                ("flow-outcome", -1): "failed"}
