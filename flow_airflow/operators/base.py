"""The experiments of a flow task, ``<task>.run``: one operator family per task type, on one base.

The DAG chooses the class from the task's type (:data:`flow_airflow.render.dag.OPERATORS`), as
astronomer-cosmos chooses one operator class per execution mode:
:class:`~flow_airflow.operators.experiment.ExperimentOperator` (exec),
:class:`~flow_airflow.operators.data.DataTaskOperator` (data),
:class:`~flow_airflow.operators.deploy.DeployTaskOperator` (deploy). :class:`FlowTaskOperator` holds
what they share: the setup (:class:`~flow_airflow.operators.setup.TaskSetup`), mapping over the
task's routes (with ``[flow_airflow] batch_routes`` a task instance runs several routes in turn: its
XCom is then the list of their records, its log has a section per route), planning them again when
the run changes them, the parent experiments a route follows and the record each route leaves;
a family says how one route runs (:meth:`FlowTaskOperator.run_route`).
"""

from __future__ import annotations

import json
from typing import Any

from airflow.sdk import BaseOperator

from flow_airflow.common.records import Record, Status, not_succeeded, reason_of, status_of
from flow_airflow.common.routes import LABEL_LIMIT
from flow_airflow.operators.setup import TaskSetup

# The label of a mapped task instance in the UI: the route's varying params, then those of the tasks
# before it, named, e.g. "depth=8 | Grid Search A: lr=0.1" (flow_airflow.common.routes.label_text).
ROUTE_LABEL = "{{ task.route_label }}"


class FlowTaskOperator(BaseOperator):
    """Runs a flow task for one route (or a batch of routes) and returns the record(s) (XCom).

    ``setup``: :class:`~flow_airflow.operators.setup.TaskSetup`, as JSON text in compiled DAGs (one
    string serializes, and parses, far faster than the nested lists and dicts it holds, in every
    DAG file parse); ``route``: a route (``{"params", "parents"}``) or, with ``batch`` > 1, a list
    of them, also as JSON text; ``batch``: routes per task instance in this flow (map index m runs
    routes m*batch...).
    """

    template_fields = ()  # flow commands and params are not Jinja templates
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        setup: TaskSetup | str,
        route: dict[str, Any] | list[dict[str, Any]] | str,
        batch: int = 1,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.setup = setup if isinstance(setup, TaskSetup) else TaskSetup.model_validate_json(setup)
        self.route = json.loads(route) if isinstance(route, str) else route
        self.batch = batch
        self._replanned = False  # the run changed its routes: this task instance planned them again
        self._error = ""
        self._done: list[Record] = []  # the records of this batch's routes so far
        self._first = 0  # the index of this task instance's first route, when planned again
        self._varies: set[str] | None = None  # its params that differ between its routes in this run
        self._reuse = False  # this run reuses experiments of the same key (operators.overrides.reuse_asked)

    @property
    def route_label(self) -> str:
        """The route's label (``lr=0.01 | Data: size=2``); for a batch, how many routes and the first and last."""
        if not isinstance(self.route, list):
            return _label(self.route, self._varies)
        labels = [_label(r, self._varies) for r in self.route]
        text = labels[0] if len(labels) == 1 else f"{len(labels)} routes: {labels[0]} … {labels[-1]}"
        return text if len(text) <= LABEL_LIMIT else text[: LABEL_LIMIT - 1] + "…"

    def execute(self, context: Any) -> Record | list[Record]:
        """Run the route (or the batch's routes) and return the record(s).

        An experiment that fails, or follows a parent experiment that did not succeed, leaves a
        record with ``failed`` (pushed before the task instance fails or is skipped), so that the
        tasks after it plan its routes too and mark them skipped: only its own route stops.
        """
        ti = context["ti"]
        self._begin(context, ti)
        return self._outcome(ti, self._run_routes(ti, self._project_env()))

    def run_route(self, ti: Any, route: dict[str, Any], index: int, parents: dict[str, list[Record]],
                  project_env: dict[str, str]) -> Record:
        """Run one route that follows ``parents`` (title -> the experiments it follows, which all
        succeeded) and return its record. Raise to fail it: an ``ExperimentFailed`` says why in one
        line; any other exception is logged with its traceback."""
        raise NotImplementedError

    def rendered_labels(self) -> dict[str, str] | None:
        """The parts of the label of the route that just failed, as its run made them (params rendered)."""
        return None

    def _begin(self, context: Any, ti: Any) -> None:
        """The flow file's warnings; this task instance's routes, when the run changes them; its varying params."""
        from flow_airflow.operators.overrides import reuse_asked, run_overrides

        for warning in self.setup.warnings:
            self.log.warning("%s", warning)
        if self.setup.replan and getattr(context.get("dag_run"), "conf", None):
            self.route = self._share(context, ti)  # the run has params (the trigger form sends them all)
            self._replanned = True
        elif not self.setup.parents:  # the run's params are the file's: the routes the DAG lists
            run_overrides(context, self.log)  # the run's first tasks refuse a conf that does not fit the flow
        self._varies = self._varying(context)
        self._reuse = reuse_asked(context)

    def _project_env(self) -> dict[str, str]:
        """``[flow_airflow] project_env``, its secrets masked in the logs."""
        from airflow.sdk._shared.secrets_masker import should_hide_value_for_key
        from airflow.sdk.log import mask_secret

        from flow_airflow import settings

        project_env = settings.project_env()
        for key, value in project_env.items():
            if should_hide_value_for_key(key):
                mask_secret(value, key)
        return project_env

    def _run_routes(self, ti: Any, project_env: dict[str, str]) -> list[Record]:
        """Each route of this task instance in turn (a log section each, in a batch): their records."""
        batched = isinstance(self.route, list)
        routes = self.route if batched else [self.route]
        first = self._first if self._replanned else max(ti.map_index, 0) * (self.batch if batched else 1)
        self._done = []
        for offset, route in enumerate(routes):
            if batched:
                self.log.info("::group::route %d: %s", first + offset, _label(route, self._varies))
            try:
                record = self._run(ti, route, first + offset, project_env)
            finally:
                if batched:
                    self.log.info("::endgroup::")
            self._done.append(record)
        return self._done

    def _outcome(self, ti: Any, records: list[Record]) -> Record | list[Record]:
        """The XCom of this task instance; or, when a route failed or all were skipped, pushed and raised."""
        from airflow.sdk.exceptions import AirflowException, AirflowSkipException

        batched = isinstance(self.route, list)
        failed = [f"route {r['index']} ({r['label'] or 'no params'})" for r in records
                  if status_of(r) is Status.FAILED]
        skipped = [r["failed"] for r in records if status_of(r) is Status.SKIPPED]
        value: Any = records if batched else records[0]
        if failed or len(skipped) == len(records):
            ti.xcom_push(key="return_value", value=value)
        if failed and not batched:
            raise AirflowException(self._error)
        if failed:
            raise AirflowException(f"{len(failed)} of the {len(records)} routes of this batch failed: "
                                   + ", ".join(failed) + " (their logs are above)")
        if len(skipped) == len(records):
            raise AirflowSkipException(skipped[0] if len(skipped) == 1 else f"{len(skipped)} routes: " + skipped[0])
        return value

    def _varying(self, context: Any) -> set[str]:
        """The keys of the task's params that differ between its routes in this run (its conf applied)."""
        from flow_airflow.common.routes import varying
        from flow_airflow.operators.overrides import apply, run_overrides

        task = self.setup.task
        params: list[list[Any]] = [[p.key, p.grid()] for p in getattr(task, "params", [])]
        conf = getattr(context.get("dag_run"), "conf", None)
        return varying(apply(params, run_overrides(context).get(task.title, {}) if conf else {}))

    def _share(self, context: Any, ti: Any) -> dict[str, Any] | list[dict[str, Any]]:
        """This task instance's routes in this run: the task's routes planned again, cut in as many
        shares as the DAG has task instances of it (one route each, when the run changes nothing)."""
        from airflow.sdk.exceptions import AirflowSkipException

        from flow_airflow.common.routes import plan_routes
        from flow_airflow.operators.overrides import task_params
        from flow_airflow.operators.routes import planned
        from flow_airflow.operators.xcom import parent_states, pull_records

        plan = self.setup.replan
        assert plan is not None
        title, task_ids = plan.title, self.setup.parents
        parents = pull_records(ti, task_ids) if task_ids else {}
        if empty := [p for p, records in parents.items() if not records]:
            states = parent_states(ti, {p: task_ids[p] for p in empty})
            raise AirflowSkipException(f"'{title}' does not run: " + "; ".join(
                f"'{p}' has no experiment in this run ({states[p]})" for p in empty))
        params = task_params(context, title, [list(p) for p in plan.params], self.log)
        routes = planned(title, lambda: plan_routes(params, {} if plan.single_mode else parents,
                                                    single_mode=plan.single_mode,
                                                    max_jobs=plan.max_jobs))
        instances = max(-(-plan.routes // self.batch), 1)  # as the DAG has them
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

    def _run(self, ti: Any, route: dict[str, Any], index: int, project_env: dict[str, str]) -> Record:
        """One route: its parent experiments, then :meth:`run_route`; its record (``failed`` if it did not succeed)."""
        from flow_airflow.common.routes import record_route, route_label
        from flow_airflow.operators.xcom import pull_chosen

        title = self.setup.task.title
        try:
            parents = pull_chosen(ti, self.setup.parents, route["parents"], self.batch)
        except LookupError as e:  # a parent experiment that left no record (its task instance never ran)
            self.log.warning("%s [%s] does not run: %s", title, _label(route, self._varies), e)
            return not_succeeded(Record(task=title, index=index, params=dict(route["params"]), tags={}, output=None,
                                        route={title: index}, upstream={}, label=_label(route, self._varies)),
                                 Status.SKIPPED, str(e))
        label, parts = route_label(route, parents, self._varies or ())
        record = Record(task=title, index=index, params=dict(route["params"]), tags={}, output=None,
                        route=record_route(title, index, parents, self.setup.gathered), upstream={},
                        label=label, labels=parts)
        after = [r for records in parents.values() for r in records if status_of(r) is not Status.SUCCESS]
        if after:
            names = ", ".join(f"'{r['task']}' #{r['index']}" + (f" [{r['label']}]" if r.get("label") else "")
                              for r in after)
            not_succeeded(record, Status.SKIPPED, f"it follows {names}, which did not succeed")
            route["label"] = record["label"]  # the task instance's label in the UI
            self.log.warning("%s [%s] does not run: %s", title, record["label"] or "no params", reason_of(record))
            return record
        from airflow.sdk.exceptions import TaskDeferred

        try:
            return self.run_route(ti, route, index, parents, project_env)
        except TaskDeferred:  # the route goes on in the triggerer (a pod): no record yet
            raise
        except BaseException as e:
            self._failed(route, record, e)
            if not isinstance(e, Exception):  # a timeout or a kill: keep the records, then let Airflow end it
                ti.xcom_push(key="return_value", value=[*self._done, record] if isinstance(self.route, list)
                             else record)
                raise
            return record

    def _failed(self, route: dict[str, Any], record: Record, e: BaseException) -> None:
        """Mark ``record`` failed by ``e``, and log why."""
        from flow_airflow.runtime.experiment import ExperimentFailed

        message = str(e) if isinstance(e, ExperimentFailed) else f"{type(e).__name__}: {e}"
        record["label"] = route.get("label") or record["label"]
        record["labels"] = self.rendered_labels() or record["labels"]  # with its params rendered
        not_succeeded(record, Status.FAILED, message.splitlines()[0].split(". Last lines of its output")[0])
        if not isinstance(e, Exception):
            return
        if not isinstance(e, ExperimentFailed):
            self.log.exception("the experiment failed")
        self.log.error("%s", message)
        self._error = message


def _label(route: dict[str, Any], varies: set[str] | None = None) -> str:
    """A route's label: as planned or as the experiment made it, else (before it ran) its own varying
    params; "no params" when it has none."""
    from flow_airflow.common.routes import label

    return route.get("label") or label(route["params"], {}, varies) or "no params"
