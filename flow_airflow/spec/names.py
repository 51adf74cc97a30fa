"""How a name written in a flow finds the task it means: exact titles, then case and spaces ignored."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from flow_airflow.spec.errors import FlowIssue
from flow_airflow.spec.models import Flow, RunnableTask, Task
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

    def is_ambiguous(self, name: str) -> bool:
        """Whether ``name`` is no title but fits several (:func:`resolve_names` reports it)."""
        return len(self.matching(name)) > 1


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
