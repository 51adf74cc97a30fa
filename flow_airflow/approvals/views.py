"""The approvals page and its JSON API: a router of the plugin's web app (``flow_airflow.web``).

Every route resolves the caller with Airflow's own login (``flow_airflow.web.auth``).
Unauthenticated: 401. Seeing approvals needs read access to the flow's DAG; deciding needs
that and to be one of the listed approvers (403 otherwise). A gate is decided once (409).
Decisions are JSON posts only, which a cross-site form cannot send (with the cookie's SameSite=Lax).
The experiments before a gate are shown (page and API alike) by :func:`shown_experiments`: those that
passed the gated task's condition first, marked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel

from flow_airflow import run_experiments
from flow_airflow.approvals import store
from flow_airflow.common import ids
from flow_airflow.run_experiments import ExperimentInstance, FlowTask
from flow_airflow.web.auth import CallerDep
from flow_airflow.web.pages import error, page, session, signed_out

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

router = APIRouter()
TITLE = "Approvals"


def shown_experiments(session: Session, approval: store.Approval,
                      known: dict[str, list[FlowTask]] | None = None) -> list[dict[str, Any]]:
    """The experiments before the gate ``approval``, as its page shows them: every experiment of the
    tasks upstream of the gated task that left a record, in the flow's order, those that passed the
    gated task's condition first (cnvrg: what the approver is asked about).

    :returns: ``{"task", "index", "label", "params", "tags", "passed"}`` each; ``passed`` is True for an
        experiment the gated task's condition let through, False for one it left out, None where no
        condition chose (the task has none, or the experiment is of a task further up).
    :param known: the flow tasks of DAGs read before (dag id -> them), filled in here: a list of
        approvals reads each DAG once.
    """
    known = {} if known is None else known
    if approval.dag_id not in known:
        known[approval.dag_id] = run_experiments.flow_tasks(session, approval.dag_id)
    tasks = known[approval.dag_id]
    by_id = {t.task_id: t for t in tasks}
    gated = by_id.get(ids.run_task_id(ids.group_of(approval.task_id)))
    if gated is None:  # the DAG is no longer serialized: what the gate recorded
        return [{**e, "index": None, "passed": None} for e in approval.experiments]
    upstream: set[str] = set()
    todo = list(gated.parents)
    while todo:
        task_id = todo.pop()
        if task_id not in upstream:
            upstream.add(task_id)
            todo += by_id[task_id].parents if task_id in by_id else []
    titles = {t.task_id: t.title for t in tasks if t.task_id in upstream}
    choices = run_experiments.condition_choices(session, approval.dag_id, approval.run_id).get(gated.condition or "")
    parents = {by_id[p].title for p in gated.parents if p in by_id}

    def passed(e: ExperimentInstance) -> bool | None:
        if gated.condition is None or e.task not in parents:
            return None
        return choices is not None and e.index in choices.get(e.task, [])

    found = [{"task": e.task, "index": e.index, "label": (e.record or {}).get("label", ""), "params": e.params,
              "tags": e.tags, "passed": passed(e)}
             for e in run_experiments.of_run(session, approval.dag_id, approval.run_id, titles) if e.record is not None]
    found.sort(key=lambda e: e["passed"] is not True)  # stable: the flow's order within each part
    return found[:store.EXPERIMENTS_SHOWN]


def _as_json(session: Session, approval: store.Approval,
             known: dict[str, list[FlowTask]] | None = None) -> dict[str, Any]:
    return {**approval.as_json(), "experiments": shown_experiments(session, approval, known)}


class Decision(BaseModel):
    decision: Literal["approve", "reject"]


@router.get("/approvals", response_class=HTMLResponse)
def approvals_page(request: Request, who: CallerDep) -> HTMLResponse:
    if who.user is None:
        return signed_out(request, TITLE)
    with session() as db:
        readable = who.readable_dag_ids(db)
        waiting = store.pending(db, readable)
        done = store.history(db, readable)
    return page(request, "approvals.html", who, pending=waiting, history=done)


@router.get("/approvals/{dag_id}/{run_id}/{task_id}", response_class=HTMLResponse)
def approval_page(request: Request, dag_id: str, run_id: str, task_id: str, who: CallerDep) -> HTMLResponse:
    if who.user is None:
        return signed_out(request, TITLE)
    with session() as db:
        if dag_id not in who.readable_dag_ids(db):
            return page(request, "message.html", who, status_code=403, title="Not allowed",
                        text=f"You ({who.name}) may not see the runs of {dag_id}.")
        approval = store.get(db, dag_id, run_id, task_id)
        shown = shown_experiments(db, approval) if approval is not None else []
    if approval is None:
        return page(request, "message.html", who, status_code=404, title="No such approval",
                    text=f"No approval {dag_id} / {run_id} / {task_id}: not a gate, or it has not asked yet.")
    return page(request, "approval.html", who, approval=approval, experiments=shown,
                passed=sum(e["passed"] is True for e in shown), may_decide=who.name in approval.approvers)


@router.get("/api/approvals")
def list_approvals(who: CallerDep) -> JSONResponse:
    if who.user is None:
        return error(401, "Not signed in to Airflow")
    with session() as db:
        readable = who.readable_dag_ids(db)
        known: dict[str, list[FlowTask]] = {}
        body = {"pending": [_as_json(db, a, known) for a in store.pending(db, readable)],
                "history": [_as_json(db, a, known) for a in store.history(db, readable)]}
    return JSONResponse(body)


@router.get("/api/approvals/{dag_id}/{run_id}/{task_id}")
def show_approval(dag_id: str, run_id: str, task_id: str, who: CallerDep) -> JSONResponse:
    if who.user is None:
        return error(401, "Not signed in to Airflow")
    with session() as db:
        if dag_id not in who.readable_dag_ids(db):
            return error(403, f"{who.name} may not see the runs of {dag_id}")
        approval = store.get(db, dag_id, run_id, task_id)
        body = _as_json(db, approval) if approval is not None else None
    if body is None:
        return error(404, f"No approval {dag_id} / {run_id} / {task_id}")
    return JSONResponse(body)


@router.post("/api/approvals/{dag_id}/{run_id}/{task_id}")
def decide(dag_id: str, run_id: str, task_id: str, body: Decision, who: CallerDep) -> JSONResponse:
    if who.user is None:
        return error(401, "Not signed in to Airflow: sign in to decide")
    try:
        with session() as db:
            if dag_id not in who.readable_dag_ids(db):  # deciding needs what seeing needs, and more
                return error(403, f"{who.name} may not see the runs of {dag_id}")
            approval = store.decide(db, dag_id=dag_id, run_id=run_id, task_id=task_id, user_id=who.id,
                                    username=who.name, approve=body.decision == "approve")
            result = approval.as_json()
    except store.DecisionRefused as refused:
        return error(refused.status, refused.message)
    return JSONResponse(result)
