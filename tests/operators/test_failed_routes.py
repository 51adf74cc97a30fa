"""A failed experiment fails its own route, not the grid (issue 12), and skipped parents, through real Airflow.

In cnvrg every route is its own pipeline: the routes whose parents succeeded go on, only the
failed route's descendants stop (marked skipped, saying why), conditions consider only the
experiments that succeeded, and the run ends failed once everything that could run has run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from flow_airflow.local_run import RunResult, run_flow

pytestmark = pytest.mark.airflow


def states(result: RunResult, title: str) -> list[tuple[str, str]]:
    return [(e.label, e.state) for e in result.of(title, None)]


@pytest.mark.parametrize("conf", [None, {"Train": {"lr": ["0.1", "0.2", "0.3"]}}], ids=["no conf", "trigger form"])
def test_one_failed_train_route_stops_only_its_own_descendants(
    conf: dict | None, airflow_home: Path, project: Callable[..., Path], capfd: pytest.CaptureFixture[str]
) -> None:
    result = run_flow(project("failed_route"), conf=conf)  # with a conf, each task instance plans its routes again
    assert result.state == "failed"
    assert states(result, "Train") == [("lr=0.1", "success"), ("lr=0.2", "failed"), ("lr=0.3", "success")]
    assert states(result, "Evaluate") == [("Train: lr=0.1", "success"), ("Train: lr=0.2", "skipped"),
                                     ("Train: lr=0.3", "success")]  # named: lr is Train's, not its own
    assert [e.tags for e in result.of("Evaluate")] == [{"evaluated": "0.1"}, {"evaluated": "0.3"}]
    assert states(result, "Report") == [("Train: lr=0.1", "success"), ("Train: lr=0.2", "skipped"),
                                     ("Train: lr=0.3", "success")]  # named: lr is Train's, not its own
    assert [e.tags for e in result.of("Report")] == [{"reported": "0.1"}, {"reported": "0.3"}]
    # the failed experiment logged 0.99 before it failed: only the ones that succeeded are considered
    assert [e.tags for e in result.of("Pick Best")] == [{"picked": "0.1"}]
    text = "".join(capfd.readouterr())
    assert "Evaluate [Train: lr=0.2] does not run: it follows 'Train' #1 [lr=0.2], which did not succeed" in text
    assert ("Report [Train: lr=0.2] does not run: it follows 'Evaluate' #1 [Train: lr=0.2], which did not "
            "succeed") in text
    assert ("Train #1 [lr=0.2]: left out, it did not succeed (failed: 'Train' failed: its command exited with "
            "code 1 (its last line: ") in text  # stdout's or stderr's, whichever was read last
    assert "1 task instance(s) of this run did not succeed (Train #1 [lr=0.2]: failed): the run fails" in text


def test_batched_a_failed_route_still_stops_only_its_own_descendants(
    airflow_home: Path, project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__BATCH_ROUTES", "2")
    result = run_flow(project("failed_route"))
    assert result.state == "failed"
    # the batch of lr=0.1 and lr=0.2 failed as a task instance, but lr=0.1's record is kept and goes on
    assert sorted(e.tags.get("evaluated", "-") for e in result.of("Evaluate", None)) == ["-", "0.1", "0.3"]
    assert sorted(e.tags.get("reported", "-") for e in result.of("Report", None)) == ["-", "0.1", "0.3"]
    assert [e.tags for e in result.of("Pick Best")] == [{"picked": "0.1"}]


def test_a_task_without_condition_after_a_skipped_branch_is_skipped_saying_why(
    airflow_home: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "flow.yaml"
    file.write_text("""\
flow: Skipped Branch
tasks:
  - title: Train
    type: exec
    input: python3 -c "import sys; print('cnvrg_tag_acc:', sys.argv[2])"
    computes: [local]
    params: [{key: acc, value: ["0.1", "0.2"]}]
  - title: Gate
    type: exec
    input: "true"
    computes: [local]
    conditions: [{task: Train, objective: gt, target: 0.9, tag_key: acc}]
  - {title: Baseline, type: exec, input: "true", computes: [local]}
  - {title: Join, type: exec, input: "true", computes: [local]}
relations:
  - {from: Train, to: Gate}
  - {from: Gate, to: Join}
  - {from: Baseline, to: Join}
""")
    result = run_flow(file)
    assert result.state == "success"
    never = [("routes never planned", "skipped")]  # what Airflow shows by map index only, said in the summary
    assert states(result, "Gate") == never and states(result, "Join") == never
    text = "".join(capfd.readouterr())
    assert "'Gate' has no experiment in this run (skipped)" in text
    assert "'Join' does not run: 'Gate' has no experiment in this run" in text


@pytest.mark.parametrize("name, runs", [
    # Register runs once, on the experiment that logged `True` (target: True)
    ("eq_condition_bool_target", {"Register": [{"lr": "0.01"}]}),
    # the 0.89 experiment passes: NaN never wins max
    ("nan_wins_max_condition", {"Deploy Best": [{"lr": "0.01", "acc": "0.89"}]}),
    # Pick Best runs once, on the baseline, though the gate before it was skipped
    ("skipped_gate_skips_max_join", {"Pick Best": [{"picked": "baseline"}]}),
])
def test_regression_conditions(
    name: str, runs: dict[str, list[dict[str, str]]], airflow_home: Path, tmp_path: Path,
    capfd: pytest.CaptureFixture[str]
) -> None:
    import shutil

    folder = tmp_path / name
    shutil.copytree(Path(__file__).parent.parent / "flows" / "regressions" / name, folder)
    result = run_flow(folder / "flow.yaml")
    assert result.state == "success"
    text = "".join(capfd.readouterr())
    for title, expected in runs.items():
        assert len(result.of(title)) == len(expected) == len(result.of(title, None))
    if name == "eq_condition_bool_target":
        assert result.of("Register")[0].label == "Train: lr=0.01"
        assert "Train #0 [lr=0.1]: converged = False does not pass" in text
        assert "Train #1 [lr=0.01]: converged = True passes" in text
    if name == "nan_wins_max_condition":
        assert result.of("Deploy Best")[0].label == "Train: lr=0.01"
        assert "Train #0 [lr=1.0]: accuracy = nan is left out: it is NaN (the highest 'accuracy' of 'Train')" in text
        assert "lr 0.01 acc 0.89" in text  # what the deploy script received
    if name == "skipped_gate_skips_max_join":
        assert "'Quality Gate' has no experiment in this run (skipped)" in text
        assert "Baseline #0: acc = 0.75 passes (the highest 'acc' of every parent)" in text
        assert "/pick_best/0.try1/input/baseline" in text  # CNVRG_TASKS_PASSED_CONDITION: the baseline
