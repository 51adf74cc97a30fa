"""Plan a flow: for every task, how its routes are made and how many there are when known."""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from typing import Any

from flow_airflow import computes
from flow_airflow.common.conditions import MetricCondition
from flow_airflow.common.records import Record
from flow_airflow.common.routes import (
    TEMPLATE,
    Route,
    combinations,
    plan_routes,
    slug,
    stand_in_records,
    varying,
)
from flow_airflow.spec import models
from flow_airflow.spec.load import LoadedFlow

#: Above this many routes a task is planned by a task at run time, so that parsing the DAG
#: file costs the same for a 3-route grid and a 10,000-route one.
STATIC_ROUTES_LIMIT = 256


@dataclass
class TaskPlan:
    """One flow task, ready to become a TaskGroup."""

    spec: models.ExecTask | models.DataTask | models.DeployTask
    slug: str
    parents: list[str]
    params: list[tuple[str, list[str]]] = field(default_factory=list)  # the grid: params that have values
    unset_params: list[str] = field(default_factory=list)  # params without a value yet (`values: []`): not passed
    warnings: list[str] = field(default_factory=list)  # what loads but has no effect, for the task log
    route_texts: list[str] | None = None  # each route as JSON, when known at compile time; None: planned at run time
    count: int | None = None  # routes, when known at compile time (even when planned at run time)
    factors: list[int] = field(default_factory=list)
    runtime_reason: str = ""
    tests: list[MetricCondition] = field(default_factory=list)
    approvers: list[str] = field(default_factory=list)
    compute: computes.ComputeChoice | None = None
    tunable: bool = False  # its routes may change with the run's params (its own, or those of a task before it)

    @property
    def title(self) -> str:
        return self.spec.title

    @property
    def routes(self) -> list[Route] | None:
        """The routes, when known at compile time (kept as JSON: what the DAG maps over, and quick to load)."""
        return None if self.route_texts is None else [json.loads(text) for text in self.route_texts]

    @property
    def kind(self) -> str:
        return self.spec.type

    @property
    def single_mode(self) -> bool:
        return getattr(self.spec, "single_mode", False)

    @property
    def static(self) -> bool:
        """Its routes are a static list in the DAG (known at compile time, and no condition picks them)."""
        return not self.tests and self.route_texts is not None

    def describe_count(self) -> str:
        if self.count is None:
            return f"known at run time: {self.runtime_reason}"
        text = f"{self.count} route{'s' if self.count != 1 else ''}"
        if len(self.factors) > 1 and math.prod(self.factors) == self.count:
            text += f" ({' x '.join(map(str, self.factors))})"
        return text


@dataclass
class FlowPlan:
    flow: LoadedFlow
    dag_id: str
    tasks: list[TaskPlan]

    def task(self, title: str) -> TaskPlan:
        return self._by_title[title]

    @functools.cached_property
    def _by_title(self) -> dict[str, TaskPlan]:
        return {t.title: t for t in self.tasks}


def dag_id_for(title: str) -> str:
    """A DAG id from a flow title: what Airflow allows (letters, digits, - _ .), readable and distinct.

    ASCII titles keep their plain id; other scripts are transliterated, with a hash (see common/ids.py).
    """
    from flow_airflow.common import ids

    return ids.dag_id_for(title)


def plan_flow(flow: LoadedFlow) -> FlowPlan:
    templates = computes.templates()
    plans: dict[str, TaskPlan] = {}
    stand_ins: dict[str, Any] = {}  # title -> stand-in records, or what makes them
    for title in flow.graph.order:
        spec = flow.task(title)
        plan = TaskPlan(spec=spec, slug=slug(title), parents=flow.graph.parents[title])
        if isinstance(spec, models.ExecTask):
            plan.params = [(p.key, p.grid()) for p in spec.params if not p.unset]
            plan.unset_params = [p.key for p in spec.params if p.unset]
        plan.warnings = [str(w) for w in flow.warnings if w.message.startswith(f"task '{title}':")]
        if isinstance(spec, models.RunnableTask):
            plan.compute = computes.choose(spec.computes, templates)
            for c in spec.conditions:
                if c.objective == "human_validation":
                    plan.approvers += c.approvers
                else:
                    plan.tests.append(
                        MetricCondition(
                            c.objective,
                            c.tag_key or "",
                            None if c.target is None else models.scalar_text(c.target),
                            c.task,
                        )
                    )
        plan.tunable = bool(plan.params or plan.unset_params) or any(plans[p].tunable for p in plan.parents)
        _plan_routes(plan, plans, stand_ins)
        plans[title] = plan
    return FlowPlan(flow, dag_id_for(flow.spec.name), [plans[t] for t in flow.graph.order])


def ordered_params(task: TaskPlan) -> list[list[Any]]:
    """``[[key, values]]`` in the file's order; a param without a value (``values: []``) has []."""
    values = dict(task.params)
    unset = list(getattr(task, "unset_params", []))
    known = {*values, *unset}
    keys = [p.key for p in getattr(task.spec, "params", []) if p.key in known]
    return [[k, list(values.get(k, []))] for k in dict.fromkeys([*keys, *values, *unset])]


def _plan_routes(plan: TaskPlan, plans: dict[str, TaskPlan], stand_ins: dict[str, Any]) -> None:
    hyper = [(k, m) for k, values in plan.params for v in values if (m := TEMPLATE.fullmatch(v.strip())) and m["hyper"]]
    upstream = [] if plan.single_mode else plan.parents
    unknown = [p for p in upstream if plans[p].count is None]
    if hyper:
        key, m = hyper[0]
        times = "".join(f" x {len(v)} ({k})" for k, v in plan.params if k != key and len(v) > 1)  # its grid
        plan.runtime_reason = (f"one route per value of the tag '{m['tag']}' of '{m['task']}' (param '{key}')"
                               + times)
    elif plan.tests:
        plan.runtime_reason = "it runs on what passes its condition: " + " and ".join(t.describe() for t in plan.tests)
    elif unknown:
        plan.runtime_reason = f"it follows the routes of '{unknown[0]}', known at run time"
    if plan.runtime_reason:
        return
    parents = {p: _stand_ins(stand_ins, p) for p in upstream}
    choices = 1 if plan.single_mode else len(combinations(parents))
    plan.count = choices * math.prod(len(v) for _, v in plan.params)
    plan.factors = [n for n in [*(plans[p].count or 1 for p in upstream), *(len(v) for _, v in plan.params)] if n > 1]
    if plan.count <= STATIC_ROUTES_LIMIT:
        routes = plan_routes(plan.params, parents, single_mode=plan.single_mode)
        # Without labels, which the experiments make again from their parents: half the size to serialize.
        plan.route_texts = [json.dumps({"params": r["params"], "parents": r["parents"]}, separators=(",", ":"))
                            for r in routes]
        stand_ins[plan.title] = stand_in_records(plan.title, routes, parents, varying(plan.params))
    else:  # the routes themselves only when a task after this one needs them to plan its own
        plan.runtime_reason = f"{plan.count} routes are planned at run time to keep parsing fast"
        stand_ins[plan.title] = lambda: stand_in_records(
            plan.title, plan_routes(plan.params, parents, single_mode=plan.single_mode), parents, varying(plan.params))


def _stand_ins(stand_ins: dict[str, Any], title: str) -> list[Record]:
    """The stand-in records of a task planned before, made now if they were left for later."""
    if callable(records := stand_ins[title]):
        records = stand_ins[title] = records()
    return records

