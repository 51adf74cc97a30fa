"""The endpoint store: each endpoint's stable URL, its versions and its history, as one JSON file.

Layout under ``[flow_airflow] endpoints_folder`` (default ``$AIRFLOW_HOME/flow_endpoints``)::

    <name>/endpoint.json          the endpoint (:class:`Endpoint`): port, versions, history
    <name>/backends.json          the replicas the front forwards to now (written atomically: the switch)
    <name>/.lock                  held while a deploy, stop or roll back changes the endpoint
    <name>/logs/front.log         the front's log; logs/v<n>-r<i>.log each local replica's
    <name>/versions/<n>/          a version's files: workspace/ (the project, input/<task>), endpoint_config.json

Writes are atomic (a temporary file renamed); changes hold the endpoint's lock (``fcntl``), so that
two deploys of one endpoint run one after the other.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flow_airflow.computes.replicas import Replica

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")  # cnvrg's endpoint_title: letters, digits, hyphens

VersionStatus = Literal["starting", "serving", "retired", "failed", "stopped"]


class EndpointError(Exception):
    """What cannot be done to an endpoint, in words (no such endpoint, a bad name)."""


def endpoint_name(task: Any) -> str:
    """A deploy task's endpoint: ``endpoint_id``, else ``endpoint_title``, else its title in letters, digits
    and hyphens (``Sentiment Service`` -> ``sentiment-service``)."""
    given = (task.endpoint_id or task.endpoint_title or "").strip()
    if given:
        return given
    import unicodedata

    plain = unicodedata.normalize("NFKD", task.title).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", plain).strip("-")[:63].strip("-") or "endpoint"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Version(BaseModel):
    """One deployed version of an endpoint, and how to start it again (roll back)."""

    model_config = ConfigDict(extra="ignore")

    version: int
    dag_id: str
    run_id: str
    task: str
    deployed_at: str = Field(default_factory=now)
    status: VersionStatus = "starting"
    message: str = ""  # why it failed
    compute: dict[str, Any] = Field(default_factory=dict)  # {"name", "kind", "settings"}
    folder: str = ""  # versions/<n>
    replicas: list[Replica] = Field(default_factory=list)
    launch: dict[str, Any] = Field(default_factory=dict)  # how a replica starts (argv, env without the key, ...)


class Event(BaseModel):
    at: str = Field(default_factory=now)
    what: str  # "deployed", "failed", "rolled back", "stopped"
    version: int | None = None
    by: str = ""  # "<dag id>/<run id>/<task>" or a user
    message: str = ""


class Endpoint(BaseModel):
    """An endpoint: its stable URL (the front's port), its versions (newest last), its history."""

    model_config = ConfigDict(extra="ignore")

    name: str
    host: str
    port: int
    open: bool = False
    dag_id: str = ""
    status: Literal["running", "stopped"] = "running"
    current: int | None = None  # the version serving now
    versions: list[Version] = Field(default_factory=list)
    history: list[Event] = Field(default_factory=list)

    @property
    def url(self) -> str:
        """The stable base URL: the front, which forwards to the current version's replicas."""
        import socket

        host = socket.gethostname() if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    def version(self, number: int | None) -> Version | None:
        return next((v for v in self.versions if v.version == number), None)

    def serving(self) -> Version | None:
        return self.version(self.current)

    def previous(self) -> Version | None:
        """The version that served before the current one (what "roll back" returns to)."""
        older = [v for v in self.versions if v.version != self.current and v.status in ("retired", "serving")
                 and (self.current is None or v.version < self.current)]
        return older[-1] if older else None


class EndpointStore:
    """The endpoints under ``root`` (a folder); see the module's docstring for the layout."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def folder(self, name: str) -> Path:
        if not NAME.match(name):
            raise EndpointError(f"'{name}' is not an endpoint name: letters, digits and hyphens, at most 63")
        return self.root / name

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.parent.name for p in self.root.glob("*/endpoint.json"))

    def get(self, name: str) -> Endpoint | None:
        path = self.folder(name) / "endpoint.json"
        if not path.is_file():
            return None
        return Endpoint.model_validate_json(path.read_text(encoding="utf-8"))

    def load(self, name: str) -> Endpoint:
        """The endpoint ``name``; :class:`EndpointError` naming those there are when there is none."""
        endpoint = self.get(name)
        if endpoint is None:
            there = ", ".join(self.names()) or "none"
            raise EndpointError(f"there is no endpoint '{name}' (the endpoints: {there})")
        return endpoint

    def all(self) -> list[Endpoint]:
        return [e for e in (self.get(n) for n in self.names()) if e is not None]

    def save(self, endpoint: Endpoint) -> None:
        write_json(self.folder(endpoint.name) / "endpoint.json", endpoint.model_dump(mode="json"))

    def set_backends(self, name: str, version: int | None, urls: list[str], *, key: str | None = None,
                     max_body: int | None = None, timeout: float | None = None) -> None:
        """Point the front at ``urls`` (the switch): it reads the file again before its next request.

        :param key: the key requests must carry (kept as its SHA-256), None for an open endpoint.
        :param max_body: the largest request body the front takes, in bytes (None: its default).
        :param timeout: seconds the front waits for a replica's answer before 504 (None: its default).
        """
        from flow_airflow.endpoints.front import key_digest

        write_json(self.folder(name) / "backends.json",
                   {"version": version, "replicas": urls, "key_sha256": key_digest(key) if key else None,
                    "max_body": max_body, "timeout": timeout})

    @contextlib.contextmanager
    def locked(self, name: str) -> Iterator[None]:
        """Hold the endpoint's lock (a deploy, a stop or a roll back at a time)."""
        folder = self.folder(name)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def write_json(path: Path, value: Any) -> None:
    """``value`` as JSON at ``path``, atomically (readers see the old file or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=1)
    os.replace(tmp, path)
