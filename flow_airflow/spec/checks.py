"""Rules that need the whole flow: titles, relations, dialect requirements, references."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

from flow_airflow.common.graph import Graph
from flow_airflow.common.routes import slug
from flow_airflow.spec.errors import FlowIssue
from flow_airflow.spec.ids import id_issues
from flow_airflow.spec.models import ENDPOINT_TITLE, TEMPLATE, DeployTask, ExecTask, Flow, RunnableTask, Task
from flow_airflow.spec.schedule import check_cron, check_timezone, parse_schedule
from flow_airflow.spec.source import Source


def suggest(word: str, choices: Sequence[str] | set[str]) -> str:
    """' (did you mean 'x'?)' for the nearest choice, or ''."""
    near = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean '{near[0]}'?)" if near else ""


def same_name(name: str) -> str:
    """A title as names are compared: letter case and runs of spaces do not count."""
    return " ".join(name.split()).casefold()


class Titles:
    """The task titles of a flow, to find the ones a name in a relation or condition means."""

    def __init__(self, titles: Sequence[str]):
        self.exact = set(titles)
        self.by_name: dict[str, list[str]] = {}
        for title in dict.fromkeys(titles):
            self.by_name.setdefault(same_name(title), []).append(title)

    def matching(self, name: str) -> list[str]:
        """Itself when it is a title, else the titles equal to it ignoring case and spaces."""
        return [name] if name in self.exact else self.by_name.get(same_name(name), [])


def resolve_names(
    flow: Flow, tasks: list[tuple[int, Task]], titles: list[str], source: Source
) -> tuple[Flow, list[tuple[int, Task]], list[FlowIssue]]:
    """Relation ends and conditions' ``task`` with the title they mean (published files write
    ``from: train model`` for ``Train Model``); a name that fits several titles is an error."""
    issues: list[FlowIssue] = []
    index = Titles(titles)

    def resolve(name: str | None, path: tuple) -> str | None:
        if not name or name in index.exact:
            return name
        found = index.matching(name)
        if len(found) > 1:
            issues.append(source.issue(path, f"'{name}' could mean any of the tasks {', '.join(map(repr, found))}: "
                                             "write the title exactly as the task has it"))
        return found[0] if len(found) == 1 else name

    relations = [
        r.model_copy(update={"source": resolve(r.source, ("relations", i, "from")),
                             "target": resolve(r.target, ("relations", i, "to"))})
        for i, r in enumerate(flow.relations or [])
    ]
    resolved: list[tuple[int, Task]] = []
    for i, task in tasks:
        if isinstance(task, RunnableTask) and task.conditions:
            conditions = [c.model_copy(update={"task": resolve(c.task, ("tasks", i, "conditions", j, "task"))})
                          for j, c in enumerate(task.conditions)]
            task = task.model_copy(update={"conditions": conditions})
        resolved.append((i, task))
    update: dict[str, Any] = {"tasks": [t for _, t in resolved]}
    if flow.relations is not None:
        update["relations"] = relations
    return flow.model_copy(update=update), resolved, issues


def check_flow(
    flow: Flow, tasks: list[tuple[int, Task]], titles: list[str], source: Source
) -> tuple[list[FlowIssue], Graph | None]:
    """Every whole-flow mistake, and the task graph when the relations make one.

    ``tasks`` are the tasks that validated, with their index in the file; ``titles`` the
    titles of all tasks, valid or not, so that one broken task hides no other mistake.
    """
    issues: list[FlowIssue] = []
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
    seen: set[str] = set()
    index = Titles(titles)
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
    for i, task in tasks:
        issues += _check_task(flow, task, ("tasks", i), source)
    issues += id_issues(flow, tasks, source)

    edges: list[tuple[str, str]] = []
    for i, relation in enumerate(flow.relations or []):
        ok = True
        for key, name in (("from", relation.source), ("to", relation.target)):
            if name not in seen and len(index.matching(name)) > 1:
                ok = False  # reported by resolve_names
            elif name not in seen:
                issues.append(
                    source.issue(
                        ("relations", i, key), f"relation {key} '{name}': no task has this title{suggest(name, titles)}"
                    )
                )
                ok = False
        if ok and relation.source == relation.target:
            issues.append(source.issue(("relations", i), f"task '{relation.source}' cannot be related to itself"))
            ok = False
        if ok:
            edges.append((relation.source, relation.target))
    graph = Graph(list(dict.fromkeys(titles)), edges)
    if cycle := graph.find_cycle():
        first = next(i for i, r in enumerate(flow.relations or []) if (r.source, r.target) == (cycle[-2], cycle[-1]))
        issues.append(source.issue(("relations", first), "the relations make a cycle: " + " -> ".join(cycle)))
        return issues, None
    for i, task in tasks:
        issues += _check_references(task, graph, ("tasks", i), source, index)
    if not issues:
        issues += _check_single_experiment_references(tasks, graph, source)
    return issues, graph


def _check_task(flow: Flow, task: Task, path: tuple, source: Source) -> list[FlowIssue]:
    issues = []
    name = f"task '{task.title}'"
    output_dir = getattr(task, "output_dir", None)
    if output_dir and (PurePosixPath(output_dir).is_absolute() or ".." in PurePosixPath(output_dir).parts):
        issues.append(
            source.issue(
                (*path, "output_dir"),
                f"{name}: output_dir '{output_dir}' must be a folder "
                "inside the working directory (relative, without '..')",
            )
        )
    if isinstance(task, ExecTask):
        issues += _duplicate_params(task, path, source)
    if isinstance(task, RunnableTask) and not flow.is_blueprint and not task.computes:
        issues.append(
            source.issue(
                path, f"{name} needs 'computes': the compute templates to try (for example 'computes: [local]')"
            )
        )
    if isinstance(task, DeployTask):
        if task.endpoint_title and not ENDPOINT_TITLE.match(task.endpoint_title):
            issues.append(
                source.issue(
                    (*path, "endpoint_title"),
                    f"{name}: endpoint_title '{task.endpoint_title}' may contain only letters, "
                    "digits and hyphens (it becomes part of the endpoint's URL)",
                )
            )
        if task.endpoint_title and task.endpoint_id:
            issues.append(
                source.issue(
                    (*path, "endpoint_id"),
                    f"{name}: use either 'endpoint_title' (a new "
                    "endpoint) or 'endpoint_id' (an existing one), not both",
                )
            )
        if not flow.is_blueprint and not (task.endpoint_title or task.endpoint_id):
            issues.append(
                source.issue(path, f"{name} needs 'endpoint_title' (a new endpoint) or 'endpoint_id' (an existing one)")
            )
        lo, hi = task.min_replica, task.max_replica
        if lo is not None and hi is not None and lo > hi:
            issues.append(
                source.issue((*path, "min_replica"), f"{name}: min_replica ({lo}) is greater than max_replica ({hi})")
            )
        for key in ("min_replica", "max_replica"):
            if not flow.is_blueprint and getattr(task, key) is None:
                issues.append(source.issue(path, f"{name} needs '{key}'"))
    return issues


def _duplicate_params(task: ExecTask, path: tuple, source: Source) -> list[FlowIssue]:
    """A param key given twice in one task: cnvrg would pass one of them; which is a guess, so refuse."""
    issues = []
    first: dict[str, int] = {}
    for j, param in enumerate(task.params):
        if param.key in first:
            line = source.where((*path, "params", first[param.key], "key"))[0]
            issues.append(source.issue((*path, "params", j, "key"),
                                       f"task '{task.title}': param '{param.key}' is given twice, at lines "
                                       f"{line} and {source.where((*path, 'params', j, 'key'))[0]}; keep one"))
        first.setdefault(param.key, j)
    return issues


def _check_references(task: Task, graph: Graph, path: tuple, source: Source, titles: Titles) -> list[FlowIssue]:
    """``{{ Task.tag }}`` and ``| hyper`` must name an upstream task; conditions a direct parent."""
    issues = []
    upstream = graph.ancestors[task.title]
    if isinstance(task, ExecTask):
        for j, param in enumerate(task.params):
            where = (*path, "params", j, "value" if param.values is None else "values")
            values = param.grid()
            for value in values:
                for match in TEMPLATE.finditer(value):
                    name = match["task"]
                    if name in upstream:
                        continue
                    if name in graph.titles:
                        issues.append(
                            source.issue(
                                where,
                                f"param '{param.key}' of '{task.title}' uses a tag of "
                                f"'{name}', which does not run before '{task.title}' "
                                "(add a relation, directly or through other tasks)",
                            )
                        )
                    else:
                        issues.append(
                            source.issue(
                                where,
                                f"param '{param.key}' of '{task.title}' uses a tag of "
                                f"'{name}', but no task before it has that title"
                                f"{suggest(name, upstream)}",
                            )
                        )
                if len(values) > 1 and any(m["hyper"] for m in TEMPLATE.finditer(value)):
                    issues.append(
                        source.issue(where, f"param '{param.key}': a '| hyper' value must be the param's only value")
                    )
    if isinstance(task, RunnableTask):
        parents = graph.parents[task.title]
        for j, condition in enumerate(task.conditions):
            if condition.objective == "human_validation":
                continue
            if condition.task and len(titles.matching(condition.task)) > 1:
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


def _check_single_experiment_references(tasks: list[tuple[int, Task]], graph: Graph, source: Source) -> list[FlowIssue]:
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
    return any(c.objective in ("min", "max") and c.task in (None, parent) for c in getattr(task, "conditions", []))


def _is_hyper(values: list[str]) -> bool:
    return any(m["hyper"] for v in values for m in TEMPLATE.finditer(v))
