"""Serving a version of an endpoint without downtime: start it, check it, switch the front to it, stop the old.

The steps (:func:`roll_out`): the new version's replicas start beside the old ones; each must answer
``GET /health`` with 200 and, when the task gives an ``input_example``, a prediction of it with a
2xx; then ``backends.json`` names the new replicas (the front forwards the next request to them),
and the old replicas stop (gunicorn finishes the requests they hold). When the new version fails its
check its replicas are stopped, the old version keeps serving, and :class:`RolloutFailed` says why
(with the last lines of the replica's log). :func:`stop_endpoint` and :func:`roll_back` use the same
steps; each holds the endpoint's lock.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flow_airflow import computes
from flow_airflow.computes.replicas import Replica, Replicas
from flow_airflow.endpoints import keys
from flow_airflow.endpoints.store import Endpoint, EndpointError, EndpointStore, Event, Version

PREDICT = "/api/v1/endpoints/{name}"  # the serving app's route (flow_airflow/serving/app.py)
SWITCH_GRACE = 1.0  # seconds between the switch and stopping the old replicas (requests already sent)

log = logging.getLogger(__name__)


class RolloutFailed(Exception):
    """A version could not take over (or be rolled back to); the message says why in words."""


def predict_url(endpoint: Endpoint) -> str:
    """The endpoint's stable prediction URL (cnvrg's endpoint URL), through its front."""
    return endpoint.url + PREDICT.format(name=endpoint.name)


def ensure_front(store: EndpointStore, endpoint: Endpoint) -> None:
    """Start the endpoint's front (supervised, detached) unless it runs; wait until it answers."""
    from flow_airflow.computes.local import supervise
    from flow_airflow.computes.replicas import free_port

    folder = store.folder(endpoint.name)
    pidfile = folder / "run" / "front.pid"
    if supervise.alive(pidfile) and _answers(endpoint.url + "/_front"):
        return
    supervise.stop(pidfile)
    if not _port_free(endpoint.host, endpoint.port):  # taken meanwhile by something else: a new stable port
        log.warning("port %d of endpoint %s is taken: its URL moves to a new port", endpoint.port, endpoint.name)
        endpoint.port = free_port(endpoint.host)
    import sys

    supervise.start([sys.executable, "-m", "flow_airflow.endpoints.front", "--folder", str(folder), "--host",
                     endpoint.host, "--port", str(endpoint.port)],
                    pidfile=pidfile, log=folder / "logs" / "front.log", env=_front_env(), cwd=folder)
    deadline = time.monotonic() + 30
    while not _answers(endpoint.url + "/_front"):
        if time.monotonic() > deadline:
            raise RolloutFailed(f"the front of endpoint {endpoint.name} does not answer on {endpoint.url}: "
                                + (folder / "logs" / "front.log").read_text(errors="replace")[-2000:])
        time.sleep(0.1)


def roll_out(store: EndpointStore, endpoint: Endpoint, version: Version, count: int, key: str | None,
             example: Any = None, say: Callable[[str], None] = log.info) -> None:
    """Make ``version`` the one serving ``endpoint`` (see the module's docstring); saves the endpoint.

    :raises RolloutFailed: the new version failed its check (the old one still serves).
    """
    runner = computes.replicas_on(version.compute, store.folder(endpoint.name))
    if example is not None and is_placeholder(example):
        say(f"input_example {json.dumps(example)[:200]} has no values (a placeholder, as cnvrg's published deploy "
            "components write it): not tried, only /health checks the new version")
        example = None
    old = endpoint.serving()
    say(f"starting {count} replica(s) of version {version.version} on compute '{version.compute.get('name')}'")
    version.replicas = runner.start(version, count, key)
    if endpoint.version(version.version) is None:
        endpoint.versions.append(version)  # a roll back changes a version already listed, in its place
    store.save(endpoint)
    try:
        check(runner, version, endpoint.name, key, example, say)
        ensure_front(store, endpoint)
    except BaseException as e:  # failed its check, no front, or the task was killed or timed out meanwhile
        _stop_version(store, endpoint, version, "failed")
        version.message = str(e) or type(e).__name__
        endpoint.history.append(Event(what="failed", version=version.version, by=_by(version),
                                      message=version.message))
        store.save(endpoint)
        raise
    store.set_backends(endpoint.name, version.version, [r.url for r in version.replicas], key=key,
                       **front_limits())
    version.status, endpoint.current, endpoint.status = "serving", version.version, "running"
    store.save(endpoint)
    say(f"endpoint {endpoint.name} serves version {version.version} at {predict_url(endpoint)}")
    if old is not None and old.version != version.version:
        time.sleep(SWITCH_GRACE)
        _stop_version(store, endpoint, old, "retired")
        say(f"version {old.version} stopped")
    store.save(endpoint)


def is_placeholder(example: Any) -> bool:
    """Whether an ``input_example`` holds no value at all: every value in it blank (``{"vars": ""}``, as cnvrg's
    published deploy components write theirs, e.g. the churn-detection inference), so it is no input to try."""
    if isinstance(example, dict):
        return all(is_placeholder(v) for v in example.values())
    if isinstance(example, list):
        return all(is_placeholder(v) for v in example)
    return example is None or (isinstance(example, str) and not example.strip())


FRONT_GRACE = 10.0  # the front waits this much longer than a replica lets a prediction take (its 504 comes first)


def front_limits() -> dict[str, float]:
    """The front's limits, from ``[flow_airflow]``: ``max_body`` (bytes) and ``timeout`` (seconds)."""
    from flow_airflow import settings

    return {"max_body": int(settings.value("endpoint_max_body_mib") * 1024 * 1024),
            "timeout": settings.value("endpoint_timeout") + FRONT_GRACE}


def check(runner: Replicas, version: Version, name: str, key: str | None, example: Any,
          say: Callable[[str], None] = log.info) -> None:
    """Each replica answers ``/health`` (200) and, with ``example``, a prediction of it (2xx).

    :raises RolloutFailed: saying which replica did not, why, and the end of its log.
    """
    import httpx

    for replica in version.replicas:
        why = _wait_healthy(runner, replica)
        if why is None and example is not None:
            headers = {keys.HEADER: key} if key else {}
            try:
                answer = httpx.post(replica.url + PREDICT.format(name=name), json={"input_params": example},
                                    headers=headers, timeout=120)
            except httpx.HTTPError as e:
                why = f"its input_example got no answer: {e}"
            else:
                if answer.is_success:
                    say(f"replica {replica.url}: input_example answered {answer.text.strip()[:500]}")
                else:
                    why = f"its input_example was answered {answer.status_code}: {answer.text.strip()[:500]}"
        if why is not None:
            logs = runner.log_tail(replica)
            raise RolloutFailed(f"version {version.version} of endpoint {name} failed its check: {why}"
                                + (f". Last lines of its log:\n{logs}" if logs else ""))


def _wait_healthy(runner: Replicas, replica: Replica) -> str | None:
    """None once ``replica`` answers ``/health`` with 200; else why not, after ``runner.ready_seconds``."""
    import httpx

    deadline = time.monotonic() + runner.ready_seconds
    last = "it did not answer"
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(replica.url + "/health", timeout=5)
            if answer.status_code == 200:
                return None
            last = f"/health answered {answer.status_code}: {answer.text.strip()[:500]}"
        except httpx.HTTPError as e:
            last = f"/health: {type(e).__name__}"
        if not runner.alive(replica):
            return f"it is not running ({last})"
        time.sleep(0.2)
    return f"not ready after {runner.ready_seconds:g} s ({last})"


def stop_endpoint(store: EndpointStore, name: str, by: str) -> Endpoint:
    """Stop ``name``: its replicas, then its front; its versions stay (for a later deploy or roll back)."""
    from flow_airflow.computes.local import supervise

    with store.locked(name):
        endpoint = store.load(name)
        store.set_backends(name, None, [])
        for version in endpoint.versions:
            if version.status in ("serving", "starting"):
                _stop_version(store, endpoint, version, "stopped")
        for pidfile in sorted((store.folder(name) / "run").glob("*.pid")):  # the front, and any process left
            supervise.stop(pidfile)
        endpoint.status, endpoint.current = "stopped", None
        endpoint.history.append(Event(what="stopped", by=by))
        store.save(endpoint)
    return endpoint


def stop_all(store: EndpointStore, by: str) -> list[str]:
    """Stop every running endpoint of ``store`` (tests, a worker being retired): their names."""
    stopped = []
    for endpoint in store.all():
        if endpoint.status == "running":
            stop_endpoint(store, endpoint.name, by)
            stopped.append(endpoint.name)
    return stopped


def roll_back(store: EndpointStore, name: str, by: str, say: Callable[[str], None] = log.info) -> Endpoint:
    """Serve the version that served before the current one again (started anew, checked, switched).

    :raises EndpointError: no such endpoint, or no earlier version to go back to.
    :raises RolloutFailed: it failed its check (the current one still serves).
    """
    with store.locked(name):
        endpoint = store.load(name)
        target = endpoint.previous()
        if target is None:
            raise EndpointError(f"endpoint {name} has no earlier version to roll back to")
        if not Path(target.launch.get("config", "")).is_file():
            raise EndpointError(f"the files of version {target.version} of endpoint {name} are gone")
        key = None if endpoint.open else keys.get(name)
        count = max(len(target.replicas), 1)
        roll_out(store, endpoint, target, count, key, say=say)
        endpoint.history.append(Event(what="rolled back", version=target.version, by=by))
        store.save(endpoint)
    return endpoint


def _stop_version(store: EndpointStore, endpoint: Endpoint, version: Version, status: str) -> None:
    """Stop ``version``'s replicas, but those the serving version shares (a Kubernetes Deployment, updated in place)."""
    runner = computes.replicas_on(version.compute, store.folder(endpoint.name))
    serving = endpoint.serving()
    shared = {r.ident for r in serving.replicas} if serving and serving is not version else set()
    for replica in version.replicas:
        if replica.ident not in shared:
            runner.stop(replica)
    version.status = status  # type: ignore[assignment]


def _by(version: Version) -> str:
    return f"{version.dag_id}/{version.run_id}/{version.task}"


def _answers(url: str) -> bool:
    """Whether the front answers ``url`` (``/_front``: 200, or 401 when it holds the endpoint's key)."""
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code in (200, 401)
    except httpx.HTTPError:
        return False


def _port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a closed connection's port is free
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _front_env() -> dict[str, str]:
    """The front's environment: the worker's, without Airflow's own settings (it needs none)."""
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
