"""Human validation on a real ``airflow standalone``: the approvals page in headless Chromium, the REST
API, mail to a local SMTP server, and a restart of the scheduler and the triggerer while a gate waits.

``tests/flows/approval``: Deploy Model waits until alice or bob approves it. The module starts
its three runs at once, so that their Train tasks run side by side.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psutil
import pytest

from flow_airflow.cli import LOADER

AirflowServer = Any  # conftest.AirflowServer: the session's airflow standalone and its REST client
pytestmark = pytest.mark.e2e
FLOWS = Path(__file__).parent.parent / "flows"
DAG = "approval_gate"
GATE = "deploy_model.approval"
DEPLOY = "deploy_model.run"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def mailbox(airflow_server: AirflowServer) -> Iterator[list[tuple[list[str], Message]]]:
    """A real SMTP server on the port Airflow's SMTP connection points at."""
    from aiosmtpd.controller import Controller

    received: list[tuple[list[str], Message]] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=airflow_server.smtp_port)
    controller.start()
    yield received
    controller.stop()


@pytest.fixture(scope="module")
def runs(airflow_server: AirflowServer, mailbox: list) -> dict[str, str]:
    """Three runs of the approval flow, started together: one to approve, one to reject, one to restart under."""
    server = airflow_server
    server.add_file("flows.py", LOADER)
    server.copy_tree(FLOWS / "approval", "approval_gate")
    server.touch("flows.py")
    server.wait_for_dag(DAG, timeout=120)
    return {name: server.trigger(DAG, run_id=f"{name}__{time.time_ns()}") for name in ("approve", "reject", "restart")}


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
                    "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,900",
                    f"--user-data-dir={profile}"):
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        driver.set_page_load_timeout(60)
        try:
            yield driver
        finally:
            driver.quit()


def gate(server: AirflowServer, run_id: str) -> dict[str, Any]:
    return server.api("GET", f"/dags/{DAG}/dagRuns/{run_id}/taskInstances/{GATE}")


def wait_pending(server: AirflowServer, run_id: str, timeout: float = 150) -> dict[str, Any]:
    """Wait until the run's gate is deferred: pending approval, holding no worker slot."""
    deadline = time.monotonic() + timeout
    ti: dict[str, Any] = {}
    while time.monotonic() < deadline:
        ti = gate(server, run_id)
        if ti["state"] == "deferred":
            return ti
        if ti["state"] in ("failed", "upstream_failed", "success"):
            break
        time.sleep(0.5)
    raise AssertionError(f"gate of {run_id} not deferred: {ti.get('state')}\n{server.log_tail(60)}")


def gate_log(server: AirflowServer, run_id: str, waited_for: str, timeout: float = 30) -> str:
    """The gate's log once it holds ``waited_for`` (the worker's lines may reach the API after the run ended)."""
    deadline = time.monotonic() + timeout
    log = server.task_log(DAG, run_id, GATE)
    while waited_for not in log and time.monotonic() < deadline:
        time.sleep(1)
        log = server.task_log(DAG, run_id, GATE)
    return log


def decision_url(server: AirflowServer, run_id: str) -> str:
    return f"{server.base_url}/flow-airflow/api/approvals/{DAG}/{quote(run_id, safe='')}/{GATE}"


def decide(server: AirflowServer, run_id: str, user: str | None, decision: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.token_for(user)}"} if user else {}
    return httpx.post(decision_url(server, run_id), json={"decision": decision}, headers=headers, timeout=30)


def mails_for(mailbox: list[tuple[list[str], Message]], run_id: str, timeout: float = 30) -> dict[str, Message]:
    """The approval mails about ``run_id``, by recipient."""
    deadline = time.monotonic() + timeout
    found: dict[str, Message] = {}
    while time.monotonic() < deadline:
        found = {to[0]: m for to, m in list(mailbox) if quote(run_id, safe="") in _html(m)}
        if len(found) >= 2:
            break
        time.sleep(0.5)
    return found


def _html(message: Message) -> str:
    return message.get_payload()[0].get_payload(decode=True).decode()


def test_bob_approves_on_the_page_and_the_task_runs(
    airflow_server: AirflowServer, runs: dict[str, str], mailbox: list, browser: Any
) -> None:
    server, run_id = airflow_server, runs["approve"]
    t0 = time.monotonic()
    _pending_and_listed(server, run_id)
    link = _mailed_link(server, run_id, mailbox)
    _refused_without_the_right(server, run_id, link)
    _bob_signs_in_and_approves(server, browser, link)
    _approvals_in_the_airflow_ui(server, browser, run_id)
    _the_run_succeeds_with_the_note(server, browser, run_id)
    _one_decision_in_airflows_hitl_records(server, run_id)
    print(f"\n[approvals e2e] approve run: {time.monotonic() - t0:.1f}s from pending wait to success")


def _pending_and_listed(server: AirflowServer, run_id: str) -> None:
    """The gate waits, its task has not started, and the approvals API lists it."""
    ti = wait_pending(server, run_id)
    assert ti["task_display_name"] == "Deploy Model: approval"
    assert {s for (t, _), s in server.ti_states(DAG, run_id).items() if t == DEPLOY} == {None}  # not started
    pending = server.session.get(f"{server.base_url}/flow-airflow/api/approvals").json()["pending"]
    [listed] = [a for a in pending if a["run_id"] == run_id]
    assert (listed["flow"], listed["task"], listed["approvers"], listed["status"]) == (
        "Approval Gate", "Deploy Model", ["alice", "bob"], "pending approval")


def _mailed_link(server: AirflowServer, run_id: str, mailbox: list) -> str:
    """The mail reached each approver, with a working link to this approval; returns the link."""
    mails = mails_for(mailbox, run_id)
    assert sorted(mails) == ["alice@example.com", "bob@example.com"]
    assert mails["bob@example.com"]["Subject"] == "Approval needed: 'Deploy Model' of flow 'Approval Gate'"
    [link] = re.findall(r'href="([^"]+)"', _html(mails["bob@example.com"]))
    assert link == f"{server.base_url}/flow-airflow/approvals/{DAG}/{quote(run_id, safe='')}/{GATE}"
    return link


def _refused_without_the_right(server: AirflowServer, run_id: str, link: str) -> None:
    """No login: 401; carol (a viewer, not listed) may look but not decide; the gate still waits."""
    page = httpx.get(link, timeout=30)
    assert page.status_code == 401 and "Not signed in" in page.text and "/auth/login?next=" in page.text
    assert decide(server, run_id, None, "approve").status_code == 401
    refused = decide(server, run_id, "carol", "approve")
    assert refused.status_code == 403
    assert refused.json()["detail"] == "Only alice or bob may decide on 'Deploy Model'; you are signed in as carol."
    carol_page = httpx.get(link, headers={"Authorization": f"Bearer {server.token_for('carol')}"}, timeout=30)
    assert carol_page.status_code == 200 and "you are signed in as carol" in carol_page.text
    assert gate(server, run_id)["state"] == "deferred"
    # Where flows are listed, Airflow's own "pending actions" include the gate (the Dags list's filter and badge).
    listed = server.session.get(f"{server.base_url}/ui/dags",
                                params={"has_pending_actions": True, "dag_id_pattern": DAG}).json()["dags"]
    [pending_dag] = [d for d in listed if d["dag_id"] == DAG]
    subjects = [a["subject"] for a in pending_dag["pending_actions"]]
    assert "Approve 'Deploy Model' of flow 'Approval Gate'?" in subjects


def _bob_signs_in_and_approves(server: AirflowServer, browser: Any, link: str) -> None:
    """bob opens the mail's link in Chromium, signs in with Airflow's login and approves."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(link)
    assert "Not signed in" in browser.find_element(By.ID, "message").text
    browser.find_element(By.ID, "login").click()
    wait = WebDriverWait(browser, 60)
    wait.until(ec.presence_of_element_located((By.NAME, "username"))).send_keys("bob")
    browser.find_element(By.NAME, "password").send_keys("bob")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    approve = wait.until(ec.element_to_be_clickable((By.ID, "approve")))
    assert browser.current_url == link
    assert browser.find_element(By.ID, "user").text == "bob"
    assert browser.find_element(By.ID, "status").text == "pending approval"
    assert "accuracy=0.91" in browser.find_element(By.ID, "experiments").text  # Train's tags
    browser.save_screenshot(str(server.root / "approval-pending.png"))
    approve.click()
    browser.switch_to.alert.accept()  # approving asks first
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "approved"))
    assert browser.find_element(By.ID, "decision").text.startswith("approved by bob at ")
    browser.save_screenshot(str(server.root / "approval-approved.png"))


def _approvals_in_the_airflow_ui(server: AirflowServer, browser: Any, run_id: str) -> None:
    """The page is also "Approvals" in the Airflow UI (an external view): its links open the UI's own pages."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    browser.get(f"{server.base_url}/plugin/approvals")
    wait.until(ec.frame_to_be_available_and_switch_to_it((By.CSS_SELECTOR, "iframe[title=Approvals]")))
    run_link = wait.until(ec.presence_of_element_located((By.LINK_TEXT, run_id)))
    browser.save_screenshot(str(server.root / "approvals-in-the-ui.png"))
    run_link.click()
    browser.switch_to.default_content()
    wait.until(ec.url_contains(f"/dags/{DAG}/runs/{quote(run_id, safe='')}"))


def _the_run_succeeds_with_the_note(server: AirflowServer, browser: Any, run_id: str) -> None:
    """The run succeeds, with bob's decision as its note, the gate and its task done, the gate's log."""
    from selenium.webdriver.support.ui import WebDriverWait

    assert server.wait_for_run(DAG, run_id, timeout=120) == "success"
    assert re.fullmatch(r"Approved by bob at \S+: 'Deploy Model' ran", server.dag_run(DAG, run_id)["note"])
    # The run's page in the Airflow UI shows the note (kept as a screenshot).
    browser.get(f"{server.base_url}/dags/{DAG}/runs/{quote(run_id, safe='')}")
    WebDriverWait(browser, 60).until(lambda b: "Approved by bob" in b.page_source)
    browser.save_screenshot(str(server.root / "run-note-approved.png"))
    states = server.ti_states(DAG, run_id)
    assert states[(GATE, -1)] == "success" and states[(DEPLOY, 0)] == "success"
    log = gate_log(server, run_id, "Approved by bob")
    assert "Pending approval: 'Deploy Model' waits for alice or bob" in log and "Approved by bob" in log
    assert "Mailed the approval request to alice <alice@example.com>, bob <bob@example.com>" in log


def _one_decision_in_airflows_hitl_records(server: AirflowServer, run_id: str) -> None:
    """One decision only; and Airflow's own HITL records (its "Required Actions") hold it."""
    again = decide(server, run_id, "alice", "reject")
    assert again.status_code == 409 and "already approved by bob" in again.json()["detail"]
    hitl = server.api("GET", f"/dags/{DAG}/dagRuns/{run_id}/taskInstances/{GATE}/-1/hitlDetails")
    assert (hitl["chosen_options"], hitl["responded_by_user"]["name"]) == (["Approve"], "bob")


def test_alice_rejects_and_the_run_fails_without_the_task(airflow_server: AirflowServer, runs: dict[str, str]) -> None:
    server, run_id = airflow_server, runs["reject"]
    wait_pending(server, run_id)
    rejected = decide(server, run_id, "alice", "reject")
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["decision"], rejected.json()["decided_by"]) == ("rejected", "alice")
    assert server.wait_for_run(DAG, run_id, timeout=120) == "failed"
    tis = {(t["task_id"], t["map_index"]): t for t in server.task_instances(DAG, run_id)}
    assert tis[(GATE, -1)]["state"] == "failed"
    deploy = [t for (task_id, _), t in tis.items() if task_id == DEPLOY]
    assert [(t["state"], t["try_number"]) for t in deploy] == [("upstream_failed", 0)]  # never tried
    assert "Rejected by alice" in gate_log(server, run_id, "Rejected by alice")
    # The runs list tells a rejected run from a crashed one: the run's note says who rejected it.
    assert re.fullmatch(r"Rejected by alice at \S+: 'Deploy Model' did not run", server.dag_run(DAG, run_id)["note"])
    history = server.session.get(f"{server.base_url}/flow-airflow/api/approvals").json()["history"]
    assert {"run_id": run_id, "status": "rejected", "decided_by": "alice"}.items() <= next(
        a for a in history if a["run_id"] == run_id).items()
    page = server.session.get(f"{server.base_url}/flow-airflow/approvals")
    assert page.status_code == 200 and run_id in page.text and "rejected" in page.text


def test_a_pending_approval_survives_restarting_the_scheduler_and_the_triggerer(
    airflow_server: AirflowServer, runs: dict[str, str]
) -> None:
    server, run_id = airflow_server, runs["restart"]
    old = wait_pending(server, run_id)["triggerer_job"]["id"]
    t0 = time.monotonic()
    restart(server, "scheduler", "triggerer")
    # The new triggerer takes the gate's trigger over (the old one ended its job when it stopped).
    deadline = time.monotonic() + 90
    ti = gate(server, run_id)
    while time.monotonic() < deadline and (ti["state"] != "deferred" or (ti["triggerer_job"] or {}).get("id") in (
            None, old)):
        time.sleep(0.5)
        ti = gate(server, run_id)
    assert ti["state"] == "deferred" and ti["triggerer_job"]["id"] != old, ti
    restarted = time.monotonic() - t0
    # bob answers in Airflow's own "Required Actions" API this time: it resumes the gate as well.
    answer = server.session_for("bob").patch(
        f"/dags/{DAG}/dagRuns/{run_id}/taskInstances/{GATE}/-1/hitlDetails",
        json={"chosen_options": ["Approve"], "params_input": {}},
    )
    assert answer.status_code == 200, answer.text
    assert server.wait_for_run(DAG, run_id, timeout=120) == "success"
    assert server.ti_states(DAG, run_id)[(DEPLOY, 0)] == "success"
    print(f"\n[approvals e2e] scheduler + triggerer restarted and the trigger taken over in {restarted:.1f}s")


def restart(server: AirflowServer, *components: str) -> None:
    """Stop components of ``airflow standalone`` (SIGTERM: they shut down cleanly) and start them anew.

    The new processes log to the standalone log and are killed with the server (``_kill_strays``).
    """
    assert server.process is not None
    running = {p.cmdline()[-1]: p for p in psutil.Process(server.process.pid).children()
               if p.status() != psutil.STATUS_ZOMBIE and p.cmdline()}
    for name in components:
        proc = running[name]
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 60  # standalone never reaps it: gone or a zombie is done
        while proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE, f"{name} did not stop"
        with open(server.log_path, "ab") as log:
            airflow = shutil.which("airflow", path=server.env["PATH"]) or "airflow"
            subprocess.Popen([airflow, name], cwd=server.root, env=server.env, stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
