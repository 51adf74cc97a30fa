"""Approvals decided once, on SQLite and on PostgreSQL (``database``: see conftest.py), through real Airflow.

The flow runs with ``dag.test()`` in this process; deciders are other processes, as the
api-server is, calling ``store.decide`` on the same metadata database.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flow_airflow.approvals import store
from flow_airflow.local_run import run_flow

pytestmark = pytest.mark.airflow
DAG_ID = "approval_gate"
GATE = "deploy_model.approval"


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch, airflow_home: Path) -> Iterator[None]:
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__APPROVAL_POLL_INTERVAL", "0.2")
    yield


WAIT_FOR_GATE = """
import json, sys, time
from airflow.utils.session import create_session
from flow_airflow.approvals import store

def new_gate(before):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with create_session() as session:
            waiting = [a for a in store.pending(session, {"approval_gate"}) if a.run_id not in before]
        if waiting:
            return waiting[0]
        time.sleep(0.2)
    sys.exit("no pending approval")
"""

RACER = WAIT_FOR_GATE + """
from pathlib import Path
before, me, approve, barrier = set(json.loads(sys.argv[1])), sys.argv[2], sys.argv[3] == "approve", Path(sys.argv[4])
gate = new_gate(before)
(barrier / me).touch()
while len(list(barrier.iterdir())) < 2:  # both racers found the gate: decide at the same moment
    time.sleep(0.001)
try:
    with create_session() as session:
        done = store.decide(session, dag_id=gate.dag_id, run_id=gate.run_id, task_id=gate.task_id,
                            user_id=me, username=me, approve=approve)
        print(json.dumps({"status": 200, "decision": done.decision, "by": done.decided_by}))
except store.DecisionRefused as refused:
    print(json.dumps({"status": refused.status, "message": refused.message}))
"""


def known_runs() -> set[str]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return set(session.scalars(select(DagRun.run_id).where(DagRun.dag_id == DAG_ID)))


def racer(before: set[str], name: str, verb: str, barrier: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", RACER, json.dumps(sorted(before)), name, verb, str(barrier)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def answer(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-2000:]
    return json.loads(out)


def audit_events(run_id: str) -> list[str]:
    """The approvals' entries of Airflow's audit log for one run."""
    from airflow.models.log import Log
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return list(session.scalars(select(Log.event).where(Log.dag_id == DAG_ID, Log.run_id == run_id,
                                                            Log.event.like("flow_airflow.%"))))


def test_two_decisions_at_the_same_moment_apply_once(
    database: str, quick: None, project: Callable[..., Path], tmp_path: Path
) -> None:
    """One decision is applied, the other gets 409, the history and the audit log hold one.

    SQLite ignores the row locks (the conditional update decides there); PostgreSQL orders the
    deciders by them (the second reads the first one's committed decision)."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    before = known_runs()
    racers = [racer(before, name, verb, barrier) for name, verb in (("alice", "approve"), ("bob", "reject"))]
    result = run_flow(project("approval"))
    answers = [answer(r) for r in racers]
    [applied] = [a for a in answers if a["status"] == 200]
    [refused] = [a for a in answers if a["status"] != 200]
    assert refused["status"] == 409 and f"already {applied['decision']} by {applied['by']}" in refused["message"]
    assert result.state == ("success" if applied["decision"] == "approved" else "failed")
    event = {"approved": "flow_airflow.approve", "rejected": "flow_airflow.reject"}[applied["decision"]]
    assert audit_events(result.run_id) == [event]
    from airflow.utils.session import create_session

    with create_session() as session:
        decided = [a for a in store.history(session, {DAG_ID}) if a.run_id == result.run_id]
    assert [(a.decision, a.decided_by) for a in decided] == [(applied["decision"], applied["by"])]


DECIDER = WAIT_FOR_GATE + """
gate = new_gate(set(json.loads(sys.argv[1])))
with create_session() as session:
    store.decide(session, dag_id=gate.dag_id, run_id=gate.run_id, task_id=gate.task_id, user_id=sys.argv[2],
                 username=sys.argv[2], approve=sys.argv[3] == "approve")
"""


def rerun(run_id: str) -> tuple[str, float]:
    """Clear every task of the run and run the same run again: its state and how long it took.

    ``dag.test`` on the run's logical date clears its task instances with Airflow's own clear (as
    "Clear" in the UI does: each gets a new try, its HITL row follows it); it would then replace
    the run by a new one of the same id, which is why it is handed the cleared run instead."""
    from unittest import mock

    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from sqlalchemy import select

    from flow_airflow import settings
    from flow_airflow.local_run import BUNDLE

    with create_session() as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == DAG_ID, DagRun.run_id == run_id))
        run.state = DagRunState.RUNNING  # dag.test() goes on with a running run only
        logical_date = run.logical_date

    def the_cleared_run(*, dag: Any, session: Any, **_: Any) -> Any:
        cleared = session.scalar(select(DagRun).where(DagRun.dag_id == DAG_ID, DagRun.run_id == run_id))
        cleared.dag = dag  # as create_dagrun leaves it
        return cleared

    bundle = settings.airflow_home() / "flow_airflow_run" / DAG_ID
    dag = BundleDagBag(dag_folder=str(bundle), bundle_path=bundle, bundle_name=BUNDLE).dags[DAG_ID]
    started = time.monotonic()
    with mock.patch("airflow.models.dagrun.get_or_create_dagrun", the_cleared_run):
        again = dag.test(logical_date=logical_date)
    assert again.run_id == run_id
    return str(again.state), time.monotonic() - started


def gate_row(run_id: str) -> tuple[int, Any, Any, Any]:
    """The gate's try number, and its HITL row's creation time, decider and decision time."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        ti = session.scalar(select(TI).where(TI.dag_id == DAG_ID, TI.run_id == run_id, TI.task_id == GATE))
        row = session.scalar(select(HITLDetail).where(HITLDetail.ti_id == ti.id))
        assert row is not None, "the gate's HITL row did not follow its task instance"
        return ti.try_number, row.created_at, (row.responded_by or {}).get("name"), row.responded_at


def test_a_cleared_gate_keeps_the_decision(
    database: str, quick: None, project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    decider = subprocess.Popen([sys.executable, "-c", DECIDER, json.dumps(sorted(known_runs())), "bob", "approve"])
    result = run_flow(project("approval"))
    assert decider.wait(timeout=120) == 0 and result.state == "success"
    tries, asked, by, at = gate_row(result.run_id)
    assert (tries, by) == (1, "bob")

    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__APPROVAL_TIMEOUT", "60")  # nobody decides again
    state, took = rerun(result.run_id)
    assert state == "success" and took < 40  # bob's decision, not a new request (60 s, then failed)
    assert gate_row(result.run_id) == (2, asked, "bob", at)
    assert audit_events(result.run_id) == ["flow_airflow.approve"]


def test_a_cleared_gate_keeps_its_deadline(
    database: str, quick: None, project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__APPROVAL_TIMEOUT", "2")
    result = run_flow(project("approval"))
    assert result.state == "failed"
    asked = gate_row(result.run_id)[1]

    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__APPROVAL_TIMEOUT", "60")  # a new request would wait 60 s
    state, took = rerun(result.run_id)
    assert state == "failed" and took < 40  # the first request's deadline, long past
    assert gate_row(result.run_id) == (2, asked, None, None)
    from airflow.utils.session import create_session

    with create_session() as session:
        closed = store.get(session, DAG_ID, result.run_id, GATE)
    assert closed is not None and closed.status == "closed without a decision (gate failed)"
