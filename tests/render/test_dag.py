"""The DAG of a plan (render/dag.py): the operator of each task's experiments by the task's type."""

from __future__ import annotations

from pathlib import Path

import pytest

from flow_airflow.operators.data import DataTaskOperator
from flow_airflow.operators.deploy import DeployTaskOperator
from flow_airflow.operators.experiment import ExperimentOperator
from flow_airflow.operators.setup import TaskSetup
from flow_airflow.plan.flow_plan import plan_flow
from flow_airflow.render.dag import build_dag
from flow_airflow.render.setups import setups_of
from flow_airflow.spec.load import load_flow

FLOWS = Path(__file__).parents[1] / "flows"


def test_each_task_type_gets_its_operator_family_and_its_setup_as_json_text() -> None:
    plan = plan_flow(load_flow(FLOWS / "data_and_deploy" / "flow.yaml"))
    dag = build_dag(plan)  # makes the setups: this plan did not come from the plan cache
    runs = {t: dag.get_task(f"{t}.run") for t in ("iris", "train", "serve")}
    assert {t: run.operator_class for t, run in runs.items()} == {
        "iris": DataTaskOperator, "train": ExperimentOperator, "serve": DeployTaskOperator}
    for task in plan.tasks:
        setup = runs[task.slug].partial_kwargs["setup"]
        assert isinstance(setup, str) and setup == setups_of(plan).runs[task.title]  # one string: quick to serialize
        assert TaskSetup.model_validate_json(setup).task == task.spec


def test_building_a_flows_dag_never_hashes_its_task_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow's DAG hashes all its task ids, and each relation hashes the DAG of every task on both
    sides: O(n²) in every parse (render/dag.py, FlowDAG); the serialized DAG is the same."""
    from airflow.sdk import DAG
    from airflow.serialization.serialized_objects import DagSerialization

    monkeypatch.setattr(DAG, "__hash__", lambda self: pytest.fail("a flow's DAG was hashed by its task ids"))
    dag = build_dag(plan_flow(load_flow(FLOWS / "data_and_deploy" / "flow.yaml")))
    assert dag.get_task("serve.run").upstream_task_ids == {"train.run"}
    assert DagSerialization.to_dict(dag)["dag"]["dag_id"] == dag.dag_id
