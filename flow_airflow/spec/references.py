"""Rules on what one task says about others: ``{{ Task.tag }}``, ``| hyper`` and conditions' ``task``.

Run once the relations make a graph (cnvrg-flows.md: a tag comes "from a previous experiment";
a condition tests a direct parent).
"""

from __future__ import annotations

import re

from flow_airflow.common.conditions import OBJECTIVES
from flow_airflow.common.graph import Graph
from flow_airflow.spec.errors import FlowIssue
from flow_airflow.spec.models import TEMPLATE, ExecTask, Param, RunnableTask, Task
from flow_airflow.spec.names import Titles, suggest
from flow_airflow.spec.source import Source


def reference_issues(task: Task, graph: Graph, path: tuple, source: Source, titles: Titles) -> list[FlowIssue]:
    """``{{ Task.tag }}`` and ``| hyper`` must name an upstream task; conditions a direct parent."""
    issues: list[FlowIssue] = []
    if isinstance(task, ExecTask):
        for j, param in enumerate(task.params):
            where = (*path, "params", j, "value" if param.values is None else "values")
            issues += _param_issues(task, param, graph, where, source)
    if isinstance(task, RunnableTask):
        issues += _condition_issues(task, graph, path, source, titles)
    return issues


def _param_issues(task: ExecTask, param: Param, graph: Graph, where: tuple, source: Source) -> list[FlowIssue]:
    """Each tag reference of one param names a task that runs before; ``| hyper`` stands alone."""
    issues = []
    values = param.grid()
    for value in values:
        if problem := _not_understood(value):
            issues.append(source.issue(where, f"param '{param.key}' of '{task.title}': {problem}"))
        for match in TEMPLATE.finditer(value):
            if problem := _tag_problem(task, param, match["task"], graph):
                issues.append(source.issue(where, problem))
        if len(values) > 1 and any(m["hyper"] for m in TEMPLATE.finditer(value)):
            issues.append(
                source.issue(where, f"param '{param.key}': a '| hyper' value must be the param's only value")
            )
    return issues


OPENING = re.compile(r"\{\s*\{")  # what opens a reference: '{{', or spaced '{ {' as cnvrg's documentation writes it


def _not_understood(value: str) -> str | None:
    """Why a '{{' (or '{ {') in a param value is no tag reference, or None: such text is never passed
    on as it is (an unclosed '{{ Task.tag', '{{ ds }}')."""
    rest = TEMPLATE.sub("", value)
    found = OPENING.search(rest)
    if found is None:
        return None
    shown = rest[found.start():found.start() + 40]
    return f"'{shown}' is not understood: a tag reference is '{{{{ Task.tag }}}}' or '{{{{ Task.tag | hyper }}}}' " \
           "(a task that runs before, and one of its tags)"


def _tag_problem(task: ExecTask, param: Param, name: str, graph: Graph) -> str | None:
    """Why ``param`` of ``task`` cannot use a tag of the task titled ``name``, or None."""
    upstream = graph.ancestors[task.title]
    if name in upstream:
        return None
    if name in graph.titles:
        return (
            f"param '{param.key}' of '{task.title}' uses a tag of "
            f"'{name}', which does not run before '{task.title}' "
            "(add a relation, directly or through other tasks)"
        )
    return (
        f"param '{param.key}' of '{task.title}' uses a tag of "
        f"'{name}', but no task before it has that title"
        f"{suggest(name, upstream)}"
    )


def _condition_issues(
    task: RunnableTask, graph: Graph, path: tuple, source: Source, titles: Titles
) -> list[FlowIssue]:
    """A metric condition tests a direct parent (the named one, or every parent when unnamed)."""
    issues = []
    parents = graph.parents[task.title]
    for j, condition in enumerate(task.conditions):
        if condition.objective == "human_validation":
            continue
        if condition.task and titles.is_ambiguous(condition.task):
            continue  # reported by resolve_names
        if condition.task and condition.task not in parents:
            issues.append(
                source.issue(
                    (*path, "conditions", j, "task"),
                    f"the condition of '{task.title}' tests '{condition.task}', which is not "
                    f"a direct parent of it{suggest(condition.task, parents)}",
                )
            )
        elif not parents:
            issues.append(
                source.issue((*path, "conditions", j), f"'{task.title}' has a condition but no parent task to test")
            )
    return issues


def single_experiment_issues(tasks: list[tuple[int, Task]], graph: Graph, source: Source) -> list[FlowIssue]:
    """``{{ Task.tag }}`` needs one experiment of Task on each route (cnvrg: "a tag from a previous
    experiment"). A task whose condition gathers several experiments of Task has several, and
    a reference to it would have no single value; refuse it here rather than fail at run time."""
    by_title = {task.title: task for _, task in tasks}
    references = [
        (i, task, j, param, match)
        for i, task in tasks
        if isinstance(task, ExecTask) and not task.single_mode
        for j, param in enumerate(task.params)
        for match in (m for value in param.grid() for m in TEMPLATE.finditer(value))
    ]
    gathering = any(_gathered(t, graph.parents[t.title]) for t in by_title.values() if t.title in graph.parents)
    if not references or set(by_title) != set(graph.titles) or not gathering:
        return []  # nothing to check, or a task that did not validate (its mistakes are reported)
    known, many = _experiments_on_a_route(by_title, graph, {m["task"] for *_, m in references})
    issues = []
    for i, task, j, param, match in references:
        where = ("tasks", i, "params", j, "value" if param.values is None else "values")
        name = match["task"]
        if name in many[task.title]:
            issues.append(source.issue(where, (
                f"param '{param.key}' of '{task.title}' uses '{match[0]}', but the condition of "
                f"'{task.title}' gathers every experiment of '{name}' that passes it, and there can be "
                f"several: the tag has no single value. Use a 'max' or 'min' condition to pick one "
                f"experiment, or read the tags of those that passed in the script")))
        elif name in graph.ancestors[task.title] and name not in known[task.title]:
            issues.append(source.issue(where, (
                f"param '{param.key}' of '{task.title}' uses '{match[0]}', but no single experiment of "
                f"'{name}' is on the routes of '{task.title}': a condition on the way gathers several "
                f"of them (or a single_mode task does not follow them)")))
    return issues


def _experiments_on_a_route(
    by_title: dict[str, Task], graph: Graph, referenced: set[str]
) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """For each task, which of the ``referenced`` tasks each of its routes holds exactly one
    experiment of, and which it may hold several of (gathered by a condition), as
    :func:`flow_airflow.common.routes.upstream_of` will find them at run time."""
    several: dict[str, bool] = {}  # may the task run more than one experiment?
    known: dict[str, set[str]] = {}
    many: dict[str, set[str]] = {}
    for title in graph.order:
        task = by_title[title]
        single_mode = isinstance(task, ExecTask) and task.single_mode
        gathered = _gathered(task, graph.parents[title])
        mine: set[str] = set()
        more: set[str] = set()
        for parent in [] if single_mode else graph.parents[title]:
            reach = ({parent} & referenced) | known[parent]
            if parent in gathered and several[parent] and not _picks_one(task, parent):
                more |= {t for t in reach if several[t]}
                mine |= {t for t in reach if not several[t]}
            else:
                mine |= reach
        known[title], many[title] = mine - more, more
        own = isinstance(task, ExecTask) and any(len(p.grid()) > 1 or _is_hyper(p.grid()) for p in task.params)
        several[title] = own or any(several[p] for p in graph.parents[title] if p not in gathered and not single_mode)
    return known, many


def _gathered(task: Task, parents: list[str]) -> set[str]:
    """The parents whose passing experiments a task's metric conditions gather (all, for a blank task:)."""
    tests = [c for c in getattr(task, "conditions", []) if c.objective != "human_validation"]
    if not tests:
        return set()
    return {c.task for c in tests if c.task} or set(parents)


def _picks_one(task: Task, parent: str) -> bool:
    """Whether a min or max condition on ``parent`` lets at most one of its experiments through."""
    return any(c.objective in OBJECTIVES and OBJECTIVES[c.objective].picks_one and c.task in (None, parent)
               for c in getattr(task, "conditions", []))


def _is_hyper(values: list[str]) -> bool:
    return any(m["hyper"] for v in values for m in TEMPLATE.finditer(v))
