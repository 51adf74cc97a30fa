"""Errors in a flow file: each with its file, line and column, all of a file reported at once."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

#: how a message names its task: the part that differs between tasks making the same mistake
TASK_NAMED = re.compile(r"\btask (?:'[^']*'|#\d+)")
MAX_LINES_LISTED = 30  # of one mistake made in many places


@dataclass(frozen=True)
class FlowIssue:
    """One mistake in a flow file. ``line`` and ``column`` are 1-based; 0 when unknown."""

    file: str
    message: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}"
            if self.column:
                where += f":{self.column}"
        return f"{where}: {self.message}"


def mistake(issue: FlowIssue) -> str:
    """What the mistake is, wherever it is made: its message without the task it names."""
    return TASK_NAMED.sub("task", issue.message)


def summarized(issues: list[FlowIssue]) -> list[FlowIssue]:
    """One issue per distinct mistake, at its first place: a mistake made in several places (an exported
    file repeats each key in every task) says how many times and where else, instead of one line each
    (``task 'A': unknown key 'x' (3 times: also at lines 40, 75)``). Issues in file order."""
    groups: dict[str, list[FlowIssue]] = {}
    for issue in issues:
        groups.setdefault(mistake(issue), []).append(issue)
    out = []
    for same in groups.values():
        first, others = same[0], same[1:]
        if others:
            lines = [str(i.line) for i in others if i.line]
            listed = ", ".join(lines[:MAX_LINES_LISTED]) + (f" and {len(lines) - MAX_LINES_LISTED} more"
                                                             if len(lines) > MAX_LINES_LISTED else "")
            where = f": also at line{'s' if len(lines) > 1 else ''} {listed}" if lines else ""
            first = replace(first, message=f"{first.message} ({len(same)} times{where})")
        out.append(first)
    return out


class FlowError(Exception):
    """A flow file that cannot be compiled; carries every issue found in it (``issues``), and says each
    distinct mistake once (:func:`summarized`)."""

    def __init__(self, issues: list[FlowIssue]):
        self.issues = sorted(issues, key=lambda i: (i.line or 10**9, i.column))
        super().__init__("\n".join(str(i) for i in self.summary))

    @property
    def summary(self) -> list[FlowIssue]:
        """One issue per distinct mistake, with how many times and where (:func:`summarized`)."""
        return summarized(self.issues)

    @property
    def file(self) -> str:
        return self.issues[0].file if self.issues else ""

    @classmethod
    def single(cls, file: str | Path, message: str, line: int = 0, column: int = 0) -> FlowError:
        return cls([FlowIssue(str(file), message, line, column)])
