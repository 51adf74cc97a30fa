"""Stored XSS (issue 29 item 1): markup in what a flow or a run names (the flow's title, a task title,
a param key or value, a tag key, a series key, a param value given in a run's ``conf``) is shown as
text on every page, never run: in headless Chromium, every chart element is hovered (scatter points,
line series, parallel lines, legends), the table and the approval page are opened, and no payload ran.

Each payload, if it ran, would add its name to ``window.__xss`` (or change ``document.title``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.web.browser import Pages, wait_rows, waiting_gate

pytestmark = pytest.mark.airflow


def payload(where: str) -> str:
    """Markup that, run, records ``where`` (no comma: text with commas is a grid of values)."""
    return f"""<img src=x onerror="window.__xss=(window.__xss||[]).concat('{where}')">"""


TITLE, KEY, VALUE, TAG, SERIES = (payload(w) for w in ("title", "key", "value", "tag", "series"))
CONF = payload("conf")
FLOW_TITLE = f"XSS {payload('flow')}"

TRAIN = f"""import sys
from cnvrg import Experiment
lr = sys.argv[sys.argv.index("--lr") + 1]
print({json.dumps("cnvrg_tag_" + TAG + ": ")} + lr)
print("cnvrg_tag_accuracy: " + lr)
print({json.dumps("cnvrg_tag_note: " + payload("tag_value"))})
e = Experiment()
e.log_metric({json.dumps(SERIES)}, Ys=[1.0, float(lr)])
"""


def flow_yaml(gate: bool) -> str:
    gated = """  - title: Deploy
    type: exec
    input: python3 -c "print(1)"
    computes: [local]
    conditions:
      - objective: human_validation
        value: bob
""" if gate else ""
    return f"""flow: {json.dumps(FLOW_TITLE + (" gated" if gate else ""))}
tasks:
  - title: {json.dumps(TITLE)}
    type: exec
    input: python3 train.py
    computes: [local]
    params:
      - key: {json.dumps(KEY)}
        value: [{json.dumps(VALUE)}, plain]
      - key: lr
        value: [0.1, 0.2]
{gated}relations:
""" + (f"  - from: {json.dumps(TITLE)}\n    to: Deploy\n" if gate else "  []\n")


def project(folder: Path, gate: bool) -> Path:
    folder.mkdir()
    (folder / "flow.yaml").write_text(flow_yaml(gate), encoding="utf-8")
    (folder / "train.py").write_text(TRAIN, encoding="utf-8")
    return folder / "flow.yaml"


@pytest.fixture(scope="module")
def hostile_run(airflow_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A finished run of the hostile flow whose conf gives the hostile param one more hostile value."""
    from flow_airflow.local_run import run_flow

    file = project(tmp_path_factory.mktemp("xss") / "hostile", gate=False)
    result = run_flow(file, conf={TITLE: {KEY: f"{VALUE}, {CONF}, plain"}})
    assert result.state == "success"
    return result


def choose(browser: Any, select: str, value: str) -> None:
    """Choose ``value`` in the page's <select id=``select``> (Selenium's Select cannot find markup values)."""
    assert browser.execute_script("""
        const s = document.getElementById(arguments[0]);
        if (![...s.options].some((o) => o.value === arguments[1])) return false;
        s.value = arguments[1];
        s.dispatchEvent(new Event('change'));
        return true;""", select, value), f"no {value!r} to choose in #{select}"


def no_script_ran(browser: Any, title: str) -> None:
    assert browser.execute_script("return window.__xss || null") is None
    assert browser.title == title


def hover_every_chart_element(browser: Any) -> int:
    """Move the mouse over each scatter point, each line's points, each legend item and the parallel
    lines (real pointer moves, at the pixels ECharts drew them), and show every tooltip: the count."""
    from selenium.webdriver.common.action_chains import ActionChains

    hovered = 0
    for chart in ("scatter", "series", "parallel"):
        targets = browser.execute_script("""
            const c = FlowExperiments.charts[arguments[0]], out = [];
            if (!c) return out;
            c.getOption().series.forEach((s, i) => (s.data || []).forEach((d, j) => {
              const value = Array.isArray(d) ? d : d.value;
              if (s.type === 'parallel') return;
              const p = c.convertToPixel({ seriesIndex: i }, value);
              if (p) out.push([p[0], p[1], i, j]);
            }));
            const box = c.getDom().getBoundingClientRect();
            for (const t of c.getDom().querySelectorAll('text')) {  // legend items and labels
              const r = t.getBoundingClientRect();
              out.push([r.left - box.left + r.width / 2, r.top - box.top + r.height / 2, -1, -1]);
            }
            for (let y = 70; y < box.height - 30; y += 25) out.push([box.width / 2, y, -1, -1]);
            return out;""", chart)
        element = browser.find_element("id", chart)
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        size = element.size
        for x, y, series, index in targets:
            x, y = min(max(x, 1), size["width"] - 2), min(max(y, 1), size["height"] - 2)
            ActionChains(browser).move_to_element_with_offset(
                element, int(x - size["width"] / 2), int(y - size["height"] / 2)).perform()
            if series >= 0:
                browser.execute_script("FlowExperiments.charts[arguments[0]].dispatchAction("
                                       "{type: 'showTip', seriesIndex: arguments[1], dataIndex: arguments[2]})",
                                       chart, series, index)
            hovered += 1
    return hovered


def test_markup_in_titles_keys_values_and_conf_never_runs_on_the_experiments_page(
    hostile_run: Any, pages: Pages, browser: Any
) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    run_page = pages.url(f"/experiments/{hostile_run.dag_id}/{quote(hostile_run.run_id, safe='')}")
    browser.get(run_page)
    title = browser.title
    table = wait_rows(browser, 6)  # 3 values (the conf gives one more) x 2 lr: 6 routes on 3 of the 4 task instances
    assert {r["task"] for r in table} == {TITLE}
    assert {r[f"param:{KEY}"] for r in table} == {VALUE, CONF, "plain"}
    assert {r[f"tag:{TAG}"] for r in table} == {"0.1", "0.2"}
    for metric, x, colour in ((TAG, KEY, "lr"), ("accuracy", "lr", KEY)):
        choose(browser, "metric", metric)
        choose(browser, "x-param", x)
        choose(browser, "color-param", colour)
        WebDriverWait(browser, 30).until(lambda b: b.execute_script(
            "return FlowExperiments.charts.scatter.getOption().series.length") > 0)
        assert hover_every_chart_element(browser) > 12
        tip = browser.execute_script(
            "return [...document.querySelectorAll('#scatter div')].map((d) => d.textContent).join(' ')")
        assert "onerror" in tip  # the markup shown as text
        no_script_ran(browser, title)
    pages.shot(browser, "xss-experiments-run")
    # the flow's page: a Run column, colour by run
    browser.get(pages.url(f"/experiments/{hostile_run.dag_id}"))
    wait_rows(browser, 6)
    choose(browser, "color-param", "(run)")
    assert hover_every_chart_element(browser) > 6
    no_script_ran(browser, browser.title)
    # the re-run form shows the params as text, and the CSV is made without running anything
    browser.find_element("id", "rerun-open").click()
    assert browser.find_element("css selector", "#rerun label").text.startswith(TITLE)
    browser.find_element("id", "csv").click()
    no_script_ran(browser, browser.title)
    pages.shot(browser, "xss-experiments-flow")
    # the index of runs
    browser.get(pages.url("/experiments"))
    assert FLOW_TITLE in browser.find_element("id", "runs").text
    no_script_ran(browser, browser.title)


def test_markup_never_runs_on_the_approval_pages(
    airflow_home: Path, tmp_path: Path, pages: Pages, browser: Any
) -> None:
    with waiting_gate(project(tmp_path / "gated", gate=True), lambda a: a.flow.startswith(FLOW_TITLE)) as (gate, _):
        browser.get(f"{pages.base}{gate.path}")
        check_approval_pages(pages, browser)


def check_approval_pages(pages: Pages, browser: Any) -> None:
    title = browser.title
    table = browser.find_element("id", "experiments").text
    assert TITLE in table and VALUE in table and TAG in table
    no_script_ran(browser, title)
    pages.shot(browser, "xss-approval")
    browser.get(pages.url("/approvals"))
    assert FLOW_TITLE in browser.find_element("id", "pending").text
    no_script_ran(browser, browser.title)
