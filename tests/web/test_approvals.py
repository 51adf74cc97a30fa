"""Human validation through real Airflow (``dag.test()``): the gate, its trigger and decisions in the DB.

``dag.test()`` runs the gate's trigger in line, so a decision recorded from another thread
(as the approvals page records it) reaches the gate through the trigger's polling.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from flow_airflow.approvals import mail, store
from flow_airflow.local_run import run_flow

pytestmark = pytest.mark.airflow
DAG_ID = "approval_gate"
GATE = "deploy_model.approval"


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch, airflow_home: Path) -> Iterator[None]:
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__APPROVAL_POLL_INTERVAL", "0.2")
    yield


DECIDER = """
import json, sys, time
from airflow.utils.session import create_session
from flow_airflow.approvals import store

before, decisions = set(json.loads(sys.argv[1])), json.loads(sys.argv[2])
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    with create_session() as session:
        waiting = [a for a in store.pending(session, {"approval_gate"}) if a.run_id not in before]
    if waiting:
        break
    time.sleep(0.2)
else:
    sys.exit("no pending approval")
gate = waiting[0]
print(json.dumps(gate.as_json()), flush=True)
for username, approve in decisions:
    try:
        with create_session() as session:
            done = store.decide(session, dag_id=gate.dag_id, run_id=gate.run_id, task_id=gate.task_id,
                                user_id=username, username=username, approve=approve)
            print(json.dumps(done.as_json()), flush=True)
    except store.DecisionRefused as refused:
        print(json.dumps({"status": refused.status, "message": refused.message}), flush=True)
"""


def decide_when_pending(before: set[str], *decisions: tuple[str, bool]) -> subprocess.Popen[str]:
    """Another process, as the api-server is: wait for a new pending gate, then decide as each (user, approve)."""
    return subprocess.Popen(
        [sys.executable, "-c", DECIDER, json.dumps(sorted(before)), json.dumps(decisions)],
        stdout=subprocess.PIPE, text=True,
    )


def outcomes(decider: subprocess.Popen[str]) -> list[dict[str, Any]]:
    out, _ = decider.communicate(timeout=60)
    assert decider.returncode == 0, out
    return [json.loads(line) for line in out.splitlines()]


def known_runs() -> set[str]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return set(session.scalars(select(DagRun.run_id).where(DagRun.dag_id == DAG_ID)))


def gate_state(run_id: str) -> tuple[str, list[Any]]:
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = {t.task_id: t for t in session.scalars(select(TI).where(TI.dag_id == DAG_ID, TI.run_id == run_id))}
        return str(tis[GATE].state), [(t.task_id, str(t.state), t.try_number) for t in tis.values()]


def run_note(run_id: str) -> str | None:
    """The DAG run's note, as the runs list shows it."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return session.scalar(select(DagRun).where(DagRun.dag_id == DAG_ID, DagRun.run_id == run_id)).note


def test_approve_runs_the_task(quick: None, project: Callable[..., Path]) -> None:
    before = known_runs()
    decider = decide_when_pending(before, ("carol", True), ("bob", True), ("alice", False))
    result = run_flow(project("approval"))
    gate, refused_carol, approved, refused_alice = outcomes(decider)
    assert (gate["task"], gate["approvers"], gate["flow"], gate["status"]) == (
        "Deploy Model", ["alice", "bob"], "Approval Gate", "pending approval")
    assert refused_carol == {"status": 403, "message": "Only alice or bob may decide on 'Deploy Model'; "
                             "you are signed in as carol."}
    assert (approved["decision"], approved["decided_by"]) == ("approved", "bob")
    assert refused_alice["status"] == 409 and "already approved by bob" in refused_alice["message"]

    assert result.state == "success"
    assert [e.state for e in result.of("Deploy Model", None)] == ["success"]
    assert re.fullmatch(r"Approved by bob at \S+: 'Deploy Model' ran", run_note(result.run_id))
    from airflow.utils.session import create_session

    with create_session() as session:
        done = store.get(session, DAG_ID, result.run_id, GATE)
        assert done is not None and done.status == "approved" and not done.pending
        assert done.experiments == [{"task": "Train", "label": "", "params": {}, "tags": {"accuracy": "0.91"}}]
        assert any(a.run_id == result.run_id for a in store.history(session, {DAG_ID}))


def test_reject_fails_the_run_and_the_task_never_runs(quick: None, project: Callable[..., Path]) -> None:
    decider = decide_when_pending(known_runs(), ("alice", False), ("bob", True))
    result = run_flow(project("approval"))
    _, rejected, refused = outcomes(decider)
    assert (rejected["decision"], rejected["decided_by"]) == ("rejected", "alice")
    assert refused["status"] == 409 and "already rejected by alice" in refused["message"]
    assert result.state == "failed"
    state, tis = gate_state(result.run_id)
    assert state == "failed"
    assert ("deploy_model.run", "upstream_failed", 0) in tis  # never tried
    assert re.fullmatch(r"Rejected by alice at \S+: 'Deploy Model' did not run", run_note(result.run_id))


def test_no_decision_in_time_fails_the_run(
    quick: None, project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__APPROVAL_TIMEOUT", "1")
    result = run_flow(project("approval"))
    assert result.state == "failed"
    state, tis = gate_state(result.run_id)
    assert state == "failed" and ("deploy_model.run", "upstream_failed", 0) in tis
    assert run_note(result.run_id) == "No decision on 'Deploy Model' in time: it did not run"
    from airflow.utils.session import create_session

    with create_session() as session:
        closed = store.get(session, DAG_ID, result.run_id, GATE)
        assert closed is not None and closed.status == "closed without a decision (gate failed)"
        refused = None
        try:
            store.decide(session, dag_id=DAG_ID, run_id=result.run_id, task_id=GATE, user_id="bob", username="bob",
                         approve=True)
        except store.DecisionRefused as exc:
            refused = exc
        assert refused is not None and refused.status == 409 and "no longer waits" in refused.message


class Lines:
    """A logger that keeps the lines."""

    def __init__(self, lines: list[str]):
        self.lines = lines

    def info(self, msg: str, *args: Any) -> None:
        self.lines.append(msg % args)

    warning = info


def smtp_connection(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": port,
        "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "flows@example.com", "timeout": 5,
                  "retry_limit": 0},
    }))


def test_approvers_with_an_address_get_a_mail_with_the_link(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiosmtpd.controller import Controller

    received: list[tuple[list[str], Message]] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        smtp_connection(monkeypatch, port)
        monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__APPROVER_EMAILS", '{"bob": "bob@example.com"}')
        lines: list[str] = []
        sent = mail.notify(flow="F <x>", task="T", run_id="r1", approvers=["alice", "bob"],
                           link="http://h/a?b=1&c", log=Lines(lines))
    finally:
        controller.stop()
    assert sent == ["bob"]
    assert lines == ["No email address for alice ([flow_airflow] approver_emails): not mailed",
                     "Mailed the approval request to bob <bob@example.com>"]
    [(to, message)] = received
    assert to == ["bob@example.com"] and message["From"] == "flows@example.com"
    assert message["Subject"] == "Approval needed: 'T' of flow 'F <x>'"
    html = message.get_payload()[0].get_payload(decode=True).decode()
    assert "F &lt;x&gt;" in html and 'href="http://h/a?b=1&amp;c"' in html and "alice or bob" in html


def test_a_mail_that_cannot_be_sent_is_logged(monkeypatch: pytest.MonkeyPatch) -> None:
    smtp_connection(monkeypatch, 9)  # nothing listens there
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__APPROVER_EMAILS", '{"bob": "bob@example.com"}')
    lines: list[str] = []
    sent = mail.notify(flow="F", task="T", run_id="r1", approvers=["bob"], link="http://h/a",
                       log=Lines(lines))
    assert sent == [] and len(lines) == 1 and lines[0].startswith("Could not mail")
