"""The email that tells approvers a flow task waits for them, sent through Airflow's SMTP settings."""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from flow_airflow.approvals import config


def message(*, flow: str, task: str, run_id: str, approvers: list[str], link: str) -> tuple[str, str]:
    """Subject and HTML body of the approval request."""
    subject = f"Approval needed: '{task}' of flow '{flow}'"
    body = (
        f"<p>The flow <b>{escape(flow)}</b> (run <code>{escape(run_id)}</code>) waits for an approval of "
        f"its task <b>{escape(task)}</b> by {escape(' or '.join(approvers))}.</p>"
        f'<p><a href="{escape(link, quote=True)}">Open the approval</a> to see what ran before it and to '
        "approve or reject it. Approving runs the task; rejecting stops the flow.</p>"
        f"<p>{escape(link)}</p>"
    )
    return subject, body


def notify(
    *, flow: str, task: str, run_id: str, approvers: list[str], link: str, log: Callable[..., None]
) -> list[str]:
    """Mail each approver who has an address (``approver_emails``); return who was mailed.

    A mail that cannot be sent is logged, not raised: the approval still waits on the page.
    """
    addresses = config.approver_emails()
    missing = [u for u in approvers if u not in addresses]
    if missing:
        log("No email address for %s ([flow_airflow] approver_emails): not mailed", ", ".join(missing))
    subject, body = message(flow=flow, task=task, run_id=run_id, approvers=approvers, link=link)
    sent = []
    for user in approvers:
        if user not in addresses:
            continue
        try:
            from airflow.utils.email import send_email

            send_email(to=[addresses[user]], subject=subject, html_content=body)
        except Exception as exc:
            log("Could not mail %s at %s: %s: %s", user, addresses[user], type(exc).__name__, exc)
            continue
        sent.append(user)
    if sent:
        log("Mailed the approval request to %s", ", ".join(f"{u} <{addresses[u]}>" for u in sent))
    return sent
