"""What each operator of a flow's DAG receives (:mod:`flow_airflow.operators.setup`), made once per plan.

The setups are a pure function of the plan, so they are made when the flow is compiled and kept
in the plan cache beside it (the loader hands :func:`setups_of` to
:func:`flow_airflow.plan.cache.compiled`): each parse of the DAG file passes the JSON text on as it
is. Dumping the models anew cost every parse some 15 µs per task. No Airflow import here.
"""

from __future__ import annotations

from dataclasses import dataclass

from flow_airflow.common.ids import run_task_id
from flow_airflow.operators.setup import Replan, RoutesSetup, TaskSetup, default_compute
from flow_airflow.plan.flow_plan import FlowPlan, TaskPlan, ordered_params


@dataclass(frozen=True)
class Setups:
    """What the operators of a plan's DAG receive, as JSON text (one string is what Airflow serializes
    fastest, in every parse), by task title."""

    runs: dict[str, str]  # TaskSetup, of each task's experiments (``<task>.run``)
    planners: dict[str, str]  # RoutesSetup, of each task whose routes are planned at run time (``<task>.routes``)


def setups_of(plan: FlowPlan) -> Setups:
    """The setups of every task of ``plan``."""
    runs, planners = {}, {}
    for task in plan.tasks:
        parents = {p: run_task_id(plan.task(p).slug) for p in task.parents}
        runs[task.title] = task_setup(plan, task, parents).model_dump_json(exclude_defaults=True)
        if not task.static:
            planners[task.title] = RoutesSetup(
                title=task.title, params=ordered_params(task), parents=parents, single_mode=task.single_mode,
                tests=task.tests, max_jobs=getattr(task.spec, "max_jobs", None),
            ).model_dump_json(exclude_defaults=True)
    return Setups(runs, planners)


def task_setup(plan: FlowPlan, task: TaskPlan, parents: dict[str, str]) -> TaskSetup:
    """What the experiments of ``task`` receive; ``parents``: parent title -> its run task id."""
    replan = None
    if task.static and task.tunable:  # listed in the DAG, but the run's params may change them
        replan = Replan(title=task.title, params=ordered_params(task), single_mode=task.single_mode,
                        routes=len(task.route_texts or []), max_jobs=getattr(task.spec, "max_jobs", None))
    return TaskSetup(
        task=task.spec,
        parents=parents,
        gathered=sorted({t.task for t in task.tests if t.task} or set(task.parents)) if task.tests else [],
        project_dir=str(plan.flow.project_dir),
        component=str(c.component.folder) if (c := plan.flow.components.get(task.title)) else None,
        compute=task.compute or default_compute(),
        warnings=task.warnings,  # keys of another task type: logged by every experiment
        replan=replan,
    )
