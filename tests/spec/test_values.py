"""Values as written, merge keys, CSV grids, duplicate params and plain-sentence errors (issue 12)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flow_airflow.common.routes import grid, split_values
from flow_airflow.plan.flow_plan import plan_flow
from flow_airflow.spec.errors import FlowError
from flow_airflow.spec.load import load_flow
from flow_airflow.spec.models import DeployTask, ExecTask

FLOWS = Path(__file__).parents[1] / "flows"
REGRESSIONS = FLOWS / "regressions"


def write(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "flow.yaml"
    file.write_text(text)
    return file


def errors(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(FlowError) as caught:
        load_flow(write(tmp_path, text))
    return [str(i) for i in caught.value.issues]


def test_plain_scalars_keep_the_text_written() -> None:
    flow = load_flow(REGRESSIONS / "yaml_typed_param_values" / "flow.yaml")
    task = flow.spec.tasks[0]
    assert isinstance(task, ExecTask)
    assert {p.key: p.grid() for p in task.params} == {
        "start_time": ["12:30"], "seed": ["010"], "ratio": ["0.10"], "lr": ["1.0e-3"], "lr2": ["1e-3"],
        "steps": ["1_000"], "mask": ["0x1F"], "half": [".5"], "use_gpu": ["yes"], "verbose": ["on"],
        "flag": ["True"], "version": ["1.10"],
    }


def test_dates_are_text_and_make_routes() -> None:
    plan = plan_flow(load_flow(REGRESSIONS / "date_params_rejected" / "flow.yaml"))
    [backfill] = plan.tasks
    assert backfill.params == [("start_date", ["2024-01-15"]), ("end_date", ["2024-02-01", "2024-03-01"])]
    assert backfill.count == 2


def test_an_iso_schedule_is_one_plain_sentence() -> None:
    with pytest.raises(FlowError) as caught:
        load_flow(REGRESSIONS / "date_params_rejected" / "schedule_iso.yaml")
    [issue] = caught.value.issues
    assert (issue.line, issue.column) == (2, 11)
    assert issue.message.startswith("schedule '2031-01-31 16:25:00' is not a date and time cnvrg understands")


def test_text_fields_take_numbers_as_written_and_typed_fields_convert(tmp_path: Path) -> None:
    flow = load_flow(write(tmp_path, """\
title: 2024
version: 1.10
tasks:
  - title: 010
    type: exec
    command: python3 a.py
    single_mode: yes
    periodic_sync: off
    requirements: {cpu: 1.50, memory: 2}
    conditions: []
  - title: Serve
    type: deploy
    file_name: predict.py
    function_name: predict
    min_replica: 01
    max_replica: "3"
    accept_files: on
    input_example: {age: 42, ratio: 0.5, ok: yes, day: 2024-01-15, name: '7'}
  - title: Gate
    type: exec
    command: "true"
    conditions: [{task: '010', objective: eq, tag_key: v, target: 0.10}]
relations:
  - {from: 010, to: Gate}
"""))
    assert flow.spec.name == "2024" and flow.spec.version == "1.10"
    first, serve, gate = flow.spec.tasks
    assert isinstance(first, ExecTask) and isinstance(serve, DeployTask) and isinstance(gate, ExecTask)
    assert first.title == "010" and first.single_mode is True and first.periodic_sync is False
    assert first.resources is not None and (first.resources.cpu, first.resources.memory) == (1.5, 2)
    assert (serve.min_replica, serve.max_replica, serve.accept_files) == (1, 3, True)
    # passed on as data: typed as YAML reads it, except dates, which stay text
    assert serve.input_example == {"age": 42, "ratio": 0.5, "ok": True, "day": "2024-01-15", "name": "7"}
    assert plan_flow(flow).task("Gate").tests[0].target == "0.10"


INTERNAL_NAMES = re.compile(r"input should|dict\b|list\[|union|Resources|KeyValue|Param\b|int_parsing|str\b")


def test_errors_are_one_plain_sentence_without_internal_type_names(tmp_path: Path) -> None:
    found = errors(tmp_path, """\
flow: [a, b]
tasks:
  - title: A
    type: exec
    input: {x: 1}
    computes: [local]
    single_mode: maybe
    requirements: lots
    params:
      - {key: x, value: {a: 1}}
      - {key: y, value: [[1]]}
  - title: D
    type: deploy
    file_name: a
    function_name: b
    computes: [local]
    endpoint_id: e
    min_replica: -1
    max_replica: 0x1F
    requirements: {cpu: much}
    gunicorn_config: [{key: a}]
relations: {}
""")
    assert [e.split("flow.yaml:")[1] for e in found] == [
        "1:7: 'flow' must be text, not a list",
        "5:12: task 'A': 'input' must be text, not a mapping",
        "7:18: task 'A': 'single_mode' must be true or false, not 'maybe'",
        "8:19: task 'A': 'requirements' must be true or false or a mapping (key: value), not 'lots'",
        "10:25: task 'A': 'value' must be a single value or a list, not a mapping",
        "11:26: task 'A': item 1 of 'value' must be a single value, not a list",
        "18:18: task 'D': 'min_replica' should be greater than or equal to 0, not '-1'",
        "19:18: task 'D': 'max_replica' must be a whole number, not '0x1F'",
        "20:25: task 'D': 'cpu' must be a number, not 'much'",
        "21:23: task 'D': missing required key 'value'",
        "22:12: 'relations' must be a list, not a mapping",
    ]
    assert not [e for e in found if INTERNAL_NAMES.search(e.split("flow.yaml:")[1])]


def test_merge_keys_give_way_to_the_mappings_own_keys() -> None:
    flow = load_flow(REGRESSIONS / "merge_key_override" / "flow.yaml")
    small, large = flow.spec.tasks
    assert isinstance(small, ExecTask) and isinstance(large, ExecTask)
    assert (small.title, large.title) == ("Train Small", "Train Large")
    assert [p.grid() for p in large.params] == [["large"]] and large.script == "python3 show.py"
    nooverride = load_flow(REGRESSIONS / "merge_key_override" / "flow_nooverride.yaml")
    assert [t.title for t in nooverride.spec.tasks] == ["Prepare", "Train"]


def test_of_several_merged_mappings_the_earlier_wins() -> None:
    flow = load_flow(REGRESSIONS / "merge_key_override" / "flow_multi.yaml")
    evaluate = flow.task("Evaluate")
    assert isinstance(evaluate, ExecTask)
    assert (evaluate.script, evaluate.computes) == ("echo train", ["gpu"])  # <<: [*gpu, *local]


def test_a_key_written_twice_is_still_an_error_naming_both_lines(tmp_path: Path) -> None:
    found = errors(tmp_path, """\
flow: Twice
base: &base {type: exec, input: "true", computes: [local]}
tasks:
  - <<: *base
    title: A
    title: B
relations: []
""")
    assert any(e.endswith(":6:5: duplicate key 'title' (first at line 5)") for e in found), found


def test_a_merge_key_needs_a_mapping(tmp_path: Path) -> None:
    found = errors(tmp_path, "flow: F\ntasks:\n  - <<: 3\n    title: A\nrelations: []\n")
    assert any(":3:9: '<<' (merge key) takes a mapping or a list of mappings" in e for e in found), found


def test_csv_grid_drops_empty_items_like_hyper() -> None:
    assert split_values("0.1, 0.01, 0.001,") == ["0.1", "0.01", "0.001"]
    assert split_values(" a,, b ,") == ["a", "b"]
    plan = plan_flow(load_flow(REGRESSIONS / "csv_trailing_comma" / "flow.yaml"))
    assert plan.task("Sweep").params == [("lr", ["0.1", "0.01", "0.001"])]
    assert plan.task("Sweep").count == 3
    upstream = {"Emit": {"tags": {"lrs": "0.1, 0.01, 0.001,"}, "params": {}}}
    assert grid([("lr", ["{{ Emit.lrs | hyper }}"])], upstream) == [[["lr", v]] for v in ("0.1", "0.01", "0.001")]


def test_duplicate_param_keys_name_both_lines(tmp_path: Path) -> None:
    found = errors(tmp_path, """\
flow: Params
tasks:
  - title: A
    type: exec
    input: "true"
    computes: [local]
    params:
      - key: lr
        value: 0.1
      - key: depth
        value: 3
      - key: lr
        value: 0.2
relations: []
""")
    assert [e.split("flow.yaml:")[1] for e in found] == [
        "12:14: task 'A': param 'lr' is given twice, at lines 8 and 12; keep one"
    ]


def test_shapes_that_are_not_mappings_are_plain_sentences(tmp_path: Path) -> None:
    found = errors(tmp_path, """\
flow: F
tasks:
  - abc
  - {title: A, type: exec, input: x, computes: [l], params: abc, conditions: [3]}
relations: [abc]
""")
    assert [e.split("flow.yaml:")[1] for e in found] == [
        "3:5: task #1: a task must be a mapping (title:, type:, ...), not 'abc'",
        "4:61: task 'A': 'params' must be a list, not 'abc'",
        "4:79: task 'A': item 1 of 'conditions' must be a mapping (key: value), not '3'",
        "5:13: item 1 of 'relations' must be a mapping (key: value), not 'abc'",
    ]
