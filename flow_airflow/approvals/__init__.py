"""Human validation: approvals of flow tasks, kept as Airflow's own human-in-the-loop records.

The gate of a task (``flow_airflow.sensors.approval.ApprovalSensor``) writes a ``hitl_detail``
row for its task instance (options Approve / Reject, the listed users as its assignees),
mails the approvers and defers to ``trigger.ApprovalTrigger``. A decision, made on the
approvals page of this package (``views``, a page of ``flow_airflow.web``) or in Airflow's own
"Required Actions", fills in the row's response and resumes the deferred gate at once; the trigger also notices it, and
ends the wait when the approval times out.

Everything here but this module is imported only by the process that needs it: the
api-server (``views``, ``store``), the worker (``mail``) or the triggerer (``trigger``).
"""

from __future__ import annotations

from urllib.parse import quote

from flow_airflow.web import URL_PREFIX

APPROVE, REJECT = "Approve", "Reject"
OPTIONS = [APPROVE, REJECT]
SENSOR = "ApprovalSensor"  # TaskInstance.operator of the gates: how their HITL rows are told from others
CONTEXT_KEY = "approval"  # XCom the gate leaves for the page: the experiments before it


def page_path(dag_id: str, run_id: str, task_id: str) -> str:
    """The approvals page of one gate, relative to the api-server's root."""
    return f"{URL_PREFIX}/approvals/{quote(dag_id, safe='')}/{quote(run_id, safe='')}/{quote(task_id, safe='')}"


def page_url(dag_id: str, run_id: str, task_id: str) -> str:
    """The same page as an absolute link for emails and logs (``[api] base_url``)."""
    from airflow.configuration import conf

    base = (conf.get("api", "base_url", fallback="") or "http://localhost:8080").rstrip("/")
    return base + page_path(dag_id, run_id, task_id)
