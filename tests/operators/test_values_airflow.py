"""Values reach the scripts as written: regression flows run through real Airflow (``dag.test()``)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from flow_airflow.local_run import RunResult, run_flow

pytestmark = pytest.mark.airflow


def printed(capfd: pytest.CaptureFixture[str]) -> tuple[list[list[str]], list[str]]:
    """What show.py printed in the task logs: each experiment's argv, and its CNVRG_TAG_* lines."""
    text = "".join(capfd.readouterr())
    argvs = [json.loads(m) for m in re.findall(r"ARGV (\[[^\]]*\])", text)]
    env = [" ".join(m) for m in re.findall(r"ENV (CNVRG_TAG_\w+) ('[^']*')", text)]
    return argvs, env


def test_yaml_typed_param_values_reach_the_script_as_written(
    run: Callable[..., RunResult], capfd: pytest.CaptureFixture[str]
) -> None:
    result = run("regressions/yaml_typed_param_values")
    assert result.state == "success"
    written = {"start_time": "12:30", "seed": "010", "ratio": "0.10", "lr": "1.0e-3", "lr2": "1e-3",
               "steps": "1_000", "mask": "0x1F", "half": ".5", "use_gpu": "yes", "verbose": "on",
               "flag": "True", "version": "1.10"}
    [show] = result.of("Show")
    assert show.params == written
    assert show.label == "no params"  # each has one value: the same on every route
    argvs, env = printed(capfd)
    assert argvs == [[w for k, v in written.items() for w in (f"--{k}", v)]]
    assert sorted(env) == sorted(f"CNVRG_TAG_{k.upper()} {v!r}" for k, v in written.items())


def test_date_params_are_text(run: Callable[..., RunResult], capfd: pytest.CaptureFixture[str]) -> None:
    result = run("regressions/date_params_rejected")
    assert result.state == "success"
    assert [e.params for e in result.of("Backfill")] == [
        {"start_date": "2024-01-15", "end_date": "2024-02-01"},
        {"start_date": "2024-01-15", "end_date": "2024-03-01"},
    ]
    argvs, env = printed(capfd)
    assert sorted(argvs) == [["--start_date", "2024-01-15", "--end_date", "2024-02-01"],
                             ["--start_date", "2024-01-15", "--end_date", "2024-03-01"]]  # in the order they ran
    assert "CNVRG_TAG_START_DATE '2024-01-15'" in env


def test_merge_keys_give_way_to_the_tasks_own(run: Callable[..., RunResult], capfd: pytest.CaptureFixture[str]) -> None:
    result = run("regressions/merge_key_override")
    assert result.state == "success"
    assert [e.params for e in result.of("Train Small")] == [{"size": "small"}]
    assert [e.params for e in result.of("Train Large")] == [{"size": "large"}]
    argvs, _ = printed(capfd)
    assert sorted(argvs) == [["--size", "large"], ["--size", "small"]]


def test_merge_key_without_override(run: Callable[..., RunResult], capfd: pytest.CaptureFixture[str]) -> None:
    result = run("regressions/merge_key_override", "flow_nooverride.yaml")
    assert result.state == "success"
    assert [len(result.of(t)) for t in ("Prepare", "Train")] == [1, 1]
    argvs, _ = printed(capfd)
    assert argvs == [[], []]  # both ran show.py, the command merged into Train


def test_csv_grid_and_hyper_drop_empty_items(run: Callable[..., RunResult], capfd: pytest.CaptureFixture[str]) -> None:
    result = run("regressions/csv_trailing_comma")
    assert result.state == "success"
    expected = [{"lr": "0.1"}, {"lr": "0.01"}, {"lr": "0.001"}]
    assert [e.params for e in result.of("Sweep")] == expected
    assert [e.params for e in result.of("Dynamic")] == expected
    argvs, _ = printed(capfd)
    assert sorted(argvs) == sorted([["--lr", v] for v in ("0.1", "0.01", "0.001")] * 2)


def test_realworld_empty_values_are_not_passed(run: Callable[..., RunResult]) -> None:
    result = run("realworld/empty_values")  # read.py asserts its argv
    assert result.state == "success"
    [reader] = result.of("Bucket Reader")
    assert reader.params == {"endpoint": "http://storage.example.com"}
    assert reader.tags == {"args": "1"}


def test_realworld_empty_values_filled_in_when_triggered(airflow_home: Path, project: Callable[..., Path]) -> None:
    """The trigger form's params fill in what the file left empty: the command gets them, as given."""
    conf = {"Bucket Reader": {"bucket": "models-010", "prefix": ["2024/", "2025/"]}}
    result = run_flow(project("realworld/empty_values"), conf=conf)
    assert result.state == "success"
    readers = result.of("Bucket Reader")
    assert sorted(r.params["prefix"] for r in readers) == ["2024/", "2025/"]  # a grid of two
    assert {r.params["bucket"] for r in readers} == {"models-010"}
    assert [r.tags for r in readers] == [{"args": "3"}] * 2  # endpoint, bucket and prefix passed


def test_realworld_one_scalar_values(run: Callable[..., RunResult]) -> None:
    result = run("realworld/scalar_values")  # the command asserts its argv
    assert result.state == "success"
    assert [e.params for e in result.of("Reader")] == [{"images": "/input/fetch/images", "epochs": "3"}]


def test_realworld_key_of_another_task_type_is_a_warning_in_the_task_log(
    run: Callable[..., RunResult], capfd: pytest.CaptureFixture[str]
) -> None:
    result = run("realworld/cross_type_keys")
    assert result.state == "success"
    assert [e.tags for e in result.of("Batch Scoring")] == [{"rows": "3"}]
    text = "".join(capfd.readouterr())
    assert "flow.yaml:10:5: task 'Batch Scoring': 'accept_files' is a key of deploy tasks; " \
           "it has no effect on an exec task" in text


def test_realworld_relation_ends_in_another_letter_case(run: Callable[..., RunResult]) -> None:
    result = run("realworld/relation_case")
    assert result.state == "success"
    assert [e.tags for e in result.of("Train Model")] == [{"acc": "0.9"}]
    assert len(result.of("Compare")) == 1
