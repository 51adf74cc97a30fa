"""The process side of the e2e harness: start and stop a real ``airflow standalone``.

:class:`AirflowServer` runs it in a temp ``AIRFLOW_HOME`` with its own dags folder, free ports and
known passwords (:class:`ServerOptions`), and is the REST client of :mod:`tests.e2e.client` too.
Nothing here mocks Airflow. Every config key is checked against the installed Airflow 3.3 source
(see the notes at each key).
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.client import AirflowClient, AirflowServerError


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


# --------------------------------------------------------------------------------------------------
# The server (its REST calls come from AirflowClient)
# --------------------------------------------------------------------------------------------------
class AirflowServer(AirflowClient):
    """A running ``airflow standalone`` and a small REST (``/api/v2``) client for it."""

    def __init__(self, root: Path, options: ServerOptions | None = None) -> None:
        super().__init__()
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
        self.env = self._build_env()

    # ---- configuration ------------------------------------------------------------------------
    @property
    def passwords_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json.generated"

    def _build_env(self) -> dict[str, str]:
        """The environment of ``airflow standalone``: the caller's, this server's config, the options' env."""
        env = _inherited_env()
        env.update(_core_env(self))
        env.update(_api_env(self))
        env.update(_parsing_env())
        env.update(_logging_and_mail_env(self))
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
        self.close_sessions()
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
        """Kill any process that still runs with our AIRFLOW_HOME (e.g. a task that setsid()ed), or in our
        folder: the executor's workers set their process title over their environment, which then reads empty."""
        marker = f"AIRFLOW_HOME={self.home}".encode()
        me = os.getpid()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == me:
                continue
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
                cwd = Path(os.readlink(entry / "cwd"))
            except OSError:
                continue
            if marker in environ or cwd == self.root or self.root in cwd.parents:
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
        """Copy a directory into the dags folder (atomically renamed into place, replacing an earlier copy:
        test modules share the server, and two may copy the same flow)."""
        dest = self.dags_folder / (dest_name or src.name)
        tmp = self.root / f".incoming-{secrets.token_hex(4)}"
        shutil.copytree(src, tmp)
        old = self.root / f".outgoing-{secrets.token_hex(4)}"
        with contextlib.suppress(FileNotFoundError):
            os.replace(dest, old)
        os.replace(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
        return dest

    def touch(self, name: str | Path) -> None:
        """Bump a dags-folder file's mtime so the dag processor re-parses it on its next loop.

        Needed when a loader .py generates DAGs from other files (e.g. YAML): the .py itself is
        unchanged, so it would otherwise only be re-parsed every min_file_process_interval.
        """
        path = self.dags_folder / name
        now = time.time()
        os.utime(path, (now, now))


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


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


# --------------------------------------------------------------------------------------------------
# The environment of airflow standalone
# --------------------------------------------------------------------------------------------------
def _inherited_env() -> dict[str, str]:
    """The caller's environment minus anything that would point Airflow elsewhere, airflow on PATH."""
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
    return env


def _core_env(server: AirflowServer) -> dict[str, str]:
    """[core] -- config_templates/config.yml."""
    users = ",".join(f"{u.username}:{u.role}" for u in server.options.users)
    return {
        "AIRFLOW_HOME": str(server.home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(server.dags_folder),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(server.home / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__CORE__FERNET_KEY": _fernet_key(),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": users,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(server.passwords_file),
        # A changed DAG may be re-serialized (and the API's DBDagBag revalidates) at most
        # this often; default 30s (dag_processing/collection.py, models/dagbag.py).
        "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "1",
    }


def _api_env(server: AirflowServer) -> dict[str, str]:
    """[api] -- the api-server serves the UI, /api/v2, /auth and the task Execution API."""
    return {
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(server.port),
        # Workers find the Execution API at {base_url}/execution/; without base_url they
        # assume http://localhost:8080 (executors/base_executor.py get_execution_api_server_url).
        "AIRFLOW__API__BASE_URL": server.base_url,
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(16),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),  # HS512 wants >= 64 bytes
    }


def _parsing_env() -> dict[str, str]:
    """[dag_processor] -- how quickly files in the dags folder are (re)discovered."""
    return {
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
    }


def _logging_and_mail_env(server: AirflowServer) -> dict[str, str]:
    """[logging] ports, and Airflow's SMTP connection with flow approvers' addresses."""
    return {
        # [logging] -- log servers bind fixed ports (8793/8794) by default; avoid clashes.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
        # Mail (Airflow's SMTP connection, used by the providers' SmtpHook) goes to smtp_port on
        # localhost, where nothing listens unless a test starts a server; flow approvers' addresses.
        "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": server.smtp_port,
            "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "airflow@example.com",
                      "timeout": 10, "retry_limit": 0},
        }),
        "AIRFLOW__FLOW_AIRFLOW__APPROVER_EMAILS": json.dumps(
            {u.username: f"{u.username}@example.com" for u in server.options.users}
        ),
    }
