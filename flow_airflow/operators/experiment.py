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

# The label of a mapped task instance in the UI: the route's varying params, then those of the tasks
# before it, named, e.g. "depth=8 | Grid Search A: lr=0.1" (flow_airflow.common.routes.label_text).
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
        # A task whose routes are a static list but may change with the run (its params, or those
        # of a task before it, from the run's conf; failed parent experiments): {"title", "params",
        # "single_mode", "instances"}. Each task instance plans the task's routes again and runs its share.
        self.replan: dict[str, Any] | None = setup.get("replan")
        self._experiment: Any = None
        self._error = ""
        self._done: list[dict[str, Any]] = []  # the records of this batch's routes so far
        self._first = 0  # the index of this task instance's first route, when planned again
        self._varies: set[str] | None = None  # its params that differ between its routes in this run

    @property
    def route_label(self) -> str:
        """The route's label (``lr=0.01 | Data: size=2``); for a batch, how many routes and the first and last."""
        if not isinstance(self.route, list):
            return _label(self.route, self._varies)
        labels = [_label(r, self._varies) for r in self.route]
        text = labels[0] if len(labels) == 1 else f"{len(labels)} routes: {labels[0]} … {labels[-1]}"
        return text if len(text) <= LABEL_LIMIT else text[: LABEL_LIMIT - 1] + "…"

    def execute(self, context: Any) -> dict[str, Any] | list[dict[str, Any]]:
        """Run the route (or the batch's routes) and return the record(s).

        An experiment that fails, or follows a parent experiment that did not succeed, leaves a
        record with ``failed`` (pushed before the task instance fails or is skipped), so that the
        tasks after it plan its routes too and mark them skipped: only its own route stops.
        """
        from airflow.sdk._shared.secrets_masker import should_hide_value_for_key
        from airflow.sdk.exceptions import AirflowException, AirflowSkipException
        from airflow.sdk.log import mask_secret

        from flow_airflow import settings
        from flow_airflow.operators.overrides import run_overrides

        ti = context["ti"]
        for warning in self.warnings:
            self.log.warning("%s", warning)
        if self.replan and getattr(context.get("dag_run"), "conf", None):
            self.route = self._share(context, ti)  # the run has params (the trigger form sends them all)
        else:
            self.replan = None  # the run's params are the file's: the routes the DAG lists
            if not self.parent_task_ids:
                run_overrides(context, self.log)  # the run's first tasks refuse a conf that does not fit the flow
        self._varies = self._varying(context)
        project_env = settings.project_env()
        for key, value in project_env.items():
            if should_hide_value_for_key(key):
                mask_secret(value, key)
        routes = self.route if isinstance(self.route, list) else [self.route]
        per_instance = self.batch if isinstance(self.route, list) else 1
        first = self._first if self.replan else max(ti.map_index, 0) * per_instance
        records: list[dict[str, Any]] = []
        failed: list[str] = []
        skipped: list[str] = []
        self._done = records
        for offset, route in enumerate(routes):
            if isinstance(self.route, list):
                self.log.info("::group::route %d: %s", first + offset, _label(route, self._varies))
            try:
                record = self._run(ti, route, first + offset, project_env)
            finally:
                if isinstance(self.route, list):
                    self.log.info("::endgroup::")
            records.append(record)
            if record.get("failed", "").startswith("failed"):
                failed.append(f"route {first + offset} ({record['label'] or 'no params'})")
            elif record.get("failed"):
                skipped.append(record["failed"])
        value: Any = records if isinstance(self.route, list) else records[0]
        if failed or len(skipped) == len(records):
            ti.xcom_push(key="return_value", value=value)
        if failed and not isinstance(self.route, list):
            raise AirflowException(self._error)
        if failed:
            raise AirflowException(f"{len(failed)} of the {len(routes)} routes of this batch failed: "
                                   + ", ".join(failed) + " (their logs are above)")
        if len(skipped) == len(records):
            raise AirflowSkipException(skipped[0] if len(skipped) == 1 else f"{len(skipped)} routes: " + skipped[0])
        return value

    def _varying(self, context: Any) -> set[str]:
        """The keys of the task's params that differ between its routes in this run (its conf applied)."""
        from flow_airflow.common.routes import varying
        from flow_airflow.operators.overrides import apply, run_overrides
        from flow_airflow.spec.models import Param

        params = [[p.key, p.grid()] for p in map(Param.model_validate, self.flow_task.get("params", []))]
        conf = getattr(context.get("dag_run"), "conf", None)
        return varying(apply(params, run_overrides(context).get(self.flow_task["title"], {}) if conf else {}))

    def _share(self, context: Any, ti: Any) -> dict[str, Any] | list[dict[str, Any]]:
        """This task instance's routes in this run: the task's routes planned again, cut in as many
        shares as the DAG has task instances of it (one route each, when the run changes nothing)."""
        from airflow.sdk.exceptions import AirflowSkipException

        from flow_airflow.common.routes import plan_routes
        from flow_airflow.operators.overrides import task_params
        from flow_airflow.operators.records import parent_states, pull_records

        plan = self.replan or {}
        title = plan["title"]
        parents = pull_records(ti, self.parent_task_ids) if self.parent_task_ids else {}
        if empty := [p for p, records in parents.items() if not records]:
            states = parent_states(ti, {p: self.parent_task_ids[p] for p in empty})
            raise AirflowSkipException(f"'{title}' does not run: " + "; ".join(
                f"'{p}' has no experiment in this run ({states[p]})" for p in empty))
        params = task_params(context, title, plan["params"], self.log)
        single_mode = plan.get("single_mode", False)
        routes = plan_routes(params, {} if single_mode else parents, single_mode=single_mode)
        instances = max(plan.get("instances", 1), 1)
        per_instance = self.batch if isinstance(self.route, list) else 1  # as the DAG lists them
        size = per_instance if len(routes) <= instances * per_instance else -(-len(routes) // instances)
        self._first = max(ti.map_index, 0) * size
        mine = routes[self._first:self._first + size]
        if not mine:
            self.route = {"params": [], "parents": {}, "label": f"spare: {len(routes)} route(s) in this run"}
            raise AirflowSkipException(f"no route for this task instance: '{title}' has {len(routes)} route(s) "
                                       f"in this run, run by its first task instances")
        if size != per_instance:
            self.log.info("'%s' has %d route(s) in this run (the DAG has %d task instances of it): this one runs "
                          "routes %d to %d", title, len(routes), instances, self._first, self._first + len(mine) - 1)
        return mine if size > 1 or isinstance(self.route, list) else mine[0]

    def _run(self, ti: Any, route: dict[str, Any], index: int, project_env: dict[str, str]) -> dict[str, Any]:
        """One route: its experiment, from a fresh workspace to its record (``failed`` when it did not succeed)."""
        from flow_airflow.common.routes import Record, label_text, labels, lineage
        from flow_airflow.operators.records import pull_chosen
        from flow_airflow.runtime.experiment import Experiment, ExperimentFailed

        title = self.flow_task["title"]
        try:
            parents = pull_chosen(ti, self.parent_task_ids, route["parents"], self.batch)
        except LookupError as e:  # a parent experiment that left no record (its task instance never ran)
            self.log.warning("%s [%s] does not run: %s", title, _label(route, self._varies), e)
            return Record(task=title, index=index, params=dict(route["params"]), tags={}, output=None,
                          route={title: index}, upstream={}, label=_label(route, self._varies),
                          failed=f"skipped: {e}")
        parts = labels(route["params"], parents, self._varies or ())
        record = Record(task=title, index=index, params=dict(route["params"]), tags={}, output=None,
                        route={**lineage(parents, self.gathered), title: index}, upstream={},
                        label=route.get("label") or label_text(parts), labels=parts)
        after = [r for records in parents.values() for r in records if r.get("failed")]
        if after:
            names = ", ".join(f"'{r['task']}' #{r['index']}" + (f" [{r['label']}]" if r.get("label") else "")
                              for r in after)
            record["failed"] = f"skipped: it follows {names}, which did not succeed"
            route["label"] = record["label"]  # the task instance's label in the UI
            self.log.warning("%s [%s] does not run: %s", title, record["label"] or "no params",
                             record["failed"][len("skipped: "):])
            return record
        self._experiment = Experiment(
            task=self.flow_task,
            route=route,
            parents=parents,
            gathered=self.gathered,
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            index=index,
            project_dir=Path(self.project_dir),
            compute=self.compute,
            base_env={**os.environ, **project_env},
            log=self.log,
            varies=self._varies,
        )
        try:
            return self._experiment.run()
        except BaseException as e:
            message = str(e) if isinstance(e, ExperimentFailed) else f"{type(e).__name__}: {e}"
            record["label"] = route.get("label") or record["label"]
            record["labels"] = self._experiment.parts or record["labels"]  # with its params rendered
            record["failed"] = "failed: " + message.splitlines()[0].split(". Last lines of its output")[0]
            if not isinstance(e, Exception):  # a timeout or a kill: keep the records, then let Airflow end it
                ti.xcom_push(key="return_value", value=[*self._done, record] if isinstance(self.route, list)
                             else record)
                raise
            if not isinstance(e, ExperimentFailed):
                self.log.exception("the experiment failed")
            self.log.error("%s", message)
            self._error = message
            return record

    def on_kill(self) -> None:
        if self._experiment:
            self._experiment.kill()


def _label(route: dict[str, Any], varies: set[str] | None = None) -> str:
    """A route's label: as planned or as the experiment made it, else (before it ran) its own varying
    params; "no params" when it has none."""
    from flow_airflow.common.routes import label

    return route.get("label") or label(route["params"], {}, varies) or "no params"
