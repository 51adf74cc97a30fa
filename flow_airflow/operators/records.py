"""Reading experiment records of upstream tasks from XCom."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flow_airflow.plan.routes import Record


def pull_records(ti: Any, task_ids: Mapping[str, str]) -> dict[str, list[Record]]:
    """Every experiment record of each task (title -> run task id), in experiment order."""
    result: dict[str, list[Record]] = {}
    for title, task_id in task_ids.items():
        values = ti.xcom_pull(task_ids=task_id)
        values = [values] if isinstance(values, dict) else list(values or [])
        result[title] = sorted((v for v in values if isinstance(v, dict)), key=lambda r: r["index"])
    return result


def pull_chosen(ti: Any, task_ids: Mapping[str, str], chosen: Mapping[str, list[int]]) -> dict[str, list[Record]]:
    """The records of the parent experiments a route names."""
    result: dict[str, list[Record]] = {}
    for title, indexes in chosen.items():
        values = ti.xcom_pull(task_ids=task_ids[title], map_indexes=list(indexes))
        missing = [i for i, v in zip(indexes, values, strict=True) if not isinstance(v, dict)]
        if missing:
            raise RuntimeError(f"no result of '{title}' experiment(s) {missing} was found in this run")
        result[title] = values
    return result
