"""Endpoint API keys: one per endpoint, kept as an Airflow Variable and masked in logs.

The key of endpoint ``<name>`` is the Variable ``flow_airflow_endpoint_<name>_api_key``: read and
written through Airflow (a secrets backend configured for Variables serves it), shown masked in the
UI (its name holds ``api_key``, one of Airflow's sensitive words) and masked in task logs
(:func:`mask`). A request carries it in the ``Cnvrg-Api-Key`` header, as cnvrg's endpoints do. An
endpoint named in ``[flow_airflow] open_endpoints`` (or all, with ``"*"``) needs none.
"""

from __future__ import annotations

import secrets
import sys
from typing import Any

HEADER = "Cnvrg-Api-Key"


def variable_name(endpoint: str) -> str:
    return f"flow_airflow_endpoint_{endpoint.replace('-', '_').lower()}_api_key"


def is_open(endpoint: str) -> bool:
    """Whether ``endpoint`` is served without a key (``[flow_airflow] open_endpoints``)."""
    from flow_airflow import settings

    names = settings.value("open_endpoints")
    return "*" in names or endpoint in names


def _variables() -> Any:
    """Airflow's Variable: the Task SDK's inside a running task, the metadata DB's elsewhere (UI, CLI)."""
    if hasattr(sys.modules.get("airflow.sdk.execution_time.task_runner"), "SUPERVISOR_COMMS"):
        from airflow.sdk import Variable
    else:
        from airflow.models import Variable
    return Variable


def get(endpoint: str) -> str | None:
    """The endpoint's key, None when it has none (yet)."""
    variables = _variables()
    name = variable_name(endpoint)
    if variables.__module__.startswith("airflow.models"):
        value = variables.get(name, default_var=None)
    else:
        value = variables.get(name, default=None)
    if value:
        mask(value)
    return value or None


def ensure(endpoint: str) -> str:
    """The endpoint's key, made (32 random bytes, URL-safe) and kept when it has none."""
    key = get(endpoint)
    if key is None:
        key = secrets.token_urlsafe(32)
        mask(key)
        _variables().set(variable_name(endpoint), key,
                         description=f"flow-airflow: the API key of model endpoint {endpoint} (header {HEADER})")
    return key


def mask(value: str) -> None:
    """Hide ``value`` in every log line written from now on (Airflow's secrets masker)."""
    from airflow.sdk.log import mask_secret

    mask_secret(value)
