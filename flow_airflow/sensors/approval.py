"""Human validation: the gate before a flow task that listed users must approve.

Imported while DAG files are parsed: everything beyond the Task SDK is imported inside methods.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseSensorOperator

from flow_airflow.approvals import APPROVE, CONTEXT_KEY, OPTIONS, REJECT
from flow_airflow.common.ids import RUN, is_role

EXPERIMENTS_SHOWN = 500  # experiments before the gate kept for the approvals page
#: Key in the task state store (Airflow's, kept across the tries of a task in a run): the first request's deadline
ASKED = "flow_airflow.approval"


class ApprovalSensor(BaseSensorOperator):
    """Waits until one of ``approvers`` approves the flow task ``flow_task`` in this run.

    Deferrable only: it records the request as Airflow's human-in-the-loop detail of its task
    instance (so it shows in the approvals page and in "Required Actions"), mails the
    approvers, and defers to ``ApprovalTrigger``. Asked once per run: a restarted gate (retry,
    cleared task) keeps the decision already given and the first request's deadline.
    Approve: it succeeds and the task's routes run. Reject or timeout: it fails without retry,
    so the task and everything after it never run and the DAG run fails.
    """

    template_fields = ()
    ui_color = "#fde68a"

    def __init__(self, *, approvers: list[str], flow_task: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.approvers = approvers
        self.flow_task = flow_task

    def poke(self, context: Any) -> bool:  # pragma: no cover - execute() defers instead of poking
        raise NotImplementedError("ApprovalSensor only defers")

    def execute(self, context: Any) -> None:
        from datetime import UTC, datetime, timedelta

        from flow_airflow.approvals import config, page_url
        from flow_airflow.triggers.approval import ApprovalTrigger

        ti = context["ti"]
        link = page_url(ti.dag_id, ti.run_id, ti.task_id)
        asked = context["task_state_store"].get(ASKED)  # this gate's earlier tries in this run
        if asked is None:
            deadline = datetime.now(UTC) + timedelta(seconds=config.approval_timeout())
            self._ask(context, link, deadline)
            context["task_state_store"].set(ASKED, {"deadline": deadline.isoformat()})
        else:
            # A restart (retry, cleared task): Airflow's HITL row followed the task instance, with the
            # decision if one was given. Asking again would erase that decision (Airflow's upsert
            # clears a response), so the gate waits on the same request and the same deadline.
            deadline = datetime.fromisoformat(asked["deadline"])
            self.log.info("Restarted: '%s' keeps the request of try 1 and its deadline %s (%s)", self.flow_task,
                          deadline.isoformat(timespec="seconds"), link)
        self.defer(
            trigger=ApprovalTrigger(
                ti_id=str(ti.id), flow_task=self.flow_task, deadline=deadline, poll_interval=config.poll_interval()
            ),
            method_name="execute_complete",
        )

    def _ask(self, context: Any, link: str, deadline: Any) -> None:
        """Record the request as the task instance's HITL detail and mail the approvers."""
        from airflow.sdk.execution_time.hitl import upsert_hitl_detail

        from flow_airflow.approvals import mail

        ti = context["ti"]
        flow = context["dag"].dag_display_name
        experiments = self._experiments_before(ti)
        ti.xcom_push(key=CONTEXT_KEY, value={"flow_task": self.flow_task, "experiments": experiments})
        who = " or ".join(self.approvers)
        upsert_hitl_detail(
            ti_id=ti.id,
            options=OPTIONS,
            subject=f"Approve '{self.flow_task}' of flow '{flow}'?",
            body=_body(self.flow_task, who, link, experiments),
            params={},
            assigned_users=[{"id": u, "name": u} for u in self.approvers],
        )
        self.log.info("Pending approval: '%s' waits for %s until %s. Approve or reject at %s",
                      self.flow_task, who, deadline.isoformat(timespec="seconds"), link)
        mail.notify(flow=flow, task=self.flow_task, run_id=ti.run_id, approvers=self.approvers, link=link,
                    log=self.log)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout

        chosen = list(event.get("chosen_options") or [])
        user = (event.get("responded_by_user") or {}).get("name")
        when = event.get("responded_at")
        when = when.isoformat(timespec="seconds") if hasattr(when, "isoformat") else str(when or "")
        if event.get("timedout") or not chosen or user is None:
            raise AirflowSensorTimeout(
                f"No decision on '{self.flow_task}' in time: the flow stops here ([flow_airflow] approval_timeout)"
            )
        if chosen == [APPROVE]:
            self.log.info("Approved by %s at %s: '%s' runs", user, when, self.flow_task)
            return {"decision": "approved", "by": user, "at": when}
        if chosen == [REJECT]:
            raise AirflowFailException(f"Rejected by {user} at {when}: '{self.flow_task}' does not run, the flow stops")
        raise AirflowFailException(f"Unknown decision {chosen!r} by {user} on '{self.flow_task}'")

    def _experiments_before(self, ti: Any) -> list[dict[str, Any]]:
        """Label, params and tags of every experiment upstream of the gate, in the DAG's task order."""
        from flow_airflow.operators.xcom import pull_records

        upstream = self.get_flat_relative_ids(upstream=True)
        run_ids = [t for t in self.dag.task_ids if t in upstream and is_role(t, RUN)]
        found: list[dict[str, Any]] = []
        for records in pull_records(ti, {t: t for t in run_ids}).values():
            found += [
                {"task": r.get("task", ""), "label": r.get("label", ""), "params": r.get("params", {}),
                 "tags": r.get("tags", {})}
                for r in records
            ]
        return found[:EXPERIMENTS_SHOWN]


def _body(task: str, who: str, link: str, experiments: list[dict[str, Any]]) -> str:
    """Markdown shown with the request in Airflow's "Required Actions"."""
    lines = [f"**{task}** waits for an approval by {who}. Approve: the task runs. Reject: the flow stops.", "",
             f"[Open the approval]({link})"]
    if experiments:
        lines += ["", "| experiment | params | tags |", "|---|---|---|"]
        for e in experiments[:20]:
            params = ", ".join(f"{k}={v}" for k, v in e["params"].items())
            tags = ", ".join(f"{k}={v}" for k, v in e["tags"].items())
            cells = [f"{e['task']} {e['label']}", params, tags]
            lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
        if len(experiments) > 20:
            lines.append(f"| ... {len(experiments) - 20} more |  |  |")
    return "\n".join(lines)
