"""Read a flow YAML file into plain data, remembering where every key and value came from.

PyYAML's C parser builds the node tree (fast, with positions); we convert it ourselves so
that each path such as ``("tasks", 2, "params")`` maps to its line and column, and so that a
duplicated key is an error instead of silently overriding the first one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flow_airflow.spec.errors import FlowError, FlowIssue

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

Path_ = tuple[str | int, ...]


@dataclass
class Source:
    """The data of one YAML document and the (line, column) of each path in it, 1-based."""

    file: str
    data: Any
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    text: str = ""

    def where(self, path: Path_, *, key: bool = False) -> tuple[int, int]:
        """The position of ``path``, or of its nearest ancestor that has one."""
        table = self.key_positions if key else self.positions
        for cut in range(len(path), -1, -1):
            if (pos := table.get(path[:cut])) or (pos := self.positions.get(path[:cut])):
                return pos
        return (0, 0)

    def issue(self, path: Path_, message: str, *, key: bool = False) -> FlowIssue:
        line, column = self.where(path, key=key)
        return FlowIssue(self.file, message, line, column)


def read_source(file: str | Path, text: str | None = None) -> Source:
    """Parse ``file`` (or ``text``); raise :class:`FlowError` on a YAML syntax error."""
    file = str(file)
    if text is None:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise FlowError.single(file, f"cannot read the file: {e}") from None
    try:
        node = _compose(text)
    except yaml.MarkedYAMLError as e:
        raise FlowError([_syntax_issue(file, text, e)]) from None
    except yaml.YAMLError as e:
        raise FlowError.single(file, f"not valid YAML: {e}") from None
    source = Source(file=file, data=None, text=text)
    if node is None:
        return source
    issues: list[FlowIssue] = []
    source.data = _convert(node, (), source, issues)
    if issues:
        raise FlowError(issues)
    return source


# `input: python3 -c "print('cnvrg_tag_x: 1')"` is how flows are written, but strict YAML
# does not allow ': ' inside a plain value. cnvrg reads such a value as text, and so do we.
_PLAIN_VALUE = re.compile(r"^(?P<head>\s*(?:-\s+)?[^\s'\"{\[#-][^:#]*?:\s+)(?P<value>[^\s'\"{\[|>&*!#].*?)\s*$")


def _compose(text: str) -> yaml.Node | None:
    """Compose ``text``, reading a plain value that contains ': ' as text, like cnvrg does."""
    repaired = text
    for _ in range(200):
        try:
            return yaml.compose(repaired, Loader=_Loader)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark
            if mark is None or "mapping values are not allowed" not in (e.problem or ""):
                raise
            lines = repaired.split("\n")
            match = _PLAIN_VALUE.match(lines[mark.line])
            if not match or len(match["head"]) > mark.column:
                raise
            value = match["value"].replace("'", "''")
            lines[mark.line] = f"{match['head']}'{value}'"
            repaired = "\n".join(lines)
    return yaml.compose(repaired, Loader=_Loader)


def _syntax_issue(file: str, text: str, error: yaml.MarkedYAMLError) -> FlowIssue:
    mark = error.problem_mark or error.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
    problem = (error.problem or "").strip()
    if "'\\t'" in problem or (mark and _char_at(text, mark) == "\t"):
        message = "a tab character is used for indentation; YAML allows only spaces"
    else:
        context = f" {error.context.strip()}" if error.context else ""
        message = f"YAML syntax error: {problem}{context}"
        if "mapping values are not allowed" in problem or "expected <block end>" in problem:
            message += " (check the indentation and the ':' after each key)"
    return FlowIssue(file, message, line, column)


def _char_at(text: str, mark: yaml.Mark) -> str:
    lines = text.splitlines()
    if mark.line < len(lines) and mark.column < len(lines[mark.line]):
        return lines[mark.line][mark.column]
    return ""


_SCALARS = yaml.SafeLoader("")  # only its resolver and constructor are used, by yaml_value
_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"


class Plain(str):
    """A plain (unquoted) YAML scalar, kept as the text written: ``010``, ``1.10``, ``yes``, ``2024-01-15``.

    cnvrg passes params as written; YAML 1.1 would retype them (``010`` -> 8, ``yes`` -> True).
    Fields typed int, float or bool get them through pydantic's lax conversion; :func:`yaml_value`
    gives the YAML-typed value where a structure is passed on as data (a deploy task's example input).
    """

    __slots__ = ()


def yaml_value(value: Any) -> Any:
    """``value`` with its plain scalars typed the way YAML reads them (numbers, booleans, dates as text)."""
    if isinstance(value, dict):
        return {k: yaml_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [yaml_value(v) for v in value]
    if isinstance(value, Plain):
        node = yaml.ScalarNode(_SCALARS.resolve(yaml.ScalarNode, value, (True, False)), str(value))
        typed = _SCALARS.construct_object(node)
        return typed if isinstance(typed, int | float | bool) else str(value)
    return value


def _convert(node: yaml.Node, path: Path_, source: Source, issues: list[FlowIssue]) -> Any:
    """Plain data from ``node``: scalars as the text written (null: None), merge keys resolved."""
    source.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        return _mapping(node, path, source, issues)
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, i), source, issues) for i, item in enumerate(node.value)]
    if node.tag == _NULL:
        return None
    return Plain(node.value) if not node.style else node.value  # plain style: None, or "" from libyaml


def _mapping(node: yaml.MappingNode, path: Path_, source: Source, issues: list[FlowIssue]) -> dict[str, Any]:
    """A mapping; keys merged in with ``<<`` give way to the mapping's own (YAML merge key spec)."""
    merged = _flatten(node, source, issues)
    result: dict[str, Any] = {}
    first_line: dict[str, int] = {}
    for index, (key_node, value_node) in enumerate(node.value):
        key = _convert(key_node, (*path, "\0key"), source, issues)
        if isinstance(key, dict | list):
            issues.append(source.issue(path, "a mapping key must be a plain value"))
            continue
        key = "" if key is None else str(key)
        child = (*path, key)
        line = key_node.start_mark.line + 1
        if key in first_line and index >= merged:
            issues.append(
                FlowIssue(source.file, f"duplicate key '{key}' (first at line {first_line[key]})", line,
                          key_node.start_mark.column + 1)
            )
            continue
        if index >= merged:
            first_line[key] = line
        source.key_positions[child] = (line, key_node.start_mark.column + 1)
        result[key] = _convert(value_node, child, source, issues)
    return result


def _flatten(node: yaml.MappingNode, source: Source, issues: list[FlowIssue]) -> int:
    """Resolve the merge keys (``<<``) of ``node`` in place; how many of its pairs were merged in.

    YAML's merge key spec: the mapping's own keys override merged ones; of several merged
    mappings (``<<: [*a, *b]``) the earlier overrides the later. Done once per node (aliases
    share nodes).
    """
    if (done := getattr(node, "merged_pairs", None)) is not None:
        return done
    node.merged_pairs = 0  # type: ignore[attr-defined]  # a mapping merged into itself merges nothing
    merged: dict[Any, tuple[yaml.Node, yaml.Node]] = {}
    own: list[tuple[yaml.Node, yaml.Node]] = []
    for key, value in node.value:
        if key.tag != _MERGE:
            own.append((key, value))
            continue
        for part in value.value if isinstance(value, yaml.SequenceNode) else [value]:
            if not isinstance(part, yaml.MappingNode):
                line, column = part.start_mark.line + 1, part.start_mark.column + 1
                issues.append(FlowIssue(source.file, "'<<' (merge key) takes a mapping or a list of mappings, "
                                        "such as '<<: *defaults'", line, column))
                continue
            _flatten(part, source, issues)
            for pair in part.value:
                merged.setdefault(_key_id(pair[0]), pair)
    for key, _ in own:
        merged.pop(_key_id(key), None)
    node.value = [*merged.values(), *own]
    node.merged_pairs = len(merged)  # type: ignore[attr-defined]
    return len(merged)


def _key_id(key: yaml.Node) -> Any:
    return key.value if isinstance(key, yaml.ScalarNode) else id(key)
