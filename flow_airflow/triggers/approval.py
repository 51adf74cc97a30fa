"""The trigger a gate defers to: it waits in the triggerer, holding no worker slot.

It looks at the gate's human-in-the-loop record through the triggerer's Execution API client
(the triggerer has no DAG bundles, which is why this module ships in the installed package).
The decision itself normally resumes the gate at once (the api-server hands the deferred task
its event); the trigger catches a decision made before the gate deferred and ends the wait at
the deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from airflow.triggers.base import BaseTrigger, TriggerEvent

LOG_EVERY = 600.0  # seconds between "still pending" lines in the task log


class ApprovalTrigger(BaseTrigger):
    """Fires when the approval of task instance ``ti_id`` is decided, or at ``deadline`` (timed out)."""

    def __init__(self, *, ti_id: str, flow_task: str, deadline: datetime, poll_interval: float = 10.0):
        super().__init__()
        self.ti_id = str(ti_id)
        self.flow_task = flow_task
        self.deadline = deadline
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "ti_id": self.ti_id,
                "flow_task": self.flow_task,
                "deadline": self.deadline,
                "poll_interval": self.poll_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from asgiref.sync import sync_to_async

        read = sync_to_async(_read_detail)
        self.log.info("Pending approval of '%s' until %s", self.flow_task, self.deadline.isoformat())
        last_note = asyncio.get_running_loop().time()
        while True:
            detail = await read(ti_id=UUID(self.ti_id))
            if detail.response_received and detail.chosen_options:
                user = detail.responded_by_user
                yield TriggerEvent(
                    {
                        "chosen_options": list(detail.chosen_options),
                        "responded_by_user": {"id": user.id, "name": user.name} if user else None,
                        "responded_at": detail.responded_at,
                        "timedout": False,
                    }
                )
                return
            left = (self.deadline - datetime.now(UTC)).total_seconds()
            if left <= 0:
                yield TriggerEvent({"chosen_options": [], "responded_by_user": None, "timedout": True})
                return
            now = asyncio.get_running_loop().time()
            if now - last_note >= LOG_EVERY:
                self.log.info("Still pending approval of '%s' (%.0f s left)", self.flow_task, left)
                last_note = now
            await asyncio.sleep(min(self.poll_interval, left))


def _read_detail(ti_id: UUID) -> Any:
    """The gate's HITL record, through the triggerer's supervisor.

    ``dag.test()`` (``flow-airflow run``) runs triggers in line under a task supervisor, which
    does not answer HITL reads: there the same Execution API call goes through its client.
    """
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.hitl import get_hitl_detail_content_detail

    in_process = getattr(task_runner.SUPERVISOR_COMMS, "supervisor", None)
    if in_process is not None:
        return in_process.client.hitl.get_detail_response(ti_id=ti_id)
    return get_hitl_detail_content_detail(ti_id=ti_id)
