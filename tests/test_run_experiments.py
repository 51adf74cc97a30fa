"""The read model of experiment records (``flow_airflow.run_experiments``): labels and batches from a task
instance's row (fast tier), and a real run read back both ways (``airflow``)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from flow_airflow import run_experiments

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ti(map_index: int, rendered: str | None = None, state: str = "success", ended: bool = True) -> Any:
    """The columns of a task instance row that the read model uses."""
    return SimpleNamespace(task_id="train.run", map_index=map_index, state=state, rendered_map_index=rendered,
                           start_date=T0, end_date=T0.replace(second=3) if ended else None)


def test_one_experiment_per_task_instance_with_its_record() -> None:
    record = {"task": "Train", "index": 1, "label": "lr=0.2", "params": {"lr": "0.2"}, "tags": {"acc": "0.9"}}
    [e] = run_experiments._experiments(ti(1, "lr=0.2"), "Train", record)
    assert (e.task, e.task_id, e.map_index, e.index, e.label, e.state) == ("Train", "train.run", 1, 1, "lr=0.2",
                                                                            "success")
    assert (e.params, e.tags, e.record, e.duration) == ({"lr": "0.2"}, {"acc": "0.9"}, record, 3.0)


def test_a_batch_is_an_experiment_per_route() -> None:
    batch = [{"index": 2, "label": "x=2", "params": {"x": "2"}, "tags": {}},
             {"index": 3, "label": "", "params": {}, "tags": {"t": "1"}}]
    found = run_experiments._experiments(ti(1, "2 routes"), "Train", batch)
    assert [(e.map_index, e.index, e.label, e.params, e.tags) for e in found] == [
        (1, 2, "x=2", {"x": "2"}, {}), (1, 3, "no params", {}, {"t": "1"})]
    assert [e.record for e in found] == batch


@pytest.mark.parametrize(("row", "label"), [
    (ti(0, "0"), "no params"),  # ran, left a record: Airflow's made-up label is its number
    (ti(2, None, state="upstream_failed", ended=False), "route 2, not run"),
    (ti(-1, None, state="upstream_failed", ended=False), "routes never planned"),
])
def test_labels_airflow_made_up_say_what_happened(row: Any, label: str) -> None:
    value = {"index": 0, "params": {}, "tags": {}} if row.state == "success" else None
    [e] = run_experiments._experiments(row, "Train", value)
    assert e.label == label and e.index == max(row.map_index, 0)
    assert e.record == value and (e.duration is None) == (row.end_date is None)


@pytest.mark.airflow
def test_a_run_read_back_as_the_cli_reads_it_and_without_titles(run: Any) -> None:
    from airflow.utils.session import create_session

    result = run("dynamic_routes")
    with create_session() as session:
        every = run_experiments.of_run(session, result.dag_id, result.run_id)
        missing = run_experiments.of_run(session, result.dag_id, "no such run")
    assert [(e.task, e.index, e.label, e.state, e.tags) for e in result.experiments] == [
        ("Params", 0, "no params", "success", {"route": "1,2,3"}),
        ("Dynamic", 0, "route=1", "success", {"args": "--route 1"}),
        ("Dynamic", 1, "route=2", "success", {"args": "--route 2"}),
        ("Dynamic", 2, "route=3", "success", {"args": "--route 3"}),
    ]
    # without titles: every "*.run" task, titled as its records say, in task id order
    assert [e.task_id for e in every] == ["dynamic.run"] * 3 + ["params.run"]
    assert sorted(every, key=lambda e: e.task_id != "params.run") == result.experiments
    assert all(e.duration is not None and e.duration >= 0 and e.record for e in every)
    assert missing == []


def test_an_experiment_that_left_a_record_of_success_is_shown_as_it_ended() -> None:
    """A failed task instance with a record of success was failed afterwards (Airflow's "mark run as failed"
    fails a whole mapped task; the rest of a batch failed): the experiment is ``success``."""
    ok = {"index": 0, "label": "x=1", "params": {}, "tags": {}}
    broken = {**ok, "index": 1, "failed": "failed: exit code 1"}
    assert run_experiments._experiments(ti(0, state="failed"), "Train", ok)[0].state == "success"
    assert run_experiments._experiments(ti(0, state="failed"), "Train", broken)[0].state == "failed"
    assert run_experiments._experiments(ti(0, state="failed"), "Train", None)[0].state == "failed"
    assert [e.state for e in run_experiments._experiments(ti(0, state="failed"), "Train", [ok, broken])] == [
        "success", "failed"]
