"""The REST (``/api/v2``) side of the e2e harness: sign-in, calls, and waits for DAGs and runs.

:class:`AirflowClient` is mixed into :class:`tests.e2e.server.AirflowServer`; it needs the
server's ``options`` (users), ``base_url``, ``api_url`` and ``log_tail()``. Every endpoint is
checked against the installed Airflow 3.3 source (see the notes at each method).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from tests.e2e.server import ServerOptions, User

# DagRun states that end a run (airflow/utils/state.py: DagRunState).
FINISHED_RUN_STATES = frozenset({"success", "failed"})

# Keys every task log line repeats (TI identity, call site); left out of task_log() text.
_LOG_NOISE_KEYS = frozenset(
    {
        "event",
        "timestamp",
        "level",
        "logger",
        "sources",
        "filename",
        "lineno",
        "ti_id",
        "run_id",
        "dag_id",
        "task_id",
        "map_index",
        "try_number",
    }
)


def _log_text_from_content(content: list[Any]) -> str:
    """Turn ``TaskInstancesLogResponse.content`` (structured messages or plain lines) into text."""
    lines = []
    for entry in content:
        if isinstance(entry, str):
            lines.append(entry)
            continue
        event = entry.get("event", "")
        extras = {k: v for k, v in entry.items() if k not in _LOG_NOISE_KEYS}
        level = entry.get("level")
        prefix = f"[{level}] " if level else ""
        if "sources" in entry and not event:
            # The "::group::Log message source details" header carries the file list.
            lines.append(f"{prefix}sources: {', '.join(entry['sources'])}")
            continue
        suffix = " " + " ".join(f"{k}={v}" for k, v in extras.items()) if extras else ""
        lines.append(f"{prefix}{event}{suffix}")
    return "\n".join(lines)


class AirflowServerError(AssertionError):
    """Raised when the server does not reach an expected state in time."""


class AirflowClient:
    """A small REST client for a running ``airflow standalone``, one cached session per user."""

    options: ServerOptions
    base_url: str
    api_url: str

    def __init__(self) -> None:
        self._sessions: dict[str, httpx.Client] = {}

    def log_tail(self, lines: int = 120) -> str:
        raise NotImplementedError  # the server's standalone log

    def close_sessions(self) -> None:
        for client in self._sessions.values():
            client.close()
        self._sessions.clear()

    # ---- auth ---------------------------------------------------------------------------------
    def token_for(self, username: str, password: str | None = None) -> str:
        """JWT for a simple-auth-manager user: ``POST /auth/token`` with JSON {username, password}.

        (api_fastapi/auth/managers/simple/routes/login.py; returns 201 {"access_token": ...}).
        """
        if password is None:
            password = next((u.secret for u in self.options.users if u.username == username), username)
        resp = httpx.post(f"{self.base_url}/auth/token", json={"username": username, "password": password}, timeout=30)
        if resp.status_code != 201:
            raise AirflowServerError(f"login as {username!r} failed: {resp.status_code} {resp.text}")
        return resp.json()["access_token"]

    def _login(self, user: User) -> httpx.Client:
        token = self.token_for(user.username, user.secret)
        return httpx.Client(base_url=self.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)

    def session_for(self, username: str, password: str | None = None) -> httpx.Client:
        """An ``httpx.Client`` (base_url = /api/v2) logged in as ``username``; cached per user."""
        if username not in self._sessions:
            token = self.token_for(username, password)
            self._sessions[username] = httpx.Client(
                base_url=self.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
            )
        return self._sessions[username]

    @property
    def session(self) -> httpx.Client:
        """Client for the first configured user (admin by default). Paths are relative to /api/v2."""
        return self.session_for(self.options.users[0].username)

    def api(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        """Call ``/api/v2{path}`` as the default user; assert the status; return parsed JSON."""
        resp = self.session.request(method, path, **kwargs)
        if resp.status_code not in ok:
            raise AirflowServerError(f"{method} {path} -> {resp.status_code}: {resp.text}")
        if not resp.content:
            return None
        return resp.json()

    # ---- dags ---------------------------------------------------------------------------------
    def get_dag(self, dag_id: str) -> dict[str, Any] | None:
        """``GET /api/v2/dags/{dag_id}`` (routes/public/dags.py); None on 404."""
        resp = self.session.get(f"/dags/{dag_id}")
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise AirflowServerError(f"GET /dags/{dag_id} -> {resp.status_code}: {resp.text}")
        return resp.json()

    def list_dags(self) -> list[dict[str, Any]]:
        return self._paginate("/dags", "dags")

    def wait_for_dag(
        self,
        dag_id: str,
        timeout: float = 60,
        *,
        unpause: bool = True,
        parsed_after: datetime | str | None = None,
    ) -> dict[str, Any]:
        """Poll until the DAG exists and is not stale, then unpause it (``PATCH /dags/{id}``).

        ``parsed_after``: also require ``last_parsed_time`` to be newer than this (aware datetime
        or ISO string) -- use after changing a DAG file, with ``utcnow()`` taken before the change.
        """
        if isinstance(parsed_after, str):
            parsed_after = _parse_ts(parsed_after)
        deadline = time.monotonic() + timeout
        dag = None
        while time.monotonic() < deadline:
            dag = self.get_dag(dag_id)
            if (
                dag is not None
                and not dag["is_stale"]
                and (
                    parsed_after is None
                    or (dag["last_parsed_time"] and _parse_ts(dag["last_parsed_time"]) > parsed_after)
                )
            ):
                if unpause and dag["is_paused"]:
                    # DAGPatchBody = {is_paused: bool}; update_mask may only be ["is_paused"].
                    dag = self.api(
                        "PATCH",
                        f"/dags/{dag_id}",
                        params={"update_mask": "is_paused"},
                        json={"is_paused": False},
                    )
                return dag
            time.sleep(0.5)
        raise AirflowServerError(
            f"DAG {dag_id!r} not available after {timeout}s (last: {dag!r})\n"
            f"import errors: {json.dumps(self.import_errors(), indent=1)}\n{self.log_tail(60)}"
        )

    def import_errors(self) -> list[dict[str, Any]]:
        """``GET /api/v2/importErrors``: [{import_error_id, filename, bundle_name, stack_trace, ...}]."""
        return self._paginate("/importErrors", "import_errors")

    def wait_for_import_error(self, filename: str, timeout: float = 60) -> dict[str, Any]:
        """Poll until an import error whose ``filename`` ends with ``filename`` shows up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for err in self.import_errors():
                if err["filename"].endswith(filename):
                    return err
            time.sleep(0.5)
        raise AirflowServerError(f"no import error for {filename!r} after {timeout}s\n{self.log_tail(60)}")

    # ---- runs ---------------------------------------------------------------------------------
    def trigger(
        self,
        dag_id: str,
        conf: dict[str, Any] | None = None,
        *,
        run_id: str | None = None,
        logical_date: str | None = None,
        note: str | None = None,
    ) -> str:
        """``POST /api/v2/dags/{dag_id}/dagRuns`` -> run_id.

        TriggerDAGRunPostBody (core_api/datamodels/dag_run.py) *requires* ``logical_date`` (may be
        null; run_after defaults to now). 404 if the DAG is missing or stale; 400 if it has import
        errors; 409 if the run_id exists. A paused DAG accepts the run but never schedules it.
        """
        body: dict[str, Any] = {"logical_date": logical_date, "conf": conf or {}}
        if run_id is not None:
            body["dag_run_id"] = run_id
        if note is not None:
            body["note"] = note
        return self.api("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180) -> str:
        """Poll the DagRun until it is ``success`` or ``failed``; return that state."""
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = self.dag_run(dag_id, run_id)["state"]
            if state in FINISHED_RUN_STATES:
                return state
            time.sleep(0.5)
        tis = [(t["task_id"], t["map_index"], t["state"]) for t in self.task_instances(dag_id, run_id)]
        raise AirflowServerError(
            f"run {dag_id}/{run_id} still {state!r} after {timeout}s; TIs: {tis}\n{self.log_tail(80)}"
        )

    def run_dag(self, dag_id: str, conf: dict[str, Any] | None = None, timeout: float = 180) -> tuple[str, str]:
        """trigger + wait_for_run -> (run_id, final state)."""
        run_id = self.trigger(dag_id, conf)
        return run_id, self.wait_for_run(dag_id, run_id, timeout)

    # ---- task instances -----------------------------------------------------------------------
    def task_instances(self, dag_id: str, run_id: str, task_id: str | None = None) -> list[dict[str, Any]]:
        """All TIs of a run, mapped ones included (one row per map_index), sorted by (task_id, map_index).

        Until its upstream has finished, a mapped task shows as a single TI with map_index -1; after
        expansion it is replaced by map_index 0..n-1 (and stays -1 with state "skipped" if n == 0).

        ``GET /api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances`` with offset pagination
        (limit <= [api] maximum_page_limit = 100). Each row has ``task_id``, ``map_index``
        (-1 = unmapped), ``rendered_map_index``, ``state``, ``try_number``, ...
        """
        params = {"task_id": task_id} if task_id else {}
        tis = self._paginate(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", "task_instances", params)
        return sorted(tis, key=lambda t: (t["task_id"], t["map_index"]))

    def ti_states(self, dag_id: str, run_id: str) -> dict[tuple[str, int], str | None]:
        """{(task_id, map_index): state} for a run."""
        return {(t["task_id"], t["map_index"]): t["state"] for t in self.task_instances(dag_id, run_id)}

    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1, key: str = "return_value") -> Any:
        """An XCom value via ``GET .../taskInstances/{task_id}/xcomEntries/{key}?map_index=``.

        Without ``deserialize`` the API returns the stored JSON value as-is (XComResponseNative),
        which is the task's return value for JSON-native types.
        """
        return self.api(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
            params={"map_index": map_index},
        )["value"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1, try_number: int = 1) -> str:
        """Task log text via ``GET .../taskInstances/{task_id}/logs/{try_number}?map_index=&full_content=``.

        The JSON response's ``content`` is a list of structured messages ({event, timestamp,
        level, logger, ...}); rendered here as ``[level] event k=v`` lines.
        """
        params: dict[str, Any] = {"map_index": map_index, "full_content": "true"}
        chunks: list[str] = []
        for _ in range(20):
            data = self.api(
                "GET",
                f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
                params=params,
                headers={"Accept": "application/json"},
            )
            chunks.append(_log_text_from_content(data.get("content") or []))
            token = data.get("continuation_token")
            if not token or not data.get("content"):
                break
            params["token"] = token
        return "\n".join(c for c in chunks if c)

    # ---- plugins ------------------------------------------------------------------------------
    def plugins(self) -> list[dict[str, Any]]:
        """``GET /api/v2/plugins`` as seen by the api-server (routes/public/plugins.py)."""
        return self._paginate("/plugins", "plugins")

    def plugin_import_errors(self) -> list[dict[str, Any]]:
        """``GET /api/v2/plugins/importErrors`` -> [{source, error}] (api-server's plugin manager)."""
        return list(self.api("GET", "/plugins/importErrors")["import_errors"])

    # ---- misc ---------------------------------------------------------------------------------
    def _paginate(self, path: str, key: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        limit = 100
        while True:
            page = self.api("GET", path, params={**(params or {}), "limit": limit, "offset": len(items)})
            batch = list(page[key])
            items.extend(batch)
            if not batch or len(items) >= page["total_entries"]:
                return items


def utcnow() -> datetime:
    return datetime.now(UTC)


def _parse_ts(value: str) -> datetime:
    ts = datetime.fromisoformat(value)
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
