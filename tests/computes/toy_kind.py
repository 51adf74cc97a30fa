"""A toy compute kind, plugged in by one entry of ``computes.KINDS`` alone (``test_toy_kind.py``).

Its compute runs the launch's command as a plain subprocess of the task (no guard, no container); its
replicas run gunicorn as plain subprocesses of the worker (no supervisor). Both say what they did in
:data:`CALLS`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Literal

from flow_airflow.computes.base import DATA, INPUT, Compute, ComputeSettings, Launch, Layout, LineCallback, lines
from flow_airflow.computes.replicas import (
    LOCALHOST,
    Replica,
    Replicas,
    Served,
    argv,
    free_port,
    serving_dir,
    serving_env,
)

CALLS: list[tuple[str, str]] = []  # (what, of what): ("run", launch name), ("start", url), ("stop", url)
_SERVING: dict[str, subprocess.Popen[bytes]] = {}  # a replica's ident -> its gunicorn


class ToySettings(ComputeSettings):
    kind: Literal["toy"] = "toy"


class ToyCompute(Compute):
    """The command in the workspace, as a subprocess; its output and error lines as one stream."""

    kind = "toy"
    Settings = ToySettings

    def layout(self, workspace: Path, sdk: Path) -> Layout:
        return Layout(cnvrg=workspace, input=workspace / INPUT, data=workspace / DATA, sdk=sdk)

    def run(self, launch: Launch, on_line: LineCallback, on_error_line: LineCallback | None = None) -> int:
        CALLS.append(("run", launch.name))
        self._process = subprocess.Popen(["/bin/sh", "-c", launch.command], cwd=launch.cwd, env=dict(launch.env),
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self._process.stdout is not None
        for line in lines(self._process.stdout):
            on_line(line)
        return self._process.wait()

    def kill(self) -> None:
        self._process.terminate()


class ToyReplicas(Replicas):
    """Each replica a gunicorn subprocess on the worker (gone with the test's process)."""

    kind = "toy"

    def start(self, version: Served, count: int, key: str | None) -> list[Replica]:
        launch = version.launch
        env = serving_env(launch, launch["config"], key, base=os.environ)
        started = []
        for _ in range(count):
            port = free_port()
            command = argv(launch, port, python=sys.executable, app_dir=str(serving_dir()))
            process = subprocess.Popen(command, cwd=launch["cwd"], env=env, start_new_session=True)
            replica = Replica(url=f"http://{LOCALHOST}:{port}", ident=str(process.pid))
            _SERVING[replica.ident] = process
            CALLS.append(("start", replica.url))
            started.append(replica)
        return started

    def stop(self, replica: Replica) -> None:
        CALLS.append(("stop", replica.url))
        process = _SERVING.pop(replica.ident, None)
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)

    def alive(self, replica: Replica) -> bool:
        process = _SERVING.get(replica.ident)
        return process is not None and process.poll() is None

    def log_tail(self, replica: Replica, lines: int = 40) -> str:
        return ""
