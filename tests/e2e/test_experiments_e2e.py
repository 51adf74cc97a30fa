"""The experiments page on a real ``airflow standalone``, in headless Chromium: grid_three's 2 + 3 + 30
experiments with their params and tags, the conditions flow's choices and why, charts, Pending Approval,
stop and run again with a changed param, the flow's page comparing its runs, and the refusals (401
without login, 403 without read access).

Screenshots are kept in the server's temp folder (under pytest's tmp dir), named ``experiments-*.png``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from flow_airflow.cli import LOADER
from flow_airflow.experiments.api import short_run_id

AirflowServer = Any  # conftest.AirflowServer
pytestmark = pytest.mark.e2e
FLOWS = Path(__file__).parent.parent / "flows"
GRID, CONDITIONS, APPROVAL = "three_grid_searches", "conditions", "approval_gate"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def runs(airflow_server: AirflowServer) -> dict[str, str]:
    """A finished run of grid_three and of conditions, and a run of the approval flow (left waiting)."""
    server = airflow_server
    server.add_file("flows.py", LOADER)
    for folder, dag in (("grid_three", GRID), ("conditions", CONDITIONS), ("approval", APPROVAL)):
        server.copy_tree(FLOWS / folder, dag)
    server.touch("flows.py")
    for dag in (GRID, CONDITIONS, APPROVAL):
        server.wait_for_dag(dag, timeout=120)
    started = {dag: server.trigger(dag, run_id=f"experiments__{time.time_ns()}")
               for dag in (GRID, CONDITIONS, APPROVAL)}
    for dag in (GRID, CONDITIONS):
        assert server.wait_for_run(dag, started[dag], timeout=240) == "success"
    return started


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's, driven by its chromedriver) with a fresh profile."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("needs Debian's chromium and chromium-driver (./dev test installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1000",
                    f"--user-data-dir={profile}"):
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        driver.set_page_load_timeout(60)
        try:
            yield driver
        finally:
            driver.quit()


def page_url(server: AirflowServer, dag: str, run_id: str, api: bool = False) -> str:
    return f"{server.base_url}/flow-airflow/{'api/' if api else ''}experiments/{dag}/{quote(run_id, safe='')}"


def rows(browser: Any) -> list[dict[str, str]]:
    """The table's rows as {column key: cell text} (the page's ``data-key`` of each header), each opened
    (a row is one line until opened)."""
    return browser.execute_script("""
        document.querySelectorAll('#experiments tbody tr').forEach((tr) => tr.classList.add('open'));
        const keys = [...document.querySelectorAll('#experiments th')].map((th) => th.dataset.key);
        return [...document.querySelectorAll('#experiments tbody tr')].map((tr) => Object.fromEntries(
            [...tr.cells].map((td, i) => [keys[i], td.innerText.trim()]).concat([['class', tr.className]])));""")


def sign_in(browser: Any, url: str, user: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    assert "Not signed in" in browser.find_element(By.ID, "message").text
    browser.find_element(By.ID, "login").click()
    wait = WebDriverWait(browser, 60)
    wait.until(ec.presence_of_element_located((By.NAME, "username"))).send_keys(user)
    browser.find_element(By.NAME, "password").send_keys(user)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(ec.url_to_be(url))


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def wait_rows(browser: Any, count: int, timeout: float = 60) -> list[dict[str, str]]:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout).until(lambda b: len(rows(b)) == count)
    return rows(browser)


def test_refusals_without_login_and_without_read_access(airflow_server: AirflowServer, runs: dict[str, str]) -> None:
    server, run_id = airflow_server, runs[GRID]
    page = httpx.get(page_url(server, GRID, run_id), timeout=30)
    assert page.status_code == 401 and "/auth/login?next=" in page.text
    assert httpx.get(page_url(server, GRID, run_id, api=True), timeout=30).status_code == 401
    dave = {"Authorization": f"Bearer {server.token_for('dave')}"}  # signed in, no role: reads no DAG
    refused = httpx.get(page_url(server, GRID, run_id, api=True), headers=dave, timeout=30)
    assert refused.status_code == 403 and refused.json()["detail"] == f"dave may not see the runs of {GRID}"
    assert httpx.get(page_url(server, GRID, run_id), headers=dave, timeout=30).status_code == 403
    carol = {"Authorization": f"Bearer {server.token_for('carol')}"}  # a viewer: may read, may not stop or re-run
    seen = httpx.get(page_url(server, GRID, run_id), headers=carol, timeout=30)
    assert seen.status_code == 200 and 'id="stop"' not in seen.text and 'id="rerun-open"' not in seen.text
    missing = httpx.get(page_url(server, GRID, "no-such-run", api=True), headers=carol, timeout=30)
    assert missing.status_code == 404
    flow_api = f"{server.base_url}/flow-airflow/api/experiments/{GRID}"  # the flow's runs compared
    assert httpx.get(flow_api, timeout=30).status_code == 401
    assert httpx.get(flow_api, headers=dave, timeout=30).status_code == 403
    assert httpx.get(flow_api, headers=carol, timeout=30).json()["runs"][0]["run_id"] == run_id
    # the page is a tab of each DAG run in the Airflow UI (the UI fills in the placeholders)
    [plugin] = [p for p in server.plugins() if p["name"] == "flow_airflow"]
    assert {"name": "Experiments", "href": "/flow-airflow/experiments/{DAG_ID}/{RUN_ID}",
            "url_route": "experiments-run", "destination": "dag_run"}.items() <= next(
        v for v in plugin["external_views"] if v["destination"] == "dag_run").items()
    # and the flow's page a tab of each DAG
    assert {"name": "Experiments", "href": "/flow-airflow/experiments/{DAG_ID}",
            "url_route": "experiments-flow", "destination": "dag"}.items() <= next(
        v for v in plugin["external_views"] if v["destination"] == "dag").items()


def test_the_api_pages_grid_three(airflow_server: AirflowServer, runs: dict[str, str]) -> None:
    server, run_id = airflow_server, runs[GRID]
    url = page_url(server, GRID, run_id, api=True)
    first = server.session.get(url, params={"limit": 10}).json()
    rest = server.session.get(url, params={"offset": 10, "limit": 100}).json()
    every = first["experiments"] + rest["experiments"]
    assert (first["total"], len(first["experiments"]), len(every)) == (35, 10, 35)
    assert [(t["task"], t["total"], t["states"]) for t in first["tasks"]] == [
        ("Grid Search A", 2, {"success": 2}), ("Grid Search B", 3, {"success": 3}),
        ("Grid Search C", 30, {"success": 30})]
    c = [e for e in every if e["task"] == "Grid Search C"]
    assert sorted({(e["upstream"]["Grid Search A"]["params"]["a"], e["upstream"]["Grid Search B"]["params"]["b"],
                    e["params"]["c"]) for e in c}) == sorted(
        {(a, b, c) for a in ("1", "2") for b in "xyz" for c in ("10", "20", "30", "40", "50")})
    assert all(e["params"]["fixed"] == "same-for-all"
               and e["tags"]["args"] == f"--c {e['params']['c']} --fixed same-for-all" for e in c)
    # the same records as Airflow's own XComs hold
    assert server.xcom(GRID, run_id, "grid_search_c.run", map_index=29)["params"] == c[29]["params"]


def test_grid_three_page_lists_every_experiment_and_draws_charts(
    airflow_server: AirflowServer, runs: dict[str, str], browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    server, run_id = airflow_server, runs[GRID]
    url = page_url(server, GRID, run_id)
    sign_in(browser, url, "admin")
    table = wait_rows(browser, 35)
    assert browser.find_element(By.ID, "run-state").text == "success"
    assert [b.text for b in browser.find_elements(By.CSS_SELECTOR, "#tabs button")] == [
        "All (35)", "Grid Search A (2)", "Grid Search B (3)", "Grid Search C (30)"]
    assert [r["task"] for r in table] == ["Grid Search A"] * 2 + ["Grid Search B"] * 3 + ["Grid Search C"] * 30
    assert [(r["param:a"], r["tag:args"]) for r in table[:2]] == [("1", "--a 1"), ("2", "--a 2")]
    assert [(r["param:b"], r["tag:args"]) for r in table[2:5]] == [("x", "--b x"), ("y", "--b y"), ("z", "--b z")]
    assert table[5]["param:c"] == "10" and table[5]["param:fixed"] == "same-for-all"
    assert table[5]["param:a"] == "1" and table[5]["param:b"] == "x"  # the route's params before it
    assert all(r["state"] == "success" and r["log"] == "log" for r in table)
    # only the params that differ: "fixed" has one value
    browser.find_element(By.ID, "differ").click()
    keys = [th.get_attribute("data-key") for th in browser.find_elements(By.CSS_SELECTOR, "#experiments th")]
    assert "param:fixed" not in keys and {"param:a", "param:b", "param:c"} <= set(keys)
    # a tab per task, a filter
    browser.find_element(By.CSS_SELECTOR, "#tabs button[data-task='Grid Search C']").click()
    assert len(rows(browser)) == 30
    browser.find_element(By.ID, "filter").send_keys("c=50")
    assert {r["param:c"] for r in rows(browser)} == {"50"} and len(rows(browser)) == 6
    browser.find_element(By.ID, "filter").clear()
    browser.find_element(By.CSS_SELECTOR, "#tabs button[data-task='']").click()
    # charts: c against a, coloured by b (the parallel coordinates over a, b and c)
    Select(browser.find_element(By.ID, "x-param")).select_by_value("c")
    WebDriverWait(browser, 30).until(lambda b: b.execute_script(
        "return document.querySelectorAll('#parallel svg path').length") > 30)
    browser.save_screenshot(str(server.root / "experiments-grid_three.png"))
    # the Experiments tab of the run in Airflow's own UI embeds this page
    browser.get(f"{server.base_url}/dags/{GRID}/runs/{quote(run_id, safe='')}/plugin/experiments-run")
    frame = WebDriverWait(browser, 60).until(lambda b: b.find_elements(By.CSS_SELECTOR, "iframe"))[0]
    assert frame.get_attribute("src").endswith(f"/flow-airflow/experiments/{GRID}/{quote(run_id, safe='')}")
    browser.switch_to.frame(frame)
    WebDriverWait(browser, 60).until(lambda b: len(rows(b)) == 35)
    browser.switch_to.default_content()
    print(f"\n[experiments e2e] screenshots in {server.root}")


def test_conditions_show_the_choice_the_best_and_a_scatter(
    airflow_server: AirflowServer, runs: dict[str, str], browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    server, run_id = airflow_server, runs[CONDITIONS]
    browser.get(page_url(server, CONDITIONS, run_id))
    table = wait_rows(browser, 5)
    train = {r["param:accuracy"]: lines(r["conditions"]) for r in table if r["task"] == "Train"}
    best = "the highest 'accuracy' of 'Train' is 0.95, Train #1 [accuracy=0.95]"
    assert train == {  # Compare's choice and why, Publish's too: the condition tasks' own words
        "0.70": ["✗ Compare: left out (log)", f"accuracy = 0.70 does not pass ({best})",
                 "✗ Publish: left out (log)", "accuracy = 0.70 does not pass ('accuracy' > 0.8 on 'Train')"],
        "0.95": ["✓ Compare: passed (log)", "accuracy = 0.95 passes (the highest 'accuracy' of 'Train')",
                 "✓ Publish: passed (log)", "accuracy = 0.95 passes ('accuracy' > 0.8 on 'Train')"],
        "0.85": ["✗ Compare: left out (log)", f"accuracy = 0.85 does not pass ({best})",
                 "✓ Publish: passed (log)", "accuracy = 0.85 passes ('accuracy' > 0.8 on 'Train')"]}
    log = browser.find_element(By.CSS_SELECTOR, "#experiments tbody tr td a[href$='/tasks/compare.condition']")
    assert log.text == "(log)"
    # each experiment's stored files, listed with a download link
    winner = browser.find_element(By.CSS_SELECTOR, "#experiments tbody tr[data-task='Train'][data-index='1']")
    artifact = winner.find_element(By.LINK_TEXT, "output/accuracy.txt")
    assert artifact.get_attribute("download") is not None
    download = server.session.get(artifact.get_attribute("href"))
    assert download.status_code == 200 and download.text == "0.95"
    Select(browser.find_element(By.ID, "best-tag")).select_by_value("accuracy")
    [best] = [r for r in rows(browser) if "best" in r["class"]]
    assert (best["task"], best["tag:accuracy"]) == ("Train", "0.95")
    Select(browser.find_element(By.ID, "metric")).select_by_value("accuracy")
    Select(browser.find_element(By.ID, "x-param")).select_by_value("accuracy")
    points = WebDriverWait(browser, 30).until(lambda b: b.execute_script(
        "return FlowExperiments.charts.scatter.getOption().series.flatMap((s) => s.data).map((d) => d.value)"))
    assert sorted(p[1] for p in points) == [0.7, 0.85, 0.95]  # the experiments with the tag: Train's
    assert browser.find_elements(By.CSS_SELECTOR, "#scatter svg path")
    browser.save_screenshot(str(server.root / "experiments-conditions.png"))


def test_run_again_with_a_changed_param(airflow_server: AirflowServer, runs: dict[str, str], browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server, run_id = airflow_server, runs[CONDITIONS]
    browser.get(page_url(server, CONDITIONS, run_id))
    wait_rows(browser, 5)
    browser.find_element(By.ID, "rerun-open").click()
    field = browser.find_element(By.CSS_SELECTOR, "#rerun input[data-task='Train'][name='accuracy']")
    assert field.get_attribute("value") == "0.70, 0.95, 0.85"  # this run's params
    field.clear()
    field.send_keys("0.70, 0.95, 0.85, 0.60")  # one more route (the flow's scripts expect 0.95 to win)
    assert browser.find_element(By.ID, "rerun-reuse").is_selected()  # reuse unchanged experiments: the default
    browser.find_element(By.CSS_SELECTOR, "#rerun button[type=submit]").click()
    WebDriverWait(browser, 30).until(lambda b: b.current_url != page_url(server, CONDITIONS, run_id))
    new_run = browser.execute_script("return document.getElementById('page').dataset.run")
    assert new_run != run_id
    assert server.dag_run(CONDITIONS, new_run)["conf"] == {"Train": {"accuracy": "0.70, 0.95, 0.85, 0.60"},
                                                           "flow_airflow": {"reuse": True}}
    assert server.wait_for_run(CONDITIONS, new_run, timeout=240) == "success"
    WebDriverWait(browser, 60).until(lambda b: b.find_element(By.ID, "run-state").text == "success")
    # the page followed the run live; Train keeps its 3 task instances: 2 run two routes each, 1 is spare
    # (no experiment: one folded line under the table)
    table = wait_rows(browser, 6)
    train = [(r["param:accuracy"], r["state"], "not-run" in r["class"]) for r in table if r["task"] == "Train"]
    # reuse was asked (the form's default): the three unchanged routes are the first run's, 0.60 ran
    assert train == [("0.70", "success reused", False), ("0.95", "success reused", False),
                     ("0.85", "success reused", False), ("0.60", "success", False)]
    assert browser.find_element(By.ID, "spare").text.startswith("1 spare task instance")
    assert [r["tag:winner_accuracy"] for r in table if r["task"] == "Compare"] == ["0.95"]
    browser.save_screenshot(str(server.root / "experiments-rerun.png"))


def test_pending_approval_then_stop(airflow_server: AirflowServer, runs: dict[str, str], browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server, run_id = airflow_server, runs[APPROVAL]
    browser.get(page_url(server, APPROVAL, run_id))
    pending = WebDriverWait(browser, 180).until(lambda b: b.find_element(By.ID, "pending").text)
    assert pending.startswith("Pending Approval Deploy Model waits for a decision")
    link = browser.find_element(By.LINK_TEXT, "open the approval").get_attribute("href")
    assert link.endswith(f"/flow-airflow/approvals/{APPROVAL}/{quote(run_id, safe='')}/deploy_model.approval")
    deploy = [r for r in rows(browser) if r["task"] == "Deploy Model"]
    assert deploy and all("not-run" in r["class"] for r in deploy)  # not run yet: greyed
    browser.save_screenshot(str(server.root / "experiments-pending.png"))
    browser.find_element(By.ID, "stop").click()
    browser.switch_to.alert.accept()
    WebDriverWait(browser, 60).until(lambda b: b.find_element(By.ID, "run-state").text == "failed")
    assert server.dag_run(APPROVAL, run_id)["state"] == "failed"
    assert not browser.find_element(By.ID, "stop").is_displayed()
    assert browser.find_element(By.ID, "result").text == ""


def test_the_flow_page_compares_its_runs(airflow_server: AirflowServer, runs: dict[str, str], browser: Any) -> None:
    """After the run again above: the conditions flow's page shows both runs' experiments, a Run column,
    the reasons, charts over both, and a chosen run alone."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    server = airflow_server
    flow_api = f"{server.base_url}/flow-airflow/api/experiments/{CONDITIONS}"
    chosen = server.session.get(flow_api).json()["runs"]  # the last 5, newest first
    assert runs[CONDITIONS] in [r["run_id"] for r in chosen] and len(chosen) >= 2
    total = sum(r["total"] for r in chosen)
    browser.get(f"{server.base_url}/flow-airflow/experiments/{CONDITIONS}")
    table = wait_rows(browser, total)
    # the Run column shows run ids short (manual__2026-12-07T12:33:05... as manual 2026-12-07 12:33:05)
    assert [r["run"] for r in table] == [short_run_id(r["run_id"]) for r in chosen for _ in range(r["total"])]
    first = [r for r in table if r["run"] == short_run_id(runs[CONDITIONS])]
    assert [r["param:accuracy"] for r in first if r["task"] == "Train"] == ["0.70", "0.95", "0.85"]
    sixty = [r for r in table if r["param:accuracy"] == "0.60"]
    assert sixty and lines(sixty[0]["conditions"])[1] == (
        "accuracy = 0.60 does not pass (the highest 'accuracy' of 'Train' is 0.95, Train #1 [accuracy=0.95])")
    # the best over both runs, a scatter coloured by run, parallel coordinates with a run axis
    Select(browser.find_element(By.ID, "best-tag")).select_by_value("accuracy")
    assert {r["tag:accuracy"] for r in rows(browser) if "best" in r["class"]} == {"0.95"}
    Select(browser.find_element(By.ID, "metric")).select_by_value("accuracy")
    Select(browser.find_element(By.ID, "x-param")).select_by_value("accuracy")
    Select(browser.find_element(By.ID, "color-param")).select_by_value("(run)")
    names = WebDriverWait(browser, 30).until(lambda b: b.execute_script(
        "return FlowExperiments.charts.scatter.getOption().series.map((s) => s.name)"))
    assert runs[CONDITIONS] in names and len(names) >= 2  # a colour per run
    axes = browser.execute_script("return FlowExperiments.charts.parallel.getOption().parallelAxis.map((a) => a.name)")
    assert axes[0] == "run" and "accuracy" in axes
    assert browser.find_elements(By.CSS_SELECTOR, "#scatter svg path")
    browser.save_screenshot(str(server.root / "experiments-flow.png"))
    # choose one run: the table has its experiments only, and the address keeps the choice
    others = [r["run_id"] for r in chosen if r["run_id"] != runs[CONDITIONS]]
    browser.find_element(By.CSS_SELECTOR, "#runs-chooser summary").click()  # open the chooser
    for other in others:  # untick the others, one at a time (the list is drawn again after each)
        browser.find_element(By.CSS_SELECTOR, f"#runs-list input[value='{other}']").click()
        WebDriverWait(browser, 60).until(
            lambda b, other=other: short_run_id(other) not in {r["run"] for r in rows(b)})
    one = wait_rows(browser, 5)
    assert {r["run"] for r in one} == {short_run_id(runs[CONDITIONS])}
    assert browser.current_url.endswith(f"?run={runs[CONDITIONS]}")  # the address keeps the choice
    browser.save_screenshot(str(server.root / "experiments-flow-one-run.png"))
    # run again from the flow's page: the form starts from the newest run compared (here the one chosen)
    browser.find_element(By.ID, "rerun-open").click()
    field = browser.find_element(By.CSS_SELECTOR, "#rerun input[data-task='Train'][name='accuracy']")
    assert field.get_attribute("value") == "0.70, 0.95, 0.85"
    assert browser.find_element(By.ID, "rerun-from").text == runs[CONDITIONS]
    # the Experiments tab of the DAG in Airflow's own UI embeds this page
    browser.get(f"{server.base_url}/dags/{CONDITIONS}/plugin/experiments-flow")
    frame = WebDriverWait(browser, 60).until(lambda b: b.find_elements(By.CSS_SELECTOR, "iframe"))[0]
    assert frame.get_attribute("src").endswith(f"/flow-airflow/experiments/{CONDITIONS}")
    browser.switch_to.frame(frame)
    WebDriverWait(browser, 60).until(lambda b: len(rows(b)) == total)
    browser.switch_to.default_content()
    browser.save_screenshot(str(server.root / "experiments-flow-in-airflow.png"))


def test_the_flow_page_stops_a_running_run(airflow_server: AirflowServer, runs: dict[str, str], browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = airflow_server
    run_id = server.trigger(APPROVAL, run_id=f"experiments_stop__{time.time_ns()}")  # waits at its gate
    browser.get(f"{server.base_url}/flow-airflow/experiments/{APPROVAL}")
    # stopped once it waits at its gate (stopped as it starts, Airflow's scheduler may still mark it successful)
    pending = WebDriverWait(browser, 180).until(lambda b: run_id in b.find_element(By.ID, "pending").text
                                                and b.find_element(By.ID, "pending").text)
    assert f"Pending Approval Deploy Model of {run_id} waits for a decision" in pending
    browser.find_element(By.CSS_SELECTOR, "#runs-chooser summary").click()
    stop = WebDriverWait(browser, 120).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, f"#runs-list button.stop-run[data-run='{run_id}']"))
    assert not browser.find_elements(By.CSS_SELECTOR, f"#runs-list button.stop-run[data-run='{runs[APPROVAL]}']")
    stop[0].click()  # the run stopped from its own page above has no Stop
    browser.switch_to.alert.accept()
    WebDriverWait(browser, 60).until(lambda b: server.dag_run(APPROVAL, run_id)["state"] == "failed")
    WebDriverWait(browser, 60).until(
        lambda b: not b.find_elements(By.CSS_SELECTOR, f"#runs-list button.stop-run[data-run='{run_id}']"))
    assert browser.find_element(By.ID, "result").text == ""
