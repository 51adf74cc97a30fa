"""Conditions: which parent experiments continue to a task (gt, lt, eq, min, max on a tag).

Plain functions over experiment records, used by the branch task at run time and in tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from flow_airflow.plan.routes import Record


@dataclass(frozen=True)
class MetricCondition:
    """One metric condition of a task, as the branch task gets it."""

    objective: str  # gt, lt, eq, min, max
    tag_key: str
    target: str | None = None
    task: str | None = None  # blank: every parent

    def describe(self) -> str:
        where = f"'{self.task}'" if self.task else "every parent"
        if self.objective in ("min", "max"):
            return f"the {'highest' if self.objective == 'max' else 'lowest'} '{self.tag_key}' of {where}"
        sign = {"gt": ">", "lt": "<", "eq": "="}[self.objective]
        return f"'{self.tag_key}' {sign} {self.target} on {where}"


def number(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def value_of(record: Record, key: str) -> str | None:
    """A tag of the experiment; params count as tags too, as in cnvrg."""
    if key in record.get("tags", {}):
        return str(record["tags"][key])
    if key in record.get("params", {}):
        return str(record["params"][key])
    return None


def _compare(objective: str, value: str, target: str) -> bool:
    a, b = number(value), number(target)
    if objective == "eq":
        return a == b if a is not None and b is not None else value.strip() == str(target).strip()
    if a is None or b is None:
        return False
    return a > b if objective == "gt" else a < b


def evaluate(
    tests: Sequence[MetricCondition], parents: Mapping[str, list[Record]]
) -> tuple[dict[str, list[Record]], list[str]]:
    """The experiments of the tested parents that pass every test on them, and why, line by line.

    Untested parents are not in the result; a parent with no passing experiment maps to [].
    """
    tested = {t for test in tests for t in ([test.task] if test.task else parents)}
    passing = {title: list(parents.get(title, [])) for title in tested}
    report: list[str] = []
    for test in tests:
        pool = [r for title in ([test.task] if test.task else list(parents)) for r in parents.get(title, [])]
        scored: list[tuple[Record, str]] = []
        for r in pool:
            value = value_of(r, test.tag_key)
            if value is None:
                report.append(f"{_name(r)}: no tag '{test.tag_key}' was logged, so it does not pass")
            else:
                scored.append((r, value))
        winners = _winners(test, scored)
        for r, value in scored:
            verdict = "passes" if _key(r) in winners else "does not pass"
            report.append(f"{_name(r)}: {test.tag_key} = {value} {verdict} ({test.describe()})")
        for title in passing:
            if test.task in (None, title):
                passing[title] = [r for r in passing[title] if _key(r) in winners]
    return passing, report


def _winners(test: MetricCondition, scored: list[tuple[Record, str]]) -> set[tuple[str, int]]:
    if test.objective not in ("min", "max"):
        return {_key(r) for r, value in scored if _compare(test.objective, value, test.target or "")}
    if not scored:
        return set()
    numeric = all(number(value) is not None for _, value in scored)
    pick = max if test.objective == "max" else min
    best, _ = pick(scored, key=lambda item: number(item[1]) if numeric else item[1])  # type: ignore[arg-type,return-value]
    return {_key(best)}


def _key(record: Record) -> tuple[str, int]:
    return (record["task"], record["index"])


def _name(record: Record) -> str:
    label = f" [{record['label']}]" if record.get("label") else ""
    return f"{record['task']} #{record['index']}{label}"
