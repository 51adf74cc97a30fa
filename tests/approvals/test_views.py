"""Deciding on the approvals API needs what reading needs (read access to the DAG) plus being listed.

A real gate waits in ``dag.test()`` while the API is called from another thread. The caller is
the one seam, as in tests/experiments/test_api.py (the e2e test covers Airflow's own login).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from flow_airflow.approvals import store
from flow_airflow.local_run import run_flow
from flow_airflow.web import URL_PREFIX
from flow_airflow.web.app import create_app
from flow_airflow.web.auth import Caller, caller

pytestmark = pytest.mark.airflow
DAG_ID = "approval_gate"


class User:
    def __init__(self, name: str):
        self.name = name

    def get_name(self) -> str:
        return self.name

    def get_id(self) -> str:
        return self.name


class Reader(Caller):
    """A signed-in user who may read the DAGs ``readable``."""

    def __init__(self, name: str, readable: set[str]):
        super().__init__(User(name))
        self.readable = readable

    def readable_dag_ids(self, session: Any) -> set[str]:
        return self.readable


def post_as(name: str, readable: set[str], gate: store.Approval, decision: str) -> Any:
    app = create_app()
    app.dependency_overrides[caller] = lambda: Reader(name, readable)
    path = "/".join(quote(p, safe="") for p in (gate.dag_id, gate.run_id, gate.task_id))
    with TestClient(app, root_path=URL_PREFIX) as client:
        return client.post(f"{URL_PREFIX}/api/approvals/{path}", json={"decision": decision})


def pending_gate(before: set[str]) -> store.Approval:
    from airflow.utils.session import create_session

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with create_session() as session:
            waiting = [a for a in store.pending(session, {DAG_ID}) if a.run_id not in before]
        if waiting:
            return waiting[0]
        time.sleep(0.2)
    raise AssertionError("no pending approval")


def test_deciding_needs_read_access_and_being_listed(
    airflow_home: Path, project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__APPROVAL_POLL_INTERVAL", "0.2")
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__APPROVAL_TIMEOUT", "300")  # a failed decider ends the gate
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        before = set(session.scalars(select(DagRun.run_id).where(DagRun.dag_id == DAG_ID)))
    # The decider is another process, as a second user's request is (SQLite's connections are not
    # for two threads): this file run as a script, see the end.
    decider = subprocess.Popen([sys.executable, __file__, json.dumps(sorted(before))],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    result = run_flow(project("approval"))
    out, err = decider.communicate(timeout=120)
    assert decider.returncode == 0, err[-2000:]
    answers = [tuple(a) for a in json.loads(out)]
    assert answers == [
        (403, "bob may not see the runs of approval_gate"),  # listed, but may not read the DAG
        (403, "Only alice or bob may decide on 'Deploy Model'; you are signed in as carol."),  # reads, not listed
        (200, "bob"),
    ]
    assert result.state == "success"


def decide(before: set[str]) -> list[tuple[int, str]]:
    """As bob who may not read the DAG, carol who may but is not listed, then bob who may: the answers."""
    gate = pending_gate(before)
    answers = []
    for name, readable in (("bob", {"another_dag"}), ("carol", {DAG_ID}), ("bob", {DAG_ID})):
        reply = post_as(name, readable, gate, "approve")
        answers.append((reply.status_code, reply.json().get("detail") or reply.json().get("decided_by")))
    return answers


if __name__ == "__main__":  # the decider of the test above, in its own process
    print(json.dumps(decide(set(json.loads(sys.argv[1])))))
