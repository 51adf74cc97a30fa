"""Schedules, dataset triggers, the webhook call and project settings on a real scheduler."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from flow_airflow.cli import LOADER

pytestmark = pytest.mark.e2e

ONE_TASK = "tasks:\n  - {title: Step, type: exec, input: 'echo step done', computes: [local]}\nrelations: []\n"


@pytest.fixture(scope="module")
def server(airflow_server):
    airflow_server.add_file("flows.py", LOADER)
    return airflow_server


def add_flow(server, folder: str, text: str) -> None:
    server.add_file(f"{folder}/flow.yaml", text)
    server.touch("flows.py")


def wait_for_runs(server, dag_id: str, run_type: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = server.api("GET", f"/dags/{dag_id}/dagRuns")["dag_runs"]
        if found := [r for r in runs if r["run_type"] == run_type]:
            return found[0]
        time.sleep(1)
    raise AssertionError(f"no {run_type} run of {dag_id} after {timeout}s: {runs}\n{server.log_tail(40)}")


def test_a_scheduled_flow_starts_by_itself(server) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=25)
    add_flow(server, "soon", f"flow: Soon\nschedule: {soon:%d.%m.%Y %H:%M:%S}\n{ONE_TASK}")
    dag = server.wait_for_dag("soon", timeout=90)  # unpaused: nobody triggers it
    assert dag["timetable_description"] == f"Once, at {soon:%Y-%m-%d %H:%M:%S} UTC"
    assert dag["next_dagrun_run_after"].startswith(f"{soon:%Y-%m-%dT%H:%M:%S}")
    run = wait_for_runs(server, "soon", "scheduled", timeout=120)
    assert server.wait_for_run("soon", run["dag_run_id"]) == "success"
    assert datetime.fromisoformat(run["run_after"]) == soon.replace(microsecond=0)
    assert server.get_dag("soon")["next_dagrun_run_after"] is None  # once, and only once


def test_a_new_dataset_version_starts_a_run(server) -> None:
    add_flow(server, "retrain", f"flow: Retrain On Data\ntriggers: {{datasets: [iris]}}\n{ONE_TASK}")
    dag = server.wait_for_dag("retrain_on_data", timeout=90)
    assert dag["timetable_description"] == "Triggered by assets"
    assets = server.api("GET", "/assets", params={"uri_pattern": "cnvrg-dataset://iris"})["assets"]
    assert len(assets) == 1
    server.api("POST", "/assets/events", ok=(200,), json={"asset_id": assets[0]["id"], "extra": {"version": "v2"}})
    run = wait_for_runs(server, "retrain_on_data", "asset_triggered")
    assert server.wait_for_run("retrain_on_data", run["dag_run_id"]) == "success"


def test_the_webhook_call_of_the_readme(server) -> None:
    add_flow(server, "hooked", f"flow: Hooked\ntriggers: {{webhook: true}}\n{ONE_TASK}")
    server.wait_for_dag("hooked", timeout=90)
    # What README's "Webhook" section tells an external system to do, step by step:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        refused = client.post("/api/v2/dags/hooked/dagRuns", json={"logical_date": None})
        assert refused.status_code == 401
        token = client.post("/auth/token", json={"username": "admin", "password": "admin"}).json()["access_token"]
        started = client.post("/api/v2/dags/hooked/dagRuns", headers={"Authorization": f"Bearer {token}"},
                              json={"logical_date": None, "conf": {}})
    assert started.status_code == 200, started.text
    assert server.wait_for_run("hooked", started.json()["dag_run_id"]) == "success"


def test_project_environment_with_secrets_masked_in_the_task_log(server) -> None:
    secret = "tok-9f8e7d6c5b4a"
    server.api("POST", "/variables", ok=(201,), json={"key": "flow_airflow_env",
                                           "value": json.dumps({"API_TOKEN": secret, "REGION": "eu-west"})})
    try:
        add_flow(server, "envy", "flow: Envy\ntasks:\n  - {title: Show, type: exec, computes: [local], "
                                 "input: 'echo region $REGION token $API_TOKEN'}\nrelations: []\n")
        server.wait_for_dag("envy", timeout=90)
        run_id, state = server.run_dag("envy")
        assert state == "success"
        log = server.task_log("envy", run_id, "show.run", 0)
    finally:
        server.api("DELETE", "/variables/flow_airflow_env", ok=(204,))
    assert "region eu-west token ***" in log
    assert secret not in log
