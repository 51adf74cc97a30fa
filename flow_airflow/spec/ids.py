"""The names of a flow that Airflow would refuse (``common.ids`` says how ids are made)."""

from __future__ import annotations

import unicodedata

from flow_airflow.common.ids import (
    DAG_ID_LIMIT,
    DISPLAY_NAME_LIMIT,
    GROUP_ID_LIMIT,
    LONGEST_DISPLAY_SUFFIX,
    TAG_LIMIT,
    dag_id_for,
    task_slug,
)
from flow_airflow.spec.errors import FlowIssue
from flow_airflow.spec.models import Flow, Task
from flow_airflow.spec.source import Source


def _control(text: str) -> str | None:
    """The first control character of ``text`` (what databases refuse in names), as ``\\x..``."""
    for ch in text:
        if unicodedata.category(ch) == "Cc":
            return ch.encode("unicode_escape").decode()
    return None


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:39] + "…"


def id_issues(flow: Flow, tasks: list[tuple[int, Task]], source: Source) -> list[FlowIssue]:
    """Every name of the flow that Airflow would refuse, at its place in the file: the flow
    title (DAG id and display name), each task title (TaskGroup id and display name), the tags."""
    issues = _flow_title_issues(flow, source)
    for i, task in tasks:
        issues += _task_title_issues(task.title, ("tasks", i, "title"), source)
    return issues + _tag_issues(flow, source)


def _flow_title_issues(flow: Flow, source: Source) -> list[FlowIssue]:
    """The flow title gives a DAG id and a display name within Airflow's limits, without control characters."""
    name = flow.name
    if not name:
        return []
    issues = []
    where = ("flow",) if flow.flow is not None else ("title",)
    dag_id = dag_id_for(name)
    if len(dag_id) > DAG_ID_LIMIT:
        issues.append(source.issue(where, f"the flow title gives the DAG id '{_short(dag_id)}' of {len(dag_id)} "
                                          f"characters; Airflow allows at most {DAG_ID_LIMIT}: shorten the title"))
    if len(name) > DISPLAY_NAME_LIMIT:
        issues.append(source.issue(where, f"the flow title has {len(name)} characters; Airflow shows at most "
                                          f"{DISPLAY_NAME_LIMIT}"))
    if bad := _control(name):
        issues.append(source.issue(where, f"the flow title contains the control character '{bad}'"))
    return issues


def _task_title_issues(title: str, path: tuple, source: Source) -> list[FlowIssue]:
    """A task title gives a TaskGroup id and display names within Airflow's limits, without control characters."""
    issues = []
    group = task_slug(title)
    if len(group) > GROUP_ID_LIMIT:
        issues.append(source.issue(path, f"task '{_short(title)}': its title gives the Airflow TaskGroup id "
                                         f"'{_short(group)}' of {len(group)} characters; Airflow allows at most "
                                         f"{GROUP_ID_LIMIT}: shorten the title"))
    if len(title) + LONGEST_DISPLAY_SUFFIX > DISPLAY_NAME_LIMIT:
        issues.append(source.issue(path, f"task '{_short(title)}': the title has {len(title)} characters; "
                                         f"Airflow shows at most {DISPLAY_NAME_LIMIT - LONGEST_DISPLAY_SUFFIX}"))
    if bad := _control(title):
        issues.append(source.issue(path, f"task '{_short(title)}': the title contains the control "
                                         f"character '{bad}'"))
    return issues


def _tag_issues(flow: Flow, source: Source) -> list[FlowIssue]:
    """``version:<version>`` and each of ``tags`` fit Airflow's DAG tag column."""
    issues = []
    version = [f"version:{flow.version}"] if flow.version else []
    for j, tag in enumerate([*version, *flow.tags]):
        if len(tag) > TAG_LIMIT:
            at = ("version",) if version and j == 0 else ("tags", j - len(version))
            what = "'version:' and the version" if at == ("version",) else f"the DAG tag '{_short(tag)}'"
            issues.append(source.issue(at, f"{what}: {len(tag)} characters; Airflow allows at most {TAG_LIMIT}"))
    return issues
