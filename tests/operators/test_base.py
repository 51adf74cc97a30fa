"""The operator families by task type (operators/base.py, data.py, deploy.py, experiment.py)."""

from __future__ import annotations

from typing import Any

import pytest

from flow_airflow.operators.base import FlowTaskOperator
from flow_airflow.operators.data import DataTaskOperator
from flow_airflow.operators.deploy import DeployTaskOperator
from flow_airflow.operators.experiment import ExperimentOperator
from flow_airflow.operators.setup import TaskSetup

TASKS: dict[str, dict[str, Any]] = {
    "data": {"title": "Iris", "type": "data", "dataset": "iris"},
    "deploy": {"title": "Serve", "type": "deploy", "file_name": "predict.py", "function_name": "predict"},
}


def test_a_data_task_of_an_unknown_dataset_fails_its_route_saying_what_exists(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__DATASETS_FOLDER", str(tmp_path))
    op = DataTaskOperator(task_id="run", setup=TaskSetup.model_validate({"task": TASKS["data"], "project_dir": "/p"}),
                          route={"params": [], "parents": {}})
    record = op._run(None, {"params": [], "parents": {}}, 0, {})
    assert record["failed"] == (f"failed: 'Iris' cannot use dataset 'iris': there is no dataset 'iris' in the dataset "
                                f"store {tmp_path} (its datasets: none); push one with: flow-airflow dataset push "
                                "iris FOLDER")


def test_the_families_share_one_base() -> None:
    assert all(issubclass(c, FlowTaskOperator) for c in (ExperimentOperator, DataTaskOperator, DeployTaskOperator))
    for cls in (ExperimentOperator, DataTaskOperator, DeployTaskOperator):
        assert cls.execute is FlowTaskOperator.execute  # only how one route runs differs
