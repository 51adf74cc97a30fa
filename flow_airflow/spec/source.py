"""Read a flow YAML file into plain data, remembering where every key and value came from.

PyYAML's C parser builds the node tree (fast, with positions); we convert it ourselves so
that each path such as ``("tasks", 2, "params")`` maps to its line and column, and so that a
duplicated key is an error instead of silently overriding the first one.

The work per file is bounded: the file's size (:data:`MAX_FILE_BYTES`), what aliases may add to
it (:data:`MAX_ALIAS_VALUES`), how deep values nest (:data:`MAX_NESTING`), and every scan is
linear. Tags other than YAML's standard ones (``!foo``, ``!!python/...``), recursive aliases
and text that is not UTF-8 (or UTF-16/32 with a byte order mark) are positioned errors.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
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

    def issue_at(self, node: yaml.Node, message: str) -> FlowIssue:
        return FlowIssue(self.file, message, node.start_mark.line + 1, node.start_mark.column + 1)


#: Flow files are a few KB; a file larger than this is refused before it is parsed.
MAX_FILE_BYTES = 1 << 19
#: How many values YAML aliases may add to a document (a 564-byte file can otherwise expand to 43 million).
MAX_ALIAS_VALUES = 100_000
#: How deep mappings and lists may nest (a flow needs about 6 levels).
MAX_NESTING = 100
_STANDARD_TAG = "tag:yaml.org,2002:"
_TAGS = {_STANDARD_TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp", "merge", "value", "map",
                                     "seq")}
_BOMS = [(codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8"),
         (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")]
# A top-level 'tasks' key in any layout: block or JSON style, quoted, indented (what may be a flow).
_TASKS_KEY = re.compile(r"""(?:^|[\s{,])["']?tasks["']?[ \t]*:""")


def read_text(file: str | Path) -> str:
    """The text of a flow file: UTF-8, or UTF-16/32 with a byte order mark; BOM removed.

    Raises :class:`FlowError` naming the file and the problem: unreadable, larger than
    :data:`MAX_FILE_BYTES`, or not decodable (Latin-1, UTF-16 without a byte order mark ...).
    """
    path = Path(file)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise FlowError.single(file, f"the file has {size:,} bytes; a flow file may have at most "
                                         f"{MAX_FILE_BYTES:,} (is it really a flow?)")
        data = path.read_bytes()
    except OSError as e:
        raise FlowError.single(file, f"cannot read the file: {e.strerror or e}") from None
    return decode(file, data)


def decode(file: str | Path, data: bytes) -> str:
    """``data`` as text (see :func:`read_text`); :class:`FlowError` when it cannot be decoded."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding)
            except UnicodeDecodeError as e:
                raise FlowError.single(file, f"the file starts with a {encoding.upper()} byte order mark but is "
                                             f"not valid {encoding.upper()}: {e.reason}") from None
    if (zeros := data[:4096].count(0)) and zeros * 4 >= min(len(data), 4096):
        raise FlowError.single(file, "the file looks like UTF-16 or UTF-32 without a byte order mark (BOM); "
                                     "save it as UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        start = data.rfind(b"\n", 0, e.start) + 1
        column = len(data[start : e.start].decode("utf-8", "replace")) + 1
        raise FlowError.single(file, f"the file is not UTF-8: byte 0x{data[e.start]:02x} cannot be decoded "
                                     "(Latin-1 or Windows-1252?); save the file as UTF-8", line, column) from None


def may_be_flow(text: str) -> bool:
    """Whether ``text`` has a ``tasks`` key somewhere, in any layout: a flow, or something like one."""
    return bool(_TASKS_KEY.search(text))


def is_flow_document(text: str) -> bool:
    """Whether ``text``, which :func:`may_be_flow`, is meant as a flow: a mapping with a top-level
    ``tasks`` key, or YAML too broken to tell (then its mistakes are shown as a flow's)."""
    try:
        node = _compose(text)
    except yaml.YAMLError:
        return True
    if isinstance(node, yaml.SequenceNode) and node.value:  # a flow written as a list item: a mistake
        node = node.value[0]
    return isinstance(node, yaml.MappingNode) and any(
        isinstance(k, yaml.ScalarNode) and k.value == "tasks" for k, _ in node.value
    )


def read_source(file: str | Path, text: str | None = None) -> Source:
    """Parse ``file`` (or ``text``); raise :class:`FlowError` on a YAML syntax error."""
    file = str(file)
    if text is None:
        text = read_text(file)
    try:
        node = _compose(text)
    except yaml.MarkedYAMLError as e:
        raise FlowError([_syntax_issue(file, text, e)]) from None
    except yaml.reader.ReaderError as e:  # a character YAML does not allow, with its offset only
        lines = _LINE_BREAK.split(text[: e.position])
        shown = f"U+{ord(e.character):04X}" if isinstance(e.character, str) else repr(e.character)
        raise FlowError.single(file, f"the character {shown} is not allowed in a YAML file ({e.reason})",
                               len(lines) // 2 + 1, len(lines[-1]) + 1) from None
    except yaml.YAMLError as e:
        raise FlowError.single(file, f"not valid YAML: {e}") from None
    source = Source(file=file, data=None, text=text)
    if node is None:
        return source
    if "*" in text and (issue := _alias_issue(node, source)):
        raise FlowError([issue])
    issues: list[FlowIssue] = []
    try:
        source.data = _convert(node, (), source, issues)
    except _NodeError as e:
        raise FlowError([source.issue_at(e.node, e.message)]) from None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as e:
        mark = getattr(e, "problem_mark", None)
        line, column = (mark.line + 1, mark.column + 1) if mark else next(reversed(source.positions.values()), (0, 0))
        problem = getattr(e, "problem", None) or str(e)
        raise FlowError([FlowIssue(file, f"this value cannot be read: {problem}", line, column)]) from None
    finally:  # PyYAML's constructor keeps every node it saw: a leak over many parses in one process
        _SCALARS.constructed_objects.clear()
    if issues:
        raise FlowError(issues)
    return source


class _NodeError(Exception):
    def __init__(self, node: yaml.Node, message: str):
        super().__init__(message)
        self.node, self.message = node, message


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _alias_issue(root: yaml.Node, source: Source) -> FlowIssue | None:
    """A recursive alias, or aliases that add more than :data:`MAX_ALIAS_VALUES` values.

    One walk over the distinct nodes (aliases share them), without recursion: each node's
    expanded size is the sum of its children's.
    """
    size: dict[int, int] = {}
    state: dict[int, int] = {id(root): 1}  # 1: on the path, 2: done
    stack = [(root, iter(_children(root)))]
    while stack:
        node, children = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            state[id(node)] = 2
            size[id(node)] = 1 + sum(size.get(id(c), 1) for c in _children(node))
            continue
        if state.get(id(child)) == 1:
            return source.issue_at(child, "a recursive alias: this anchored value contains an alias to itself")
        if id(child) not in state and isinstance(child, yaml.MappingNode | yaml.SequenceNode):
            state[id(child)] = 1
            stack.append((child, iter(_children(child))))
    distinct = len(state) + sum(1 for n in _walk_distinct(root) if isinstance(n, yaml.ScalarNode))
    if size[id(root)] - distinct <= MAX_ALIAS_VALUES:
        return None
    worst = next(n for n in _walk_distinct(root) if size.get(id(n), 1) > MAX_ALIAS_VALUES
                 and all(size.get(id(c), 1) <= MAX_ALIAS_VALUES for c in _children(n)))
    return source.issue_at(worst, f"YAML aliases expand the document to {size[id(root)]:,} values, more than "
                                  f"{MAX_ALIAS_VALUES:,} beyond the {distinct:,} the file holds (an alias bomb?)")


def _walk_distinct(root: yaml.Node) -> Iterator[yaml.Node]:
    """Every distinct node once (the graph has no cycle)."""
    seen = {id(root)}
    todo = [root]
    while todo:
        node = todo.pop()
        yield node
        for child in _children(node):
            if id(child) not in seen:
                seen.add(id(child))
                todo.append(child)


# `input: python3 -c "print('cnvrg_tag_x: 1')"` is how flows are written, but strict YAML
# does not allow ': ' inside a plain value. cnvrg reads such a value as text, and so do we.
# The head is matched from the line's start and cannot pass a ':' (linear); the value is the
# rest of the line, taken without a regular expression.
_PLAIN_HEAD = re.compile(r"\s*(?:-\s+)?[^\s'\"{\[#-][^:#]*?:\s+")
_NOT_PLAIN = tuple("'\"{[|>&*!#")
# The line breaks of YAML 1.1 (and of libyaml's marks): CR-only files count lines as it does.
_LINE_BREAK = re.compile("(\r\n|[\r\n\x85\u2028\u2029])")
#: Each repair composes the text again, up to the next error: at most this many characters in all.
_REPAIR_WORK = 2_000_000


def _compose(text: str) -> yaml.Node | None:
    """Compose ``text``, reading a plain value that contains ': ' as text, like cnvrg does."""
    repaired, work = text, 0
    while True:
        try:
            return yaml.compose(repaired, Loader=_Loader)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark
            if mark is None or "mapping values are not allowed" not in (e.problem or ""):
                raise
            parts = _LINE_BREAK.split(repaired)  # line, break, line, break, ..., line
            if 2 * mark.line >= len(parts):
                raise
            line = parts[2 * mark.line]
            head = _PLAIN_HEAD.match(line)
            value = line[head.end() :].rstrip() if head else ""
            if not head or head.end() > mark.column or not value or value.startswith(_NOT_PLAIN):
                raise
            work += sum(len(p) for p in parts[: 2 * mark.line])  # what was composed to reach this error
            if work > _REPAIR_WORK:
                raise yaml.scanner.ScannerError(
                    None, None, "too many plain values contain ': ' for this file's size: quote them", mark
                ) from None
            parts[2 * mark.line] = line[: head.end()] + "'" + value.replace("'", "''") + "'"
            repaired = "".join(parts)


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
    if node.tag not in _TAGS:
        shown = node.tag.replace(_STANDARD_TAG, "!!")
        raise _NodeError(node, f"the YAML tag '{shown}' is not supported: a flow file holds plain values "
                               "(quote the value if the '!' is part of it)")
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and len(path) > MAX_NESTING:
        raise _NodeError(node, f"values nested more than {MAX_NESTING} levels deep")
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
