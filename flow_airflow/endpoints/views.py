"""The endpoints page and its JSON API: a router of the plugin's web app (``flow_airflow.web``).

Every route resolves the caller with Airflow's own login (``flow_airflow.web.auth``), as the approvals
and experiments pages do: unauthenticated, 401; an endpoint is seen by those who may read the runs
of the flow (DAG) that deployed it; no such endpoint, or one the caller may not see, 404 with the same
answer (a user who may read nothing cannot tell which names exist). Trying an endpoint needs
read access too (the page sends the request with the endpoint's key, on the server side: the key
never reaches the browser). Stopping and rolling back need what stopping a run needs on the
experiments page: Airflow's auth manager letting the caller edit the DAG's runs. Changes need a JSON
body or a bearer token (the web app's rule, :func:`flow_airflow.web.app.json_or_token`), which a form
of another site or another port of the same host cannot send.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from flow_airflow.endpoints import api
from flow_airflow.endpoints.store import Endpoint, EndpointError
from flow_airflow.web.auth import Caller, CallerDep
from flow_airflow.web.pages import error, page, session, signed_out

router = APIRouter()
TITLE = "Endpoints"


def _readable(who: Caller) -> list[Endpoint]:
    with session() as db:
        readable = who.readable_dag_ids(db)
    return [e for e in api.store().all() if e.dag_id in readable]


def _may_edit(who: Caller, endpoint: Endpoint) -> bool:
    from flow_airflow.experiments.api import may_edit_runs

    return may_edit_runs(who.user, endpoint.dag_id)


@router.get("/endpoints", response_class=HTMLResponse)
def endpoints_page(request: Request, who: CallerDep) -> HTMLResponse:
    """Every endpoint the caller may see, probed now, with a try-it form, the curl line, stop and roll back."""
    if who.user is None:
        return signed_out(request, TITLE)
    endpoints = _readable(who)
    described = api.describe_all(endpoints)
    shown = [{**d, "may_edit": _may_edit(who, e)} for e, d in zip(endpoints, described, strict=True)]
    return page(request, "endpoints.html", who, endpoints=shown)


def _find(who: Caller, name: str, edit: bool = False) -> Endpoint | JSONResponse:
    """The endpoint ``name`` when the caller may see it (and edit its flow's runs, with ``edit``); else the refusal
    (404 alike for an endpoint that does not exist and one the caller may not see)."""
    if who.user is None:
        return error(401, "Not signed in to Airflow")
    try:
        endpoint = api.store().get(name)
    except EndpointError as e:
        return error(404, str(e))
    with session() as db:
        if endpoint is None or endpoint.dag_id not in who.readable_dag_ids(db):
            return error(404, f"No endpoint {name}")  # the same for one the caller may not see: names stay hidden
    if edit and not _may_edit(who, endpoint):
        return error(403, f"{who.name} may not change the runs of {endpoint.dag_id}")
    return endpoint


@router.get("/api/endpoints")
def list_endpoints(who: CallerDep) -> JSONResponse:
    if who.user is None:
        return error(401, "Not signed in to Airflow")
    return JSONResponse({"endpoints": api.describe_all(_readable(who))})


@router.get("/api/endpoints/{name}")
def show_endpoint(name: str, who: CallerDep) -> JSONResponse:
    found = _find(who, name)
    return found if isinstance(found, JSONResponse) else JSONResponse(api.describe(found))


@router.post("/api/endpoints/{name}/predict")
def try_it(name: str, who: CallerDep, body: Annotated[Any, Body()]) -> JSONResponse:
    """Send ``body`` (``{"input_params": ...}``) to the endpoint with its key: ``{"status", "answer"}``."""
    found = _find(who, name)
    if isinstance(found, JSONResponse):
        return found
    status, answer = api.try_it(found, body)
    return JSONResponse({"status": status, "answer": answer})


@router.get("/api/endpoints/{name}/logs")
def endpoint_logs(name: str, who: CallerDep, lines: int = Query(100, ge=1, le=5000)) -> JSONResponse:
    found = _find(who, name)
    if isinstance(found, JSONResponse):
        return found
    return JSONResponse(api.logs(api.store(), found, lines))


KEY_EVENT = "flow_airflow.endpoint_key_revealed"  # the audit log's event (Airflow's Browse > Audit Log)


@router.post("/api/endpoints/{name}/key")
def reveal_key(name: str, who: CallerDep) -> JSONResponse:
    """The endpoint's API key, for a caller who may edit its flow's runs: ``{"key", "header", "variable"}``.

    Each reveal is written to Airflow's audit log (event ``flow_airflow.endpoint_key_revealed``, the caller
    as its owner, the DAG and the endpoint named); an open endpoint has no key (409).
    """
    from airflow.models.log import Log

    from flow_airflow.endpoints import keys

    found = _find(who, name, edit=True)
    if isinstance(found, JSONResponse):
        return found
    if found.open:
        return error(409, f"endpoint {name} is open: it needs no key")
    key = keys.get(name)
    if key is None:
        return error(409, f"endpoint {name} has no key yet (it is made by its first deploy)")
    with session() as db:
        db.add(Log(event=KEY_EVENT, owner=who.name, dag_id=found.dag_id,
                   extra=f"endpoint {name}: key ({keys.variable_name(name)}) shown on the endpoints page"))
    return JSONResponse({"key": key, "header": keys.HEADER, "variable": keys.variable_name(name)})


@router.post("/api/endpoints/{name}/stop")
def stop(name: str, who: CallerDep) -> JSONResponse:
    from flow_airflow.endpoints.rollout import stop_endpoint

    found = _find(who, name, edit=True)
    if isinstance(found, JSONResponse):
        return found
    return JSONResponse(api.describe(stop_endpoint(api.store(), name, f"{who.name} (endpoints page)")))


@router.post("/api/endpoints/{name}/rollback")
def rollback(name: str, who: CallerDep) -> JSONResponse:
    from flow_airflow.endpoints.rollout import RolloutFailed, roll_back

    found = _find(who, name, edit=True)
    if isinstance(found, JSONResponse):
        return found
    try:
        endpoint = roll_back(api.store(), name, f"{who.name} (endpoints page)")
    except EndpointError as e:
        return error(409, str(e))
    except RolloutFailed as e:
        return error(502, str(e))
    return JSONResponse(api.describe(endpoint))
