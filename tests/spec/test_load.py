"""The flow format: what loads, and the clear errors of what does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from flow_airflow.spec.errors import FlowError
from flow_airflow.spec.load import load_flow
from flow_airflow.spec.models import DeployTask, ExecTask

FLOWS = Path(__file__).parents[1] / "flows"
VALID = [
    "grid_two",
    "grid_three",
    "single_mode",
    "dynamic_routes",
    "artifacts_tags",
    "conditions",
    "approval",
    "data_and_deploy",
    "blueprint",
]


def errors(text: str, tmp_path: Path) -> list[str]:
    file = tmp_path / "flow.yaml"
    file.write_text(text)
    with pytest.raises(FlowError) as caught:
        load_flow(file)
    return [str(issue) for issue in caught.value.issues]


@pytest.mark.parametrize("name", VALID)
def test_example_flows_load(name: str) -> None:
    flow = load_flow(FLOWS / name / "flow.yaml")
    assert flow.spec.tasks and flow.graph.order


@pytest.mark.parametrize(
    ("file", "expected"),
    [
        ("bad_yaml.yaml", [":5:1: a tab character is used for indentation"]),
        ("cycle.yaml", [":7:5: the relations make a cycle: A -> B -> A"]),
        ("duplicate_titles.yaml", [":4:13: duplicate task title 'Train'"]),
        ("unknown_task.yaml", [":5:19: relation to 'Missing': no task has this title"]),
        ("bad_hyper.yaml", [":9:29: param 'route' of 'B' uses a tag of 'Not A Parent'"]),
        ("bad_condition.yaml", [":9:30: task 'B': unknown objective 'bigger'"]),
        ("schedule_and_recurring.yaml", [":3:12: 'schedule' (run once at a time) and 'recurring'"]),
        (
            "bad_endpoint.yaml",
            [
                ":5:21: task 'Serve': endpoint_title 'my endpoint!' may contain only letters",
                ":10:18: task 'Serve': min_replica (3) is greater than max_replica (1)",
            ],
        ),
    ],
)
def test_invalid_examples_name_file_line_and_mistake(file: str, expected: list[str]) -> None:
    with pytest.raises(FlowError) as caught:
        load_flow(FLOWS / "invalid" / file)
    messages = [str(i) for i in caught.value.issues]
    assert len(messages) == len(expected), messages
    for message, fragment in zip(messages, expected, strict=True):
        assert message.startswith(str(FLOWS / "invalid" / file)), message
        assert fragment in message, message
    assert "Traceback" not in str(caught.value)


def test_all_mistakes_of_a_file_at_once(tmp_path: Path) -> None:
    found = errors(
        """\
flow: Many Mistakes
tasks:
  - title: A
    type: exec
    inptu: python3 a.py
    computes: [local]
  - title: B
    type: exce
  - title: A
    type: exec
    input: "true"
    computes: [local]
    min_replica: 2
relations:
  - from: A
    to: Nowhere
""",
        tmp_path,
    )
    text = "\n".join(found)
    assert ":5:5: task 'A': unknown key 'inptu' (did you mean 'input'?)" in text
    assert ":8:11: task 'B': unknown task type 'exce': use exec, data or deploy" in text
    assert "min_replica" not in text  # a key of deploy tasks: a warning (tests/spec/test_dialect.py), not an error
    assert ":9:12: duplicate task title 'A'" in text
    assert ":16:9: relation to 'Nowhere': no task has this title" in text


def test_a_type_that_is_a_mapping_or_a_list_is_a_positioned_error(tmp_path: Path) -> None:
    """Issue 29, item 9: it was a TypeError (unhashable type) with a traceback."""
    found = errors("flow: T\ntasks:\n  - title: A\n    type: {exec: 1}\n    unknown: 1\n"
                   "  - title: B\n    type: [exec]\nrelations: []\n", tmp_path)
    assert any(e.endswith(":4:11: task 'A': 'type' must be exec, data or deploy, not a mapping") for e in found)
    assert any(e.endswith(":7:11: task 'B': 'type' must be exec, data or deploy, not a list") for e in found)


def test_missing_keys_and_wrong_types(tmp_path: Path) -> None:
    found = "\n".join(
        errors(
            """\
tasks:
  - title: Serve
    type: deploy
    endpoint_id: x
    computes: [local]
    file_name: p.py
    function_name: predict
    min_replica: many
    max_replica: 2
""",
            tmp_path,
        )
    )
    assert ":1:1: missing the flow's name: add 'flow: <title>'" in found
    assert "missing required key 'relations'" in found
    assert ":8:18: task 'Serve': 'min_replica' must be a whole number, not 'many'" in found


def test_self_loop_and_upstream_reference(tmp_path: Path) -> None:
    found = "\n".join(
        errors(
            """\
flow: Loops
tasks:
  - {title: A, type: exec, input: "true", computes: [local]}
  - title: B
    type: exec
    input: "true"
    computes: [local]
    params:
      - {key: x, value: "{{ C.acc }}"}
  - {title: C, type: exec, input: "true", computes: [local]}
relations:
  - {from: A, to: A}
  - {from: B, to: C}
""",
            tmp_path,
        )
    )
    assert ":12:5: task 'A' cannot be related to itself" in found
    assert ":9:25: param 'x' of 'B' uses a tag of 'C', which does not run before 'B'" in found


def test_empty_values_mean_not_set_and_layout_keys_are_ignored(tmp_path: Path) -> None:
    file = tmp_path / "flow.yaml"
    file.write_text(
        """\
flow: Blanks
recurring:
schedule: ""
tasks:
  - title: A
    type: exec
    input: python3 a.py
    computes: [local]
    description:
    git_branch:
    mount_folders: []
    image: ''
    top: 10
    left: 20
    icon: x.png
    conditions: []
relations: []
"""
    )
    flow = load_flow(file)
    task = flow.spec.tasks[0]
    assert isinstance(task, ExecTask)
    assert flow.spec.recurring is None and flow.spec.schedule is None
    assert task.description is None and task.git_branch is None and task.image is None
    assert task.mount_folders == [] and task.conditions == []


def test_params_scalar_list_and_comma_separated(tmp_path: Path) -> None:
    file = tmp_path / "flow.yaml"
    file.write_text(
        """\
flow: Params
tasks:
  - title: A
    type: exec
    input: python3 a.py
    computes: [local]
    params:
      - {key: data, value: "data.csv"}
      - {key: epochs, value: [3, 5, 12]}
      - key: batch_size
        value:
          - '128'
          - '256'
      - {key: depth, value: "2, 4,8"}
      - {key: flag, value: true}
relations: []
"""
    )
    task = load_flow(file).spec.tasks[0]
    assert isinstance(task, ExecTask)
    assert [p.grid() for p in task.params] == [
        ["data.csv"],
        ["3", "5", "12"],
        ["128", "256"],
        ["2", "4", "8"],
        ["true"],
    ]


def test_blueprint_dialect(tmp_path: Path) -> None:
    flow = load_flow(FLOWS / "blueprint" / "flow.yaml")
    assert flow.spec.is_blueprint and flow.spec.name == "Churn Lite Train" and flow.spec.version == "1.0.0"
    prepare = flow.spec.tasks[0]
    assert isinstance(prepare, ExecTask)
    assert prepare.script == "python3 prepare.py" and prepare.computes == []
    assert prepare.resources is not None and prepare.resources.cpu == 1
    assert prepare.params[0].grid() == ["100"]

    file = tmp_path / "flow.yaml"
    file.write_text(
        """\
title: Serve Blueprint
version: 1.0.0
description:
long_description: serves
author: someone
author_email: a@b.c
icon: x
tags: [inference]
tasks:
  - title: Inference
    type: deploy
    library: sk-inference
    library-version: 1.0.0
    kind: webservice
    requirements: {cpu: 3.5, memory: 8, gpu: 0, hpu: 0}
    image: cnvrg/cnvrg:v5.0
    language: python3
    accept_files: false
    gunicorn_config:
      - {key: workers, value: '1'}
    flask_config: []
    file_name: predict.py
    function_name: predict
    prep_file: ''
    prep_function: ''
    input_example: {vars: text}
    input_schema: {vars: text}
    output_schema: {}
    confirmation: false
    commit: abc123
relations: []
"""
    )
    deploy = load_flow(file).spec.tasks[0]
    assert isinstance(deploy, DeployTask)
    assert deploy.endpoint_title is None and deploy.min_replica is None
    assert deploy.gunicorn_config[0].key == "workers" and deploy.revision == "abc123"


def test_plain_values_with_colons_are_text(tmp_path: Path) -> None:
    file = tmp_path / "flow.yaml"
    file.write_text(
        """\
flow: Colons
tasks:
  - title: A
    type: exec
    input: python3 -c "print('cnvrg_tag_accuracy: 0.91')"
    computes: [local]
relations: []
"""
    )
    task = load_flow(file).spec.tasks[0]
    assert isinstance(task, ExecTask)
    assert task.script == "python3 -c \"print('cnvrg_tag_accuracy: 0.91')\""


def test_titles_that_would_share_a_folder(tmp_path: Path) -> None:
    found = "\n".join(
        errors(
            """\
flow: Slugs
tasks:
  - {title: Train!, type: exec, input: "true", computes: [local]}
  - {title: Train?, type: exec, input: "true", computes: [local]}
  - {title: "!!!", type: exec, input: "true", computes: [local]}
relations: []
""",
            tmp_path,
        )
    )
    assert ":4:13: tasks 'Train!' and 'Train?' would share the artifacts folder input/train" in found
    assert ":5:13: task title '!!!' has no letters or digits" in found


def test_output_dir_stays_inside_the_workspace(tmp_path: Path) -> None:
    found = "\n".join(
        errors(
            """\
title: Escape
tasks:
  - {title: A, type: exec, command: "true", output_dir: ../../etc}
relations: []
""",
            tmp_path,
        )
    )
    assert "output_dir '../../etc' must be a folder inside the working directory" in found


def test_dataset_names_are_checked_as_the_dataset_store_checks_them(tmp_path: Path) -> None:
    """Issue 29, item 8: ``dataset: ../outside`` validated, a name that leads out of the store's folder."""
    found = errors("flow: T\ntasks:\n  - {title: D, type: data, dataset: ../outside}\n"
                   "  - {title: E, type: data, dataset: objects}\nrelations: []\ntriggers: {datasets: [iris, /etc]}\n",
                   tmp_path)
    assert any(e.endswith(":3:37: task 'D': '../outside' cannot be a dataset: use letters, digits, '.', '_' and "
                          "'-', starting with a letter or digit") for e in found)
    assert any(e.endswith(":4:37: task 'E': 'objects' cannot be a dataset's name: the store keeps its own "
                          "objects folder") for e in found)
    assert any(":6:" in e and "'/etc' cannot be a dataset" in e for e in found)


def test_a_task_of_an_unknown_type_has_its_other_mistakes_listed_too_in_file_order(tmp_path: Path) -> None:
    """Issue 27, item 11: ``type: exce`` hid the task's other mistakes (``objective: maximum``) until it was fixed."""
    found = errors(
        """\
flow: Two Mistakes
tasks:
  - title: Train
    type: exec
    input: python3 train.py
    computes: [local]
  - title: Deploy
    type: exce
    input: echo hi
    computes: [local]
    params:
      - key: lr
    conditions:
      - task: Train
        objective: maximum
        tag_key: acc
relations:
  - from: Train
    to: Deploy
  - from: Nowhere
    to: Deploy
""",
        tmp_path,
    )
    assert [e.split("flow.yaml", 1)[1] for e in found] == [
        ":8:11: task 'Deploy': unknown task type 'exce': use exec, data or deploy",
        ":12:9: task 'Deploy': param 'lr' has no 'value'",
        ":15:20: task 'Deploy': unknown objective 'maximum'; use one of gt, lt, eq, min, max, human_validation",
        ":20:11: relation from 'Nowhere': no task has this title",
    ]


def test_a_flow_level_mistake_still_lets_the_flows_other_checks_run(tmp_path: Path) -> None:
    """Issue 27, item 11: a refused key of the flow itself stopped the pass before the checks of its
    tasks and relations; they run without that key."""
    found = errors(
        """\
flow: Top Mistake
single_mode: maybe
tasks:
  - title: A
    type: exec
    input: python3 a.py
relations:
  - from: A
    to: C
""",
        tmp_path,
    )
    assert [e.split("flow.yaml", 1)[1] for e in found] == [
        ":2:1: unknown key 'single_mode'",
        ":4:5: task 'A' needs 'computes': the compute templates to try (for example 'computes: [local]')",
        ":9:9: relation to 'C': no task has this title",
    ]


def test_a_brace_form_that_is_no_tag_reference_is_an_error_with_its_line(tmp_path: Path) -> None:
    """Any '{{' that is not a reference is refused, never passed on as text; braces of other text (JSON) are
    not. The spaced form cnvrg's documentation writes, '{ { Task.tag | hyper } }', is a reference (issue 25)."""
    found = errors(
        """\
flow: Spaced
tasks:
  - title: Params
    type: exec
    input: python3 params.py
    computes: [local]
  - title: Dynamic
    type: exec
    input: python3 step.py
    computes: [local]
    params:
      - key: route
        value: "{ { Params.route | hyper } }"
      - key: day
        value: "{{ ds }}"
      - key: json
        value: '{"a": {"b": 1}}'
      - key: open
        value: "{{ Params.route, 3"
relations:
  - from: Params
    to: Dynamic
""",
        tmp_path,
    )
    assert [e.split("flow.yaml", 1)[1] for e in found] == [
        ":15:16: param 'day' of 'Dynamic': '{{ ds }}' is not understood: a tag reference is '{{ Task.tag }}' "
        "or '{{ Task.tag | hyper }}' (a task that runs before, and one of its tags)",
        ":19:16: param 'open' of 'Dynamic': '{{ Params.route, 3' is not understood: a tag reference is "
        "'{{ Task.tag }}' or '{{ Task.tag | hyper }}' (a task that runs before, and one of its tags)",
    ]
