"""Flows dropped into the dags folder of a real ``airflow standalone``, used through its REST API."""

from __future__ import annotations

from pathlib import Path

import pytest

from flow_airflow.cli import LOADER

FLOWS = Path(__file__).parent.parent / "flows"
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(airflow_server):
    """The session's Airflow, with the flow loader in its dags folder."""
    airflow_server.add_file("flows.py", LOADER)
    return airflow_server


def test_a_dropped_flow_appears_runs_and_maps_its_routes(server) -> None:
    server.copy_tree(FLOWS / "grid_three", "grid_three")
    server.touch("flows.py")
    dag = server.wait_for_dag("three_grid_searches", timeout=120)
    assert dag["dag_display_name"] == "Three Grid Searches"
    assert "cnvrg-flow" in {t["name"] for t in dag["tags"]}

    run_id, state = server.run_dag("three_grid_searches", timeout=300)
    assert state == "success"
    tis = server.task_instances("three_grid_searches", run_id)
    by_task: dict[str, list[dict]] = {}
    for ti in tis:
        by_task.setdefault(ti["task_id"], []).append(ti)
    assert {t: len(v) for t, v in by_task.items()} == {
        "grid_search_a.run": 2, "grid_search_b.run": 3, "grid_search_c.run": 30, "flow-outcome": 1}
    assert all(ti["state"] == "success" for ti in tis)
    labels = {ti["rendered_map_index"] for ti in by_task["grid_search_c.run"]}
    assert len(labels) == 30 and "c=10 | Grid Search A: a=1 | Grid Search B: b=x" in labels
    assert {ti["task_display_name"] for ti in by_task["grid_search_c.run"]} == {"Grid Search C"}

    first = by_task["grid_search_c.run"][0]
    record = server.xcom("three_grid_searches", run_id, "grid_search_c.run", first["map_index"])
    assert record["task"] == "Grid Search C" and record["tags"]["args"].startswith("--c ")
    log = server.task_log("three_grid_searches", run_id, "grid_search_c.run", first["map_index"])
    assert "running on compute 'local'" in log and "cnvrg_tag_args: --c " in log


def test_broken_flows_are_import_errors_and_the_others_keep_working(server) -> None:
    server.copy_tree(FLOWS / "invalid", "invalid")
    server.copy_tree(FLOWS / "dynamic_routes", "dynamic_routes")
    server.touch("flows.py")
    cycle = server.wait_for_import_error("invalid/cycle.yaml", timeout=120)
    assert cycle["stack_trace"].endswith("invalid/cycle.yaml:7:5: the relations make a cycle: A -> B -> A")
    errors = {e["filename"]: e["stack_trace"] for e in server.import_errors()}
    expected = {f"invalid/{p.name}" for p in (FLOWS / "invalid").glob("*.yaml")}
    assert expected <= set(errors)
    assert "tab character" in errors["invalid/bad_yaml.yaml"]
    assert "Traceback" not in "".join(errors[name] for name in expected)

    server.wait_for_dag("dynamic_routes", timeout=60)
    assert server.get_dag("three_grid_searches") is not None
    run_id, state = server.run_dag("dynamic_routes", timeout=300)
    assert state == "success"
    dynamic = server.task_instances("dynamic_routes", run_id, "dynamic.run")
    assert sorted(ti["rendered_map_index"] for ti in dynamic) == ["route=1", "route=2", "route=3"]


def test_conditions_are_branch_tasks_that_pass_on_what_passed(server) -> None:
    server.copy_tree(FLOWS / "conditions", "conditions")
    server.copy_tree(FLOWS / "blueprint", "blueprint")
    server.touch("flows.py")
    server.wait_for_dag("conditions", timeout=120)
    tasks = {t["task_id"]: t for t in server.api("GET", "/dags/conditions/tasks")["tasks"]}
    assert tasks["compare.condition"]["operator_name"] == "ConditionOperator"
    assert tasks["compare.condition"]["downstream_task_ids"] == ["compare.run"]
    run_id, state = server.run_dag("conditions", timeout=300)
    assert state == "success"  # compare.py and publish.py assert what they were given
    states = server.ti_states("conditions", run_id)
    assert [k for k in states if k[0] == "compare.run"] == [("compare.run", 0)]
    assert [k for k in states if k[0] == "publish.run"] == [("publish.run", 0)]
    log = server.task_log("conditions", run_id, "compare.condition")
    assert "accuracy = 0.95 passes (the highest 'accuracy' of 'Train')" in log
    assert "accuracy = 0.70 does not pass" in log  # the value as written in the file

    server.wait_for_dag("churn_lite_train", timeout=60)
    run_id, state = server.run_dag("churn_lite_train", timeout=300)
    assert state == "success"
    counts: dict[str, int] = {}
    for task_id, _ in server.ti_states("churn_lite_train", run_id):
        counts[task_id] = counts.get(task_id, 0) + 1
    assert counts == {"prepare.run": 1, "logistic_regression.run": 2, "random_forest.run": 3,
                      "compare.condition": 1, "compare.run": 1, "flow-outcome": 1}
