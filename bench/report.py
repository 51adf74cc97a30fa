"""Rows of the benchmark table and how they are printed."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Row:
    """One figure: flow-airflow against its hand-written equivalent, and the ratio of the two."""

    section: str
    measure: str
    flow: float  # seconds (median)
    hand: float | None  # seconds (median), or None when there is no hand-written counterpart
    target: float | None = None  # the ratio must be at most this
    unit: str = "s"
    note: str = ""
    ratio_of: str = "flow / hand-written"
    samples: dict[str, list[float]] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.hand is None or not self.hand:
            return None
        return self.flow / self.hand

    @property
    def ok(self) -> bool | None:
        if self.target is None or self.ratio is None:
            return None
        return self.ratio <= self.target

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "ok": self.ok}


def fmt(value: float | None, unit: str = "s") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "s" or unit.startswith("s/"):
        suffix = unit[1:]
        return (f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s") + suffix
    if unit == "ms":
        return f"{value:.0f} ms"
    return f"{value:g} {unit}".strip()


def table(rows: list[Row]) -> str:
    """A Markdown table, readable as plain text too."""
    head = ["", "measure", "flow-airflow", "hand-written", "ratio", "target", ""]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        ratio = "-" if row.ratio is None else f"{row.ratio:.2f}"
        target = "-" if row.target is None else f"≤ {row.target:g}"
        verdict = {True: "ok", False: "MISSED", None: ""}[row.ok]
        cells = [row.section, row.measure, fmt(row.flow, row.unit), fmt(row.hand, row.unit), ratio, target, verdict]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- {row.section}, {row.measure}: {row.note}" for row in rows if row.note]
    return "\n".join(lines + (["", *notes] if notes else []))
