"""The replicas interface: how a compute kind runs the replicas of an endpoint (a deploy task's version).

A replica is the serving app (``flow_airflow/serving/app.py``) under gunicorn; each kind's
:class:`Replicas` (``computes/<kind>/replicas.py``, named in ``computes.KINDS``) starts, stops and
tells about them on its compute: the local one as supervised processes of the worker, the Docker
one as containers with a restart policy, the Kubernetes one as a Deployment. A replica listens on
a port of the worker (127.0.0.1: only the endpoint's front, :mod:`flow_airflow.endpoints.front`, is
reached from outside), or behind a Service in the cluster. What the endpoint does with them
(check, switch, stop the old) is :mod:`flow_airflow.endpoints.rollout`'s.
"""

from __future__ import annotations

import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel

LOCALHOST = "127.0.0.1"
CONFIG_ENV = "CNVRG_ENDPOINT_CONFIG"
KEY_ENV = "CNVRG_ENDPOINT_API_KEY"


def serving_env(launch: Mapping[str, Any], config: str, key: str | None,
                base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A replica's environment: ``base`` (the worker's, for a process on it), the version's own variables, where
    the app's configuration is (``config``, as the replica sees it) and the endpoint's key: only the one given,
    never one the version's variables brought (None: the endpoint has no key).
    """
    env = {**(base or {}), **launch.get("env", {}), CONFIG_ENV: config}
    env.pop(KEY_ENV, None)
    if key:
        env[KEY_ENV] = key
    return env


class Replica(BaseModel):
    """One running copy of a version: where it answers and what runs it (a pid file, a container)."""

    url: str  # http://127.0.0.1:<port>
    ident: str  # local: its supervisor's pid file; docker: the container id; kubernetes: the Deployment
    log: str = ""  # local: its log file


class Served(Protocol):
    """What replicas read of the version they start (an ``endpoints.store.Version``)."""

    version: int  # its number in the endpoint
    dag_id: str  # the flow that deployed it
    launch: dict[str, Any]  # how a replica starts: its ``config`` file, ``workspace``, ``cwd``, ``env``, ``image``


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


def tail(path: Path, lines: int = 40, limit: int = 256 * 1024) -> str:
    """The last ``lines`` lines of the file at ``path`` (reading at most its last ``limit`` bytes)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(handle.seek(0, os.SEEK_END) - limit, 0))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class Replicas(ABC):
    """Starts, stops and tells about the replicas of a version, on one kind of compute."""

    kind: ClassVar[str] = ""
    ready_seconds: ClassVar[float] = 60.0  # how long a new replica may take to answer /health
    # it scales its replicas between a deploy task's ``min_replica`` and ``max_replica`` itself (a
    # HorizontalPodAutoscaler); when not, ``min_replica`` serve and the deploy task's log says so
    autoscales: ClassVar[bool] = False

    def __init__(self, folder: Path, compute: Mapping[str, Any]):
        self.folder = folder  # the endpoint's folder in the store
        self.compute = compute  # {"name", "kind", "settings"}

    @abstractmethod
    def start(self, version: Served, count: int, key: str | None) -> list[Replica]:
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
