"""Params given when a run is triggered (the DAG's params, the run's ``conf``): checked, applied, labelled."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from flow_airflow.local_run import run_flow
from flow_airflow.operators.overrides import ConfError, apply, check
from flow_airflow.plan.flow_plan import plan_flow
from flow_airflow.render.params import flow_params, ordered_params
from flow_airflow.spec.load import load_flow

FLOWS = Path(__file__).parent.parent / "flows"
KNOWN = {"Train": ["lr", "depth"], "Eval": ["split"]}


def test_the_conf_shape_task_title_param_values() -> None:
    conf = {"Train": {"lr": ["0.5", 0.05, True], "depth": "2, 4,"}, "Eval": {"split": None}}
    assert check(conf, KNOWN) == {"Train": {"lr": ["0.5", "0.05", "true"], "depth": ["2", "4"]},
                                  "Eval": {"split": None}}
    assert check({}, KNOWN) == {} and check(None, KNOWN) == {}
    assert check({"Train": {"lr": []}}, KNOWN) == {"Train": {"lr": None}}  # not set: not passed


@pytest.mark.parametrize("conf, message", [
    ({"Trian": {"lr": "1"}}, "the run's conf names 'Trian', which is no task with params of this flow "
                             "(tasks with params: 'Train', 'Eval')"),
    ({"Train": {"lrr": "1"}},
     "conf 'Train' names the param 'lrr', which 'Train' does not have (its params: lr, depth)"),
    ({"Train": ["1"]}, "conf 'Train' must be an object of params"),
    ({"Train": {"lr": [["1"]]}}, "conf 'Train' param 'lr': a value is text, a number or true/false, not a list"),
    ({"Train": {"lr": {"a": 1}}}, "conf 'Train' param 'lr': a value is text, a number or true/false, not an object"),
    ([1], "the run's conf must be an object of tasks, not a list"),
])
def test_a_conf_that_does_not_fit_is_refused_saying_why(conf: object, message: str) -> None:
    with pytest.raises(ConfError) as refused:
        check(conf, KNOWN)
    assert str(refused.value).startswith(message)


def test_overrides_keep_the_files_order_and_leave_unset_params_out() -> None:
    params = [["lr", ["0.1", "0.01"]], ["seed", []], ["depth", ["2"]]]
    assert apply(params, {}) == [("lr", ["0.1", "0.01"]), ("depth", ["2"])]
    assert apply(params, {"seed": ["7"], "depth": None}) == [("lr", ["0.1", "0.01"]), ("seed", ["7"])]


def test_the_dag_params_are_each_tasks_params_with_their_schema() -> None:
    plan = plan_flow(load_flow(FLOWS / "grid_two" / "flow.yaml"))
    plan.task("Grid Search B").unset_params = ["seed"]  # `values: []` in the file
    assert ordered_params(plan.task("Grid Search B")) == [["depth", ["2", "4", "8"]], ["seed", []]]
    params = flow_params(plan)
    assert list(params) == ["Grid Search A", "Grid Search B"]
    b = params["Grid Search B"]
    assert b.value == {"depth": ["2", "4", "8"], "seed": None}
    assert b.schema["additionalProperties"] is False and list(b.schema["properties"]) == ["depth", "seed"]
    b.resolve({"depth": "7", "seed": ["1", "2"]})  # what the trigger form or the REST API may send
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="seeds"):
        b.resolve({"seeds": "1"})



def test_the_dag_has_the_params_and_its_tasks_no_copy_of_them() -> None:
    """Airflow copies a DAG's params into every task made while the DAG has them, and serializes
    each copy in every parse: a 100-task flow took a minute. The tasks read them from the DAG."""
    from flow_airflow.render.dag import build_dag
    from flow_airflow.render.params import LIST_LIMIT

    plan = plan_flow(load_flow(FLOWS / "grid_two" / "flow.yaml"))
    plan.task("Grid Search A").params = [("lr", [str(i) for i in range(LIST_LIMIT + 1)])]
    dag = build_dag(plan)
    assert set(dag.params) == {"Grid Search A", "Grid Search B"}
    assert all(not task.params for task in dag.tasks)
    assert dag.params["Grid Search A"] == {"lr": ", ".join(str(i) for i in range(LIST_LIMIT + 1))}  # a long grid: CSV


@pytest.mark.airflow
def test_a_run_with_a_grid_overridden_runs_the_overridden_routes(
    airflow_home: Path, project: Callable[..., Path]
) -> None:
    file = project("grid_two")
    result = run_flow(file, conf={"Grid Search A": {"lr": ["0.5", "0.05"]}, "Grid Search B": {"depth": "7, 9"}})
    assert result.state == "success"
    assert [e.label for e in result.of("Grid Search A")] == ["lr=0.5", "lr=0.05"]
    b = result.of("Grid Search B")
    lrs = ("0.5", "0.05")
    assert sorted(e.label for e in b) == sorted(f"depth={d} | Grid Search A: lr={lr}" for d in (7, 9) for lr in lrs)
    assert sorted(e.tags["args"] for e in b) == ["--depth 7", "--depth 7", "--depth 9", "--depth 9"]
    assert sorted(e.params["lr"] for e in result.of("Grid Search A")) == ["0.05", "0.5"]

    same = run_flow(file, conf={"Grid Search A": {"lr": ["0.1", "0.01", "0.001"]}})  # the trigger form's defaults
    assert same.state == "success" and len(same.of("Grid Search B")) == 9


@pytest.mark.airflow
def test_spare_task_instances_of_a_run_with_fewer_routes_say_so(
    airflow_home: Path, project: Callable[..., Path]
) -> None:
    result = run_flow(project("grid_two"), conf={"Grid Search A": {"lr": "0.5"}})
    assert result.state == "success"
    a = result.of("Grid Search A", None)
    assert [(e.label, e.state) for e in a] == [("no params", "success")] + [
        ("spare: 1 route(s) in this run", "skipped")] * 2  # not "1", "2": Airflow's number of an unlabelled one
    assert sorted(e.label for e in result.of("Grid Search B")) == ["depth=2", "depth=4", "depth=8"]


@pytest.mark.airflow
def test_a_param_with_one_value_in_the_file_and_two_in_the_run_is_in_the_labels(
    airflow_home: Path, project: Callable[..., Path]
) -> None:
    result = run_flow(project("grid_three"), conf={"Grid Search C": {"fixed": "p, q"}})
    assert result.state == "success"
    labels = [e.label for e in result.of("Grid Search C")]
    assert len(labels) == len(set(labels)) == 60
    assert "c=10, fixed=q | Grid Search A: a=2 | Grid Search B: b=z" in labels



@pytest.mark.airflow
def test_a_conf_naming_no_task_fails_the_run_at_its_first_task(
    airflow_home: Path, project: Callable[..., Path], capfd: pytest.CaptureFixture[str]
) -> None:
    result = run_flow(project("grid_two"), conf={"Grid Search Z": {"lr": "1"}})
    assert result.state == "failed"
    assert [e.state for e in result.of("Grid Search A", None)] == ["failed"] * 3
    text = "".join(capfd.readouterr())
    assert ("the run's conf names 'Grid Search Z', which is no task with params of this flow "
            "(tasks with params: 'Grid Search A', 'Grid Search B')") in text
    assert "3 task instance(s) of this run did not succeed (Grid Search A #0: failed; Grid Search A #1: failed; " \
           "Grid Search A #2: failed)" in text
    assert {e.state for e in result.of("Grid Search B", None)} == {"skipped"}  # 'Grid Search A' has no experiment


@pytest.mark.airflow
def test_a_conf_with_an_unknown_param_is_refused_before_the_run(
    airflow_home: Path, project: Callable[..., Path]
) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="lrr"):
        run_flow(project("grid_two"), conf={"Grid Search A": {"lrr": "1"}})
