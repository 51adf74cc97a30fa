"""What the DAG hands a flow task's operators (operators/setup.py): one typed model at both ends."""

from __future__ import annotations

from pathlib import Path

import pytest

from flow_airflow.operators.setup import RoutesSetup, TaskSetup
from flow_airflow.plan.flow_plan import plan_flow
from flow_airflow.render.setups import setups_of
from flow_airflow.spec.errors import FlowError
from flow_airflow.spec.load import load_flow

FLOWS = Path(__file__).parents[1] / "flows"


def example_plans() -> list:
    plans = []
    for file in sorted(FLOWS.rglob("*.yaml")):
        try:
            plans.append(plan_flow(load_flow(file)))
        except FlowError:
            continue  # the broken examples
    return plans


def test_every_example_task_reads_back_the_setup_it_was_given() -> None:
    plans = example_plans()
    assert len(plans) > 20
    for plan in plans:
        setups = setups_of(plan)
        for task in plan.tasks:
            setup = TaskSetup.model_validate_json(setups.runs[task.title])
            assert setup.task == task.spec  # the flow task as validated at compile time, all of it
            assert setup.parents == {p: f"{plan.task(p).slug}.run" for p in task.parents}
            assert setup.project_dir == str(plan.flow.project_dir)
            assert setup.warnings == task.warnings
            if task.compute:
                assert setup.compute == task.compute  # the plan's choice, its notes too
            assert (setup.replan is not None) == (task.static and task.tunable)
            if task.static:
                assert task.title not in setups.planners
            else:
                routes = RoutesSetup.model_validate_json(setups.planners[task.title])
                assert (routes.title, routes.tests, routes.parents) == (task.title, task.tests, setup.parents)


def test_a_replanned_task_knows_its_params_and_how_many_routes_the_dag_lists() -> None:
    plan = plan_flow(load_flow(FLOWS / "grid_two" / "flow.yaml"))
    setups = setups_of(plan)
    for task in plan.tasks:
        replan = TaskSetup.model_validate_json(setups.runs[task.title]).replan
        assert replan is not None and replan.title == task.title
        assert replan.routes == task.count == len(task.route_texts or [])
        assert [list(p) for p in replan.params] == [[k, v] for k, v in task.params]


def test_a_setup_that_is_not_a_flow_task_is_refused_when_read() -> None:
    with pytest.raises(ValueError, match="type"):
        TaskSetup.model_validate_json('{"task": {"title": "T"}, "project_dir": "/p"}')
    with pytest.raises(ValueError, match="extra"):
        TaskSetup.model_validate_json('{"task": {"title": "T", "type": "exec", "input": "x"}, "project_dir": "/p", '
                                      '"experiment": 1}')
