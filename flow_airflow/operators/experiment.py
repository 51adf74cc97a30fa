"""The operator of an exec task's experiments: runs the task's command for each route
(:class:`flow_airflow.runtime.experiment.Experiment`), mapped over the task's routes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flow_airflow.common.routes import Record
from flow_airflow.operators.base import LABEL_LIMIT, ROUTE_LABEL, FlowTaskOperator

__all__ = ["LABEL_LIMIT", "ROUTE_LABEL", "ExperimentOperator"]


class ExperimentOperator(FlowTaskOperator):
    """Runs an exec task's command for one route and returns the experiment's record (XCom)."""

    _experiment: Any = None  # the route's experiment, while it runs (and after, for its labels)

    def run_route(self, ti: Any, route: dict[str, Any], index: int, parents: dict[str, list[Record]],
                  project_env: dict[str, str]) -> Record:
        """The route's experiment, from a fresh workspace to its record."""
        from flow_airflow.runtime.experiment import Experiment

        setup = self.setup
        self._experiment = None  # not the last route's, should this one not start
        self._experiment = Experiment(
            task=setup.task.model_dump(mode="json", exclude_defaults=True),
            route=route,
            parents=parents,
            gathered=setup.gathered,
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            index=index,
            project_dir=Path(setup.project_dir),
            compute=setup.compute.model_dump(),
            base_env={**os.environ, **project_env},
            log=self.log,
            varies=self._varies,
        )
        return self._experiment.run()

    def rendered_labels(self) -> dict[str, str] | None:
        return self._experiment.parts if self._experiment else None

    def on_kill(self) -> None:
        if self._experiment:
            self._experiment.kill()
