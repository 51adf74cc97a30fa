"""The real dialect of published flows (issue 11): tests/flows/realworld and references to tags."""

from __future__ import annotations

from pathlib import Path

import pytest

from flow_airflow.cli import main
from flow_airflow.plan.flow_plan import plan_flow
from flow_airflow.spec.errors import FlowError
from flow_airflow.spec.load import load_flow
from flow_airflow.spec.models import DeployTask, ExecTask

FLOWS = Path(__file__).parents[1] / "flows"
REALWORLD = FLOWS / "realworld"


def write(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "flow.yaml"
    file.write_text(text)
    return file


def errors(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(FlowError) as caught:
        load_flow(write(tmp_path, text))
    return [str(i).split("flow.yaml:")[1] for i in caught.value.issues]


@pytest.mark.parametrize("name", sorted(p.name for p in REALWORLD.iterdir() if p.is_dir()))
def test_every_realworld_flow_validates(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(REALWORLD / name / "flow.yaml")]) == 0
    assert main(["plan", str(REALWORLD / name / "flow.yaml")]) == 0


def test_blueprint_deploy_task_loads_with_its_keys(capsys: pytest.CaptureFixture[str]) -> None:
    file = REALWORLD / "deploy_webservice" / "flow.yaml"
    deploy = load_flow(file).spec.tasks[0]
    assert isinstance(deploy, DeployTask)
    assert (deploy.command, deploy.kind, deploy.image, deploy.language) == (
        "python3 predict.py", "webservice", "python:3.11-slim", "python3")
    assert (deploy.file_name, deploy.function_name, deploy.prep_file, deploy.prep_function) == (
        "predict.py", "predict", None, None)
    assert deploy.accept_files is False
    assert deploy.resources is not None and deploy.resources.model_dump() == {"cpu": 1, "memory": 2, "gpu": 0, "hpu": 0}
    assert (deploy.input_example, deploy.input_schema, deploy.output_schema) == (
        {"text": ""}, {"text": "text"}, {"label": "text"})
    capsys.readouterr()
    assert main(["plan", str(file)]) == 0
    out = capsys.readouterr().out
    for line in ("serves predict.py:predict (webservice) as endpoint 'sentiment-service'",
                 "command: python3 predict.py", "image: python:3.11-slim (not used by the local compute)",
                 "language: python3",
                 "accept_files: false", "requirements: cpu 1, memory 2, gpu 0, hpu 0",
                 'input_example: {"text": ""}', 'input_schema: {"text": "text"}', 'output_schema: {"label": "text"}'):
        assert f"      {line}\n" in out, out


def test_empty_values_leave_a_param_unset(capsys: pytest.CaptureFixture[str]) -> None:
    file = REALWORLD / "empty_values" / "flow.yaml"
    [reader] = plan_flow(load_flow(file)).tasks
    assert reader.params == [("endpoint", ["http://storage.example.com"])]
    assert reader.unset_params == ["bucket", "prefix"]
    assert reader.count == 1
    capsys.readouterr()
    main(["plan", str(file)])
    assert "      params without a value, not passed until given one: bucket, prefix\n" in capsys.readouterr().out


def test_every_empty_form_is_unset_and_a_missing_value_is_an_error(tmp_path: Path) -> None:
    flow = load_flow(write(tmp_path, """\
flow: Empties
tasks:
  - title: A
    type: exec
    input: "true"
    computes: [local]
    params:
      - {key: a, value: []}
      - {key: b, values: []}
      - {key: c, value: }
      - {key: d, value: ""}
      - {key: e, value: ","}
      - {key: f, value: 1}
relations: []
"""))
    [task] = plan_flow(flow).tasks
    assert task.unset_params == ["a", "b", "c", "d", "e"] and task.params == [("f", ["1"])]
    found = errors(tmp_path, "flow: F\ntasks:\n  - {title: A, type: exec, input: x, computes: [l], params: [{key: a}]}"
                             "\nrelations: []\n")
    assert found == ["3:62: task 'A': param 'a' has no 'value'"]


def test_one_scalar_values_is_one_value() -> None:
    task = load_flow(REALWORLD / "scalar_values" / "flow.yaml").spec.tasks[0]
    assert isinstance(task, ExecTask)
    assert [p.grid() for p in task.params] == [["/input/fetch/images"], ["3"]]


def test_a_key_of_another_task_type_is_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    file = REALWORLD / "cross_type_keys" / "flow.yaml"
    flow = load_flow(file)
    expected = (f"{file}:10:5: task 'Batch Scoring': 'accept_files' is a key of deploy tasks; "
                "it has no effect on an exec task")
    assert [str(w) for w in flow.warnings] == [expected]
    assert plan_flow(flow).task("Batch Scoring").warnings == [expected]
    assert main(["validate", str(file)]) == 0
    assert f"{file}:10:5: warning: task 'Batch Scoring'" in capsys.readouterr().out
    assert main(["plan", str(file)]) == 0
    assert f"  {file}:10:5: warning: task 'Batch Scoring'" in capsys.readouterr().out


def test_an_unknown_key_stays_an_error_with_its_suggestion(tmp_path: Path) -> None:
    found = errors(tmp_path, """\
flow: Typos
tasks:
  - {title: A, type: exec, input: "true", computes: [local], acept_files: true}
  - {title: B, type: data, dataset: d, data_comit: abc}
relations: []
""")
    assert found == [
        "3:62: task 'A': unknown key 'acept_files' (did you mean 'accept_files'?)",
        "4:40: task 'B': unknown key 'data_comit' (did you mean 'data_commit'?)",
    ]


def test_names_match_titles_ignoring_case_and_spaces() -> None:
    flow = load_flow(REALWORLD / "relation_case" / "flow.yaml")
    assert [(r.source, r.target) for r in flow.spec.relations or []] == [("Train Model", "Compare")]
    compare = flow.task("Compare")
    assert isinstance(compare, ExecTask) and compare.conditions[0].task == "Train Model"
    assert flow.graph.parents["Compare"] == ["Train Model"]


def test_a_name_that_fits_several_titles_is_an_error_naming_them(tmp_path: Path) -> None:
    found = errors(tmp_path, """\
flow: Ambiguous
tasks:
  - {title: Train  Model, type: exec, input: "true", computes: [local]}
  - {title: Train Model, type: exec, input: "true", computes: [local]}
  - title: Compare
    type: exec
    input: "true"
    computes: [local]
    conditions: [{task: TRAIN MODEL, objective: max, tag_key: acc}]
relations:
  - {from: train model, to: Compare}
  - {from: Train Model, to: compare}
""")
    candidates = "'Train  Model', 'Train Model'"
    assert found == [
        f"9:25: 'TRAIN MODEL' could mean any of the tasks {candidates}: write the title exactly as the task has it",
        f"11:12: 'train model' could mean any of the tasks {candidates}: write the title exactly as the task has it",
    ]


GATHERED = """\
flow: Gathered
tasks:
  - title: Train
    type: exec
    input: "true"
    computes: [local]
    params: [{key: acc, value: %s}]
  - title: Publish
    type: exec
    input: "true"
    computes: [local]
    params: [{key: best, value: "{{ Train.acc }}"}]
    conditions: [{task: Train, objective: %s, tag_key: acc, target: 0.8}]
relations:
  - {from: Train, to: Publish}
"""


def test_a_tag_of_gathered_experiments_is_an_error_with_its_line() -> None:
    with pytest.raises(FlowError) as caught:
        load_flow(FLOWS / "regressions" / "gathered_tag_reference_traceback" / "flow.yaml")
    [issue] = caught.value.issues
    assert (issue.line, issue.column) == (16, 16)
    assert issue.message.startswith(
        "param 'best_acc' of 'Publish' uses '{{ Train.acc }}', but the condition of 'Publish' gathers every "
        "experiment of 'Train' that passes it, and there can be several: the tag has no single value.")


@pytest.mark.parametrize(("values", "objective"), [("[0.85, 0.95]", "max"), ("[0.85, 0.95]", "min"), ("0.9", "gt")])
def test_a_tag_of_one_experiment_is_fine(tmp_path: Path, values: str, objective: str) -> None:
    load_flow(write(tmp_path, GATHERED % (values, objective)))


def test_a_gathered_tag_after_the_gathering_task_is_an_error_unless_another_path_holds_one(tmp_path: Path) -> None:
    text = (GATHERED % ("[0.85, 0.95]", "gt")).replace('    params: [{key: best, value: "{{ Train.acc }}"}]\n', "")
    after = text.replace("relations:", """\
  - title: Report
    type: exec
    input: "true"
    computes: [local]
    params: [{key: acc, value: "{{ Train.acc }}"}]
relations:
  - {from: Publish, to: Report}""")
    found = errors(tmp_path, after)
    assert len(found) == 1 and found[0].startswith(
        "17:32: param 'acc' of 'Report' uses '{{ Train.acc }}', but no single experiment of 'Train' is on the routes")
    load_flow(write(tmp_path, after + "  - {from: Train, to: Report}\n"))


def test_a_condition_on_every_parent_gathers_too(tmp_path: Path) -> None:
    text = (GATHERED % ("[0.85, 0.95]", "gt")).replace("{task: Train, objective", "{objective")
    found = errors(tmp_path, text)
    assert len(found) == 1 and "the condition of 'Publish' gathers every experiment of 'Train'" in found[0]


def test_unset_params_survive_the_round_trip_to_the_experiment(tmp_path: Path) -> None:
    """The DAG hands each experiment its task as JSON, validated again when it runs."""
    from pydantic import TypeAdapter

    from flow_airflow.spec.models import Task

    flow = load_flow(write(tmp_path, """\
title: Blank
tasks:
  - title: A
    type: exec
    command: "true"
    params: [{key: a, value: }, {key: b, values: }, {key: c, values: []}, {key: d, value: 1}]
relations: []
"""))
    task = flow.spec.tasks[0]
    again = TypeAdapter(Task).validate_python(task.model_dump(mode="json", exclude_defaults=True))
    assert isinstance(again, ExecTask)
    assert [p.unset for p in again.params] == [True, True, True, False]
