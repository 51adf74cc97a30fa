"""The experiments index and a paused run, in headless Chromium on real runs (issue 27 items 7, 13):
flow titles, each run's status (Pending Approval, Paused, Stopped, Failed, Success), the best value of
the flow's condition metric, when and by whom it was triggered; a run of a paused flow shows as paused.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.web.browser import Pages, waiting_gate

pytestmark = pytest.mark.airflow
FLOWS = Path(__file__).parents[1] / "flows"


def copy(tmp_path: Path, folder: str) -> Path:
    shutil.copytree(FLOWS / folder, tmp_path / folder)
    return tmp_path / folder / "flow.yaml"


def index(browser: Any, pages: Pages) -> dict[str, dict[str, str]]:
    """The index's rows: run id -> {column: text}."""
    browser.get(pages.url("/experiments"))
    return browser.execute_script("""
        const keys = [...document.querySelectorAll('#runs th')].map((th) => th.textContent);
        return Object.fromEntries([...document.querySelectorAll('#runs tr[data-run]')].map((tr) => [tr.dataset.run,
          Object.fromEntries([...tr.cells].map((td, i) => [keys[i], td.innerText.trim()]))]));""")


def set_paused(dag_id: str, paused: bool) -> None:
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == dag_id).values(is_paused=paused))


def test_the_index_says_what_each_run_is(airflow_home: Path, tmp_path: Path, pages: Pages, browser: Any) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from selenium.webdriver.common.by import By
    from sqlalchemy import select

    from flow_airflow.local_run import run_flow

    best = run_flow(copy(tmp_path, "conditions"))
    failed = run_flow(copy(tmp_path / "a", "run_failure"))
    stopped = run_flow(copy(tmp_path / "b", "run_failure"))
    assert (best.state, failed.state, stopped.state) == ("success", "failed", "failed")
    with create_session() as session:  # what stopping from the page writes on the run (issue 27 item 1)
        session.scalar(select(DagRun).where(DagRun.run_id == stopped.run_id,
                                            DagRun.dag_id == stopped.dag_id)).note = "Stopped by bob at 2026-12-07"
    with waiting_gate(copy(tmp_path / "c", "approval"), lambda a: a.flow == "Approval Gate") as (gate, _):
        runs = index(browser, pages)
        assert runs[best.run_id]["Flow"] == "Conditions" and runs[gate.run_id]["Flow"] == "Approval Gate"
        assert runs[failed.run_id]["Flow"] == "Run Failure"
        assert [runs[r]["Status"] for r in (best.run_id, failed.run_id, stopped.run_id, gate.run_id)] == [
            "Success", "Failed", "Stopped", "Pending Approval"]
        assert runs[best.run_id]["Best"] == "accuracy 0.95 (highest, Train accuracy=0.95)"
        assert runs[gate.run_id]["Best"] == ""  # a flow without a metric condition
        assert runs[best.run_id]["Run"] == "manual " + best.run_id[8:27].replace("T", " ")
        link = browser.find_element(By.CSS_SELECTOR, f"#runs tr[data-run='{best.run_id}'] a[title='{best.run_id}']")
        assert link.text == runs[best.run_id]["Run"]
        triggered = runs[best.run_id]["Triggered (UTC)"]
        assert triggered.startswith(best.run_id[8:18]) and triggered.endswith(" flow-airflow run")
        pages.shot(browser, "index")
        # a run of flow-airflow run (dag.test()) goes on when its DAG is paused: not shown as paused
        set_paused(gate.dag_id, True)
        assert index(browser, pages)[gate.run_id]["Status"] == "Pending Approval"


def triggered(dag_id: str, user: str) -> str:
    """A run of the DAG as Airflow's REST API makes one for ``user`` (no scheduler here: it stays running)."""
    from datetime import UTC, datetime

    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    now = datetime.now(UTC)
    run_id = f"manual__{now.isoformat()}"
    with create_session() as session:
        dag = SerializedDagModel.get_dag(dag_id, session=session)
        dag.create_dagrun(run_id=run_id, run_after=now, run_type=DagRunType.MANUAL,
                          triggered_by=DagRunTriggeredByType.REST_API, triggering_user_name=user,
                          state=DagRunState.RUNNING, start_date=now, session=session)
    return run_id


def test_a_run_of_a_paused_flow_shows_as_paused(airflow_home: Path, tmp_path: Path, pages: Pages,
                                                browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from flow_airflow.local_run import run_flow

    first = run_flow(copy(tmp_path, "grid_two"))
    assert first.state == "success"
    set_paused(first.dag_id, False)  # a DAG is paused when Airflow first sees it
    run_id = triggered(first.dag_id, "alice")
    runs = index(browser, pages)
    assert runs[run_id]["Status"] == "Running" and runs[run_id]["Triggered (UTC)"].endswith("by alice")
    set_paused(first.dag_id, True)
    try:
        assert index(browser, pages)[run_id]["Status"] == "Paused"
        browser.get(pages.url(f"/experiments/{first.dag_id}/{quote(run_id, safe='')}"))
        WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "run-state").text == "paused")
        note = browser.find_element(By.ID, "paused")
        assert note.is_displayed() and note.text.startswith(
            "The flow is paused: Airflow schedules nothing more of this run until it is unpaused")
        pages.shot(browser, "paused-run")
        browser.get(pages.url(f"/experiments/{first.dag_id}"))
        WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "paused").is_displayed())
        assert "schedules nothing more of manual " in browser.find_element(By.ID, "paused").text
        pages.shot(browser, "paused-flow")
    finally:
        set_paused(first.dag_id, False)
    assert index(browser, pages)[run_id]["Status"] == "Running"
