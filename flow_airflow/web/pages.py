"""What a page's router answers with: an HTML page on the base template, a JSON error, the 401 page.

Templates are looked up in ``web/templates`` (``base.html``, ``message.html``) and in the
``templates/`` folder beside each page's router module (see ``flow_airflow.web``).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape

from flow_airflow.web import PAGES, URL_PREFIX
from flow_airflow.web.auth import Caller


def _templates() -> Jinja2Templates:
    folders = [Path(__file__).parent / "templates"]
    for each in PAGES:
        module = importlib.import_module(each.module)
        folders.append(Path(str(module.__file__)).parent / "templates")
    loader = ChoiceLoader([FileSystemLoader(folder) for folder in folders])
    return Jinja2Templates(env=Environment(loader=loader, autoescape=select_autoescape()))


_TEMPLATES: Jinja2Templates | None = None


def templates() -> Jinja2Templates:
    """The pages' templates, found once (the page modules are imported by then)."""
    global _TEMPLATES
    if _TEMPLATES is None:
        _TEMPLATES = _templates()
    return _TEMPLATES


def session() -> Any:
    """A metadata DB session (a context manager that commits on leaving), as Airflow's own code opens one."""
    from airflow.utils.session import create_session

    return create_session()


def error(status: int, message: str) -> JSONResponse:
    """A JSON API's refusal: ``{"detail": message}``, as FastAPI's own errors read."""
    return JSONResponse({"detail": message}, status_code=status)


def airflow_root(request: Request) -> str:
    """The api-server's own root path (the plugin's app is mounted at ``URL_PREFIX`` below it)."""
    return str(request.scope.get("root_path", "")).removesuffix(URL_PREFIX)


def page(request: Request, template: str, who: Caller, status_code: int = 200, **values: Any) -> HTMLResponse:
    """``template`` rendered with ``values`` and what ``base.html`` needs: the user, the Airflow root
    (``root``, for links to Airflow's pages), the plugin's (``prefix``) and the navigation (``pages``)."""
    root = airflow_root(request)
    context = {"user": who.name, "root": root, "prefix": root + URL_PREFIX, "pages": PAGES,
               "here": request.url.path, **values}
    return templates().TemplateResponse(request, template, context, status_code=status_code)


def signed_out(request: Request, what: str) -> HTMLResponse:
    """The 401 page: ``what`` (e.g. "Approvals") uses Airflow's login, with a link to it that comes back here."""
    from airflow.api_fastapi.app import get_auth_manager

    login = get_auth_manager().get_url_login(next_url=str(request.url))
    return page(request, "message.html", Caller(None), status_code=401, title="Not signed in",
                text=f"{what} use Airflow's login: sign in (the same login as the Airflow UI) to see them.",
                login=login)
