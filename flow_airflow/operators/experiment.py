"""The operator that runs one experiment of a flow task; mapped over the task's routes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

# The label of a mapped task instance in the UI: the route's params, e.g. "lr=0.01".
ROUTE_LABEL = "{{ task.route['label'] or 'no params' }}"


class ExperimentOperator(BaseOperator):
    """Runs a flow task's command for one route and returns the experiment's record (XCom)."""

    template_fields = ()  # flow commands and params are not Jinja templates
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        flow_task: dict[str, Any] | str,
        route: dict[str, Any] | str,
        parent_task_ids: dict[str, str],
        gathered: list[str],
        project_dir: str,
        compute: dict[str, Any] | str,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        # Compiled DAGs pass these as JSON text: one string serializes (and parses) far faster
        # than the nested lists and dicts it holds, in every DAG file parse.
        self.flow_task = json.loads(flow_task) if isinstance(flow_task, str) else flow_task
        self.route = json.loads(route) if isinstance(route, str) else route
        self.parent_task_ids = parent_task_ids
        self.gathered = gathered
        self.project_dir = project_dir
        self.compute = json.loads(compute) if isinstance(compute, str) else compute
        self._experiment: Any = None

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk._shared.secrets_masker import should_hide_value_for_key
        from airflow.sdk.exceptions import AirflowException
        from airflow.sdk.log import mask_secret

        from flow_airflow import settings
        from flow_airflow.operators.records import pull_chosen
        from flow_airflow.runtime.experiment import Experiment, ExperimentFailed

        ti = context["ti"]
        project_env = settings.project_env()
        for key, value in project_env.items():
            if should_hide_value_for_key(key):
                mask_secret(value, key)
        self._experiment = Experiment(
            task=self.flow_task,
            route=self.route,
            parents=pull_chosen(ti, self.parent_task_ids, self.route["parents"]),
            gathered=self.gathered,
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            index=max(ti.map_index, 0),
            project_dir=Path(self.project_dir),
            compute=self.compute,
            base_env={**os.environ, **project_env},
            log=self.log,
        )
        try:
            return self._experiment.run()
        except ExperimentFailed as e:
            raise AirflowException(str(e)) from None

    def on_kill(self) -> None:
        if self._experiment:
            self._experiment.kill()
