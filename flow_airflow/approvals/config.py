"""Settings of human validation, in the ``[flow_airflow]`` section like the others (``flow_airflow.settings``)."""

from __future__ import annotations

from flow_airflow import settings

DEFAULT_TIMEOUT = settings.DEFAULT_APPROVAL_TIMEOUT  # as long as Airflow lets a sensor wait ([sensors] default_timeout)


def approver_emails() -> dict[str, str]:
    """``approver_emails``: JSON object of username -> email address; users missing from it get no mail."""
    return {str(k): str(v) for k, v in settings.value("approver_emails").items() if v}


def approval_timeout() -> float:
    """``approval_timeout``: seconds a gate waits for a decision before the run fails."""
    return settings.value("approval_timeout")


def poll_interval() -> float:
    """``approval_poll_interval``: seconds between the trigger's looks at the approval.

    A decision resumes the gate at once; polling only catches one made before the gate deferred.
    """
    return settings.value("approval_poll_interval")
