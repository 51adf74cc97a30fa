"""Where an endpoint's replicas run, by the deploy task's compute: one class per kind, one interface.

A replica is the serving app (``flow_airflow/serving/app.py``) under gunicorn, listening on a port
of the worker (127.0.0.1: only the endpoint's front, :mod:`flow_airflow.endpoints.front`, is
reached from outside). :class:`LocalReplicas` runs each as a supervised process that outlives the
Airflow task (:mod:`flow_airflow.endpoints.supervise`: started again when it dies, its log kept in
``logs/``); :class:`~flow_airflow.endpoints.docker_replicas.DockerReplicas` as a container of the
task's image with a restart policy. :func:`for_compute` chooses.
"""

from __future__ import annotations

import os
import socket
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flow_airflow.endpoints.store import Replica, Version

LOCALHOST = "127.0.0.1"
CONFIG_ENV = "CNVRG_ENDPOINT_CONFIG"
KEY_ENV = "CNVRG_ENDPOINT_API_KEY"


def free_port(host: str = LOCALHOST) -> int:
    """A port nobody listens on now (the OS's choice)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def serving_dir() -> Path:
    """The folder of the serving app (``app.py``), bound or put on gunicorn's ``--pythonpath``."""
    from flow_airflow.serving.command import APP_FILE

    return APP_FILE.parent


def argv(launch: Mapping[str, Any], port: int, *, python: str, app_dir: str) -> list[str]:
    """gunicorn's command line for one replica listening on ``port`` (see ``flow_airflow.serving.command``)."""
    from flow_airflow.serving.command import EndpointConfig, gunicorn_argv

    config = EndpointConfig.model_validate_json(Path(launch["config"]).read_text(encoding="utf-8"))
    return gunicorn_argv(config, bind=f"{LOCALHOST}:{port}", app_dir=app_dir, python=python,
                         gunicorn_config=[tuple(pair) for pair in launch.get("gunicorn", [])])


class Replicas(ABC):
    """Starts, stops and tells about the replicas of a version, on one kind of compute."""

    kind: str = ""
    ready_seconds: float = 60.0  # how long a new replica may take to answer /health

    def __init__(self, folder: Path, compute: Mapping[str, Any]):
        self.folder = folder  # the endpoint's folder in the store
        self.compute = compute  # {"name", "kind", "settings"}

    @abstractmethod
    def start(self, version: Version, count: int, key: str | None) -> list[Replica]:
        """Start ``count`` replicas of ``version`` (its ``launch`` says how); they need not answer yet."""

    @abstractmethod
    def stop(self, replica: Replica) -> None:
        """Stop ``replica``, letting it finish the requests it holds; nothing when it is gone."""

    @abstractmethod
    def alive(self, replica: Replica) -> bool:
        """Whether ``replica`` runs (or is being started again by its supervisor or restart policy)."""

    @abstractmethod
    def log_tail(self, replica: Replica, lines: int = 40) -> str:
        """The last ``lines`` of the replica's output."""


class LocalReplicas(Replicas):
    """Each replica a gunicorn process on the worker, supervised, its output in ``logs/v<n>-r<i>.log``."""

    kind = "local"

    def start(self, version: Version, count: int, key: str | None) -> list[Replica]:
        from flow_airflow.endpoints import supervise

        launch = version.launch
        env = {**os.environ, **launch.get("env", {}), CONFIG_ENV: launch["config"]}
        env.pop(KEY_ENV, None)
        if key:
            env[KEY_ENV] = key
        started = []
        for index in range(count):
            port = free_port()
            command = argv(launch, port, python=sys.executable, app_dir=str(serving_dir()))
            pidfile = self.folder / "run" / f"v{version.version}-r{index}.pid"
            log = self.folder / "logs" / f"v{version.version}-r{index}.log"
            supervise.start(command, pidfile=pidfile, log=log, env=env, cwd=Path(launch["cwd"]))
            started.append(Replica(url=f"http://{LOCALHOST}:{port}", ident=str(pidfile), log=str(log)))
        return started

    def stop(self, replica: Replica) -> None:
        from flow_airflow.endpoints import supervise

        supervise.stop(Path(replica.ident))

    def alive(self, replica: Replica) -> bool:
        from flow_airflow.endpoints import supervise

        return supervise.alive(Path(replica.ident))

    def log_tail(self, replica: Replica, lines: int = 40) -> str:
        return tail(Path(replica.log), lines)


def tail(path: Path, lines: int = 40, limit: int = 256 * 1024) -> str:
    """The last ``lines`` lines of the file at ``path`` (reading at most its last ``limit`` bytes)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(handle.seek(0, os.SEEK_END) - limit, 0))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def for_compute(folder: Path, compute: Mapping[str, Any]) -> Replicas:
    """The replicas of the endpoint in ``folder`` on ``compute`` (``{"name", "kind", "settings"}``).

    :raises ValueError: a kind that cannot serve endpoints here, saying which can.
    """
    kind = compute.get("kind", "local")
    if kind == "local":
        return LocalReplicas(folder, compute)
    if kind == "docker":
        from flow_airflow.endpoints.docker_replicas import DockerReplicas

        return DockerReplicas(folder, compute)
    if kind == "kubernetes":
        from flow_airflow.endpoints.kubernetes_replicas import KubernetesReplicas

        return KubernetesReplicas(folder, compute)
    raise ValueError(f"endpoints cannot run on a compute of kind '{kind}': local, docker and kubernetes can")
