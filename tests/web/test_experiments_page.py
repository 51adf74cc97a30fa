"""The experiments pages in headless Chromium on real runs (``dag.test()``), issue 27: what they count
and show first. Screenshots are kept under pytest's tmp dir (``pages.shots``, printed at the end).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.web.browser import Pages, rows, wait_rows

pytestmark = pytest.mark.airflow
FLOWS = Path(__file__).parents[1] / "flows"


def run_of(tmp_path_factory: pytest.TempPathFactory, folder: str, conf: dict[str, Any] | None = None) -> Any:
    from flow_airflow.local_run import run_flow

    target = tmp_path_factory.mktemp("flows") / folder
    shutil.copytree(FLOWS / folder, target)
    return run_flow(target / "flow.yaml", conf=conf)


@pytest.fixture(scope="module")
def spare_run(airflow_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """tests/flows/conditions with 0.95 and 0.85 only: Train's third task instance is spare."""
    result = run_of(tmp_path_factory, "conditions", {"Train": {"accuracy": "0.95, 0.85"}})
    assert result.state == "success"
    return result


def run_page(pages: Pages, result: Any) -> str:
    return pages.url(f"/experiments/{result.dag_id}/{quote(result.run_id, safe='')}")


def test_spare_task_instances_are_no_experiments(spare_run: Any, pages: Pages, browser: Any) -> None:
    """Issue 27 item 3: counts, tabs and charts count the experiments that ran; spare task instances
    are one folded line."""
    from selenium.webdriver.common.by import By

    body = httpx.get(run_page(pages, spare_run).replace("/experiments/", "/api/experiments/"), timeout=30).json()
    assert body["total"] == 4  # Train 2, Compare 1, Publish 1
    assert [(t["task"], t["total"], t["spare"]) for t in body["tasks"]] == [
        ("Train", 2, 1), ("Compare", 1, 0), ("Publish", 1, 0)]
    assert [(s["task"], s["count"], s["label"]) for s in body["spare"]] == [
        ("Train", 1, "spare: 2 route(s) in this run")]
    assert all(e["state"] != "skipped" for e in body["experiments"])
    flow = httpx.get(pages.url(f"/api/experiments/{spare_run.dag_id}"), params={"run": spare_run.run_id},
                     timeout=30).json()
    assert (flow["total"], flow["runs"][0]["total"]) == (4, 4)
    assert [(s["run_id"], s["count"]) for s in flow["spare"]] == [(spare_run.run_id, 1)]

    browser.get(run_page(pages, spare_run))
    table = wait_rows(browser, 4)
    assert [r["task"] for r in table] == ["Train", "Train", "Compare", "Publish"]
    assert not [r for r in table if "not-run" in r["class"]]
    assert [b.text for b in browser.find_elements(By.CSS_SELECTOR, "#tabs button")] == [
        "All (4)", "Train (2)", "Compare (1)", "Publish (1)"]
    assert browser.find_element(By.ID, "count").text == "4 shown of 4 experiments"
    spare = browser.find_element(By.ID, "spare")
    assert spare.is_displayed() and spare.get_attribute("open") is None  # folded
    assert spare.text.startswith("1 spare task instance, skipped")
    spare.find_element(By.TAG_NAME, "summary").click()
    assert "Train: 1 (spare: 2 route(s) in this run)" in spare.text
    pages.shot(browser, "spare-run")
    browser.find_element(By.CSS_SELECTOR, "#tabs button[data-task='Compare']").click()
    assert len(rows(browser)) == 1 and not spare.is_displayed()
    # the flow's page counts the same
    browser.get(pages.url(f"/experiments/{spare_run.dag_id}?run={quote(spare_run.run_id, safe='')}"))
    wait_rows(browser, 4)
    assert browser.find_element(By.ID, "count").text == "4 shown of 4 experiments"
    assert f"({'success'}, 4)" in browser.find_element(By.ID, "runs-chosen").get_attribute("textContent")
    pages.shot(browser, "spare-flow")
