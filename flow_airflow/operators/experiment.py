"""The operator of an exec task's experiments: runs the task's command for each route
(:class:`flow_airflow.runtime.experiment.ExperimentRun`), mapped over the task's routes.

On a deferrable compute (kubernetes), a task instance of one route defers while its pod runs, as the
cncf-kubernetes provider's ``KubernetesPodOperator(deferrable=True)`` does: the pod is created, the
task defers to the provider's ``KubernetesPodTrigger``, and :meth:`ExperimentOperator.resume_pod`
reads the pod's log, parses its tags, stores its outputs and makes the record."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flow_airflow.common.records import Record
from flow_airflow.operators.base import LABEL_LIMIT, ROUTE_LABEL, FlowTaskOperator

__all__ = ["LABEL_LIMIT", "ROUTE_LABEL", "ExperimentOperator"]


class ExperimentOperator(FlowTaskOperator):
    """Runs an exec task's command for one route and returns the experiment's record (XCom)."""

    _experiment: Any = None  # the route's experiment, while it runs (and after, for its labels)
    _event: dict[str, Any] | None = None  # the trigger's event, when resumed after a deferral (``resume_pod``)

    def run_route(self, ti: Any, route: dict[str, Any], index: int, parents: dict[str, list[Record]],
                  project_env: dict[str, str]) -> Record:
        """The route's experiment, from a fresh workspace to its record."""
        from flow_airflow.runtime.experiment import ExperimentRun

        setup = self.setup
        self._experiment = None  # not the last route's, should this one not start
        self._experiment = ExperimentRun(
            spec=setup.task,  # type: ignore[arg-type]  # an exec task (render.dag.OPERATORS)
            route=route,
            parents=parents,
            gathered=setup.gathered,
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            index=index,
            project_dir=Path(setup.project_dir),
            component=Path(setup.component) if setup.component else None,
            compute=setup.compute,
            base_env={**os.environ, **project_env},
            log=self.log,
            varies=self._varies,
            # one route per task instance: on a deferrable compute (kubernetes) the task defers while its pod runs
            defer=None if isinstance(self.route, list) else self._defer_pod,
            resume=self._event,
            try_number=ti.try_number,
            project_env=project_env,
            reuse=self._reuse,
        )
        return self._experiment.run()

    def _defer_pod(self, trigger: Any) -> None:
        """Free the worker slot while the pod runs: Airflow's triggerer waits with ``trigger`` (the provider's
        ``KubernetesPodTrigger``), then the task resumes in :meth:`resume_pod`."""
        self.defer(trigger=trigger, method_name="resume_pod")

    def resume_pod(self, context: Any, event: dict[str, Any] | None = None) -> Record | list[Record]:
        """The task again after its pod ended (``event``: the trigger's): the route's log, tags, outputs and
        record, as :meth:`execute` gives them (the route planned again from the same inputs)."""
        self._event = event or {"status": "error", "message": "the trigger gave no event"}
        return self.execute(context)

    def rendered_labels(self) -> dict[str, str] | None:
        return self._experiment.parts if self._experiment else None

    def on_kill(self) -> None:
        if self._experiment:
            self._experiment.kill()
