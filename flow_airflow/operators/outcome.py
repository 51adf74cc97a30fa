"""The run's outcome: ``flow-outcome``, after the flow's last tasks, fails the run when anything failed.

A failed experiment fails only its own route: the planning tasks after it run whatever their
parents did (trigger rule ``all_done``) and the other routes go on. Airflow decides a run's state
from its last tasks, which may all have succeeded; this task, downstream of them and run when
they are done, looks at every task instance of the run and fails (so the run fails) when one
failed, naming them.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator

from flow_airflow.common.ids import run_task_id

FAILED = ("failed", "upstream_failed")
SHOWN = 20


class OutcomeOperator(BaseOperator):
    """Succeeds when no task instance of the run failed; else fails, listing what failed."""

    template_fields = ()
    ui_color = "#eeeeee"

    def __init__(self, *, titles: dict[str, str], batch: int = 1, **kwargs: Any):
        super().__init__(**kwargs)
        self.titles = titles  # run task id -> flow task title
        self.batch = batch  # routes per task instance: map index m runs routes m*batch...

    def execute(self, context: Any) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        ti = context["ti"]
        failed = [c for c in ti.get_task_breadcrumbs(ti.dag_id, ti.run_id)
                  if str(c.get("state")) in FAILED and c.get("task_id") != self.task_id]
        if not failed:
            self.log.info("every experiment that ran succeeded")
            return
        labels = self._failed_labels(ti, {c["task_id"] for c in failed})
        lines = []
        for c in failed[:SHOWN]:
            task_id, index = c["task_id"], c.get("map_index", -1)
            name = self._name(task_id)
            label = "; ".join(labels.get((task_id, index), []))
            where = f" #{index}" if index is not None and index >= 0 else ""
            lines.append(f"{name}{where}{f' [{label}]' if label else ''}: {c.get('state')}")
        more = f" and {len(failed) - SHOWN} more" if len(failed) > SHOWN else ""
        for line in lines:
            self.log.error("%s", line)
        raise AirflowFailException(
            f"{len(failed)} task instance(s) of this run did not succeed ({'; '.join(lines)}{more}): the run "
            "fails; every route that did not depend on them ran"
        )

    def _name(self, task_id: str) -> str:
        """A task instance's name for the log: the flow task's title, and the step when not its experiments."""
        if task_id in self.titles:
            return self.titles[task_id]
        group, _, step = task_id.rpartition(".")
        title = self.titles.get(run_task_id(group))
        return f"{title}: {step}" if title else task_id

    def _failed_labels(self, ti: Any, task_ids: set[str]) -> dict[tuple[str, int], list[str]]:
        """The labels of failed experiments, from the records they left: (task id, map index) -> labels."""
        from flow_airflow.common.records import Status, status_of
        from flow_airflow.operators.xcom import pull_records

        wanted = {t: t for t in task_ids if t in self.titles}
        labels: dict[tuple[str, int], list[str]] = {}
        for task_id, records in pull_records(ti, wanted).items():
            for r in records:
                if status_of(r) is Status.FAILED and r.get("label"):
                    map_index = r["index"] // self.batch if self.batch > 1 else r["index"]
                    labels.setdefault((task_id, map_index), []).append(r["label"])
        return labels
