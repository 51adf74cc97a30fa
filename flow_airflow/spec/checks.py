"""Rules that need the whole flow: titles, relations, dialect requirements, references."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import PurePosixPath

from flow_airflow.plan.graph import Graph
from flow_airflow.plan.ids import id_issues
from flow_airflow.plan.routes import slug
from flow_airflow.spec.errors import FlowIssue
from flow_airflow.spec.models import ENDPOINT_TITLE, TEMPLATE, DeployTask, ExecTask, Flow, RunnableTask, Task
from flow_airflow.spec.schedule import check_cron, check_timezone, parse_schedule
from flow_airflow.spec.source import Source


def suggest(word: str, choices: Sequence[str] | set[str]) -> str:
    """' (did you mean 'x'?)' for the nearest choice, or ''."""
    near = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean '{near[0]}'?)" if near else ""


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
            if name not in seen:
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
        issues += _check_references(task, graph, ("tasks", i), source)
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


def _check_references(task: Task, graph: Graph, path: tuple, source: Source) -> list[FlowIssue]:
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
