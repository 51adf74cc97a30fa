"""Stopping a run on the experiments page, on a real ``airflow standalone`` in headless Chromium (issue 27):
the experiment that ended keeps its state, times and record (Airflow's REST, the page's API, the page),
the running ones are failed, nothing starts after the stop, and the run's note says who stopped it when.

stop_sweep's Sweep #0 ends at once, its 11 other routes run for ten minutes or wait for a slot (parallelism
8): the run is stopped with one Sweep task instance a success. Airflow's own PATCH state=failed (what the
page sent before) marked all 12 failed and gave the never-started ones a start date after the stop.
Screenshot: ``stop-sweep.png`` in the server's temp folder.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from flow_airflow.cli import LOADER
from tests.e2e.client import utcnow
from tests.e2e.test_experiments_e2e import browser, page_url, rows, sign_in  # noqa: F401 -- browser: the fixture

AirflowServer = Any  # conftest.AirflowServer
pytestmark = pytest.mark.e2e
FLOWS = Path(__file__).parent.parent / "flows"
DAG, SWEEP, REPORT = "stop_sweep", "sweep.run", "report."


def when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def test_stop_keeps_the_finished_experiment_and_starts_nothing(airflow_server: AirflowServer, browser: Any) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = airflow_server
    server.add_file("flows.py", LOADER)
    server.copy_tree(FLOWS / DAG, DAG)
    server.touch("flows.py")
    server.wait_for_dag(DAG, timeout=120)
    run_id = server.trigger(DAG, run_id=f"stop__{time.time_ns()}")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:  # Sweep #0 ended, others run
        states = server.ti_states(DAG, run_id)
        if states.get((SWEEP, 0)) == "success" and "running" in states.values():
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"Sweep #0 did not succeed beside running routes: {server.ti_states(DAG, run_id)}")
    before = {(t["task_id"], t["map_index"]): t for t in server.task_instances(DAG, run_id)}
    url = page_url(server, DAG, run_id)
    sign_in(browser, url, "admin")
    WebDriverWait(browser, 60).until(lambda b: len(rows(b)) >= 12)
    stopped_at = utcnow()
    browser.find_element(By.ID, "stop").click()
    browser.switch_to.alert.accept()
    WebDriverWait(browser, 60).until(lambda b: b.find_element(By.ID, "run-state").text == "failed")
    time.sleep(8)  # what the scheduler or a worker would still start, it starts now

    # Airflow's REST: #0 as it ended, the running ones failed, the rest skipped, none started after the stop
    after = {(t["task_id"], t["map_index"]): t for t in server.task_instances(DAG, run_id)}
    first = after[(SWEEP, 0)]
    assert (first["state"], first["start_date"], first["end_date"]) == (
        "success", before[(SWEEP, 0)]["start_date"], before[(SWEEP, 0)]["end_date"])
    for key, ti in after.items():
        if key == (SWEEP, 0):
            continue
        was = before.get(key, {}).get("state")
        assert ti["state"] == "failed" if was == "running" else ti["state"] in {"failed", "skipped"}, (key, was, ti)
        started = when(ti["start_date"])
        assert started is None or started < stopped_at, f"{key} started after the stop: {ti}"
    report = [ti for (task_id, _), ti in after.items() if task_id.startswith(REPORT)]
    assert report and all(ti["state"] == "skipped" and ti["start_date"] is None for ti in report)  # never started
    assert server.xcom(DAG, run_id, SWEEP, map_index=0)["tags"] == {"n": "0"}  # its record is kept
    run = server.dag_run(DAG, run_id)
    assert run["state"] == "failed" and run["note"].startswith("Stopped by admin at ")
    noted = datetime.strptime(run["note"].removeprefix("Stopped by admin at "), "%Y-%m-%d %H:%M:%S UTC")
    assert noted.replace(tzinfo=UTC) >= stopped_at.replace(microsecond=0)

    # the page's API and the page: the same
    view = server.session.get(page_url(server, DAG, run_id, api=True)).json()
    assert view["note"] == run["note"]
    sweep = {e["index"]: e for e in view["experiments"] if e["task"] == "Sweep"}
    assert (sweep[0]["state"], sweep[0]["tags"], sweep[0]["has_record"]) == ("success", {"n": "0"}, True)
    assert {e["state"] for i, e in sweep.items() if i} <= {"failed", "skipped"}
    WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "run-note").text == run["note"])
    shown = [r for r in rows(browser) if r["task"] == "Sweep"]
    assert shown[0]["state"] == "success" and shown[0]["tag:n"] == "0"
    assert not browser.find_element(By.ID, "stop").is_displayed()
    browser.save_screenshot(str(server.root / "stop-sweep.png"))


def test_stop_refusals(airflow_server: AirflowServer) -> None:
    """A viewer may not stop a run (403), a run that ended is not stopped again (409), no run is 404."""
    import httpx

    server = airflow_server
    stop = f"{server.base_url}/flow-airflow/api/experiments/{DAG}/%s/stop"
    carol = {"Authorization": f"Bearer {server.token_for('carol')}"}
    refused = httpx.post(stop % "any", headers=carol, json={}, timeout=30)
    assert refused.status_code == 403 and refused.json()["detail"].startswith("carol may not ")
    assert httpx.post(stop % "any", json={}, timeout=30).status_code == 401  # a JSON body: no form post (issue 29.4)
    server.add_file("flows.py", LOADER)
    server.copy_tree(FLOWS / DAG, DAG)
    server.wait_for_dag(DAG, timeout=120)
    assert server.session.post(stop % "no-such-run").status_code == 404  # (a DAG not loaded: 403, as on every page)
    run_id = server.trigger(DAG, run_id=f"stop_twice__{time.time_ns()}")
    first = server.session.post(stop % run_id)
    assert first.status_code == 200 and first.json()["note"].startswith("Stopped by admin at ")
    again = server.session.post(stop % run_id)
    assert again.status_code == 409 and "failed" in again.json()["detail"], again.json()
