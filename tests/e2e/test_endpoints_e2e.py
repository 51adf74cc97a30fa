"""The endpoints page on a real ``airflow standalone``, in headless Chromium: the blueprint sentiment flow
deploys its endpoint (a worker's task starts it; it outlives the task), the page lists it as up, try-it
answers ``{"text": "great food"}`` with positive, stop stops it; the refusals (401 without login, 404
without read access (as for no such endpoint), 403 for stop without edit access). Every endpoint is stopped at the end.

A screenshot is kept in the server's temp folder, ``endpoints.png``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flow_airflow.cli import LOADER
from tests.e2e.test_experiments_e2e import browser, sign_in  # noqa: F401 (a fixture)

AirflowServer = Any  # conftest.AirflowServer
pytestmark = pytest.mark.e2e
FLOWS = Path(__file__).parent.parent / "flows"
DAG, NAME = "sentiment_endpoint", "sentiment-service"


@pytest.fixture(scope="module")
def deployed(airflow_server: AirflowServer) -> Iterator[str]:
    """A finished run of realworld/deploy_webservice: its endpoint serves; stopped (all of them) at the end."""
    from flow_airflow.endpoints.rollout import stop_all
    from flow_airflow.endpoints.store import EndpointStore

    server = airflow_server
    server.add_file("flows.py", LOADER)
    server.copy_tree(FLOWS / "realworld" / "deploy_webservice", "deploy_webservice_e2e")
    server.touch("flows.py")
    server.wait_for_dag(DAG, timeout=120)
    run_id = server.trigger(DAG, run_id=f"endpoints__{time.time_ns()}")
    try:
        assert server.wait_for_run(DAG, run_id, timeout=240) == "success", server.task_log(
            DAG, run_id, "sentiment_service.run", map_index=0)
        yield run_id
    finally:
        stop_all(EndpointStore(server.home / "flow_endpoints"), "the e2e test's end")


def api(server: AirflowServer, path: str = "") -> str:
    return f"{server.base_url}/flow-airflow/api/endpoints{path}"


def test_refusals_without_login_without_read_access_and_without_edit_access(
    airflow_server: AirflowServer, deployed: str
) -> None:
    server = airflow_server
    page = httpx.get(f"{server.base_url}/flow-airflow/endpoints", timeout=30)
    assert page.status_code == 401 and "/auth/login?next=" in page.text
    assert httpx.get(api(server), timeout=30).status_code == 401
    dave = {"Authorization": f"Bearer {server.token_for('dave')}"}  # signed in, no role: reads no DAG
    refused = httpx.get(api(server, f"/{NAME}"), headers=dave, timeout=30)
    assert refused.status_code == 404 and refused.json()["detail"] == f"No endpoint {NAME}"  # as for no such name
    assert httpx.get(api(server), headers=dave, timeout=30).json() == {"endpoints": []}
    carol = {"Authorization": f"Bearer {server.token_for('carol')}"}  # a viewer: may read and try, not stop
    seen = httpx.get(f"{server.base_url}/flow-airflow/endpoints", headers=carol, timeout=30)
    assert seen.status_code == 200 and f'id="endpoint-{NAME}"' in seen.text and 'class="reject stop"' not in seen.text
    stop = httpx.post(api(server, f"/{NAME}/stop"), headers=carol, timeout=30)
    assert stop.status_code == 403 and stop.json()["detail"] == f"carol may not change the runs of {DAG}"
    shown = httpx.get(api(server, f"/{NAME}"), headers=carol, timeout=30).json()
    assert shown["status"] == "up" and shown["current"]["run_id"] == deployed
    # the deploy task's record: the endpoint's URL and version, for the tasks after it and the experiments page
    record = server.xcom(DAG, deployed, "sentiment_service.run", map_index=0)
    tags = {"endpoint": NAME, "endpoint_url": shown["predict_url"], "endpoint_version": "1"}
    assert record["tags"] == tags and record["endpoint"]["version"] == 1
    run = httpx.get(f"{server.base_url}/flow-airflow/api/experiments/{DAG}/{deployed}", headers=carol, timeout=30)
    assert [(e["task"], e["tags"]) for e in run.json()["experiments"]] == [("Sentiment Service", tags)]


def test_the_page_lists_the_endpoint_try_it_answers_shows_the_key_and_stop_stops_it(
    airflow_server: AirflowServer, deployed: str, browser: Any  # noqa: F811
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = airflow_server
    url = f"{server.base_url}/flow-airflow/endpoints"
    sign_in(browser, url, "admin")
    card = browser.find_element(By.ID, f"endpoint-{NAME}")
    assert card.find_element(By.CSS_SELECTOR, ".status").text == "up"
    predict_url = card.find_element(By.CSS_SELECTOR, ".url").text
    assert predict_url.endswith(f"/api/v1/endpoints/{NAME}")
    assert deployed in card.find_element(By.CSS_SELECTOR, ".version").text
    assert card.find_element(By.CSS_SELECTOR, ".curl").text.startswith(f"curl -X POST {predict_url} ")
    counted = int(card.find_element(By.CSS_SELECTOR, ".requests").text)
    body = card.find_element(By.CSS_SELECTOR, "textarea.body")
    body.clear()
    body.send_keys(json.dumps({"input_params": {"text": "great food"}}))
    card.find_element(By.CSS_SELECTOR, "button.send").click()
    WebDriverWait(browser, 30).until(lambda b: "positive" in card.find_element(By.CSS_SELECTOR, ".answer").text)
    assert card.find_element(By.CSS_SELECTOR, ".answer").text.startswith("200 ")
    WebDriverWait(browser, 30).until(  # the counters refresh after try-it, without a reload
        lambda b: int(card.find_element(By.CSS_SELECTOR, ".requests").text) == counted + 1)
    card.find_element(By.CSS_SELECTOR, "button.reveal").click()  # admin may change the runs: the key is shown
    WebDriverWait(browser, 30).until(lambda b: card.find_element(By.CSS_SELECTOR, ".key").is_displayed())
    key = card.find_element(By.CSS_SELECTOR, ".key").text
    assert card.find_element(By.CSS_SELECTOR, "button.copy").is_displayed()
    with_key = httpx.post(predict_url, json={"input_params": {"text": "great food"}}, headers={"Cnvrg-Api-Key": key},
                          timeout=30)
    assert with_key.status_code == 200 and "positive" in with_key.text
    browser.save_screenshot(str(server.root / "endpoints.png"))
    # the key is needed: the same request without it is refused by the endpoint itself
    assert httpx.post(predict_url, json={"input_params": {"text": "great food"}}, timeout=30).status_code == 401

    card.find_element(By.CSS_SELECTOR, "button.stop").click()
    browser.switch_to.alert.accept()
    from selenium.common.exceptions import StaleElementReferenceException

    # the page redraws the card when its status changes: an element read across a redraw is stale, read it again
    WebDriverWait(browser, 60, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda b: b.find_element(By.CSS_SELECTOR, f"#endpoint-{NAME} .status").text == "stopped")
    with pytest.raises(httpx.ConnectError):
        httpx.post(predict_url, json={"input_params": {"text": "great food"}}, timeout=10)
