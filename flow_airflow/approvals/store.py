"""Approvals in the Airflow metadata database: the HITL details of the flow gates, and decisions on them.

Runs in the api-server. A decision is written the way Airflow's own HITL endpoint writes one
(same row locks, same resume event), so the gate cannot tell the two apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select, update

from flow_airflow import run_experiments
from flow_airflow.approvals import APPROVE, REJECT, SENSOR, page_path
from flow_airflow.common import ids

if TYPE_CHECKING:
    from collections.abc import Collection

    from sqlalchemy.orm import Session

HISTORY = 50  # decisions shown
EXPERIMENTS_SHOWN = 500  # experiments before a gate shown on its page (as many as the gate keeps)


@dataclass
class Approval:
    """One gate of one run, with its request and (when there is one) its decision."""

    dag_id: str
    run_id: str
    task_id: str
    flow: str
    task: str
    approvers: list[str]
    since: datetime
    state: str  # the gate's task instance state
    run_state: str
    decision: str | None = None  # "approved" / "rejected"
    decided_by: str | None = None
    decided_at: datetime | None = None
    ended_at: datetime | None = None
    experiments: list[dict[str, Any]] = field(default_factory=list)

    @property
    def path(self) -> str:
        return page_path(self.dag_id, self.run_id, self.task_id)

    @property
    def pending(self) -> bool:
        return self.decision is None and self.state not in _OVER

    @property
    def status(self) -> str:
        if self.decision:
            return self.decision
        return "pending approval" if self.pending else f"closed without a decision (gate {self.state})"

    def as_json(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id, "run_id": self.run_id, "task_id": self.task_id, "flow": self.flow,
            "task": self.task, "approvers": self.approvers, "since": _iso(self.since), "state": self.state,
            "run_state": self.run_state, "status": self.status, "decision": self.decision,
            "decided_by": self.decided_by, "decided_at": _iso(self.decided_at), "url": self.path,
            "experiments": self.experiments,
        }


class DecisionRefused(Exception):
    """A decision that is not applied; ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


_OVER = frozenset({"success", "failed", "skipped", "upstream_failed", "removed", "None"})  # gate states: no decision


def pending(session: Session, dag_ids: Collection[str] | None = None) -> list[Approval]:
    """Gates waiting for a decision, oldest first."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance as TI

    query = _query(dag_ids).where(HITLDetail.responded_at.is_(None), TI.state.is_not(None),
                                  TI.state.not_in(sorted(_OVER - {"None"})))
    return _approvals(session, session.scalars(query.order_by(HITLDetail.created_at)).unique().all())


def history(session: Session, dag_ids: Collection[str] | None = None, limit: int = HISTORY) -> list[Approval]:
    """Decided gates, and gates that ended without a decision, newest first."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance as TI

    query = _query(dag_ids).where(or_(HITLDetail.responded_at.is_not(None), TI.state.in_(sorted(_OVER - {"None"}))))
    query = query.order_by(func.coalesce(HITLDetail.responded_at, TI.end_date, HITLDetail.created_at).desc())
    return _approvals(session, session.scalars(query.limit(limit)).unique().all())


def get(session: Session, dag_id: str, run_id: str, task_id: str, *, experiments: bool = True) -> Approval | None:
    """One gate, or None when there is no such gate or it has not asked yet."""
    from airflow.models.taskinstance import TaskInstance as TI

    query = _query(None).where(TI.dag_id == dag_id, TI.run_id == run_id, TI.task_id == task_id, TI.map_index == -1)
    found = _approvals(session, session.scalars(query).unique().all(), experiments=experiments)
    return found[0] if found else None


def of_run(session: Session, dag_id: str, run_id: str) -> list[Approval]:
    """Every gate of one run that has asked for a decision."""
    from airflow.models.taskinstance import TaskInstance as TI

    return _approvals(session, session.scalars(_query([dag_id]).where(TI.run_id == run_id)).unique().all())


def decide(session: Session, *, dag_id: str, run_id: str, task_id: str, user_id: str, username: str,
           approve: bool) -> Approval:
    """Record ``username``'s decision on a gate and resume the gate; refuse with 403, 404 or 409."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.log import Log
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.trigger import handle_event_submit
    from airflow.triggers.base import TriggerEvent
    from airflow.utils.state import TaskInstanceState

    # Lock order as in Airflow's own HITL endpoint: task instance first, then its HITL row.
    ti = session.scalar(
        select(TI)
        .where(TI.dag_id == dag_id, TI.run_id == run_id, TI.task_id == task_id, TI.map_index == -1)
        .with_for_update(of=TI)
    )
    detail = None
    if ti is not None and ti.operator == SENSOR:
        detail = session.scalar(select(HITLDetail).where(HITLDetail.ti_id == ti.id).with_for_update(of=HITLDetail))
    if ti is None or detail is None:
        raise DecisionRefused(404, f"No approval {dag_id} / {run_id} / {task_id} (not a gate, or not waiting yet)")
    approvers = [a["name"] for a in detail.assignees or []]
    task = _flow_task(ti)
    if username not in approvers:
        raise DecisionRefused(
            403, f"Only {' or '.join(approvers)} may decide on '{task}'; you are signed in as {username}."
        )
    if detail.response_received:
        by = (detail.responded_by or {}).get("name", "?")
        verb = "approved" if detail.chosen_options == [APPROVE] else "rejected"
        raise DecisionRefused(409, f"'{task}' was already {verb} by {by} at {_iso(detail.responded_at)}.")
    if str(ti.state) in _OVER:
        raise DecisionRefused(409, f"'{task}' no longer waits for a decision (its gate is {ti.state}).")

    # Decided once, on every database: the row changes only while it has no response. Row locks
    # (above) order deciders on PostgreSQL and MySQL; SQLite ignores them, and this guard is what
    # makes the second of two simultaneous decisions a 409 there.
    applied = session.execute(
        update(HITLDetail)
        .where(HITLDetail.ti_id == ti.id, HITLDetail.responded_at.is_(None))
        .values(responded_by={"id": user_id, "name": username}, responded_at=datetime.now(UTC),
                chosen_options=[APPROVE if approve else REJECT], params_input={})
        .execution_options(synchronize_session=False)
    ).rowcount
    session.refresh(detail)
    if applied != 1:
        by = (detail.responded_by or {}).get("name", "?")
        verb = "approved" if detail.chosen_options == [APPROVE] else "rejected"
        raise DecisionRefused(409, f"'{task}' was already {verb} by {by} at {_iso(detail.responded_at)}.")
    if ti.state in (TaskInstanceState.DEFERRED, TaskInstanceState.AWAITING_INPUT):
        # Resume the gate now (state scheduled, the decision as its event), as Airflow's endpoint does.
        handle_event_submit(TriggerEvent(detail.as_resume_event_payload()), task_instance=ti, session=session)
    session.add(Log(
        event="flow_airflow.approve" if approve else "flow_airflow.reject", task_instance=ti,
        owner=username, owner_display_name=username, extra=json.dumps({"flow_task": task}),
    ))
    session.flush()
    approval = get(session, dag_id, run_id, task_id, experiments=False)
    assert approval is not None
    return approval


def _query(dag_ids: Collection[str] | None) -> Any:
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance as TI

    query = select(HITLDetail).join(TI, HITLDetail.ti_id == TI.id).where(TI.operator == SENSOR)
    if dag_ids is not None:
        query = query.where(TI.dag_id.in_(sorted(dag_ids)))
    return query


def _approvals(session: Session, details: Any, *, experiments: bool = False) -> list[Approval]:
    from airflow.models.dag import DagModel

    details = list(details)
    dag_ids = {d.task_instance.dag_id for d in details}
    names = dict(session.execute(
        select(DagModel.dag_id, DagModel.dag_display_name).where(DagModel.dag_id.in_(sorted(dag_ids)))
    ).all()) if dag_ids else {}
    result = []
    for detail in details:
        ti = detail.task_instance
        approval = Approval(
            dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, flow=names.get(ti.dag_id) or ti.dag_id,
            task=_flow_task(ti), approvers=[a["name"] for a in detail.assignees or []], since=detail.created_at,
            state=str(ti.state), run_state=str(ti.dag_run.state) if ti.dag_run else "", ended_at=ti.end_date,
        )
        if detail.response_received:
            approval.decision = "approved" if detail.chosen_options == [APPROVE] else "rejected"
            approval.decided_by = (detail.responded_by or {}).get("name")
            approval.decided_at = detail.responded_at
        if experiments:
            approval.experiments = experiments_before(session, ti)
        result.append(approval)
    return result


def experiments_before(session: Session, ti: Any) -> list[dict[str, Any]]:
    """Task, label, params and tags of every experiment upstream of the gate ``ti`` that left a record,
    in the DAG's task order (the run's version of the DAG says which tasks are upstream)."""
    from airflow.models.dagbag import DBDagBag

    dag = DBDagBag().get_dag(ti.dag_version_id, session=session) if ti.dag_version_id else None
    if dag is None or ti.task_id not in dag.task_dict:
        return []
    upstream = dag.get_task(ti.task_id).get_flat_relative_ids(upstream=True)
    titles = {t: dag.get_task(t).task_display_name for t in dag.task_ids
              if t in upstream and ids.is_role(t, ids.RUN)}
    found = [
        {"task": e.record.get("task", ""), "label": e.record.get("label", ""), "params": e.params, "tags": e.tags}
        for e in run_experiments.of_run(session, ti.dag_id, ti.run_id, titles) if e.record is not None
    ]
    return found[:EXPERIMENTS_SHOWN]


def _flow_task(ti: Any) -> str:
    """The flow task's title: the gate is displayed as '<title>: approval'."""
    name = ti.task_display_name or ti.task_id
    return name.removesuffix(": approval")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None
