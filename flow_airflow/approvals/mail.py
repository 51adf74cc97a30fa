"""The email that tells approvers a flow task waits for them.

Sent through Airflow's SMTP connection (``[email] email_conn_id``, ``smtp_default``), as Airflow's
own task emails and the flows' notifications are.
"""

from __future__ import annotations

from html import escape
from typing import Any

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
    *, flow: str, task: str, run_id: str, approvers: list[str], link: str, log: Any
) -> list[str]:
    """Mail each approver who has an address (``approver_emails``); return who was mailed.

    A mail that cannot be sent is logged, not raised: the approval still waits on the page.
    """
    addresses = config.approver_emails()
    missing = [u for u in approvers if u not in addresses]
    if missing:
        log.warning("No email address for %s ([flow_airflow] approver_emails): not mailed", ", ".join(missing))
    subject, body = message(flow=flow, task=task, run_id=run_id, approvers=approvers, link=link)
    wanted = [u for u in approvers if u in addresses]
    sent: list[str] = []
    if not wanted:
        return sent
    try:
        from airflow.configuration import conf
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        with SmtpHook(smtp_conn_id=conf.get("email", "email_conn_id", fallback="smtp_default")) as smtp:
            sender = smtp.from_email or conf.get("email", "from_email", fallback=None) or conf.get(
                "smtp", "smtp_mail_from", fallback="airflow@example.com")
            for user in wanted:
                try:
                    smtp.send_email_smtp(to=[addresses[user]], subject=subject, html_content=body, from_email=sender)
                except Exception as exc:
                    log.warning("Could not mail %s at %s: %s: %s", user, addresses[user], type(exc).__name__, exc)
                    continue
                sent.append(user)
    except Exception as exc:
        log.warning("Could not mail the approvers: %s: %s", type(exc).__name__, exc)
    if sent:
        log.info("Mailed the approval request to %s", ", ".join(f"{u} <{addresses[u]}>" for u in sent))
    return sent
