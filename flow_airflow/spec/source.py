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


_SCALARS = yaml.SafeLoader("")  # only its constructor is used, to type plain scalars


def _convert(node: yaml.Node, path: Path_, source: Source, issues: list[FlowIssue]) -> Any:
    source.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        _SCALARS.flatten_mapping(node)  # resolves YAML merge keys (<<)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _convert(key_node, (*path, "\0key"), source, issues)
            if not isinstance(key, str | int | float | bool) and key is not None:
                issues.append(source.issue(path, "a mapping key must be a plain value"))
                continue
            key = str(key) if key is not None else ""
            child = (*path, key)
            if key in result:
                line = key_node.start_mark.line + 1
                issues.append(FlowIssue(source.file, f"duplicate key '{key}'", line, key_node.start_mark.column + 1))
                continue
            source.key_positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            result[key] = _convert(value_node, child, source, issues)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, i), source, issues) for i, item in enumerate(node.value)]
    return _SCALARS.construct_object(node)
