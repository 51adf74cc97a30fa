"""Computes: where an experiment's command runs. One class per kind, one interface.

Choosing a compute happens at compile time (``plan`` shows it) and again at run time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT = "local"
KINDS = ("local",)


@dataclass(frozen=True)
class ComputeChoice:
    """The template a task runs on, and what was skipped on the way."""

    name: str
    kind: str
    settings: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def choose(requested: list[str], templates: dict[str, dict[str, Any]]) -> ComputeChoice:
    """The first configured template of ``requested``; the default one when none is."""
    notes = []
    for name in requested:
        settings = templates.get(name)
        if settings is None:
            notes.append(f"compute template '{name}' is not configured here; skipped")
            continue
        kind = settings.get("kind", "local")
        if kind not in KINDS:
            notes.append(f"compute template '{name}' is of kind '{kind}', which is not supported yet; skipped")
            continue
        return ComputeChoice(name, kind, settings, tuple(notes))
    if requested:
        notes.append(f"none of {', '.join(requested)} is configured: running on the default compute '{DEFAULT}'")
    return ComputeChoice(
        DEFAULT, templates.get(DEFAULT, {}).get("kind", "local"), templates.get(DEFAULT, {}), tuple(notes)
    )
