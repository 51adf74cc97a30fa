"""Errors in a flow file: each with its file, line and column, all of a file reported at once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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


class FlowError(Exception):
    """A flow file that cannot be compiled; carries every issue found in it."""

    def __init__(self, issues: list[FlowIssue]):
        self.issues = sorted(issues, key=lambda i: (i.line or 10**9, i.column))
        super().__init__("\n".join(str(i) for i in self.issues))

    @property
    def file(self) -> str:
        return self.issues[0].file if self.issues else ""

    @classmethod
    def single(cls, file: str | Path, message: str, line: int = 0, column: int = 0) -> FlowError:
        return cls([FlowIssue(str(file), message, line, column)])
