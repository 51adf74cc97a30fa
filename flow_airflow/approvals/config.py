"""Settings of human validation, in the ``[flow_airflow]`` section like the others."""

from __future__ import annotations

import json

from flow_airflow import settings

DEFAULT_TIMEOUT = 7 * 24 * 3600.0  # as long as Airflow lets a sensor wait by default ([sensors] default_timeout)


def approver_emails() -> dict[str, str]:
    """``approver_emails``: JSON object of username -> email address; users missing from it get no mail."""
    raw = settings.get("approver_emails", "")
    value = json.loads(raw) if raw.strip() else {}
    if not isinstance(value, dict):
        raise ValueError("[flow_airflow] approver_emails must be a JSON object of username -> email address")
    return {str(k): str(v) for k, v in value.items() if v}


def approval_timeout() -> float:
    """``approval_timeout``: seconds a gate waits for a decision before the run fails."""
    return float(settings.get("approval_timeout", str(DEFAULT_TIMEOUT)))


def poll_interval() -> float:
    """``approval_poll_interval``: seconds between the trigger's looks at the approval.

    A decision resumes the gate at once; polling only catches one made before the gate deferred.
    """
    return float(settings.get("approval_poll_interval", "10"))
