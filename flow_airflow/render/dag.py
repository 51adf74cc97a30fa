"""A flow plan as an Airflow DAG: one TaskGroup per flow task, and ``flow-outcome`` at the end
(when a task has tasks after it: a flow of one task's experiments needs none).

Inside a group: ``condition`` (when the task has conditions) or ``routes`` (when its routes are
known only at run time), which plans the task's routes when it starts, then the approval gate
(human validation), then ``run``, the task's experiments mapped over the routes. Routes known at
compile time are a static list in the DAG (one task instance each, or each batch); when they may
change with the run (the run's params, failed parent experiments), each task instance plans them
again and runs its share (:mod:`flow_airflow.operators.base`), so no planning task is paid for
at every parse. The operator of ``run`` is of the task's type (exec, data, deploy:
:data:`OPERATORS`); what each operator receives is made once per plan
(:mod:`flow_airflow.render.setups`). Planning tasks, and experiments that plan again, run
when their parents are done, whatever they did (a failed experiment stops only its own route);
``flow-outcome`` fails the run when anything failed (:mod:`flow_airflow.operators.outcome`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, TaskGroup

from flow_airflow import settings
from flow_airflow.assets import dataset_asset
from flow_airflow.common.ids import APPROVAL, CONDITION, OUTCOME, ROUTES, RUN, run_task_id
from flow_airflow.common.records import batches_of_json
from flow_airflow.operators.base import ROUTE_LABEL, FlowTaskOperator
from flow_airflow.operators.data import DataTaskOperator
from flow_airflow.operators.deploy import DeployTaskOperator
from flow_airflow.operators.experiment import ExperimentOperator
from flow_airflow.operators.outcome import OutcomeOperator
from flow_airflow.operators.routes import ConditionOperator, RoutesOperator
from flow_airflow.plan.flow_plan import FlowPlan, TaskPlan
from flow_airflow.render.params import PARAMS_DOC, flow_params
from flow_airflow.render.schedule import schedule_of
from flow_airflow.render.setups import Setups, setups_of
from flow_airflow.sensors.approval import ApprovalSensor

__all__ = ["OPERATORS", "FlowDAG", "FlowTaskGroup", "build_dag"]

#: The operator of a task's experiments by the task's type, as astronomer-cosmos chooses one operator
#: class per execution mode.
OPERATORS: dict[str, type[FlowTaskOperator]] = {
    "exec": ExperimentOperator,
    "data": DataTaskOperator,
    "deploy": DeployTaskOperator,
}


class FlowDAG(DAG):
    """A flow's DAG, hashed and equal as the one object it is.

    Airflow's DAG hashes a tuple of all its task ids, and setting a relation (``a >> b``) hashes the
    DAG of every task on both sides (``DependencyMixin._set_relatives``): building a DAG of n tasks
    cost O(n²) (500 tasks: some 10 ms of every parse). Those checks ask whether the tasks share one
    DAG object; serialization does not record the class.
    """

    __hash__ = object.__hash__
    __eq__ = object.__eq__
    __ne__ = object.__ne__


class FlowTaskGroup(TaskGroup):
    """A flow task's TaskGroup, equal only to itself.

    Airflow's TaskGroup compares field by field (attrs), and adding a task to a group compares
    the group with the task's: through the parent group that walks the root group's children,
    so building a DAG of n groups costs O(n²) (2,000 groups: 0.8 s instead of 0.25 s). A group
    is the same group only when it is the same object, which is what those checks ask.
    """

    __eq__ = object.__eq__
    __ne__ = object.__ne__


def build_dag(plan: FlowPlan, setups: Setups | None = None) -> FlowDAG:
    """The DAG of ``plan``; ``setups``: what its operators receive, as the plan cache kept it (made now when None)."""
    setups = setups or setups_of(plan)
    flow = plan.flow
    spec = flow.spec
    version = [f"version:{spec.version}"] if spec.version else []
    batch = settings.batch_routes(plan.dag_id)
    dag = FlowDAG(
        dag_id=plan.dag_id,
        dag_display_name=spec.name,
        description=(spec.description or "").strip().splitlines()[0][:200] if spec.description else None,
        doc_md=_docs(plan, batch),
        **schedule_of(spec),
        tags=["cnvrg-flow", f"sha256:{flow.digest[:12]}", *version, *spec.tags],
        default_args={"retries": 0},
    )
    with dag:
        runs: dict[str, Any] = {}
        has_children: set[str] = set()
        for task in plan.tasks:
            with FlowTaskGroup(
                group_id=task.slug,
                group_display_name=task.title,
                tooltip=(task.spec.description or task.describe_count()),
            ):
                first, run = _task_group(plan, task, setups, batch)
            for parent in task.parents:
                runs[parent] >> first
                has_children.add(parent)
            runs[task.title] = run
        if has_children:  # else every experiment is a last task: Airflow's own rule fails the run
            titles = {run_task_id(t.slug): t.title for t in plan.tasks}
            outcome = OutcomeOperator(task_id=OUTCOME, task_display_name="Outcome: fails the run if anything failed",
                                      titles=titles, batch=batch, trigger_rule="all_done")
            [runs[t.title] for t in plan.tasks if t.title not in has_children] >> outcome
    # Set after the tasks: Airflow copies a DAG's params into each task made while it has them,
    # and serializes each copy (a 100-task flow: a minute). Tasks read them from the DAG.
    dag.params = flow_params(plan)
    return dag


def _task_group(plan: FlowPlan, task: TaskPlan, setups: Setups, batch: int) -> tuple[Any, Any]:
    """The tasks of one flow task: (the first, which its parents precede; ``run``)."""
    static, tunable = task.static, task.tunable  # tunable: its routes may change with the run's params
    gate = ApprovalSensor(
        task_id=APPROVAL,
        task_display_name=f"{task.title}: approval",
        approvers=task.approvers,
        flow_task=task.title,
        # a failed parent experiment stops only its own routes: the others still ask
        trigger_rule="all_done" if static and tunable and task.parents else "all_success",
    ) if task.approvers else None
    experiment = OPERATORS[task.kind].partial(
        task_id=RUN,
        task_display_name=task.title,
        setup=setups.runs[task.title],
        map_index_template=ROUTE_LABEL,
        batch=batch,
        trigger_rule="all_done" if static and tunable and task.parents and not gate else "all_success",
        **_retries(task),
        **_concurrency(task),
        **_inlets(task),
        **_notifications(plan, task),
    )
    if static:
        run = experiment.expand(route=batches_of_json(task.route_texts or [], batch))
        if gate:
            gate >> run
        return gate or run, run
    planner = _planner(task, setups.planners[task.title], batch)
    run = experiment.expand(route=planner.output)
    if gate:
        planner >> gate >> run
    return planner, run


def _planner(task: TaskPlan, setup: str, batch: int) -> RoutesOperator:
    """The task that plans the routes of a task known only at run time (conditions, ``| hyper``, big grids)."""
    kind = ConditionOperator if task.tests else RoutesOperator
    return kind(
        task_id=CONDITION if task.tests else ROUTES,
        task_display_name=f"{task.title}: {CONDITION if task.tests else ROUTES}",
        setup=setup,
        batch=batch,
        trigger_rule="all_done" if task.parents else "all_success",
    )


def _inlets(task: TaskPlan) -> dict[str, Any]:
    """A data task reads its dataset: the asset ``cnvrg-dataset://<name>`` is its inlet (Airflow's asset graph)."""
    dataset = getattr(task.spec, "dataset", None)
    return {"inlets": [dataset_asset(dataset)]} if task.kind == "data" and dataset else {}


def _concurrency(task: TaskPlan) -> dict[str, Any]:
    """``parallel_jobs`` (cnvrg's flow page): at most that many experiments of the task at once in a run, Airflow's
    ``max_active_tis_per_dagrun`` on its mapped task (a task instance runs its batch's routes in turn)."""
    limit = getattr(task.spec, "parallel_jobs", None)
    return {"max_active_tis_per_dagrun": limit} if limit else {}


def _retries(task: TaskPlan) -> dict[str, Any]:
    """``restart_if_stuck``: Airflow retries, as many and as far apart as the settings say."""
    if not getattr(task.spec, "restart_if_stuck", False):
        return {"retries": 0}
    retries, delay = settings.restart_if_stuck()
    return {"retries": retries, "retry_delay": timedelta(seconds=delay)}


def _notifications(plan: FlowPlan, task: TaskPlan) -> dict[str, Any]:
    """``notify_on_error``/``notify_on_success``: mail to ``emails`` through Airflow's SMTP connection."""
    spec = task.spec
    emails = getattr(spec, "emails", [])
    wanted = {"on_failure_callback": getattr(spec, "notify_on_error", False) and emails,
              "on_success_callback": getattr(spec, "notify_on_success", False) and emails}
    if not any(wanted.values()):
        return {}
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    what = f"<b>{task.title}</b> [{{{{ ti.rendered_map_index }}}}] in the flow <b>{plan.flow.spec.name}</b>"
    link = '<br>Log: <a href="{{ ti.log_url }}">{{ ti.log_url }}</a>'
    messages = {
        "on_failure_callback": (f"flow-airflow: {task.title} of {plan.flow.spec.name} failed",
                                f"The experiment {what} (run {{{{ run_id }}}}) failed:<br>"
                                "<pre>{{ exception | e }}</pre>" + link),
        "on_success_callback": (f"flow-airflow: {task.title} of {plan.flow.spec.name} succeeded",
                                f"The experiment {what} (run {{{{ run_id }}}}) succeeded." + link),
    }
    return {callback: SmtpNotifier(to=emails, subject=messages[callback][0], html_content=messages[callback][1])
            for callback, on in wanted.items() if on}


def _docs(plan: FlowPlan, batch: int = 1) -> str:
    """The DAG's docs: the route table and the flow's YAML first, then its descriptions and source."""
    flow = plan.flow
    spec = flow.spec
    lines = [f"# {spec.name}", "", "| task | routes |", "|---|---|"]
    lines += [f"| {t.title} | {t.describe_count()} |" for t in plan.tasks]
    if batch > 1:
        lines += ["", f"A task instance runs {batch} routes in turn (`[flow_airflow] batch_routes`)."]
    lines += ["", "```yaml", flow.text.rstrip(), "```", ""]
    if spec.description:
        lines += [spec.description.strip(), ""]
    if spec.long_description:
        lines += [spec.long_description.strip(), ""]
    if any(t.params or t.unset_params for t in plan.tasks):
        lines += [PARAMS_DOC, ""]
    lines += [f"Compiled by flow-airflow from `{flow.file.name}` (sha256 `{flow.digest[:12]}`"
              + (f", version {spec.version}" if spec.version else "") + ")."]
    return "\n".join(lines)
