"""Tasks that plan a flow task's routes when its run starts: ``<task>.routes`` and ``<task>.condition``.

A planning task runs once its parents are done, whatever they did (trigger rule ``all_done``),
and plans from what they left: the records of their experiments, failed ones included (their
routes are planned and marked skipped when they start, see :mod:`flow_airflow.operators.base`).
A parent with no experiment in the run (skipped, or never run) leaves no route: the task is
skipped, saying why, unless its condition gathers from several parents and finds experiments
among the others. The task's own params come from the flow file, or from the run's ``conf``
(:mod:`flow_airflow.operators.overrides`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from airflow.sdk import BaseOperator

from flow_airflow.common.records import Status, status_of
from flow_airflow.operators.setup import RoutesSetup


def mapped(routes: list[Any], batch: int) -> list[Any]:
    """What the task's experiments are mapped over, within Airflow's ``[core] max_map_length``.

    Past that limit Airflow fails the mapping with a bare length error; say what to do instead.
    """
    from airflow.configuration import conf
    from airflow.sdk.exceptions import AirflowException

    from flow_airflow.common.records import batches

    items = batches(routes, batch)
    limit = conf.getint("core", "max_map_length", fallback=1024)
    if len(items) > limit:
        raise AirflowException(
            f"{len(routes)} routes make {len(items)} task instances, more than Airflow's [core] max_map_length "
            f"({limit}): run several routes per task instance with [flow_airflow] batch_routes "
            f"(at least {math.ceil(len(routes) / limit)}) "
            "or raise max_map_length"
        )
    return items


class RoutesOperator(BaseOperator):
    """Plans a flow task's routes from its params and its parents' experiments.

    ``setup``: :class:`~flow_airflow.operators.setup.RoutesSetup`, as JSON text in compiled DAGs.
    Returns the routes, which the task's experiments are mapped over (with ``batch_routes``,
    lists of routes). Skips itself, and so the task, when no route can be made.
    """

    template_fields = ()
    ui_color = "#fff4d6"

    def __init__(self, *, setup: RoutesSetup | str, batch: int = 1, **kwargs: Any):
        super().__init__(**kwargs)
        self.setup = setup if isinstance(setup, RoutesSetup) else RoutesSetup.model_validate_json(setup)
        self.batch = batch

    def execute(self, context: Any) -> list[Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from flow_airflow.operators.overrides import task_params
        from flow_airflow.operators.xcom import parent_states, pull_records

        setup = self.setup
        title = setup.title
        parents = pull_records(context["ti"], setup.parents) if setup.parents else {}
        empty = [p for p, records in parents.items() if not records]
        if empty:
            states = parent_states(context["ti"], {p: setup.parents[p] for p in empty})
            for p in empty:
                self.log.info("'%s' has no experiment in this run (%s)", p, states[p])
            if not setup.tests or len(empty) == len(parents):
                why = "; ".join(f"'{p}' has no experiment in this run ({states[p]})" for p in empty)
                raise AirflowSkipException(f"'{title}' does not run: {why}")
        params = task_params(context, title, [list(p) for p in setup.params], self.log)
        routes = self.plan(params, parents, empty, context)
        if not routes:
            raise AirflowSkipException(f"'{title}' does not run: it has no route")
        self.log.info("%d route(s): %s", len(routes), "; ".join(r["label"] or "-" for r in routes[:50]))
        not_succeeded = {(t, r["index"]) for t, records in parents.items() for r in records
                         if status_of(r) is not Status.SUCCESS}
        failed = sum(1 for r in routes if any((t, i) in not_succeeded for t, ix in r["parents"].items() for i in ix))
        if failed:
            self.log.info("%d of them follow experiments that did not succeed: they are skipped", failed)
        if self.batch > 1:
            self.log.info("run %d per task instance ([flow_airflow] batch_routes)", self.batch)
        return mapped(routes, self.batch)

    def plan(self, params: list[tuple[str, list[str]]], parents: dict[str, list[Any]],
             empty: list[str], context: Any) -> list[Any]:
        """The routes over every parent experiment (every parent has some here)."""
        from flow_airflow.common.routes import plan_routes

        single_mode = self.setup.single_mode
        return planned(self.setup.title, lambda: plan_routes(params, {} if single_mode else parents,
                                                             single_mode=single_mode, max_jobs=self.setup.max_jobs))


class ConditionOperator(RoutesOperator):
    """A flow task's conditions: plans the task's routes on the parent experiments that pass.

    Only experiments that succeeded are tested; the log says, experiment by experiment, what
    passed and why not (:func:`flow_airflow.common.conditions.evaluate`), and the XCom ``decisions``
    keeps it for the experiments page (:func:`flow_airflow.common.conditions.decisions`). Nothing
    passes: it is skipped, and so are the task's experiments and what depends only on them.
    """

    ui_color = "#fde2e4"

    def plan(self, params: list[tuple[str, list[str]]], parents: dict[str, list[Any]],
             empty: list[str], context: Any) -> list[Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from flow_airflow.common.conditions import decisions, evaluate
        from flow_airflow.common.routes import plan_routes

        passing, report = evaluate(self.setup.tests, parents)
        for line in report:
            self.log.info("%s", line)
        context["ti"].xcom_push(key="decisions", value=decisions(self.setup.tests, parents))
        if not any(passing.values()):
            raise AirflowSkipException("no experiment passed the condition: the task and what depends only on it "
                                       "are skipped")
        if untested := [p for p in empty if p not in passing]:
            raise AirflowSkipException(f"'{self.setup.title}' does not run: "
                                       + "; ".join(f"'{p}' has no experiment in this run" for p in untested))
        routes = planned(self.setup.title, lambda: plan_routes(params, {**parents, **passing}, gathered=passing,
                                                               max_jobs=self.setup.max_jobs))
        self.log.info("%d route(s) on the experiments that passed", len(routes))
        return routes


def planned(title: str, plan: Callable[[], list[Any]]) -> list[Any]:
    """``plan()``'s routes; a grid larger than the task's ``max_jobs`` fails the task instance, saying so."""
    from airflow.sdk.exceptions import AirflowFailException

    from flow_airflow.common.routes import RouteError

    try:
        return plan()
    except RouteError as e:
        raise AirflowFailException(f"'{title}' does not run: {e}") from None
