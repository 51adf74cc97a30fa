"""The SDKs' charts and images on the experiments pages in headless Chromium (a real ``dag.test()`` run of the
calls of tests/runtime/test_sdks.py): a chart per key with every kind drawn (line, bar, scatter, heatmap), the
logged image shown, on the run's page and on the flow's page comparing runs. Screenshots: ``pages.shots``."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.runtime.test_sdks import TRAIN, write
from tests.web.browser import Pages, wait_rows

pytestmark = pytest.mark.airflow
FLOW = """
flow: SDK Charts
tasks:
  - {title: Train, type: exec, input: python3 train.py, computes: [local]}
relations: []
"""
DRAWN = """
return Object.entries(FlowExperiments.charts).filter(([id]) => id.startsWith('sdk-')).map(([id, c]) => {
  const o = c.getOption();
  return [o.title[0].text, o.series.map((s) => s.type)];
}).sort();
"""


@pytest.fixture(scope="module")
def charts_run(airflow_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from flow_airflow.local_run import run_flow

    project = write(tmp_path_factory.mktemp("sdk_charts") / "project", {"flow.yaml": FLOW, "train.py": TRAIN})
    result = run_flow(project / "flow.yaml")
    assert result.state == "success"
    return result


def test_the_sdk_charts_and_images_are_drawn(charts_run: Any, pages: Pages, browser: Any) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    run_id = charts_run.run_id
    for page, name, of in [
        (f"/experiments/{charts_run.dag_id}/{quote(run_id, safe='')}", "sdk-charts-run", ""),
        (f"/experiments/{charts_run.dag_id}", "sdk-charts-flow", f"{run_id} · "),
    ]:  # by run
        browser.get(pages.url(page))
        wait_rows(browser, 1)
        drawn = WebDriverWait(browser, 30).until(lambda b: b.execute_script(DRAWN) or None)
        assert [title for title, _ in drawn] == sorted(
            [
                "Epochs",
                "Quoted",
                "Feature importance",
                "Feature Importance",
                "Lift",
                "Recall",
                f"cells · {of}Train no params",
                f"confusion · {of}Train no params",
                "counts",
                "errors",
                "fit",
                "learning",
                f"matrix · {of}Train no params",
                "points",
                f"report · {of}Train no params",
            ]
        ), drawn
        kinds = dict(drawn)
        assert kinds["Feature importance"] == ["bar"] and kinds["counts"] == ["bar"]
        assert kinds["fit"] == ["scatter"] and kinds["points"] == ["scatter"]
        assert kinds["learning"] == ["line", "line"] and kinds["Recall"] == ["line", "line"]
        assert kinds[f"confusion · {of}Train no params"] == ["heatmap"]
        browser.execute_script("document.getElementById('images').scrollIntoView()")  # the images load lazily
        loaded = WebDriverWait(browser, 30).until(
            lambda b: b.execute_script(
                "const i = document.querySelector('#images img'); return i && i.complete && i.naturalWidth"
            )
        )
        assert loaded == 1  # the 1x1 PNG log_artifacts stored, served from the artifact store
        caption = browser.execute_script("return document.querySelector('#images figcaption').textContent")
        assert caption == f"{of}Train no params · output/roc.png"
        pages.shot(browser, name)
