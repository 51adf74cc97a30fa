"""Rules that need the whole flow: its name, schedule, task titles and relations.

:func:`check_flow` runs them in the order the file reads, then hands each task to
:mod:`~flow_airflow.spec.task_checks` (its own keys) and, once the relations make a graph, to
:mod:`~flow_airflow.spec.references` (what it says about other tasks).
"""

from __future__ import annotations

from flow_airflow.common.graph import Graph
from flow_airflow.common.routes import slug
from flow_airflow.spec.errors import FlowIssue
from flow_airflow.spec.ids import id_issues
from flow_airflow.spec.models import Flow, Task
from flow_airflow.spec.names import Titles, suggest
from flow_airflow.spec.references import reference_issues, single_experiment_issues
from flow_airflow.spec.schedule import check_cron, check_timezone, parse_schedule
from flow_airflow.spec.source import Source
from flow_airflow.spec.task_checks import task_issues


def check_flow(
    flow: Flow, tasks: list[tuple[int, Task]], titles: list[str], source: Source
) -> tuple[list[FlowIssue], Graph | None]:
    """Every whole-flow mistake, and the task graph when the relations make one.

    ``tasks`` are the tasks that validated, with their index in the file; ``titles`` the
    titles of all tasks, valid or not, so that one broken task hides no other mistake.
    """
    issues = _header_issues(flow, titles, source) + _schedule_issues(flow, source) + _title_issues(titles, source)
    for i, task in tasks:
        issues += task_issues(flow, task, ("tasks", i), source)
    issues += id_issues(flow, tasks, source)
    index = Titles(titles)
    edges, wrong = _relation_edges(flow, index, titles, source)
    issues += wrong
    graph = Graph(list(dict.fromkeys(titles)), edges)
    if cycle := graph.find_cycle():
        first = next(i for i, r in enumerate(flow.relations or []) if (r.source, r.target) == (cycle[-2], cycle[-1]))
        issues.append(source.issue(("relations", first), "the relations make a cycle: " + " -> ".join(cycle)))
        return issues, None
    for i, task in tasks:
        issues += reference_issues(task, graph, ("tasks", i), source, index)
    if not issues:
        issues += single_experiment_issues(tasks, graph, source)
    return issues, graph


def _header_issues(flow: Flow, titles: list[str], source: Source) -> list[FlowIssue]:
    """One name (``flow:`` or ``title:``), at least one task, and ``relations`` outside a blueprint."""
    issues = []
    if flow.flow and flow.title:
        issues.append(
            source.issue(
                ("title",),
                "use either 'flow' (the documented format) or 'title' "
                "(the blueprint format) for the flow's name, not both",
            )
        )
    if not flow.name:
        issues.append(source.issue((), "missing the flow's name: add 'flow: <title>' at the top"))
    if not titles:
        issues.append(source.issue(("tasks",), "the flow has no tasks"))
    if flow.relations is None and not flow.is_blueprint:
        issues.append(source.issue((), "missing required key 'relations' (use 'relations: []' for none)"))
    return issues


def _schedule_issues(flow: Flow, source: Source) -> list[FlowIssue]:
    """``schedule``, ``recurring`` and ``timezone`` parse, and at most one of the first two is given."""
    issues = []
    for key, check in (("schedule", parse_schedule), ("recurring", check_cron), ("timezone", check_timezone)):
        if (value := getattr(flow, key)) is not None:
            try:
                check(value)
            except ValueError as e:
                issues.append(source.issue((key,), str(e)))
    if flow.schedule and flow.recurring:
        issues.append(
            source.issue(
                ("recurring",),
                "'schedule' (run once at a time) and 'recurring' (run on a "
                "cron schedule) cannot be used together; keep one",
            )
        )
    return issues


def _title_issues(titles: list[str], source: Source) -> list[FlowIssue]:
    """Every task has its own title, with letters or digits, and its own artifacts folder."""
    issues = []
    seen: set[str] = set()
    folders: dict[str, str] = {}
    for i, title in enumerate(titles):
        folder = slug(title)
        if title in seen:
            issues.append(
                source.issue(("tasks", i, "title"), f"duplicate task title '{title}': every task needs its own title")
            )
        elif not folder:
            issues.append(source.issue(("tasks", i, "title"), f"task title '{title}' has no letters or digits"))
        elif folder in folders:
            issues.append(
                source.issue(
                    ("tasks", i, "title"),
                    f"tasks '{folders[folder]}' and '{title}' would share "
                    f"the artifacts folder input/{folder}; rename one",
                )
            )
        seen.add(title)
        folders.setdefault(folder, title)
    return issues


def _relation_edges(
    flow: Flow, index: Titles, titles: list[str], source: Source
) -> tuple[list[tuple[str, str]], list[FlowIssue]]:
    """The graph's edges: each relation whose two ends are distinct task titles; and the issues
    of the others (an ambiguous end is left to :func:`~flow_airflow.spec.names.resolve_names`)."""
    edges: list[tuple[str, str]] = []
    issues: list[FlowIssue] = []
    for i, relation in enumerate(flow.relations or []):
        ok = True
        for key, name in (("from", relation.source), ("to", relation.target)):
            if name in index.exact:
                continue
            ok = False
            if not index.is_ambiguous(name):
                issues.append(
                    source.issue(
                        ("relations", i, key), f"relation {key} '{name}': no task has this title{suggest(name, titles)}"
                    )
                )
        if ok and relation.source == relation.target:
            issues.append(source.issue(("relations", i), f"task '{relation.source}' cannot be related to itself"))
        elif ok:
            edges.append((relation.source, relation.target))
    return edges, issues
