"""The experiment records of other tasks of the run, pulled from XCom by a running task (the tasks before
it, or all of them for ``flow-outcome``); the metadata DB's view of a whole run is ``flow_airflow.run_experiments``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flow_airflow.common.records import Record, flatten


def pull_records(ti: Any, task_ids: Mapping[str, str]) -> dict[str, list[Record]]:
    """Every experiment record of each task (title -> run task id), in experiment order."""
    result: dict[str, list[Record]] = {}
    for title, task_id in task_ids.items():
        result[title] = sorted(flatten(ti.xcom_pull(task_ids=task_id)), key=lambda r: r["index"])
    return result


def parent_states(ti: Any, task_ids: Mapping[str, str]) -> dict[str, str]:
    """What happened to each task (title -> run task id) in this run, for a log line: ``skipped``,
    ``2 failed, 1 success``; ``not run`` when it has no finished task instance."""
    from collections import Counter

    counts: dict[str, Counter[str]] = {t: Counter() for t in task_ids.values()}
    try:
        for crumb in ti.get_task_breadcrumbs(ti.dag_id, ti.run_id):
            if crumb.get("task_id") in counts:
                counts[crumb["task_id"]][str(crumb.get("state"))] += 1
    except Exception:  # only a log line depends on it
        pass
    return {title: _states(counts[t]) for title, t in task_ids.items()}


def _states(counts: Any) -> str:
    if sum(counts.values()) == 1:
        return next(iter(counts))
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "not run"


def pull_chosen(
    ti: Any, task_ids: Mapping[str, str], chosen: Mapping[str, list[int]], batch: int = 1
) -> dict[str, list[Record]]:
    """The records of the parent experiments a route names (``batch`` routes per task instance).

    A parent whose routes the run changed (its params from the run's conf) may hold them at other
    task instances: then every record of it is read.
    """
    result: dict[str, list[Record]] = {}
    for title, indexes in chosen.items():
        map_indexes = sorted({i // batch for i in indexes})
        found = {r["index"]: r for r in flatten(ti.xcom_pull(task_ids=task_ids[title], map_indexes=map_indexes))}
        if any(i not in found for i in indexes):
            found = {r["index"]: r for r in flatten(ti.xcom_pull(task_ids=task_ids[title]))}
        missing = [i for i in indexes if i not in found]
        if missing:
            raise LookupError(f"no result of '{title}' experiment(s) {missing} was found in this run")
        result[title] = [found[i] for i in indexes]
    return result

