"""Conditions over experiment records: which experiments continue, and the log that says why."""

from __future__ import annotations

from flow_airflow.plan.conditions import MetricCondition, evaluate
from flow_airflow.plan.routes import Record, plan_routes


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
