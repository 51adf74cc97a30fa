"""Tasks that plan routes at run time, when they depend on upstream results."""

from __future__ import annotations

import math
from typing import Any

from airflow.providers.standard.operators.branch import BaseBranchOperator
from airflow.sdk import BaseOperator


def mapped(routes: list[Any], batch: int) -> list[Any]:
    """What the task's experiments are mapped over, within Airflow's ``[core] max_map_length``.

    Past that limit Airflow fails the mapping with a bare length error; say what to do instead.
    """
    from airflow.configuration import conf
    from airflow.sdk.exceptions import AirflowException

    from flow_airflow.operators.records import batches

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
    """Plans a task's routes from its parents' experiments (``| hyper`` tags, run-time counts).

    Returns the routes, which the task's experiments are mapped over (with ``batch_routes``,
    lists of routes).
    """

    template_fields = ()
    ui_color = "#fff4d6"

    def __init__(
        self,
        *,
        params_grid: list[list[Any]],
        parent_task_ids: dict[str, str],
        single_mode: bool,
        batch: int = 1,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.params_grid = params_grid
        self.parent_task_ids = parent_task_ids
        self.single_mode = single_mode
        self.batch = batch

    def execute(self, context: Any) -> list[Any]:
        from flow_airflow.operators.records import pull_records
        from flow_airflow.plan.routes import plan_routes

        parents = {} if self.single_mode else pull_records(context["ti"], self.parent_task_ids)
        routes = plan_routes([(k, v) for k, v in self.params_grid], parents, single_mode=self.single_mode)
        self.log.info("%d route(s): %s", len(routes), "; ".join(r["label"] or "-" for r in routes[:50]))
        if self.batch > 1:
            self.log.info("run %d per task instance ([flow_airflow] batch_routes)", self.batch)
        return mapped(routes, self.batch)


class ConditionOperator(BaseBranchOperator):
    """A flow task's conditions: lets the task run on the parent experiments that pass, or skips it.

    A branch operator: it follows the task's experiments when something passed and skips them
    (and what depends only on them) otherwise. Its return value is the routes of what passed.
    """

    template_fields = ()
    ui_color = "#fde2e4"

    def __init__(
        self,
        *,
        tests: list[dict[str, Any]],
        params_grid: list[list[Any]],
        parent_task_ids: dict[str, str],
        follow: str,
        batch: int = 1,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.tests = tests
        self.params_grid = params_grid
        self.parent_task_ids = parent_task_ids
        self.follow = follow
        self.batch = batch

    def choose_branch(self, context: Any) -> str | None:  # pragma: no cover - execute does it all
        raise NotImplementedError

    def execute(self, context: Any) -> list[Any]:
        from flow_airflow.operators.records import pull_records
        from flow_airflow.plan.conditions import MetricCondition, evaluate
        from flow_airflow.plan.routes import plan_routes

        parents = pull_records(context["ti"], self.parent_task_ids)
        passing, report = evaluate([MetricCondition(**t) for t in self.tests], parents)
        for line in report:
            self.log.info("%s", line)
        if not any(passing.values()):
            self.log.warning("no experiment passed the condition: the task and what depends only on it are skipped")
            self.do_branch(context, None)
            return []
        routes = plan_routes([(k, v) for k, v in self.params_grid], {**parents, **passing}, gathered=passing)
        self.log.info("%d route(s) on the experiments that passed", len(routes))
        self.do_branch(context, self.follow)
        return mapped(routes, self.batch)
