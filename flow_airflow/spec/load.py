"""Load a flow file: YAML with positions -> validated :class:`Flow` -> checked task graph."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from flow_airflow.common.graph import Graph
from flow_airflow.spec import library, models
from flow_airflow.spec.checks import check_flow
from flow_airflow.spec.errors import FlowError, FlowIssue
from flow_airflow.spec.names import resolve_names, suggest
from flow_airflow.spec.source import Path_, Source, read_source, read_text

_TASK: TypeAdapter[models.Task] = TypeAdapter(models.Task)


@dataclass(frozen=True)
class LoadedFlow:
    """A valid flow with where it came from."""

    spec: models.Flow
    file: Path
    graph: Graph
    digest: str  # sha256 of the file's text: the flow's version
    text: str
    #: what loads but deserves a word: keys of another task type, which have no effect
    warnings: tuple[FlowIssue, ...] = ()
    #: the AI Library component each task naming one runs in, by task title (:mod:`flow_airflow.spec.library`)
    components: dict[str, library.Used] = dataclasses.field(default_factory=dict)
    #: what the components were looked for in (None: no task names one): a plan of this flow is stale when it changes
    library_signature: tuple[tuple[str, int, int], ...] | None = None

    @property
    def project_dir(self) -> Path:
        """The folder of the YAML file: what every experiment's working directory starts from."""
        return self.file.parent

    def task(self, title: str) -> models.ExecTask | models.DataTask | models.DeployTask:
        return self._by_title[title]

    @functools.cached_property
    def _by_title(self) -> dict[str, models.ExecTask | models.DataTask | models.DeployTask]:
        return {t.title: t for t in self.spec.tasks}


def load_flow(file: str | Path, text: str | None = None, library_folders: Sequence[Path] = ()) -> LoadedFlow:
    """Load and check one flow file; raise :class:`FlowError` with every mistake in it.

    :param library_folders: where AI Library components are looked for after the flow's own folder
        (:func:`flow_airflow.settings.library_folders`; :mod:`flow_airflow.spec.library`).
    """
    path = Path(file)
    if text is None:
        text = read_text(path)  # UTF-8, or UTF-16/32 with a byte order mark; size-limited
    source = read_source(path, text)
    if not isinstance(source.data, dict):
        raise FlowError.single(
            path, "a flow file must be a mapping with 'flow' (or 'title'), 'tasks' and 'relations'", 1, 1
        )
    issues: list[FlowIssue] = []
    warnings: list[FlowIssue] = []
    tasks: list[tuple[int, models.Task]] = []
    titles: list[str] = []
    raw_tasks = source.data.get("tasks")
    components = _Components(path.resolve().parent, library_folders)
    for i, raw in enumerate(raw_tasks if isinstance(raw_tasks, list) else []):
        if isinstance(raw, dict) and isinstance(raw.get("title"), str) and raw["title"].strip():
            titles.append(raw["title"].strip())
        raw = _without_other_types_keys(raw, ("tasks", i), source, warnings)
        raw = components.fill(raw, i, source, issues, warnings)
        try:
            tasks.append((i, _TASK.validate_python(raw)))
        except ValidationError as e:
            issues += translate(e, source, prefix=("tasks", i)) + _as_known_type(raw, i, source)
    top = {**source.data, "tasks": []} if isinstance(raw_tasks, list) else source.data
    try:
        flow = models.Flow.model_validate(top).model_copy(update={"tasks": [t for _, t in tasks]})
    except ValidationError as e:
        issues += translate(e, source)
        # the flow's other checks (titles, relations, references, computes) still run without the keys
        # it refused, so that one pass lists every mistake; without a key it needs, they cannot
        refused = {err["loc"][0] for err in e.errors() if err["loc"]}
        if refused & {"flow", "title", "tasks", "relations"}:  # what the checks stand on: they would only guess
            raise FlowError(issues) from None
        try:
            flow = models.Flow.model_validate({k: v for k, v in top.items() if k not in refused})
        except ValidationError:
            raise FlowError(issues) from None
        flow = flow.model_copy(update={"tasks": [t for _, t in tasks]})
    flow, tasks, more = resolve_names(flow, tasks, titles, source)
    issues += more
    more, graph = check_flow(flow, tasks, titles, source)
    issues += more
    if issues or graph is None:
        raise FlowError(issues)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return LoadedFlow(flow, path.resolve(), graph, digest, text, tuple(sorted(warnings, key=_position)),
                      components.used, components.catalog.signature if components.catalog else None)


class _Components:
    """The AI Library components the tasks of a flow in ``project_dir`` name: found once, when one names one."""

    def __init__(self, project_dir: Path, folders: Sequence[Path]):
        self.project_dir, self.folders = project_dir, folders
        self.catalog: library.Catalog | None = None
        self.used: dict[str, library.Used] = {}

    def fill(self, raw: Any, i: int, source: Source, issues: list[FlowIssue], warnings: list[FlowIssue]) -> Any:
        """The task ``raw`` (item ``i``) with what the component it names gives (:func:`library.fill`); as
        written, when it names none or one that is not found or does not fit it (the mistake added to ``issues``).

        A component no place has, of a name near none that is there, named by a task that gives its own command
        (and deploy keys) is a warning: cnvrg's exports name the library components a flow was made from, and
        such a task runs the project's own files (tests/flows/blueprint); a near name, another version, or a
        task that needs what the component gives is a mistake."""
        if not (isinstance(raw, dict) and isinstance(raw.get("library"), str) and raw["library"].strip()
                and raw.get("type") in ("exec", "deploy")):  # a data task's library: names no code it runs
            return raw
        if self.catalog is None:
            self.catalog = library.find(self.project_dir, self.folders)
        merged, used, problems = _with_component(raw, i, self.catalog, source)
        name = raw["library"].strip()
        if problems and used is None and _runs_without_component(raw) and not self.catalog.is_near(name):
            warnings.append(dataclasses.replace(problems[0], message=f"{problems[0].message}: "
                                                "it runs the project's own files, with the command it gives"))
            return raw
        if problems:  # the flow fails on them: what the component would have given is not said missing again
            merged = {**_STAND_INS.get(raw.get("type"), {}), **{k: v for k, v in raw.items() if not models.is_empty(v)}}
        issues += problems
        if used is not None and isinstance(raw.get("title"), str):
            self.used[raw["title"].strip()] = used
        return merged


def _runs_without_component(raw: dict[str, Any]) -> bool:
    """Whether a task gives what it runs itself: its command (an exec task), its predict function (a deploy task)."""
    if raw.get("type") == "deploy":
        return not models.is_empty(raw.get("file_name")) and not models.is_empty(raw.get("function_name"))
    return not (models.is_empty(raw.get("input")) and models.is_empty(raw.get("command")))


_STAND_INS: dict[Any, dict[str, str]] = {"exec": {"command": "-"}, "deploy": {"file_name": "-", "function_name": "-"}}


def _with_component(raw: dict[str, Any], i: int, catalog: library.Catalog, source: Source
                    ) -> tuple[dict[str, Any], library.Used | None, list[FlowIssue]]:
    """The task ``raw`` (item ``i``) with what the AI Library component it names gives; or, when the component
    or its version is not found or does not fit the task, the task as written and the mistake."""
    name = raw["library"].strip()
    title = raw.get("title") if isinstance(raw.get("title"), str) else f"#{i + 1}"
    version_key = "library_version" if "library_version" in raw else "library-version"
    wanted = raw.get(version_key)
    version = None if models.is_empty(wanted) else models.scalar_text(wanted)
    component = catalog.get(name, version)
    if component is None:
        looked = ", ".join(str(p) for p in catalog.places)
        if catalog.versions(name):
            message = (f"task '{title}': component '{name}' has no version {version} "
                       f"(versions here: {', '.join(catalog.versions(name))})")
            return raw, None, [source.issue(("tasks", i, version_key), message)]
        why = "".join(f"; {b.file} {b.problem}" for b in catalog.broken[:3])  # a component that may be the one
        message = (f"task '{title}': no AI Library component '{name}'{suggest(name, set(catalog.found))} in {looked} "
                   f"(a component is a folder with a library.yaml whose title slugs to its name; more places: "
                   f"[flow_airflow] library_folders){why}")
        return raw, None, [source.issue(("tasks", i, "library"), message)]
    kind = raw.get("type")
    if kind in ("exec", "deploy") and component.is_deploy != (kind == "deploy"):
        what = "a deploy (webservice) component" if component.is_deploy else "an exec component"
        message = (f"task '{title}': '{name}' ({component.folder / library.FILE}) is {what}: "
                   f"use it in {'a deploy' if component.is_deploy else 'an exec'} task")
        return raw, None, [source.issue(("tasks", i, "library"), message)]
    merged, gave = library.fill(raw, component)
    return merged, library.Used(component, tuple(gave)), []


def _position(issue: FlowIssue) -> tuple[int, int]:
    return (issue.line, issue.column)


def _without_other_types_keys(raw: Any, path: Path_, source: Source, warnings: list[FlowIssue]) -> Any:
    """A task without the keys that only other task types know, with a warning for each.

    Published files carry such keys (``accept_files`` on an exec task copied from an endpoint);
    cnvrg ignores them, so they load, and the warning says they have no effect.
    """
    kind = raw.get("type") if isinstance(raw, dict) else None
    if not isinstance(kind, str) or kind not in _TASK_MODELS:  # a mapping or a list is no type (it is said later)
        return raw
    own = _keys(_TASK_MODELS[kind])
    kept = {}
    for key, value in raw.items():
        owners = [name for name, model in _TASK_MODELS.items() if key not in own and key in _keys(model)]
        if not owners:
            kept[key] = value
        elif not models.is_empty(value):
            where = _where((*path, key), source)
            warnings.append(source.issue((*path, key), f"{where}: '{key}' is a key of {' and '.join(owners)} "
                                                       f"tasks; it has no effect on {_article(kind)} {kind} task",
                                         key=True))
    return kept


def _as_known_type(raw: Any, i: int, source: Source) -> list[FlowIssue]:
    """The other mistakes of a task whose type is unknown (``type: exce``): it is checked as the known
    type its type is closest to (exec when none is close), so that one pass lists every mistake."""
    import difflib

    kind = raw.get("type") if isinstance(raw, dict) else None
    if not isinstance(kind, str) or kind in _TASK_MODELS:
        return []
    guess = (difflib.get_close_matches(kind.strip().lower(), list(_TASK_MODELS), n=1, cutoff=0.5) or ["exec"])[0]
    raw = _without_other_types_keys({**raw, "type": guess}, ("tasks", i), source, [])
    try:
        _TASK.validate_python(raw)
    except ValidationError as e:
        return [issue for issue in translate(e, source, prefix=("tasks", i)) if "task type" not in issue.message]
    return []


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


# Known keys by place in the file, for "did you mean" suggestions.
@functools.cache
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
        own = _keys(_TASK_MODELS[kind]) if isinstance(kind, str) and kind in _TASK_MODELS else set()
        return f"unknown key '{key}'{suggest(key, own) or suggest(key, _keys(*_TASK_MODELS.values()))}"
    return f"unknown key '{key}'{suggest(key, _VOCABULARY.get(pattern, set()))}"


def translate(error: ValidationError, source: Source, prefix: Path_ = ()) -> list[FlowIssue]:
    """pydantic's errors as plain sentences at their place in the file, one per mistake.

    A value of the wrong kind gives one sentence naming every kind that fits ("must be text or
    a list, not a mapping"), never the validator's internal type names; where a union member
    found a mistake deeper inside the value, that mistake is said instead.
    """
    issues: list[FlowIssue] = []
    wanted: dict[Path_, tuple[list[str], Any]] = {}
    paths: list[Path_] = []
    for item in error.errors(include_url=False):
        path = _data_path(source.data, (*prefix, *item["loc"]), missing=item["type"] == "missing")
        paths.append(path)
        if item["type"] in _KINDS:
            kinds, _ = wanted.setdefault(path, ([], item.get("input")))
            kinds.append(_KINDS[item["type"]])
            continue
        if item["type"] == "union_tag_invalid":
            path = (*path, "type")
        message = _sentence(item, path, source)
        issues.append(source.issue(path, message, key=item["type"] == "extra_forbidden"))
    for path, (kinds, got) in wanted.items():
        if any(len(other) > len(path) and other[: len(path)] == path for other in paths):
            continue
        where = _where(path, source)
        fits = _one_of(kinds)
        message = f"{_name(path)} must be {fits}, not {_shown(got)}"
        issues.append(source.issue(path, f"{where}: {message}" if where else message))
    unique = {(i.line, i.column, i.message): i for i in issues}
    return list(unique.values())


_KINDS = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)",
}


def _one_of(kinds: list[str]) -> str:
    """ "text or a list"; a scalar of any kind is "a single value"."""
    unique = list(dict.fromkeys(kinds))
    if "text" in unique and len(unique) > 1 and "a number" in unique:
        unique = ["a single value" if k == "text" else k for k in unique if k not in _SCALAR_KINDS]
    return " or ".join(unique)


_SCALAR_KINDS = ("a whole number", "a number", "true or false")


def _name(path: Path_) -> str:
    if len(path) >= 2 and isinstance(path[-1], int):
        return f"item {path[-1] + 1} of '{path[-2]}'"
    return f"'{path[-1]}'" if path else "the file"


def _value_at(data: Any, path: Path_) -> Any:
    """The value at ``path`` in ``data``, None when there is none."""
    for part in path:
        if isinstance(data, dict) and isinstance(part, str):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data


def _shown(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = str(value)
    return f"'{text}'" if len(text) <= 60 else f"'{text[:57]}...'"


def _data_path(data: Any, loc: tuple, *, missing: bool = False) -> Path_:
    """pydantic's loc without the union members and tags it adds: the path of the value in the file."""
    path: list[str | int] = []
    node = data
    for n, part in enumerate(loc):
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_list or (isinstance(node, dict) and part in node):
            path.append(part)
            node = node[part]
        elif missing and n == len(loc) - 1:
            path.append(part)  # the missing key itself
        elif not isinstance(part, str):
            path.append(part)
            node = None
        # else: a union member's or tag's name such as 'exec', 'str' or 'Resources'
    return tuple(path)


def _where(path: Path_, source: Source) -> str:
    """ "task 'Train'" for a path inside a task, else ''."""
    if len(path) >= 2 and path[0] == "tasks" and isinstance(path[1], int):
        task = source.data["tasks"][path[1]]
        if isinstance(task, dict) and task.get("title"):
            return f"task '{task['title']}'"
        return f"task #{path[1] + 1}"
    return ""


def _sentence(item: dict, path: Path_, source: Source) -> str:
    kind = item["type"]
    key = path[-1] if path else ""
    where = _where(path, source)
    prefix = f"{where}: " if where else ""
    if kind == "extra_forbidden":
        return prefix + _unknown_key(path, source)
    if kind == "missing":
        return f"{prefix}missing required key '{key}'"
    if kind == "union_tag_not_found" and not isinstance(item.get("input"), dict):
        return f"{prefix}a task must be a mapping (title:, type:, ...), not {_shown(item.get('input'))}"
    if kind == "union_tag_not_found":
        return f"{prefix}missing required key 'type' (exec, data or deploy)"
    if kind == "union_tag_invalid":
        got = item.get("ctx", {}).get("tag", item.get("input"))
        if isinstance(source_value := _value_at(source.data, path), dict | list):
            return f"{prefix}'type' must be exec, data or deploy, not {_shown(source_value)}"
        return f"{prefix}unknown task type '{got}': use exec, data or deploy"
    if kind == "model_type" and not path:
        return "a flow file must be a mapping with 'flow' (or 'title'), 'tasks' and 'relations'"
    if kind == "value_error":
        return prefix + str(item["ctx"]["error"])
    if kind == "literal_error":
        return f"{prefix}'{key}' must be {item['ctx']['expected']}, not {_shown(item.get('input'))}"
    message = item["msg"].removeprefix("Input ")  # a limit such as "should be greater than or equal to 0"
    return f"{prefix}{_name(path)} {message[0].lower()}{message[1:]}, not {_shown(item.get('input'))}"
