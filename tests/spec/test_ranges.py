"""Range params (cnvrg's flow page and grid files): ``steps`` values from ``min`` (inclusive) to ``max`` (not)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from flow_airflow.plan.flow_plan import plan_flow
from flow_airflow.spec.errors import FlowError
from flow_airflow.spec.load import load_flow

FLOW = """\
title: Ranges
tasks:
  - title: Train
    type: exec
    command: python3 train.py
    params:
{params}
relations: []
"""


def params_of(tmp_path: Path, *params: str) -> dict[str, list[str]]:
    file = tmp_path / "flow.yaml"
    file.write_text(FLOW.format(params="\n".join(f"      - {p}" for p in params)))
    [task] = plan_flow(load_flow(file)).tasks
    return dict(task.params)


def errors(tmp_path: Path, param: str) -> list[str]:
    file = tmp_path / "flow.yaml"
    file.write_text(FLOW.format(params=f"      - {param}"))
    with pytest.raises(FlowError) as caught:
        load_flow(file)
    return [str(i) for i in caught.value.issues]


@pytest.mark.parametrize(("param", "values"), [
    # cnvrg's grid file: "min: 10 # inclusive, max: 50 # not inclusive, steps: 5", 5 values
    ("{key: epochs, type: integer, min: 10, max: 50, scale: linear, steps: 5, values: []}",
     ["10", "18", "26", "34", "42"]),
    ("{key: epochs, type: integer, min: 5, max: 20, scale: linear, steps: 4, values: []}", ["5", "8", "12", "16"]),
    ("{key: n, type: integer, min: 10, max: 20, steps: 2}", ["10", "15"]),  # no scale: linear
    ("{key: n, type: integer, min: -3, max: 3, steps: 3, values: []}", ["-3", "-1", "1"]),  # floored
    ("{key: f, type: float, min: 1, max: 40, scale: linear, steps: 3, values: []}", ["1.0", "14.0", "27.0"]),
    ("{key: f, type: float, min: 0, max: 0.9, steps: 3, values: []}", ["0.0", "0.3", "0.6"]),
    ("{key: lr, type: float, min: 0.0001, max: 1, scale: log10, steps: 4, values: []}",
     ["0.0001", "0.001", "0.01", "0.1"]),
    ("{key: lr, type: float, min: 1, max: 16, scale: log2, steps: 4, values: []}", ["1.0", "2.0", "4.0", "8.0"]),
    ("{key: units, type: integer, min: 16, max: 1024, scale: log, steps: 3, values: []}", ["16", "64", "256"]),
    # the page's defaults beside listed values: no range, the values as listed
    ("{key: batch, type: categorical, min: 0, max: 0, scale: linear, steps: 0, values: ['128', '256']}",
     ["128", "256"]),
    ("{key: batch, type: integer, min: 0, max: 0, scale: linear, steps: 0, values: ['5', '10']}", ["5", "10"]),
])
def test_a_range_gives_its_values(tmp_path: Path, param: str, values: list[str]) -> None:
    assert params_of(tmp_path, param) == {param.split(",")[0].removeprefix("{key: "): values}


def test_ranges_and_lists_make_one_grid(tmp_path: Path) -> None:
    file = tmp_path / "flow.yaml"
    file.write_text(FLOW.format(params="\n".join(f"      - {p}" for p in (
        "{key: epochs, type: integer, min: 5, max: 20, scale: linear, steps: 4, values: []}",
        "{key: batch, type: categorical, min: 0, max: 0, scale: linear, steps: 0, values: ['128', '256']}"))))
    [task] = plan_flow(load_flow(file)).tasks
    assert task.count == 8


@pytest.mark.parametrize(("param", "mistake"), [
    ("{key: a, type: integer, min: 0, max: 2, steps: 5, values: []}",
     "param 'a' is a range (steps: 5): the integers 0, 0, 0, 1, 1 repeat (values are floored)"),
    ("{key: b, type: discrete, min: 1, max: 2, steps: 2, values: []}",
     "a range needs 'type: integer' or 'type: float', not 'discrete'"),
    ("{key: b, min: 1, max: 2, steps: 2}", "a range needs 'type: integer' or 'type: float', not no type"),
    ("{key: c, type: float, min: 3, max: 2, steps: 2, values: []}", "'min' (3) must be below 'max' (2)"),
    ("{key: d, type: float, min: 0, max: 2, scale: log, steps: 2, values: []}",
     "a 'log' scale needs 'min' above 0, not 0"),
    ("{key: e, type: float, min: 1, max: 2, steps: 2, values: ['1']}", "and also lists values; use one"),
    ("{key: f, type: float, min: 1, max: 2, values: []}", "param 'f' has 'min' and 'max' but no 'steps'"),
    ("{key: g, type: float, min: 1, max: 2, steps: 2, scale: cubic, values: []}",
     "'scale' must be 'linear', 'log', 'log2' or 'log10', not 'cubic'"),
    ("{key: h, type: float, min: 1, max: 2, steps: -1, values: []}", "'steps'"),
    ("{key: i, type: float, max: 2, steps: 2, values: []}", "it needs 'min' and 'max'"),
])
def test_a_range_that_means_nothing_clear_is_refused_on_its_line(tmp_path: Path, param: str, mistake: str) -> None:
    [error] = errors(tmp_path, param)
    assert error.startswith(f"{tmp_path / 'flow.yaml'}:7:") and mistake in error, error


@pytest.mark.airflow
def test_a_range_reaches_the_command_as_plan_shows_it(airflow_home: Path, tmp_path: Path) -> None:
    from flow_airflow.local_run import run_flow

    (tmp_path / "train.py").write_text("import sys\nprint('cnvrg_tag_argv:', ' '.join(sys.argv[1:]))\n")
    file = tmp_path / "flow.yaml"
    file.write_text(FLOW.format(params="\n".join(f"      - {p}" for p in (
        "{key: epochs, type: integer, min: 5, max: 20, scale: linear, steps: 4, values: []}",
        "{key: lr, type: float, min: 0.001, max: 1, scale: log10, steps: 3, values: []}"))))
    result = run_flow(file)
    assert result.state == "success"
    ran = sorted(e.tags["argv"] for e in result.of("Train"))
    assert ran == sorted(f"--epochs {e} --lr {lr}" for e in ("5", "8", "12", "16") for lr in ("0.001", "0.01", "0.1"))


def test_plan_shows_a_range_as_its_values(tmp_path: Path) -> None:
    import subprocess

    file = tmp_path / "flow.yaml"
    file.write_text(FLOW.format(params="      - {key: epochs, type: integer, min: 5, max: 20, steps: 4, values: []}"))
    out = subprocess.run([sys.executable, "-m", "flow_airflow.cli", "plan", str(file)], capture_output=True,
                         text=True, check=True).stdout
    assert "Train [exec]: 4 routes" in out
    assert "epochs: 5, 8, 12, 16 (integer, linear, 4 steps from 5 to 20, 20 not included)" in out
