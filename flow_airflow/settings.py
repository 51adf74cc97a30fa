"""flow-airflow's settings, read from the ``[flow_airflow]`` section of the Airflow configuration.

Every setting can also be given as an environment variable, the Airflow way:
``AIRFLOW__FLOW_AIRFLOW__<KEY>``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

SECTION = "flow_airflow"


def get(key: str, default: str = "") -> str:
    from airflow.configuration import conf

    return conf.get(SECTION, key, fallback=default) or default


def airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")


def artifacts_root() -> Path:
    """Where experiments' output folders are kept (``artifacts_folder``)."""
    return Path(get("artifacts_folder", str(airflow_home() / "flow_artifacts"))).expanduser()


def workspaces_root() -> Path:
    """Where experiments get their working directories (``workspaces_folder``)."""
    return Path(get("workspaces_folder", str(airflow_home() / "flow_workspaces"))).expanduser()


def computes() -> dict[str, dict[str, Any]]:
    """Compute templates by name (``computes``, JSON): ``{"gpu": {"kind": "local"}}``.

    The template ``local`` (a subprocess on the worker) always exists.
    """
    raw = get("computes", "")
    configured = json.loads(raw) if raw.strip() else {}
    if not isinstance(configured, dict):
        raise ValueError("[flow_airflow] computes must be a JSON object of template name -> settings")
    return {"local": {"kind": "local"}, **configured}


def batch_routes(dag_id: str) -> int:
    """Routes one task instance runs in turn (``batch_routes``), for the flow of ``dag_id``.

    JSON: a number for every flow, or ``{"<dag id>": n, "*": n}``; 1 (a task instance per
    route) by default. A flow's tasks all run the same number of routes per task instance.
    """
    raw = get("batch_routes", "").strip()
    value = json.loads(raw) if raw else 1
    if isinstance(value, dict):
        value = value.get(dag_id, value.get("*", 1))
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"[flow_airflow] batch_routes must be a whole number >= 1 (or a JSON object of them): {raw}")
    return value


def restart_if_stuck() -> tuple[int, float]:
    """Retries of an experiment with ``restart_if_stuck: true``, and the seconds between them."""
    return int(get("restart_if_stuck_retries", "2")), float(get("restart_if_stuck_retry_delay", "60"))


def project_env() -> dict[str, str]:
    """Variables every experiment gets, like cnvrg's project environment variables.

    From the ``env`` setting (JSON object) and, over it, the Airflow Variable ``flow_airflow_env``
    (JSON object, editable in the UI under Admin > Variables).
    """
    raw = get("env", "")
    values: dict[str, object] = json.loads(raw) if raw.strip() else {}
    from airflow.sdk import Variable

    values.update(Variable.get(ENV_VARIABLE, default={}, deserialize_json=True) or {})
    return {str(k): str(v) for k, v in values.items()}


ENV_VARIABLE = "flow_airflow_env"
