"""The approval page in headless Chromium on a gate that waits (issue 27 item 8): the experiments that
passed the gated task's condition come first and are marked, approving asks for a confirmation as
stopping a run does, and the approvals API returns the experiments the page shows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.web.browser import Pages, waiting_gate

pytestmark = pytest.mark.airflow

FLOW = """flow: Gated Best
tasks:
  - title: Train
    type: exec
    input: python3 -c "import sys; print('cnvrg_tag_accuracy: ' + sys.argv[2])"
    computes: [local]
    params:
      - key: accuracy
        value: [0.70, 0.95, 0.85]
  - title: Deploy
    type: exec
    input: python3 -c "print('deployed')"
    computes: [local]
    conditions:
      - task: Train
        objective: max
        tag_key: accuracy
      - objective: human_validation
        value: bob
relations:
  - from: Train
    to: Deploy
"""


def test_the_approval_page_shows_what_passed_first_and_asks_before_approving(
    airflow_home: Path, tmp_path: Path, pages: Pages, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    (tmp_path / "flow.yaml").write_text(FLOW)
    with waiting_gate(tmp_path / "flow.yaml", lambda a: a.flow == "Gated Best") as (gate, child):
        browser.get(f"{pages.base}{gate.path}")
        shown = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")] + [tr.get_attribute("class")]
                 for tr in browser.find_elements(By.CSS_SELECTOR, "#experiments tr")[1:]]
        assert [(s[0], s[2], s[4], s[5]) for s in shown] == [
            ("Train", "✓ passed", "accuracy=0.95", "passed"),
            ("Train", "✗ left out", "accuracy=0.70", ""), ("Train", "✗ left out", "accuracy=0.85", "")]
        assert browser.find_element(By.ID, "passed-note").text.startswith("The 1 that passed Deploy's condition first")
        # the approvals API: the same experiments, in the same order
        listed = httpx.get(pages.url("/api/approvals"), timeout=30).json()
        [mine] = [a for a in listed["pending"] if a["run_id"] == gate.run_id]
        assert [(e["task"], e["index"], e["tags"], e["passed"]) for e in mine["experiments"]] == [
            ("Train", 1, {"accuracy": "0.95"}, True), ("Train", 0, {"accuracy": "0.70"}, False),
            ("Train", 2, {"accuracy": "0.85"}, False)]
        one = httpx.get(pages.url(gate.path.removeprefix("/flow-airflow").replace("/approvals/", "/api/approvals/", 1)),
                        timeout=30).json()
        assert one["experiments"] == mine["experiments"]
        pages.shot(browser, "approval-passed-first")
        # approving asks first: dismissed, nothing is decided
        browser.find_element(By.ID, "approve").click()
        alert = browser.switch_to.alert
        assert alert.text == "Approve Deploy? It runs now."
        alert.dismiss()
        still = httpx.get(pages.url("/api/approvals"), timeout=30).json()["pending"]
        assert [a["decision"] for a in still if a["run_id"] == gate.run_id] == [None]
        browser.find_element(By.ID, "approve").click()
        browser.switch_to.alert.accept()
        WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "status").text == "approved")
        assert "approved by bob" in browser.find_element(By.ID, "decision").text
        out, _ = child.communicate(timeout=180)
        assert child.returncode == 0, out
        pages.shot(browser, "approval-approved")
