"""The operator that runs one experiment of a flow task; mapped over the task's routes.

With ``[flow_airflow] batch_routes`` a task instance runs several routes in turn (a batch):
its XCom is then the list of their records, its log has a section per route.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

# The label of a mapped task instance in the UI: the route's params, e.g. "lr=0.01".
ROUTE_LABEL = "{{ task.route_label }}"
LABEL_LIMIT = 250  # Airflow's rendered_map_index column


class ExperimentOperator(BaseOperator):
    """Runs a flow task's command for one route and returns the experiment's record (XCom)."""

    template_fields = ()  # flow commands and params are not Jinja templates
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        experiment: dict[str, Any] | str,
        route: dict[str, Any] | list[dict[str, Any]] | str,
        batch: int = 1,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        # Compiled DAGs pass these as JSON text: one string serializes (and parses) far faster
        # than the nested lists and dicts it holds, in every DAG file parse.
        setup = json.loads(experiment) if isinstance(experiment, str) else experiment
        self.flow_task: dict[str, Any] = setup["task"]
        self.parent_task_ids: dict[str, str] = setup.get("parents", {})  # parent title -> its run task id
        self.gathered: list[str] = setup.get("gathered", [])  # parents whose passing experiments are gathered
        self.project_dir: str = setup["project_dir"]
        self.compute: dict[str, Any] = setup.get("compute") or {"name": "local", "kind": "local"}
        self.warnings: list[str] = setup.get("warnings", [])  # from the flow file: keys that have no effect
        self.route = json.loads(route) if isinstance(route, str) else route
        self.batch = batch  # routes per task instance in this flow: map index m runs routes m*batch...
        self._experiment: Any = None

    @property
    def route_label(self) -> str:
        """The route's params (``lr=0.01``); for a batch, how many routes and the first and last."""
        if not isinstance(self.route, list):
            return _label(self.route)
        labels = [_label(r) for r in self.route]
        text = labels[0] if len(labels) == 1 else f"{len(labels)} routes: {labels[0]} … {labels[-1]}"
        return text if len(text) <= LABEL_LIMIT else text[: LABEL_LIMIT - 1] + "…"

    def execute(self, context: Any) -> dict[str, Any] | list[dict[str, Any]]:
        from airflow.sdk._shared.secrets_masker import should_hide_value_for_key
        from airflow.sdk.exceptions import AirflowException
        from airflow.sdk.log import mask_secret

        from flow_airflow import settings
        from flow_airflow.runtime.experiment import ExperimentFailed

        ti = context["ti"]
        for warning in self.warnings:
            self.log.warning("%s", warning)
        project_env = settings.project_env()
        for key, value in project_env.items():
            if should_hide_value_for_key(key):
                mask_secret(value, key)
        if not isinstance(self.route, list):
            try:
                return self._run(ti, self.route, max(ti.map_index, 0), project_env)
            except ExperimentFailed as e:
                raise AirflowException(str(e)) from None
        first = max(ti.map_index, 0) * self.batch
        records, failed = [], []
        for offset, route in enumerate(self.route):
            self.log.info("::group::route %d: %s", first + offset, _label(route))
            try:
                records.append(self._run(ti, route, first + offset, project_env))
            except ExperimentFailed as e:
                self.log.error("%s", e)
                failed.append(f"route {first + offset} ({_label(route)})")
            finally:
                self.log.info("::endgroup::")
        if failed:
            raise AirflowException(f"{len(failed)} of the {len(self.route)} routes of this batch failed: "
                                   + ", ".join(failed) + " (their logs are above)")
        return records

    def _run(self, ti: Any, route: dict[str, Any], index: int, project_env: dict[str, str]) -> dict[str, Any]:
        """One route: its experiment, from a fresh workspace to its record."""
        from flow_airflow.operators.records import pull_chosen
        from flow_airflow.runtime.experiment import Experiment

        self._experiment = Experiment(
            task=self.flow_task,
            route=route,
            parents=pull_chosen(ti, self.parent_task_ids, route["parents"], self.batch),
            gathered=self.gathered,
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            index=index,
            project_dir=Path(self.project_dir),
            compute=self.compute,
            base_env={**os.environ, **project_env},
            log=self.log,
        )
        return self._experiment.run()

    def on_kill(self) -> None:
        if self._experiment:
            self._experiment.kill()


def _label(route: dict[str, Any]) -> str:
    """A route's label: as the experiment made it, else (before it ran) its own params."""
    from flow_airflow.plan.routes import label

    return route.get("label") or label(route["params"], {}) or "no params"
