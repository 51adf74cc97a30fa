"""The approvals page and its JSON API: a router of the plugin's web app (``flow_airflow.web``).

Every route resolves the caller with Airflow's own login (``flow_airflow.web.auth``).
Unauthenticated: 401. Seeing approvals needs read access to the flow's DAG; deciding needs
that and to be one of the listed approvers (403 otherwise). A gate is decided once (409).
Decisions are JSON posts only, which a cross-site form cannot send (with the cookie's SameSite=Lax).
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel

from flow_airflow.approvals import store
from flow_airflow.web.auth import CallerDep
from flow_airflow.web.pages import error, page, session, signed_out

router = APIRouter()
TITLE = "Approvals"


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
    if approval is None:
        return page(request, "message.html", who, status_code=404, title="No such approval",
                    text=f"No approval {dag_id} / {run_id} / {task_id}: not a gate, or it has not asked yet.")
    return page(request, "approval.html", who, approval=approval, may_decide=who.name in approval.approvers)


@router.get("/api/approvals")
def list_approvals(who: CallerDep) -> JSONResponse:
    if who.user is None:
        return error(401, "Not signed in to Airflow")
    with session() as db:
        readable = who.readable_dag_ids(db)
        body = {"pending": [a.as_json() for a in store.pending(db, readable)],
                "history": [a.as_json() for a in store.history(db, readable)]}
    return JSONResponse(body)


@router.get("/api/approvals/{dag_id}/{run_id}/{task_id}")
def show_approval(dag_id: str, run_id: str, task_id: str, who: CallerDep) -> JSONResponse:
    if who.user is None:
        return error(401, "Not signed in to Airflow")
    with session() as db:
        if dag_id not in who.readable_dag_ids(db):
            return error(403, f"{who.name} may not see the runs of {dag_id}")
        approval = store.get(db, dag_id, run_id, task_id)
    if approval is None:
        return error(404, f"No approval {dag_id} / {run_id} / {task_id}")
    return JSONResponse(approval.as_json())


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
