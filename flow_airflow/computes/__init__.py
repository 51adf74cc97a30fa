"""Computes: where an experiment's command runs, and an endpoint's replicas. One folder per kind.

Choosing a compute happens at compile time (``plan`` shows it) and again at run time. Each kind is a
folder beside this module (``local/``, ``docker/``, ``kubernetes/``) holding its
:class:`~flow_airflow.computes.base.Compute` (``compute.py``: the experiments of exec and data tasks)
and its :class:`~flow_airflow.computes.replicas.Replicas` (``replicas.py``: the endpoint of a deploy
task), and one entry in :data:`KINDS` naming both. Each is imported only when a template of its kind
is read or used, so that a kind's provider (docker, cncf-kubernetes) is imported only by the flows
that use it. What kinds share: ``computes.base`` (the launch, its layout, the SDK's place on the
worker and in a container, output lines cut to a limit) and ``computes.replicas``.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flow_airflow.computes.base import Compute
    from flow_airflow.computes.replicas import Replicas


@dataclass(frozen=True)
class Kind:
    """Where a compute kind's two classes are, each as ``"module:Class"`` (imported only when used)."""

    compute: str  # its Compute: runs the experiments of exec and data tasks (``computes/<kind>/compute.py``)
    replicas: str  # its Replicas: runs an endpoint's replicas, for deploy tasks (``computes/<kind>/replicas.py``)


DEFAULT = "local"
KINDS: dict[str, Kind] = {
    "local": Kind("flow_airflow.computes.local.compute:LocalCompute",
                  "flow_airflow.computes.local.replicas:LocalReplicas"),
    "docker": Kind("flow_airflow.computes.docker.compute:DockerCompute",
                   "flow_airflow.computes.docker.replicas:DockerReplicas"),
    "kubernetes": Kind("flow_airflow.computes.kubernetes.compute:KubernetesCompute",
                       "flow_airflow.computes.kubernetes.replicas:KubernetesReplicas"),
}


class UnknownKind(ValueError):
    """A compute kind that is not in the registry; the message names the kinds there are."""


def _load(kind: str, role: str) -> Any:
    found = KINDS.get(kind)
    if found is None:
        raise UnknownKind(f"there is no compute of kind '{kind}': the kinds are {', '.join(sorted(KINDS))}")
    module, name = getattr(found, role).split(":")
    return getattr(importlib.import_module(module), name)


@functools.cache
def compute_class(kind: str) -> type[Compute]:
    """The compute class of ``kind``, imported now; :class:`UnknownKind` naming the kinds when there is none."""
    return _load(kind, "compute")


@functools.cache
def replicas_class(kind: str) -> type[Replicas]:
    """The replicas class of ``kind``, imported now; :class:`UnknownKind` naming the kinds when there is none."""
    return _load(kind, "replicas")


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


def replicas_on(choice: Mapping[str, Any], folder: Path) -> Replicas:
    """The replicas, on the compute ``choice`` (``{"name", "kind", "settings"}``, as a version keeps it), of
    the endpoint whose folder in the endpoint store is ``folder``.

    :raises UnknownKind: a kind not in :data:`KINDS` (a version deployed where it was one).
    """
    return replicas_class(choice.get("kind", DEFAULT))(folder, choice)


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
            notes.append(f"compute template '{name}' is of kind '{kind}', which no compute here runs (kinds: "
                         f"{', '.join(KINDS)}); skipped")
            continue
        return ComputeChoice(name, kind, template, tuple(notes))
    if requested:
        notes.append(f"none of {', '.join(requested)} is configured: running on the default compute '{DEFAULT}'")
    return ComputeChoice(
        DEFAULT, templates.get(DEFAULT, {}).get("kind", "local"), templates.get(DEFAULT, {}), tuple(notes)
    )
