"""What each operator of a flow's DAG receives (:mod:`flow_airflow.operators.setup`), made once per plan.

The setups are a pure function of the plan, so they are made when the flow is compiled and kept
in the plan cache with it (the loader hands :func:`add_setups` to
:func:`flow_airflow.plan.cache.plan_of`): each parse of the DAG file passes the JSON text on as it
is. Dumping the models anew cost every parse some 15 µs per task. No Airflow import here.
"""

from __future__ import annotations

from flow_airflow.common.ids import run_task_id
from flow_airflow.operators.setup import ComputeSetup, Replan, RoutesSetup, TaskSetup
from flow_airflow.plan.flow_plan import FlowPlan, TaskPlan, ordered_params


def add_setups(plan: FlowPlan) -> None:
    """Set each task's ``setup_json`` (and ``planner_json`` when its routes are planned at run time)."""
    for task in plan.tasks:
        parents = {p: run_task_id(plan.task(p).slug) for p in task.parents}
        task.setup_json = task_setup(plan, task, parents).model_dump_json(exclude_defaults=True)
        if not task.static:
            task.planner_json = RoutesSetup(
                title=task.title, params=ordered_params(task), parents=parents, single_mode=task.single_mode,
                tests=task.tests,
            ).model_dump_json(exclude_defaults=True)


def task_setup(plan: FlowPlan, task: TaskPlan, parents: dict[str, str]) -> TaskSetup:
    """What the experiments of ``task`` receive; ``parents``: parent title -> its run task id."""
    compute = task.compute
    replan = None
    if task.static and task.tunable:  # listed in the DAG, but the run's params may change them
        replan = Replan(title=task.title, params=ordered_params(task), single_mode=task.single_mode,
                        routes=len(task.route_texts or []))
    return TaskSetup(
        task=task.spec,
        parents=parents,
        gathered=sorted({t.task for t in task.tests if t.task} or set(task.parents)) if task.tests else [],
        project_dir=str(plan.flow.project_dir),
        compute=ComputeSetup(name=compute.name, kind=compute.kind, settings=compute.settings,
                             notes=list(compute.notes)) if compute else ComputeSetup(),
        warnings=task.warnings,  # keys of another task type: logged by every experiment
        replan=replan,
    )
