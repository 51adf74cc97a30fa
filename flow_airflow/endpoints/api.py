"""What the endpoints page, its JSON API and ``flow-airflow endpoints`` show and do: one place for all three.

:func:`describe` gives an endpoint as JSON: its URLs, its status probed now (the front's answer to
``/health``: ``up``, ``down`` or ``stopped``), its replicas (each probed: ``/health``, ``/stats``),
requests and errors summed over them (each replica's gunicorn worker counts its own: with several
workers a replica's counts are one worker's), the metrics its predict function logged
(``Endpoint().log_metric`` of the stand-in SDK, ``metrics``: name -> count, last value, points), the
version serving and the run that deployed it,
the version a roll back returns to, the history, and the curl line (the key as ``$CNVRG_API_KEY``:
the key itself is the Airflow Variable named there). :func:`try_it` sends a prediction request with
the endpoint's key (on the server side: the key never reaches the browser). :func:`logs` is the
end of the front's log and of each replica's.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from flow_airflow import computes
from flow_airflow.endpoints import keys
from flow_airflow.endpoints.rollout import predict_url
from flow_airflow.endpoints.store import Endpoint, EndpointStore

PROBE_SECONDS = 2.0
HISTORY = 20


def store() -> EndpointStore:
    from flow_airflow import settings

    return EndpointStore(settings.endpoints_root())


def _get(url: str) -> tuple[int, Any]:
    """``GET url``: its status and JSON body; status 0 when it does not answer."""
    import httpx

    try:
        answer = httpx.get(url, timeout=PROBE_SECONDS)
    except httpx.HTTPError:
        return 0, None
    try:
        return answer.status_code, answer.json()
    except ValueError:
        return answer.status_code, None


def describe(endpoint: Endpoint, probe: bool = True) -> dict[str, Any]:
    """The endpoint as JSON (see the module's docstring); ``probe``: ask it now (else status as stored)."""
    serving = endpoint.serving()
    replicas = []
    requests = errors = 0
    metrics: dict[str, dict[str, Any]] = {}  # Endpoint().log_metric in the predict function, over the replicas
    for replica in serving.replicas if serving else []:
        health, stats = (_get(replica.url + "/health")[0], _get(replica.url + "/stats")[1]) if probe else (0, None)
        stats = stats if isinstance(stats, dict) else {}
        requests += int(stats.get("requests", 0))
        errors += int(stats.get("errors", 0))
        _add_metrics(metrics, stats.get("metrics"))
        replicas.append({"url": replica.url, "healthy": health == 200, "requests": stats.get("requests"),
                         "errors": stats.get("errors"), "started": stats.get("started")})
    status = endpoint.status
    if probe and status == "running":
        status = "up" if _get(endpoint.url + "/health")[0] == 200 else "down"
    previous = endpoint.previous()
    return {
        "name": endpoint.name, "url": endpoint.url, "predict_url": predict_url(endpoint), "status": status,
        "open": endpoint.open, "dag_id": endpoint.dag_id, "replicas": replicas, "requests": requests,
        "errors": errors, "metrics": metrics, "current": _version(serving), "previous": _version(previous),
        "versions": [_version(v) for v in reversed(endpoint.versions)],
        "history": [e.model_dump() for e in reversed(endpoint.history[-HISTORY:])],
        "curl": curl(endpoint, (serving.launch.get("example") if serving else None)),
        "key_variable": None if endpoint.open else keys.variable_name(endpoint.name),
    }


def _add_metrics(metrics: dict[str, dict[str, Any]], logged: Any) -> None:
    """Add one replica's ``/stats`` ``metrics`` (name -> ``{"count", "last", "points"}``) to ``metrics``: counts
    summed, points appended (the last 100 kept), ``last`` the last replica's."""
    if not isinstance(logged, dict):
        return
    for name, value in logged.items():
        if not isinstance(value, dict):
            continue
        kept = metrics.setdefault(str(name), {"count": 0, "last": None, "points": []})
        kept["count"] += int(value.get("count") or 0)
        kept["last"] = value.get("last", kept["last"])
        kept["points"] = (kept["points"] + list(value.get("points") or []))[-100:]


def describe_all(endpoints: list[Endpoint]) -> list[dict[str, Any]]:
    """:func:`describe` of each endpoint, probed at the same time (a page of endpoints that are down
    takes one probe's time, not one per endpoint)."""
    from concurrent.futures import ThreadPoolExecutor

    if not endpoints:
        return []
    with ThreadPoolExecutor(max_workers=min(len(endpoints), 8)) as pool:
        return list(pool.map(describe, endpoints))


def _version(version: Any) -> dict[str, Any] | None:
    if version is None:
        return None
    return {"version": version.version, "dag_id": version.dag_id, "run_id": version.run_id, "task": version.task,
            "deployed_at": version.deployed_at, "status": version.status, "message": version.message,
            "compute": version.compute.get("name"), "replicas": len(version.replicas)}


def curl(endpoint: Endpoint, example: Any = None) -> str:
    """The curl line that asks the endpoint for a prediction (the key as ``$CNVRG_API_KEY``)."""
    body = json.dumps({"input_params": example if example is not None else {}})
    parts = ["curl", "-X", "POST", predict_url(endpoint), "-H", "Content-Type: application/json"]
    quoted = " ".join(shlex.quote(p) for p in parts)
    if not endpoint.open:
        quoted += f' -H "{keys.HEADER}: $CNVRG_API_KEY"'
    return f"{quoted} -d {shlex.quote(body)}"


def try_it(endpoint: Endpoint, body: Any) -> tuple[int, Any]:
    """Send ``body`` (the request's JSON, ``{"input_params": ...}``) to the endpoint with its key: the
    answer's status and JSON (or text); 503 with a message when it does not answer."""
    import httpx

    headers = {} if endpoint.open else {keys.HEADER: keys.get(endpoint.name) or ""}
    try:
        answer = httpx.post(predict_url(endpoint), json=body, headers=headers, timeout=60)
    except httpx.HTTPError as e:
        return 503, {"error": f"endpoint {endpoint.name} does not answer at {endpoint.url}: {type(e).__name__}"}
    try:
        return answer.status_code, answer.json()
    except ValueError:
        return answer.status_code, answer.text


def logs(store: EndpointStore, endpoint: Endpoint, lines: int = 100) -> dict[str, str]:
    """The last ``lines`` lines of the front's log and of each replica's of the serving version, by name."""
    from flow_airflow.computes.replicas import tail

    found = {"front": tail(store.folder(endpoint.name) / "logs" / "front.log", lines)}
    serving = endpoint.serving() or (endpoint.versions[-1] if endpoint.versions else None)
    if serving is not None:
        runner = computes.replicas_on(serving.compute, store.folder(endpoint.name))
        for index, replica in enumerate(serving.replicas):
            found[f"version {serving.version} replica {index} ({replica.url})"] = runner.log_tail(replica, lines)
    return found
