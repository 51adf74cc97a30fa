"""Computes: where an experiment's command runs. One class per kind, one interface (``computes.base``).

Choosing a compute happens at compile time (``plan`` shows it) and again at run time. The
registry :data:`KINDS` names each kind's class as ``"module:Class"``, imported only when a
template of that kind is read or used, so that a kind's provider (docker, cncf-kubernetes) is
imported only by the flows that use it. A new kind is one module and one entry here (see
``computes.base`` for what the module provides).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flow_airflow.computes.base import Compute

DEFAULT = "local"
# kind -> "module:Class" of its Compute subclass
KINDS: dict[str, str] = {
    "local": "flow_airflow.computes.local:LocalCompute",
    "docker": "flow_airflow.computes.docker:DockerCompute",
    "kubernetes": "flow_airflow.computes.kubernetes:KubernetesCompute",
}


class UnknownKind(ValueError):
    """A compute kind that is not in the registry; the message names the kinds there are."""


@functools.cache
def compute_class(kind: str) -> type[Compute]:
    """The class of ``kind``, imported now; :class:`UnknownKind` naming the kinds when there is none."""
    where = KINDS.get(kind)
    if where is None:
        raise UnknownKind(f"there is no compute of kind '{kind}': the kinds are {', '.join(sorted(KINDS))}")
    module, name = where.split(":")
    return getattr(importlib.import_module(module), name)


def templates() -> dict[str, dict[str, Any]]:
    """Compute templates by name (``[flow_airflow] computes``, JSON): ``{"gpu": {"kind": "local"}}``.

    The template ``local`` (a subprocess on the worker) always exists. Each template of a kind in
    :data:`KINDS` is checked against its kind's ``Settings`` (that kind's module is imported); one of
    another kind is kept as it is (:func:`choose` skips it with a note).

    :raises flow_airflow.settings.SettingError: a template its kind refuses (its key and mistake).
    """
    from pydantic import ValidationError

    from flow_airflow import settings

    configured: dict[str, dict[str, Any]] = settings.value("computes")
    for name, template in configured.items():
        kind = template.get("kind", DEFAULT)
        if kind not in KINDS:
            continue
        model = compute_class(kind).Settings
        try:
            model.model_validate({"kind": kind, **template})
        except ValidationError as e:
            raise settings.template_error(name, kind, e, model) from None
    return {DEFAULT: {"kind": DEFAULT}, **configured}


def create(choice: Mapping[str, Any]) -> Compute:
    """A compute for one experiment, from the choice the build handed over (``{"name", "kind", "settings"}``)."""
    kind = choice.get("kind", DEFAULT)
    settings = choice.get("settings") or {"kind": kind}
    return compute_class(kind)(choice.get("name") or kind, {"kind": kind, **settings})


@dataclass(frozen=True)
class ComputeChoice:
    """The template a task runs on, and what was skipped on the way."""

    name: str
    kind: str
    settings: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def compute(self) -> Compute:
        """An instance of its kind (imports the kind's module)."""
        return create({"name": self.name, "kind": self.kind, "settings": self.settings})


def choose(requested: list[str], templates: dict[str, dict[str, Any]]) -> ComputeChoice:
    """The first configured template of ``requested``; the default one when none is.

    A template of a kind that is not in :data:`KINDS` is skipped with a note.
    """
    notes = []
    for name in requested:
        template = templates.get(name)
        if template is None:
            notes.append(f"compute template '{name}' is not configured here; skipped")
            continue
        kind = template.get("kind", "local")
        if kind not in KINDS:
            notes.append(f"compute template '{name}' is of kind '{kind}', which is not supported yet; skipped")
            continue
        return ComputeChoice(name, kind, template, tuple(notes))
    if requested:
        notes.append(f"none of {', '.join(requested)} is configured: running on the default compute '{DEFAULT}'")
    return ComputeChoice(
        DEFAULT, templates.get(DEFAULT, {}).get("kind", "local"), templates.get(DEFAULT, {}), tuple(notes)
    )
