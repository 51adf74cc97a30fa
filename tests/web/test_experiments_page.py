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


MIN_FLOW = """flow: Min Loss
tasks:
  - title: Train
    type: exec
    input: python3 train.py
    computes: [local]
    params:
      - key: mse
        value: [0.3, 0.1, 0.2]
  - title: Fit
    type: exec
    input: python3 -c "print('cnvrg_tag_fitted: yes')"
    computes: [local]
    conditions:
      - task: Train
        objective: min
        tag_key: mse
relations:
  - from: Train
    to: Fit
"""
MIN_TRAIN = """import sys
from cnvrg import Experiment
mse = sys.argv[2]
print("cnvrg_tag_note: some words")
print("cnvrg_tag_commit: " + "0123456789abcdef" * 2 + "01234567")
e = Experiment()
e.log_metric("mse", Ys=[float(mse)])
"""
COMMIT = "0123456789abcdef" * 2 + "01234567"


@pytest.fixture(scope="module")
def min_run(airflow_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from flow_airflow.local_run import run_flow

    folder = tmp_path_factory.mktemp("min_loss")
    (folder / "flow.yaml").write_text(MIN_FLOW)
    (folder / "train.py").write_text(MIN_TRAIN)
    result = run_flow(folder / "flow.yaml")
    assert result.state == "success"
    return result


def test_best_comes_from_the_flow_condition_and_rows_are_one_line(
    spare_run: Any, min_run: Any, pages: Pages, browser: Any
) -> None:
    """Issue 27 item 6."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def selected(select: str) -> str:
        return browser.execute_script("return document.getElementById(arguments[0]).value", select)

    # max accuracy: accuracy, highest, the winner marked on load (nothing chosen by hand)
    browser.get(run_page(pages, spare_run))
    wait_rows(browser, 4)
    assert (selected("best-tag"), selected("best-dir"), selected("metric")) == ("accuracy", "max", "accuracy")
    assert [(r["task"], r["tag:accuracy"]) for r in rows(browser) if "best" in r["class"]] == [("Train", "0.95")]
    # min mse: mse, lowest; the metric a numeric tag, never text; a one-point series a dot
    body = httpx.get(run_page(pages, min_run).replace("/experiments/", "/api/experiments/"), timeout=30).json()
    assert body["goal"] == {"tag": "mse", "direction": "min", "task": "Fit"}
    browser.get(run_page(pages, min_run))
    wait_rows(browser, 4)
    assert (selected("best-tag"), selected("best-dir"), selected("metric")) == ("mse", "min", "mse")
    assert [(r["task"], r["tag:mse"]) for r in rows(browser) if "best" in r["class"]] == [("Train", "0.1")]
    metrics = browser.execute_script("return [...document.getElementById('metric').options].map((o) => o.value)")
    assert "mse" in metrics and "note" not in metrics and "fitted" not in metrics
    series = WebDriverWait(browser, 30).until(lambda b: b.execute_script(
        "return FlowExperiments.charts.series.getOption().series.map((s) => [s.data.length, s.showSymbol])"))
    assert series == [[1, True]] * 3
    # commit ids short, in full on hover
    cells = browser.execute_script("""
        const i = [...document.querySelectorAll('#experiments th')].findIndex((th) => th.dataset.key === 'tag:commit');
        return [...document.querySelectorAll('#experiments tbody tr')].map((tr) =>
          [tr.cells[i].textContent, tr.cells[i].title]);""")
    assert cells[:3] == [[COMMIT[:8], COMMIT]] * 3
    # a tag column empty for every shown row is left out: on the Train tab, Fit's "fitted"
    keys = lambda: [th.get_attribute("data-key") for th in browser.find_elements(By.CSS_SELECTOR, "#experiments th")]  # noqa: E731
    assert "tag:fitted" in keys()
    browser.find_element(By.CSS_SELECTOR, "#tabs button[data-task='Train']").click()
    assert "tag:fitted" not in keys() and "tag:mse" in keys()
    # rows one line unless opened; the conditions column on screen
    heights = browser.execute_script(
        "return [...document.querySelectorAll('#experiments tbody tr')].map((tr) => tr.offsetHeight)")
    assert max(heights) < 40, heights
    conditions = browser.execute_script("""
        const th = document.querySelector('#experiments th[data-key=conditions]').getBoundingClientRect();
        const td = document.querySelector('#experiments td.conditions');
        return [th.left, th.right, window.innerWidth, getComputedStyle(td).position];""")
    assert 0 <= conditions[0] < conditions[1] <= conditions[2] and conditions[3] == "sticky"
    first = browser.find_element(By.CSS_SELECTOR, "#experiments tbody tr")
    first.click()
    assert "open" in first.get_attribute("class") and first.size["height"] > max(heights)
    assert "does not pass" in first.text or "passes" in first.text  # the condition's words, shown when opened
    pages.shot(browser, "min-loss-run")
    # the flow's page: run ids short, in full on hover
    browser.get(pages.url(f"/experiments/{min_run.dag_id}"))
    wait_rows(browser, 4)
    link = browser.find_element(By.CSS_SELECTOR, "#experiments tbody tr td a")
    assert link.get_attribute("title") == min_run.run_id
    assert link.text == "manual " + min_run.run_id[8:27].replace("T", " ")
    pages.shot(browser, "min-loss-flow")


def test_a_reused_experiment_is_marked_and_links_to_its_run(
    airflow_home: Path, tmp_path_factory: pytest.TempPathFactory, pages: Pages, browser: Any
) -> None:
    """Issue 28: an experiment taken from an earlier one of the same key says so, and links to that run."""
    from selenium.webdriver.common.by import By

    run_of(tmp_path_factory, "grid_two")
    again = run_of(tmp_path_factory, "grid_two", {"flow_airflow": {"reuse": True}})
    assert again.state == "success"
    body = httpx.get(run_page(pages, again).replace("/experiments/", "/api/experiments/"), timeout=30).json()
    origins = [e["reused"] for e in body["experiments"]]
    assert len(origins) == 12 and all(o and o["run_id"] != again.run_id for o in origins)
    browser.get(run_page(pages, again))
    wait_rows(browser, 12)
    links = browser.find_elements(By.CSS_SELECTOR, "a.badge.reused")
    assert len(links) == 12
    first = origins[0]
    assert links[0].get_attribute("href").endswith(f"/experiments/{first['dag_id']}/{quote(first['run_id'], safe='')}")
    assert links[0].get_attribute("title").startswith(f"same key as {first['run_id']} {first['task']} #")
    pages.shot(browser, "reused")
