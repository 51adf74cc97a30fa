"""DAG run notes that say what a flow's approvals decided, where runs are listed.

An Airflow listener (registered by the plugin) that runs where a DAG run's state is decided
(the scheduler; ``dag.test()`` for ``flow-airflow run``), with the run in a database session:
when a run ends, a run that held approval gates gets a note such as
``Rejected by bob at 2026-11-30T15:02:11+00:00: 'Deploy Model' did not run``, so a rejected run
is told apart from a crashed one in the runs list and on the run's page. A note a user wrote
is never replaced. It covers decisions made on the approvals page and in Airflow's
"Required Actions" alike: both end in the gate's HITL record, which is what it reads.
"""

from __future__ import annotations

from typing import Any

from airflow.listeners import hookimpl

NOTE_LIMIT = 1000  # Airflow's dag_run_note.content column


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    _note(dag_run)


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    _note(dag_run)


def _note(dag_run: Any) -> None:
    from airflow import settings
    from airflow.models.dagrun import DagRun
    from sqlalchemy.orm import object_session

    session = object_session(dag_run)
    if session is None:  # dag.test() hands over a detached run; its own session is this thread's scoped one
        session = settings.Session()
        dag_run = session.get(DagRun, dag_run.id)
    if dag_run is None or dag_run.note:
        return
    text = note_for(session, dag_run.dag_id, dag_run.run_id)
    if text:
        dag_run.note = text  # committed with the run's new state, by whoever decided it


def note_for(session: Any, dag_id: str, run_id: str) -> str:
    """What the run's approval gates decided, one sentence each ('' for a run without gates)."""
    from flow_airflow.approvals import store

    sentences = []
    for gate in store.of_run(session, dag_id, run_id):
        when = gate.decided_at.isoformat(timespec="seconds") if gate.decided_at else "?"
        if gate.decision == "rejected":
            sentences.append(f"Rejected by {gate.decided_by} at {when}: '{gate.task}' did not run")
        elif gate.decision == "approved":
            sentences.append(f"Approved by {gate.decided_by} at {when}: '{gate.task}' ran")
        elif gate.state == "failed":
            sentences.append(f"No decision on '{gate.task}' in time: it did not run")
    text = "; ".join(sentences)
    return text if len(text) <= NOTE_LIMIT else text[: NOTE_LIMIT - 1] + "…"
