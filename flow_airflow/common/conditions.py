"""Conditions: which parent experiments continue to a task (gt, lt, eq, min, max on a tag).

Plain functions over experiment records, used by the condition task at run time and in tests.
The rules (spec "Conditions"; issue 12 for what cnvrg would choose):

- only experiments that succeeded are considered; a failed one is left out, and the report says so;
- ``gt``/``lt`` compare numbers; a tag that is not a finite number (text, NaN, an infinity)
  never passes them, and never wins ``min``/``max``;
- ``eq`` compares numbers as numbers (``1`` = ``1.0``), ``true``/``false`` as booleans in any
  letter case (``True`` = ``True``, also when YAML made the target a boolean), anything else as
  the text written (surrounding spaces aside); NaN and infinities never pass it;
- ``min``/``max`` pick one experiment: on a tie, the first in experiment order (the parents in the
  order of the task's relations, then each parent's experiments by index), the same every run.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from flow_airflow.common.records import Record, Status, status_of, succeeded

BOOLEANS = {"true": True, "false": False}
Key = tuple[str, int]  # an experiment: (task title, index)
Line = tuple[list[Key], str]  # a report line and the experiments it is about


@dataclass(frozen=True)
class Objective:
    """What one objective of a metric condition means; :data:`OBJECTIVES` holds them all.

    The spec's checks (``spec.models``), the route counts (``spec.references``), ``plan`` and the
    condition task read this table: a new objective is one entry.

    :param name: as the flow file writes it (``gt``).
    :param target: what its ``target`` must be: ``"number"`` (a finite number), ``"any"`` (text,
        a number or a boolean) or None (it takes none).
    :param sign: how a comparison is written in a report (``>``); None for a pick.
    :param holds: for a number comparison, whether ``tag`` passes against ``target``.
    :param pick: for ``min``/``max``, which one experiment wins: ``1`` the highest, ``-1`` the lowest
        (0: every experiment that passes, passes).
    """

    name: str
    target: str | None
    sign: str | None = None
    holds: Callable[[float, float], bool] | None = None
    pick: int = 0

    @property
    def picks_one(self) -> bool:
        """Whether at most one experiment passes (``min``, ``max``)."""
        return self.pick != 0


#: The metric objectives, in the spec's order (spec "Conditions"); ``eq`` compares as :func:`compare` says.
OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    Objective("gt", target="number", sign=">", holds=operator.gt),
    Objective("lt", target="number", sign="<", holds=operator.lt),
    Objective("eq", target="any", sign="="),
    Objective("min", target=None, pick=-1),
    Objective("max", target=None, pick=1),
)}


@dataclass(frozen=True)
class MetricCondition:
    """One metric condition of a task, as the condition task gets it.

    ``target`` is the text written in the file (or the YAML value, which is turned into text).
    """

    objective: str  # gt, lt, eq, min, max
    tag_key: str
    target: str | int | float | bool | None = None
    task: str | None = None  # blank: every parent

    @property
    def target_text(self) -> str:
        return "" if self.target is None else str(self.target)

    def describe(self) -> str:
        where = f"'{self.task}'" if self.task else "every parent"
        objective = OBJECTIVES[self.objective]
        if objective.picks_one:
            return f"the {'highest' if objective.pick > 0 else 'lowest'} '{self.tag_key}' of {where}"
        return f"'{self.tag_key}' {objective.sign} {self.target_text} on {where}"


def read_number(text: str) -> tuple[float | None, str]:
    """A tag's text as a finite number, or None and why it is not one ("" when it is)."""
    try:
        x = float(text)
    except (TypeError, ValueError):
        return None, "it is not a number"
    if math.isnan(x):
        return None, "it is NaN"
    if math.isinf(x):
        return None, "it is infinite"
    return x, ""


def number(value: object) -> float | None:
    """``value`` as a finite number, or None."""
    return read_number(str(value))[0]


def value_of(record: Record, key: str) -> str | None:
    """A tag of the experiment; params count as tags too, as in cnvrg."""
    if key in record.get("tags", {}):
        return str(record["tags"][key])
    if key in record.get("params", {}):
        return str(record["params"][key])
    return None


def compare(objective: str, value: str, target: object) -> tuple[bool, str]:
    """Whether ``value`` passes a comparison (``gt``, ``lt``, ``eq``: an objective without a pick) against
    ``target``, and why not ("" when it does)."""
    x, why_not = read_number(value)
    if why_not in ("it is NaN", "it is infinite"):
        return False, why_not
    text = str(target).strip()
    t, target_why_not = read_number(text)
    holds = OBJECTIVES[objective].holds
    if holds is None:  # eq
        if x is not None and t is not None:
            return x == t, ""
        if value.strip().lower() in BOOLEANS and text.lower() in BOOLEANS:
            return BOOLEANS[value.strip().lower()] == BOOLEANS[text.lower()], ""
        return value.strip() == text, ""
    if t is None:
        return False, f"the target '{target}' is not a finite number ({target_why_not})"
    if x is None:
        return False, why_not
    return holds(x, t), ""


def evaluate(
    tests: Sequence[MetricCondition], parents: Mapping[str, list[Record]]
) -> tuple[dict[str, list[Record]], list[str]]:
    """The experiments of the tested parents that pass every test on them, and why, line by line.

    ``parents`` maps each parent title to its experiments' records (failed ones included, which
    never pass). Untested parents are not in the result; a parent with no passing experiment maps to [].
    """
    passing, lines = judge(tests, parents)
    return passing, [text for _, text in lines]


def judge(
    tests: Sequence[MetricCondition], parents: Mapping[str, list[Record]]
) -> tuple[dict[str, list[Record]], list[Line]]:
    """:func:`evaluate`, each line with the experiments it is about ((task title, index); a tie names several)."""
    tested = {t for test in tests for t in ([test.task] if test.task else parents)}
    passing = {title: succeeded(parents.get(title, [])) for title in tested}
    report = [([_key(r)], f"{_name(r)}: left out, it did not succeed ({r.get('failed')})")
              for title in parents if title in tested for r in parents[title] if status_of(r) is not Status.SUCCESS]
    for test in tests:
        pool = [r for title in ([test.task] if test.task else list(parents)) for r in succeeded(parents.get(title, []))]
        winners, lines = _winners(test, pool)
        report += lines
        for title in passing:
            if test.task in (None, title):
                passing[title] = [r for r in passing[title] if _key(r) in winners]
    return passing, report


def decisions(tests: Sequence[MetricCondition], parents: Mapping[str, list[Record]]) -> list[dict[str, object]]:
    """What the condition decided on each experiment of its tested parents, as the condition task records it
    (XCom ``decisions``, read by ``flow_airflow.run_experiments.condition_decisions``)::

        [{"task": parent title, "index": int, "passed": bool, "why": [line, ...]}]

    ``why``: the report's lines on the experiment, without its name (e.g. "accuracy = 0.70 does not pass
    (the highest 'accuracy' of 'Train' is 0.95, Train #1 [accuracy=0.95])").
    """
    passing, lines = judge(tests, parents)
    kept = {_key(r) for rs in passing.values() for r in rs}
    found: list[dict[str, object]] = []
    for title in passing:
        for r in parents.get(title, []):
            prefix = f"{_name(r)}: "
            why = [text.removeprefix(prefix) for keys, text in lines if _key(r) in keys]
            found.append({"task": title, "index": r["index"], "passed": _key(r) in kept, "why": why})
    return found


def _winners(test: MetricCondition, pool: list[Record]) -> tuple[set[Key], list[Line]]:
    """The experiments of ``pool`` that pass ``test``, and a line on each."""
    lines: list[Line] = []
    scored: list[tuple[Record, str, float | None]] = []
    for r in pool:
        value = value_of(r, test.tag_key)
        if value is None:
            lines.append(([_key(r)], f"{_name(r)}: no tag '{test.tag_key}' was logged, so it does not pass"))
            continue
        if OBJECTIVES[test.objective].picks_one:
            x, why_not = read_number(value)
            if x is None:
                lines.append(([_key(r)], f"{_name(r)}: {test.tag_key} = {value} is left out: {why_not} "
                                         f"({test.describe()})"))
                continue
            scored.append((r, value, x))
        else:
            passes, why_not = compare(test.objective, value, test.target_text)
            verdict = "passes" if passes else "does not pass" + (f": {why_not}" if why_not else "")
            lines.append(([_key(r)], f"{_name(r)}: {test.tag_key} = {value} {verdict} ({test.describe()})"))
            if passes:
                scored.append((r, value, None))
    if not OBJECTIVES[test.objective].picks_one or not scored:
        return {_key(r) for r, _, _ in scored}, lines
    return _best(test, scored, lines)


def _best(test: MetricCondition, scored: list[tuple[Record, str, float | None]],
          lines: list[Line]) -> tuple[set[Key], list[Line]]:
    """The one experiment of ``scored`` (numbers) that wins ``min``/``max``, and a line on each."""
    sign = OBJECTIVES[test.objective].pick
    best = max(sign * x for _, _, x in scored)  # type: ignore[operator]
    tied = [r for r, _, x in scored if sign * x == best]  # type: ignore[operator]
    winner = tied[0]  # the first in experiment order: the same every run
    won = next(value for r, value, _ in scored if r is winner)
    for r, value, _ in scored:
        verdict = "passes" if r is winner else f"does not pass ({test.describe()} is {won}, {_name(winner)})"
        lines.append(([_key(r)], f"{_name(r)}: {test.tag_key} = {value} {verdict}"
                      + (f" ({test.describe()})" if r is winner else "")))
    if len(tied) > 1:
        lines.append(([_key(r) for r in tied], f"tie: {', '.join(_name(r) for r in tied)} share the {test.objective} "
                      f"'{test.tag_key}'; the first in experiment order passes ({_name(winner)})"))
    return {_key(winner)}, lines


def _key(record: Record) -> Key:
    return (record["task"], record["index"])


def _name(record: Record) -> str:
    label = f" [{record['label']}]" if record.get("label") else ""
    return f"{record['task']} #{record['index']}{label}"
