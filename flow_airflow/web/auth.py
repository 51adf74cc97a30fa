"""Who asks: the authentication dependency of every page, with Airflow's own login.

Airflow does not authenticate plugin routes: each route resolves the caller from Airflow's
JWT (``Authorization: Bearer`` or the UI's ``_token`` cookie) with the auth manager, so the
login is the UI's. A route answers 401 when ``who.user`` is None, and checks what the caller
may read with ``who.readable_dag_ids(session)`` (403 otherwise).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request


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
        """The DAGs whose runs the caller may see (read access, as Airflow's own API checks it)."""
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
