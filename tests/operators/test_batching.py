"""``[flow_airflow] batch_routes``: several routes per task instance, the same experiments as one each."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from flow_airflow import settings
from flow_airflow.common.records import batches, batches_of_json
from flow_airflow.local_run import RunResult, run_flow
from flow_airflow.operators.experiment import ExperimentOperator
from flow_airflow.operators.setup import TaskSetup


def test_the_setting_is_a_number_or_one_per_flow(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings.batch_routes("any") == 1
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__BATCH_ROUTES", "50")
    assert settings.batch_routes("any") == 50
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__BATCH_ROUTES", '{"big_grid": 100, "*": 2}')
    assert (settings.batch_routes("big_grid"), settings.batch_routes("other")) == (100, 2)
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__BATCH_ROUTES", '{"big_grid": 0}')
    with pytest.raises(ValueError, match="batch_routes"):
        settings.batch_routes("big_grid")


def test_batches_and_their_labels() -> None:
    routes = [{"params": [["x", str(i)]], "parents": {}, "label": f"x={i}"} for i in range(5)]
    assert batches(routes, 1) == routes
    assert [len(b) for b in batches(routes, 2)] == [2, 2, 1]
    texts = [json.dumps(r) for r in routes]
    assert [json.loads(b) for b in batches_of_json(texts, 2)] == batches(routes, 2)
    setup = TaskSetup.model_validate({"task": {"title": "T", "type": "exec", "input": "true"}, "project_dir": "/p"})
    op = ExperimentOperator(task_id="t", setup=setup, route=routes[:3], batch=3)
    assert op.route_label == "3 routes: x=0 … x=2"
    assert ExperimentOperator(task_id="u", setup=setup, route=routes[0]).route_label == "x=0"


def experiments(result: RunResult) -> list[tuple]:
    return sorted((e.task, e.index, e.state, e.label, sorted(e.params.items()), sorted(e.tags.items()))
                  for e in result.experiments)


def task_instances(result: RunResult) -> dict[str, int]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == result.dag_id,
                                                         TaskInstance.run_id == result.run_id)).all()
        counts: dict[str, int] = {}
        for ti in tis:
            if ti.task_id.endswith(".run"):
                counts[ti.task_id] = counts.get(ti.task_id, 0) + 1
        return counts


@pytest.mark.airflow
@pytest.mark.parametrize("name", ["grid_three", "dynamic_routes", "conditions", "artifacts_tags"])
def test_a_batched_flow_runs_the_same_experiments(
    name: str, airflow_home: Path, project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    file = project(name)
    one_each = run_flow(file)
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__BATCH_ROUTES", "4")
    batched = run_flow(file)
    assert one_each.state == batched.state == "success"
    assert experiments(batched) == experiments(one_each)  # params, tags, labels, the inputs checked by the scripts
    routes = {f"{e.task.lower().replace(' ', '_')}.run": 0 for e in one_each.experiments}
    for e in one_each.experiments:
        routes[f"{e.task.lower().replace(' ', '_')}.run"] += 1
    assert task_instances(batched) == {task: math.ceil(n / 4) for task, n in routes.items()}


@pytest.mark.airflow
def test_a_grid_past_max_map_length_says_to_batch_and_runs_batched(
    airflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "flow.yaml"
    file.write_text(
        "flow: Past The Limit\n"
        "tasks:\n"
        "  - title: Grid\n"
        "    type: exec\n"
        "    input: 'true'\n"
        "    computes: [local]\n"
        "    params:\n"
        f"      - {{key: x, value: {list(range(300))}}}\n"
        "relations: []\n"
    )
    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "280")  # 300 routes: planned at run time, past the limit
    failed = run_flow(file)
    assert failed.state == "failed" and [e.state for e in failed.experiments] == ["upstream_failed"]
    text = "".join(capfd.readouterr())
    assert "300 routes make 300 task instances, more than Airflow's [core] max_map_length (280)" in text
    assert "[flow_airflow] batch_routes (at least 2)" in text

    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__BATCH_ROUTES", "2")
    batched = run_flow(file)
    assert batched.state == "success"
    assert sorted(int(e.params["x"]) for e in batched.experiments) == list(range(300))
    assert task_instances(batched) == {"grid.run": 150}
