"""Conditions over experiment records: which experiments continue, and the log that says why."""

from __future__ import annotations

from pathlib import Path

from flow_airflow.common.conditions import MetricCondition, evaluate
from flow_airflow.common.records import Record
from flow_airflow.common.routes import plan_routes


def train(*accuracies: str | None, task: str = "Train") -> list[Record]:
    return [
        Record(
            task=task,
            index=i,
            params={},
            tags={} if a is None else {"accuracy": a},
            route={task: i},
            upstream={},
            label=f"#{i}",
        )
        for i, a in enumerate(accuracies)
    ]


def passed(tests: list[MetricCondition], parents: dict[str, list[Record]]) -> dict[str, list[int]]:
    passing, _ = evaluate(tests, parents)
    return {title: [r["index"] for r in records] for title, records in passing.items()}


def test_max_and_min_pick_one() -> None:
    parents = {"Train": train("0.70", "0.95", "0.85")}
    assert passed([MetricCondition("max", "accuracy", task="Train")], parents) == {"Train": [1]}
    assert passed([MetricCondition("min", "accuracy", task="Train")], parents) == {"Train": [0]}


def test_gt_lt_eq_compare_numbers_or_text() -> None:
    parents = {"Train": train("0.70", "0.95", "0.85", "high")}
    assert passed([MetricCondition("gt", "accuracy", "0.8", "Train")], parents) == {"Train": [1, 2]}
    assert passed([MetricCondition("lt", "accuracy", "0.8", "Train")], parents) == {"Train": [0]}
    assert passed([MetricCondition("eq", "accuracy", "0.950", "Train")], parents) == {"Train": [1]}
    assert passed([MetricCondition("eq", "accuracy", "high", "Train")], parents) == {"Train": [3]}


def test_several_conditions_must_all_hold() -> None:
    parents = {"Train": train("0.70", "0.95", "0.85")}
    tests = [MetricCondition("gt", "accuracy", "0.75", "Train"), MetricCondition("lt", "accuracy", "0.9", "Train")]
    assert passed(tests, parents) == {"Train": [2]}


def test_blank_task_tests_every_parent_together() -> None:
    parents = {"LR": train("0.5", "0.7", task="LR"), "RF": train("0.6", "0.9", "0.8", task="RF")}
    assert passed([MetricCondition("max", "accuracy")], parents) == {"LR": [], "RF": [1]}


def test_missing_tag_does_not_pass_and_is_logged() -> None:
    parents = {"Train": train(None, "0.4")}
    passing, report = evaluate([MetricCondition("gt", "accuracy", "0.5", "Train")], parents)
    assert passing == {"Train": []}
    assert "Train #0 [#0]: no tag 'accuracy' was logged, so it does not pass" in report
    assert "Train #1 [#1]: accuracy = 0.4 does not pass ('accuracy' > 0.5 on 'Train')" in report


def test_gathered_parent_comes_as_one_group_times_untested_parents() -> None:
    tested = train("0.9", "0.95")
    other = train("a", "b", "c", task="Other")
    routes = plan_routes([("k", ["1", "2"])], {"Train": tested, "Other": other}, gathered=["Train"])
    assert len(routes) == 3 * 2
    assert all(r["parents"]["Train"] == [0, 1] for r in routes)


def test_nan_infinities_and_text_never_pass_gt_or_lt_and_the_report_says_why() -> None:
    parents = {"Train": train("nan", "0.95", "inf", "-inf", "high", "NaN")}
    passing, report = evaluate([MetricCondition("gt", "accuracy", "0.5", "Train")], parents)
    assert [r["index"] for r in passing["Train"]] == [1]
    assert passed([MetricCondition("lt", "accuracy", "2", "Train")], parents) == {"Train": [1]}
    assert "Train #0 [#0]: accuracy = nan does not pass: it is NaN ('accuracy' > 0.5 on 'Train')" in report
    assert "Train #2 [#2]: accuracy = inf does not pass: it is infinite ('accuracy' > 0.5 on 'Train')" in report
    assert "Train #4 [#4]: accuracy = high does not pass: it is not a number ('accuracy' > 0.5 on 'Train')" in report


def test_nan_infinities_and_text_never_win_max_or_min() -> None:
    parents = {"Train": train("nan", "0.8", "inf", "0.89", "-inf", "best")}
    passing, report = evaluate([MetricCondition("max", "accuracy", task="Train")], parents)
    assert [r["index"] for r in passing["Train"]] == [3]
    assert passed([MetricCondition("min", "accuracy", task="Train")], parents) == {"Train": [1]}
    assert "Train #0 [#0]: accuracy = nan is left out: it is NaN (the highest 'accuracy' of 'Train')" in report
    assert "Train #2 [#2]: accuracy = inf is left out: it is infinite (the highest 'accuracy' of 'Train')" in report
    assert ("Train #5 [#5]: accuracy = best is left out: it is not a number (the highest 'accuracy' of 'Train')"
            in report)
    assert "Train #3 [#3]: accuracy = 0.89 passes (the highest 'accuracy' of 'Train')" in report
    nothing, _ = evaluate([MetricCondition("max", "accuracy", task="Train")], {"Train": train("nan", "text")})
    assert nothing == {"Train": []}


def test_a_tie_goes_to_the_first_experiment_in_order_every_time() -> None:
    parents = {"LR": train("0.9", "0.7", task="LR"), "RF": train("0.9", "0.95", "0.95", task="RF")}
    for _ in range(3):
        passing, report = evaluate([MetricCondition("max", "accuracy")], parents)
        assert {t: [r["index"] for r in rs] for t, rs in passing.items()} == {"LR": [], "RF": [1]}
    assert ("tie: RF #1 [#1], RF #2 [#2] share the max 'accuracy'; the first in experiment order passes (RF #1 [#1])"
            in report)
    # parents in the order of the task's relations, then by index: LR #0 before RF #0
    assert passed([MetricCondition("min", "accuracy")], {"LR": train("0.5", task="LR"), "RF": train("0.50", task="RF")}
                  ) == {"LR": [0], "RF": []}


def test_eq_compares_numbers_as_numbers_booleans_as_booleans_and_text_as_written() -> None:
    parents = {"Train": train("1", "1.0", "True", "False", "true", " yes ", "1e0", "nan")}
    assert passed([MetricCondition("eq", "accuracy", "1", "Train")], parents) == {"Train": [0, 1, 6]}
    assert passed([MetricCondition("eq", "accuracy", "1.00", "Train")], parents) == {"Train": [0, 1, 6]}
    assert passed([MetricCondition("eq", "accuracy", "True", "Train")], parents) == {"Train": [2, 4]}
    assert passed([MetricCondition("eq", "accuracy", True, "Train")], parents) == {"Train": [2, 4]}  # a YAML boolean
    assert passed([MetricCondition("eq", "accuracy", "true", "Train")], parents) == {"Train": [2, 4]}
    assert passed([MetricCondition("eq", "accuracy", 1.0, "Train")], parents) == {"Train": [0, 1, 6]}  # a YAML number
    assert passed([MetricCondition("eq", "accuracy", "yes", "Train")], parents) == {"Train": [5]}
    assert passed([MetricCondition("eq", "accuracy", "Yes", "Train")], parents) == {"Train": []}
    assert passed([MetricCondition("eq", "accuracy", "nan", "Train")], parents) == {"Train": []}
    assert MetricCondition("eq", "accuracy", "0.90", "Train").describe() == "'accuracy' = 0.90 on 'Train'"


def test_failed_experiments_are_left_out_of_every_condition() -> None:
    parents = {"Train": train("0.7", "0.99", "0.8")}
    parents["Train"][1]["failed"] = "failed: 'Train' failed: its command exited with code 1"
    passing, report = evaluate([MetricCondition("max", "accuracy", task="Train")], parents)
    assert [r["index"] for r in passing["Train"]] == [2]
    assert report[0] == ("Train #1 [#1]: left out, it did not succeed "
                         "(failed: 'Train' failed: its command exited with code 1)")
    assert passed([MetricCondition("gt", "accuracy", "0.5", "Train")], parents) == {"Train": [0, 2]}


def test_one_table_of_objectives_is_what_the_spec_and_the_condition_task_read(tmp_path: Path) -> None:
    """issue 24: an objective is one entry of ``OBJECTIVES``; the spec accepts exactly those (and
    human_validation), asks a target of those that take one, and the condition task picks as it says."""
    from flow_airflow.common.conditions import OBJECTIVES
    from flow_airflow.spec.errors import FlowError
    from flow_airflow.spec.load import load_flow
    from flow_airflow.spec.models import METRIC_OBJECTIVES

    assert METRIC_OBJECTIVES == tuple(OBJECTIVES) == ("gt", "lt", "eq", "min", "max")
    parents = {"Train": train("0.70", "0.95", "0.85")}
    picked = {name: passed([MetricCondition(name, "accuracy", "0.8" if o.target else None)], parents)["Train"]
              for name, o in OBJECTIVES.items()}
    assert picked == {"gt": [1, 2], "lt": [0], "eq": [], "min": [0], "max": [1]}
    for name, objective in OBJECTIVES.items():
        flow = tmp_path / f"{name}.yaml"
        condition = f"{{task: A, objective: {name}, tag_key: accuracy}}"
        flow.write_text(f"flow: F\ntasks:\n  - {{title: A, type: exec, input: 'true', computes: [local]}}\n"
                        f"  - {{title: B, type: exec, input: 'true', computes: [local], conditions: [{condition}]}}\n"
                        "relations: [{from: A, to: B}]\n")
        if objective.target is None:
            load_flow(flow)
            continue
        try:
            load_flow(flow)
        except FlowError as e:
            assert f"'{name}' condition needs" in str(e)
        else:
            raise AssertionError(f"a '{name}' condition without its target was accepted")
