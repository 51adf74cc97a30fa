"""The approvals page and its JSON API: a FastAPI app the plugin mounts at ``/flow-airflow`` in the api-server.

Airflow does not authenticate plugin routes: every route here resolves the caller from Airflow's
own JWT (``Authorization: Bearer`` or the UI's ``_token`` cookie) with the auth manager, so the
login is the UI's. Unauthenticated: 401. Seeing approvals needs read access to the flow's DAG;
deciding needs that and to be one of the listed approvers (403 otherwise). A gate is decided once (409).
Decisions are JSON posts only, which a cross-site form cannot send (with the cookie's SameSite=Lax).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from flow_airflow.approvals import URL_PREFIX, store

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")


class Decision(BaseModel):
    decision: Literal["approve", "reject"]


class Caller:
    """Who is asking: the user Airflow's auth manager makes of the request's token, if any."""

    def __init__(self, user: Any | None):
        self.user = user

    @property
    def name(self) -> str:
        return self.user.get_name() if self.user is not None else ""

    @property
    def id(self) -> str:
        return str(self.user.get_id()) if self.user is not None else ""

    def readable_dag_ids(self, session: Any) -> set[str]:
        from airflow.api_fastapi.app import get_auth_manager

        return get_auth_manager().get_authorized_dag_ids(user=self.user, method="GET", session=session)


async def caller(request: Request) -> Caller:
    """The caller, from a bearer token or else the UI's cookie, as Airflow's own API resolves it."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    if not token:
        return Caller(None)
    try:
        return Caller(await get_auth_manager().get_user_from_token(token))
    except Exception:  # expired, forged or revoked: not signed in
        return Caller(None)


CallerDep = Annotated[Caller, Depends(caller)]


def create_app() -> FastAPI:
    app = FastAPI(title="flow-airflow approvals", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", include_in_schema=False)
    def root(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/approvals")

    @app.get("/approvals", response_class=HTMLResponse)
    def approvals_page(request: Request, who: CallerDep) -> HTMLResponse:
        if who.user is None:
            return _signed_out(request)
        with _session() as session:
            readable = who.readable_dag_ids(session)
            waiting = store.pending(session, readable)
            done = store.history(session, readable)
        return _page(request, "approvals.html", who, pending=waiting, history=done)

    @app.get("/approvals/{dag_id}/{run_id}/{task_id}", response_class=HTMLResponse)
    def approval_page(request: Request, dag_id: str, run_id: str, task_id: str, who: CallerDep) -> HTMLResponse:
        if who.user is None:
            return _signed_out(request)
        with _session() as session:
            if dag_id not in who.readable_dag_ids(session):
                return _page(request, "message.html", who, status_code=403, title="Not allowed",
                             text=f"You ({who.name}) may not see the runs of {dag_id}.")
            approval = store.get(session, dag_id, run_id, task_id)
        if approval is None:
            return _page(request, "message.html", who, status_code=404, title="No such approval",
                         text=f"No approval {dag_id} / {run_id} / {task_id}: not a gate, or it has not asked yet.")
        return _page(request, "approval.html", who, approval=approval, may_decide=who.name in approval.approvers)

    @app.get("/api/approvals")
    def list_approvals(who: CallerDep) -> JSONResponse:
        if who.user is None:
            return _error(401, "Not signed in to Airflow")
        with _session() as session:
            readable = who.readable_dag_ids(session)
            body = {"pending": [a.as_json() for a in store.pending(session, readable)],
                    "history": [a.as_json() for a in store.history(session, readable)]}
        return JSONResponse(body)

    @app.get("/api/approvals/{dag_id}/{run_id}/{task_id}")
    def show_approval(dag_id: str, run_id: str, task_id: str, who: CallerDep) -> JSONResponse:
        if who.user is None:
            return _error(401, "Not signed in to Airflow")
        with _session() as session:
            if dag_id not in who.readable_dag_ids(session):
                return _error(403, f"{who.name} may not see the runs of {dag_id}")
            approval = store.get(session, dag_id, run_id, task_id)
        if approval is None:
            return _error(404, f"No approval {dag_id} / {run_id} / {task_id}")
        return JSONResponse(approval.as_json())

    @app.post("/api/approvals/{dag_id}/{run_id}/{task_id}")
    def decide(dag_id: str, run_id: str, task_id: str, body: Decision, who: CallerDep) -> JSONResponse:
        if who.user is None:
            return _error(401, "Not signed in to Airflow: sign in to decide")
        try:
            with _session() as session:
                if dag_id not in who.readable_dag_ids(session):  # deciding needs what seeing needs, and more
                    return _error(403, f"{who.name} may not see the runs of {dag_id}")
                approval = store.decide(session, dag_id=dag_id, run_id=run_id, task_id=task_id, user_id=who.id,
                                        username=who.name, approve=body.decision == "approve")
                result = approval.as_json()
        except store.DecisionRefused as refused:
            return _error(refused.status, refused.message)
        return JSONResponse(result)

    return app


def _session() -> Any:
    from airflow.utils.session import create_session

    return create_session()


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


def _airflow_root(request: Request) -> str:
    """The api-server's own root path (this app is mounted at ``URL_PREFIX`` below it)."""
    return str(request.scope.get("root_path", "")).removesuffix(URL_PREFIX)


def _page(request: Request, template: str, who: Caller, status_code: int = 200, **values: Any) -> HTMLResponse:
    root = _airflow_root(request)
    return TEMPLATES.TemplateResponse(
        request, template, {"user": who.name, "root": root, "prefix": root + URL_PREFIX, **values},
        status_code=status_code,
    )


def _signed_out(request: Request) -> HTMLResponse:
    from airflow.api_fastapi.app import get_auth_manager

    login = get_auth_manager().get_url_login(next_url=str(request.url))
    return _page(request, "message.html", Caller(None), status_code=401, title="Not signed in",
                 text="Approvals use Airflow's login: sign in (the same login as the Airflow UI) to see them.",
                 login=login)
