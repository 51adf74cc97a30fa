"""Load a flow file: YAML with positions -> validated :class:`Flow` -> checked task graph."""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from flow_airflow.plan.graph import Graph
from flow_airflow.spec import models
from flow_airflow.spec.checks import check_flow, suggest
from flow_airflow.spec.errors import FlowError, FlowIssue
from flow_airflow.spec.source import Path_, Source, read_source, read_text

FLOW_MARKER = re.compile(r"^tasks\s*:", re.MULTILINE)
_TASK: TypeAdapter[models.Task] = TypeAdapter(models.Task)


@dataclass(frozen=True)
class LoadedFlow:
    """A valid flow with where it came from."""

    spec: models.Flow
    file: Path
    graph: Graph
    digest: str  # sha256 of the file's text: the flow's version
    text: str

    @property
    def project_dir(self) -> Path:
        """The folder of the YAML file: what every experiment's working directory starts from."""
        return self.file.parent

    def task(self, title: str) -> models.ExecTask | models.DataTask | models.DeployTask:
        return self._by_title[title]

    @functools.cached_property
    def _by_title(self) -> dict[str, models.ExecTask | models.DataTask | models.DeployTask]:
        return {t.title: t for t in self.spec.tasks}


def looks_like_flow(text: str) -> bool:
    """Whether a YAML text is a flow file (a top-level ``tasks`` key), even when it is broken."""
    return bool(FLOW_MARKER.search(text))


def load_flow(file: str | Path, text: str | None = None) -> LoadedFlow:
    """Load and check one flow file; raise :class:`FlowError` with every mistake in it."""
    path = Path(file)
    if text is None:
        text = read_text(path)  # UTF-8, or UTF-16/32 with a byte order mark; size-limited
    source = read_source(path, text)
    if not isinstance(source.data, dict):
        raise FlowError.single(
            path, "a flow file must be a mapping with 'flow' (or 'title'), 'tasks' and 'relations'", 1, 1
        )
    issues: list[FlowIssue] = []
    tasks: list[tuple[int, models.Task]] = []
    titles: list[str] = []
    raw_tasks = source.data.get("tasks")
    for i, raw in enumerate(raw_tasks if isinstance(raw_tasks, list) else []):
        if isinstance(raw, dict) and isinstance(raw.get("title"), str | int | float) and str(raw["title"]).strip():
            titles.append(str(raw["title"]).strip())
        try:
            tasks.append((i, _TASK.validate_python(raw)))
        except ValidationError as e:
            issues += translate(e, source, prefix=("tasks", i))
    top = {**source.data, "tasks": []} if isinstance(raw_tasks, list) else source.data
    try:
        flow = models.Flow.model_validate(top).model_copy(update={"tasks": [t for _, t in tasks]})
    except ValidationError as e:
        raise FlowError(issues + translate(e, source)) from None
    more, graph = check_flow(flow, tasks, titles, source)
    issues += more
    if issues or graph is None:
        raise FlowError(issues)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return LoadedFlow(flow, path.resolve(), graph, digest, text)


# Known keys by place in the file, for "did you mean" suggestions.
def _keys(*classes: type[BaseModel]) -> set[str]:
    return {f.alias or name for c in classes for name, f in c.model_fields.items()}


_TASK_MODELS = {"exec": models.ExecTask, "data": models.DataTask, "deploy": models.DeployTask}
_VOCABULARY: dict[tuple[str, ...], set[str]] = {
    (): _keys(models.Flow),
    ("tasks", "*", "params", "*"): _keys(models.Param),
    ("tasks", "*", "conditions", "*"): _keys(models.Condition),
    ("tasks", "*", "requirements"): _keys(models.Resources),
    ("relations", "*"): {"from", "to"},
}


def _unknown_key(path: Path_, source: Source) -> str:
    """'unknown key ...' with the nearest known key, or the task type the key belongs to."""
    key = str(path[-1])
    pattern = tuple("*" if isinstance(p, int) else p for p in path[:-1])
    if pattern == ("tasks", "*"):
        kind = source.data["tasks"][path[1]].get("type")
        known = _keys(_TASK_MODELS[kind]) if kind in _TASK_MODELS else set()
        owners = [name for name, model in _TASK_MODELS.items() if key in _keys(model)]
        if owners:
            return f"'{key}' is a key of {' and '.join(owners)} tasks, not of {kind} tasks"
        return f"unknown key '{key}'{suggest(key, known)}"
    return f"unknown key '{key}'{suggest(key, _VOCABULARY.get(pattern, set()))}"


def translate(error: ValidationError, source: Source, prefix: Path_ = ()) -> list[FlowIssue]:
    """pydantic's errors as plain sentences at their place in the file."""
    issues: list[FlowIssue] = []
    seen: set[tuple[int, int, str]] = set()
    for item in error.errors(include_url=False):
        path = _data_path(source.data, (*prefix, *item["loc"]))
        if item["type"] == "union_tag_invalid":
            path = (*path, "type")
        message = _sentence(item, path, source)
        if message is None:
            continue
        issue = source.issue(path, message, key=item["type"] == "extra_forbidden")
        if (issue.line, issue.column, message) not in seen:
            seen.add((issue.line, issue.column, message))
            issues.append(issue)
    return issues


def _data_path(data: Any, loc: tuple) -> Path_:
    """pydantic's loc without the union tags it adds: the path of the value in the file."""
    path: list[str | int] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        if in_dict or (isinstance(node, list) and isinstance(part, int) and part < len(node)):
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and part not in models.Flow.model_fields:
            continue  # a union member's name such as 'exec' or 'str'
        else:
            path.append(part)
            node = None
    return tuple(path)


def _where(path: Path_, source: Source) -> str:
    """ "task 'Train'" for a path inside a task, else ''."""
    if len(path) >= 2 and path[0] == "tasks" and isinstance(path[1], int):
        task = source.data["tasks"][path[1]]
        if isinstance(task, dict) and task.get("title"):
            return f"task '{task['title']}'"
        return f"task #{path[1] + 1}"
    return ""


def _sentence(item: dict, path: Path_, source: Source) -> str | None:
    kind = item["type"]
    key = path[-1] if path else ""
    where = _where(path, source)
    prefix = f"{where}: " if where else ""
    if kind == "extra_forbidden":
        return prefix + _unknown_key(path, source)
    if kind == "missing":
        return f"{prefix}missing required key '{key}'"
    if kind == "union_tag_not_found":
        return f"{prefix}missing required key 'type' (exec, data or deploy)"
    if kind == "union_tag_invalid":
        got = item.get("ctx", {}).get("tag", item.get("input"))
        return f"{prefix}unknown task type '{got}': use exec, data or deploy"
    if kind == "model_type" and not path:
        return "a flow file must be a mapping with 'flow' (or 'title'), 'tasks' and 'relations'"
    if kind == "value_error":
        return prefix + str(item["ctx"]["error"])
    if kind == "literal_error":
        return f"{prefix}'{key}' must be {item['ctx']['expected']}, not '{item.get('input')}'"
    got = item.get("input")
    shown = "nothing" if got is None else repr(got) if not isinstance(got, dict | list) else type(got).__name__
    message = item["msg"][0].lower() + item["msg"][1:]
    return f"{prefix}'{key}': {message} (got {shown})"
