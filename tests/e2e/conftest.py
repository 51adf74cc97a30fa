"""End-to-end harness: a real ``airflow standalone`` driven through its REST API.

Fixtures
--------
``airflow_server`` (session scope)
    Starts ``airflow standalone`` once per test session in a temp ``AIRFLOW_HOME`` with its own
    dags folder, free ports and known passwords, and yields an :class:`AirflowServer`.

``airflow_server_options`` (session scope)
    Returns the :class:`ServerOptions` used to start it. Override it in a ``conftest.py`` to add
    users, environment variables or a callable that seeds the dags folder before start-up.

Typical test::

    pytestmark = pytest.mark.e2e

    def test_flow(airflow_server):
        airflow_server.add_file("flows.py", src=REPO_ROOT / "dags" / "flows.py")
        airflow_server.wait_for_dag("my_dag")               # exists, not stale, unpaused
        run_id, state = airflow_server.run_dag("my_dag", conf={"k": 1})
        assert state == "success"
        tis = airflow_server.task_instances("my_dag", run_id)  # mapped TIs: one row per map_index
        value = airflow_server.xcom("my_dag", run_id, "task", map_index=0)

The server is shared by the whole session: give every test its own dag ids / file names.

Nothing here mocks Airflow. Every endpoint and config key is checked against the installed
Airflow 3.3 source (see the notes at each constant).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# DagRun states that end a run (airflow/utils/state.py: DagRunState).
FINISHED_RUN_STATES = frozenset({"success", "failed"})


# --------------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class User:
    """A simple-auth-manager user. Roles (simple_auth_manager.py): viewer, user, op, admin."""

    username: str
    role: str = "admin"
    password: str | None = None  # defaults to the username

    @property
    def secret(self) -> str:
        return self.password if self.password is not None else self.username


@dataclass
class ServerOptions:
    """How to start ``airflow standalone``.

    users: simple-auth-manager users, password = username unless given; the first one is the
        user ``AirflowServer.session`` / ``api()`` act as.
    env: extra environment (e.g. ``{"AIRFLOW__CORE__PARALLELISM": "4"}``); wins over defaults.
    seed_dags: called with the dags folder ``Path`` before the server starts.
    startup_timeout: seconds to wait for the REST API and all components to be healthy.
    """

    users: tuple[User, ...] = (
        User("admin", "admin"),
        User("alice", "admin"),
        User("bob", "admin"),
        User("carol", "viewer"),
        User("dave", ""),  # no role: signs in, may see no DAG (simple auth manager: no role, no access)
    )
    env: dict[str, str] = field(default_factory=dict)
    seed_dags: Callable[[Path], None] | None = None
    startup_timeout: float = 180.0


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _airflow_bin_dir() -> Path:
    """Directory holding the ``airflow`` script of the interpreter running pytest.

    ``airflow standalone`` launches its components as ``["airflow", ...]`` via PATH
    (cli/commands/standalone_command.py, SubCommand.run), so that directory must be on PATH.
    """
    candidate = Path(sys.executable).parent
    if (candidate / "airflow").exists():
        return candidate
    found = shutil.which("airflow")
    if not found:
        raise RuntimeError("no `airflow` executable next to sys.executable or on PATH")
    return Path(found).parent


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


# --------------------------------------------------------------------------------------------------
# The server + REST client
# --------------------------------------------------------------------------------------------------
class AirflowServer:
    """A running ``airflow standalone`` and a small REST (``/api/v2``) client for it."""

    def __init__(self, root: Path, options: ServerOptions | None = None) -> None:
        self.options = options or ServerOptions()
        self.root = root
        self.home = root / "home"
        self.dags_folder = root / "dags"
        self.log_path = root / "standalone.log"
        self.port = free_port()
        self.smtp_port = free_port()  # Airflow's SMTP connection points here; a test may listen on it
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.base_url}/api/v2"
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None
        self._log_file: Any = None
        self._sessions: dict[str, httpx.Client] = {}
        self.env = self._build_env()

    # ---- configuration ------------------------------------------------------------------------
    @property
    def passwords_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json.generated"

    def _build_env(self) -> dict[str, str]:
        # Start from the caller's environment minus anything that would point Airflow elsewhere.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("AIRFLOW__") and k not in {"AIRFLOW_HOME", "AIRFLOW_CONFIG"}
        }
        bin_dir = _airflow_bin_dir()
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
        # No PYTHONPATH tweak: flow_airflow must be `pip install -e`d (as .ci/run does). Putting the
        # repo root on PYTHONPATH would expose flow_airflow.egg-info too, so Airflow would see the
        # plugin entry point twice ("Plugin 'flow_airflow' already registered").
        env["PYTHONUNBUFFERED"] = "1"  # standalone prints component output; keep the log file live
        env["NO_COLOR"] = "1"
        users = ",".join(f"{u.username}:{u.role}" for u in self.options.users)
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                # [core] -- config_templates/config.yml
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.home / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "8",
                "AIRFLOW__CORE__FERNET_KEY": _fernet_key(),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": users,
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
                # A changed DAG may be re-serialized (and the API's DBDagBag revalidates) at most
                # this often; default 30s (dag_processing/collection.py, models/dagbag.py).
                "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "1",
                # [api] -- the api-server serves the UI, /api/v2, /auth and the task Execution API
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                # Workers find the Execution API at {base_url}/execution/; without base_url they
                # assume http://localhost:8080 (executors/base_executor.py get_execution_api_server_url).
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(16),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),  # HS512 wants >= 64 bytes
                # [dag_processor] -- how quickly files in the dags folder are (re)discovered.
                # refresh_interval: re-list the bundle (find new/deleted files); default 300s. Not
                # shorter: each re-listing forgets import errors of files Airflow does not list
                # itself, like those flow-airflow reports for broken flow YAML files.
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "20",
                # bundle_refresh_check_interval: how often to check whether refresh is due; default 5s.
                "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "1",
                # min_file_process_interval: re-parse an *unchanged* file; default 30s. Changed
                # files (newer mtime) are re-parsed right away -- see AirflowServer.touch().
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
                # DAGs missing from a re-parsed file go stale after this many seconds; default 50.
                "AIRFLOW__DAG_PROCESSOR__STALE_DAG_THRESHOLD": "5",
                "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "0",
                # How often the dag processor runs the stale-DAG check; default 60s.
                "AIRFLOW__SCHEDULER__PARSING_CLEANUP_INTERVAL": "5",
                # [logging] -- log servers bind fixed ports (8793/8794) by default; avoid clashes.
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
                # Mail (Airflow's SMTP connection, used by the providers' SmtpHook) goes to smtp_port on
                # localhost, where nothing listens unless a test starts a server; flow approvers' addresses.
                "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps({
                    "conn_type": "smtp", "host": "127.0.0.1", "port": self.smtp_port,
                    "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "airflow@example.com",
                              "timeout": 10, "retry_limit": 0},
                }),
                "AIRFLOW__FLOW_AIRFLOW__APPROVER_EMAILS": json.dumps(
                    {u.username: f"{u.username}@example.com" for u in self.options.users}
                ),
            }
        )
        env.update(self.options.env)
        return env

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self) -> AirflowServer:
        self.home.mkdir(parents=True, exist_ok=True)
        self.dags_folder.mkdir(parents=True, exist_ok=True)
        # Pre-seed the simple auth manager password file so logins are known up front; the auth
        # manager only generates passwords for users missing from it (SimpleAuthManager.init).
        self.passwords_file.write_text(json.dumps({u.username: u.secret for u in self.options.users}) + "\n")
        if self.options.seed_dags is not None:
            self.options.seed_dags(self.dags_folder)

        t0 = time.monotonic()
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 -- closed in stop()
        self.process = subprocess.Popen(
            [str(_airflow_bin_dir() / "airflow"), "standalone"],
            cwd=self.root,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() kills the whole tree
        )
        try:
            self._wait_healthy(self.options.startup_timeout)
            self._sessions[self.options.users[0].username] = self._login(self.options.users[0])
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Any = None
        with httpx.Client(timeout=5) as probe:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise AirflowServerError(
                        f"airflow standalone exited with {self.process.returncode}\n{self.log_tail()}"
                    )
                try:
                    # GET /api/v2/monitor/health needs no auth (routes/public/monitor.py).
                    resp = probe.get(f"{self.api_url}/monitor/health")
                    if resp.status_code == 200:
                        last = resp.json()
                        parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
                        if all((last.get(p) or {}).get("status") == "healthy" for p in parts):
                            return
                except httpx.TransportError as exc:
                    last = exc
                time.sleep(0.5)
        raise AirflowServerError(f"not healthy after {timeout}s (last: {last!r})\n{self.log_tail()}")

    def stop(self) -> None:
        for client in self._sessions.values():
            client.close()
        self._sessions.clear()
        proc, self.process = self.process, None
        if proc is not None:
            # SIGTERM the whole group (standalone + scheduler, dag-processor, triggerer, api-server,
            # executor workers): components shut down gracefully; SIGKILL what is left after 20s.
            _signal_group(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while _group_alive(proc.pid) and time.monotonic() < deadline:
                proc.poll()  # reap standalone itself so it does not linger as a zombie
                time.sleep(0.2)
            _signal_group(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        self._kill_strays()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _kill_strays(self) -> None:
        """Kill any process that still runs with our AIRFLOW_HOME (e.g. a task that setsid()ed)."""
        marker = f"AIRFLOW_HOME={self.home}".encode()
        me = os.getpid()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == me:
                continue
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if marker in environ:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(entry.name), signal.SIGKILL)

    def __enter__(self) -> AirflowServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_since(self, offset: int, max_lines: int = 150) -> str:
        """Standalone log text written after byte ``offset`` (its last ``max_lines`` lines)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
        except OSError:
            return "(no standalone log)"
        return "\n".join(text.splitlines()[-max_lines:])

    def log_tail(self, lines: int = 120) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no standalone log)"
        return "\n".join(text.splitlines()[-lines:])

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

    # ---- dags folder --------------------------------------------------------------------------
    def add_file(self, name: str | Path, content: str | bytes | None = None, *, src: Path | None = None) -> Path:
        """Atomically place a file at ``dags_folder/name`` (from ``content`` or by copying ``src``).

        Written to a temp file outside the dags folder first, then renamed, so the dag processor
        never sees a half-written file.
        """
        dest = self.dags_folder / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".incoming-{secrets.token_hex(4)}"
        if src is not None:
            shutil.copyfile(src, tmp)
        elif isinstance(content, bytes):
            tmp.write_bytes(content)
        else:
            tmp.write_text(content or "")
        os.replace(tmp, dest)
        return dest

    def copy_tree(self, src: Path, dest_name: str | None = None) -> Path:
        """Copy a directory into the dags folder (atomically renamed into place)."""
        dest = self.dags_folder / (dest_name or src.name)
        tmp = self.root / f".incoming-{secrets.token_hex(4)}"
        shutil.copytree(src, tmp)
        os.replace(tmp, dest)
        return dest

    def touch(self, name: str | Path) -> None:
        """Bump a dags-folder file's mtime so the dag processor re-parses it on its next loop.

        Needed when a loader .py generates DAGs from other files (e.g. YAML): the .py itself is
        unchanged, so it would otherwise only be re-parsed every min_file_process_interval.
        """
        path = self.dags_folder / name
        now = time.time()
        os.utime(path, (now, now))

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


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    """True while any non-zombie process is left in process group ``pgid``."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # fields after the ")" that ends comm: state ppid pgrp ...
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def utcnow() -> datetime:
    return datetime.now(UTC)


def _parse_ts(value: str) -> datetime:
    ts = datetime.fromisoformat(value)
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


# --------------------------------------------------------------------------------------------------
# Fixtures + reporting
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def airflow_server_options() -> ServerOptions:
    """Override in a conftest.py to change users / env / seed_dags for the shared server."""
    return ServerOptions()


@pytest.fixture(scope="session")
def airflow_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    airflow_server_options: ServerOptions,
) -> Iterator[AirflowServer]:
    server = AirflowServer(tmp_path_factory.mktemp("airflow-e2e"), airflow_server_options)
    request.config.stash[_SERVER_KEY] = server
    server.start()
    _report(
        request.config,
        f"airflow standalone up in {server.startup_seconds:.1f}s at {server.base_url} "
        f"(home {server.home}, log {server.log_path})",
    )
    try:
        yield server
    finally:
        server.stop()
        if request.session.testsfailed:
            _report(
                request.config,
                f"---- tail of {server.log_path} ----\n{server.log_tail(60)}\n---- end of log ----",
            )


_SERVER_KEY = pytest.StashKey[AirflowServer]()


def _report(config: pytest.Config, text: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        if reporter is not None:
            reporter.write_line("")
            for line in text.splitlines():
                reporter.write_line(line)
        else:
            print(text, file=sys.stderr)


_LOG_OFFSET_KEY = pytest.StashKey[int]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    """Remember where the standalone log was when the test body starts (fixtures are set up)."""
    result = yield
    server = item.config.stash.get(_SERVER_KEY, None)
    if server is not None:
        item.stash[_LOG_OFFSET_KEY] = server.log_size()
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Attach the standalone log written during a failing test (last 150 lines) to its report."""
    report = yield
    server = item.config.stash.get(_SERVER_KEY, None)
    if report.failed and server is not None and "airflow_server" in getattr(item, "fixturenames", ()):
        offset = item.stash.get(_LOG_OFFSET_KEY, 0)
        report.sections.append(("airflow standalone log during this test", server.log_since(offset, 150)))
    return report
