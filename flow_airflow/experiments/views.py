"""The experiments page and its JSON API: a router of the plugin's web app (``flow_airflow.web``).

Every route resolves the caller with Airflow's own login (``flow_airflow.web.auth``), as the approvals
page does: unauthenticated, 401; without read access to the flow's DAG, 403; no such run, 404.
The page is a shell that its script (``static/experiments.js``) fills from the JSON API, page by page.
Triggering a run goes to Airflow's own REST API (which checks the caller again); stopping one to
``POST /api/experiments/<dag_id>/<run_id>/stop`` (``api.stop_run``: finished experiments stay as they
ended, unlike Airflow's ``PATCH state=failed``). The page offers both to users whom Airflow's auth
manager lets edit the DAG's runs.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from flow_airflow.aborting import NotAbortable
from flow_airflow.experiments import api, compare
from flow_airflow.web.auth import Caller, CallerDep
from flow_airflow.web.pages import error, page, session, signed_out

router = APIRouter()
RunIds = Annotated[list[str] | None, Query(max_length=compare.MAX_RUNS)]  # ?run=a&run=b: the runs compared
TITLE = "Experiments"


def _not_allowed(request: Request, who: Caller, dag_id: str) -> HTMLResponse:
    return page(request, "message.html", who, status_code=403, title="Not allowed",
                text=f"You ({who.name}) may not see the runs of {dag_id}.")


@router.get("/experiments", response_class=HTMLResponse)
def runs_page(request: Request, who: CallerDep) -> HTMLResponse:
    """The recent runs of every flow the caller may read, each linked to its experiments page."""
    if who.user is None:
        return signed_out(request, TITLE)
    with session() as db:
        runs = api.recent_runs(db, who.readable_dag_ids(db), best=True)
    return page(request, "experiment_runs.html", who, runs=runs, dag_id=None)


@router.get("/experiments/{dag_id}", response_class=HTMLResponse)
def flow_page(request: Request, dag_id: str, who: CallerDep) -> HTMLResponse:
    """A flow across its recent runs: every experiment of the chosen runs (``?run=...`` or ``?last=N``),
    compared in one table and its charts (filled from ``GET /api/experiments/<dag_id>``)."""
    if who.user is None:
        return signed_out(request, TITLE)
    with session() as db:
        if dag_id not in who.readable_dag_ids(db):
            return _not_allowed(request, who, dag_id)
        runs = api.recent_runs(db, {dag_id})
    return page(request, "experiments.html", who, dag_id=dag_id, run_id=None, runs=runs,
                may_edit=api.may_edit_runs(who.user, dag_id),
                default_runs=compare.DEFAULT_RUNS, max_runs=compare.MAX_RUNS)


@router.get("/experiments/{dag_id}/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, dag_id: str, run_id: str, who: CallerDep) -> HTMLResponse:
    if who.user is None:
        return signed_out(request, TITLE)
    with session() as db:
        if dag_id not in who.readable_dag_ids(db):
            return _not_allowed(request, who, dag_id)
        found = api.run_exists(db, dag_id, run_id)
    if not found:
        return page(request, "message.html", who, status_code=404, title="No such run",
                    text=f"No run {run_id} of {dag_id}.")
    return page(request, "experiments.html", who, dag_id=dag_id, run_id=run_id,
                may_edit=api.may_edit_runs(who.user, dag_id))


@router.get("/api/experiments/{dag_id}/{run_id}")
def run_experiments(dag_id: str, run_id: str, who: CallerDep, offset: int = Query(0, ge=0),
                    limit: int = Query(200, ge=0, le=api.MAX_LIMIT)) -> JSONResponse:
    """The run and one page of its experiments (see ``flow_airflow.experiments.api``)."""
    if who.user is None:
        return error(401, "Not signed in to Airflow")
    with session() as db:
        if dag_id not in who.readable_dag_ids(db):
            return error(403, f"{who.name} may not see the runs of {dag_id}")
        body = api.run_view(db, dag_id, run_id, offset, limit)
    if body is None:
        return error(404, f"No run {run_id} of {dag_id}")
    return JSONResponse(body)


@router.post("/api/experiments/{dag_id}/{run_id}/stop")
def stop(dag_id: str, run_id: str, who: CallerDep) -> JSONResponse:
    """Stop a running run (``api.stop_run``): ``{"state": "failed", "note": "Stopped by <user> at <time>"}``;
    409 when it has ended."""
    if who.user is None:
        return error(401, "Not signed in to Airflow")
    with session() as db:
        if dag_id not in who.readable_dag_ids(db):
            return error(403, f"{who.name} may not see the runs of {dag_id}")
        if not api.may_edit_runs(who.user, dag_id):
            return error(403, f"{who.name} may not change the runs of {dag_id}")
        if not api.run_exists(db, dag_id, run_id):
            return error(404, f"No run {run_id} of {dag_id}")
        try:
            note = api.stop_run(db, dag_id, run_id, who.user)
        except NotAbortable as refused:
            return error(409, str(refused))
    return JSONResponse({"state": "failed", "note": note})


@router.get("/api/experiments/{dag_id}")
def flow_experiments(dag_id: str, who: CallerDep, run: RunIds = None,
                     last: int = Query(compare.DEFAULT_RUNS, ge=1, le=compare.MAX_RUNS),
                     offset: int = Query(0, ge=0), limit: int = Query(200, ge=0, le=api.MAX_LIMIT)) -> JSONResponse:
    """The flow's chosen runs (``run``, repeated; else the ``last`` newest) and one page of their
    experiments (see ``flow_airflow.experiments.compare``)."""
    if who.user is None:
        return error(401, "Not signed in to Airflow")
    with session() as db:
        if dag_id not in who.readable_dag_ids(db):
            return error(403, f"{who.name} may not see the runs of {dag_id}")
        try:
            body = compare.flow_view(db, dag_id, run or [], last, offset, limit)
        except compare.UnknownRuns as missing:
            return error(404, f"No run {', '.join(missing.args[0])} of {dag_id}")
    return JSONResponse(body)


@router.get("/api/experiments/{dag_id}/{run_id}/artifacts/{task_id}/{index}/{name:path}")
def artifact(dag_id: str, run_id: str, task_id: str, index: int, name: str, who: CallerDep) -> Response:
    """One stored output file of an experiment, as a download."""
    if who.user is None:
        return error(401, "Not signed in to Airflow")
    with session() as db:
        if dag_id not in who.readable_dag_ids(db):
            return error(403, f"{who.name} may not see the runs of {dag_id}")
        path = api.artifact_file(db, dag_id, run_id, task_id, index, name)
    if path is None:
        return error(404, f"No stored file {name} of {task_id} #{index} in run {run_id}")
    return FileResponse(path, filename=path.name)
