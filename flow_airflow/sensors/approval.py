"""Human validation: the gate before a flow task that listed users must approve."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator


class ApprovalSensor(BaseOperator):
    """Waits until one of ``approvers`` approves the flow task ``flow_task`` in this run.

    Not implemented yet: the run fails here with a message saying so.
    """

    template_fields = ()
    ui_color = "#fde68a"

    def __init__(self, *, approvers: list[str], flow_task: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.approvers = approvers
        self.flow_task = flow_task

    def execute(self, context: Any) -> None:
        from airflow.sdk.exceptions import AirflowException

        raise AirflowException(
            f"'{self.flow_task}' needs approval by {', '.join(self.approvers)} (human_validation), "
            "which flow-airflow does not support yet"
        )
