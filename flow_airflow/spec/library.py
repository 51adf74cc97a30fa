"""AI Library components: the folders a task's ``library: <slug>`` names, found and merged into the task.

A component is a folder holding a ``library.yaml`` beside its code (``requirements.txt``,
``prerun.sh``, scripts), as cnvrg publishes them (220 of them in 34 public repositories; a blueprint
repository holds its components beside its flow files). Its keys, as published: ``title``,
``version``, ``command``, ``image``, ``language``, ``requirements`` (cpu/memory/gpu/hpu), ``kind:
webservice`` for a deploy component, and ``arguments``: a list of params (``{key, type, values}``)
for an exec component, a mapping of the deploy keys (``file_name``, ``function_name``,
``prep_file``, ``prep_function``, ``accept_files``, ``input_example``, ``input_schema``,
``output_schema``) for a deploy component. The rest (``description``, ``icon``, ``author``,
``tags``, ...) only describes it.

**Which component.** ``library: <slug>`` means the component whose ``title`` slugs to it
(:func:`slug_of`: ``Churn Data Preprocess`` -> ``churn-data-preprocess``; the folder's name does
not matter), at ``library_version``; when that is absent, its highest version. Components are
looked for in the flow's own folder first, then in the folders of ``[flow_airflow]
library_folders`` in their order; the first place that has the slug decides (:func:`find`).
Each place is searched :data:`MAX_DEPTH` folders deep, at most :data:`MAX_FOLDERS` folders,
skipping hidden ones: bounded, for the loader runs every 30 s.

**What the task takes from it** (:func:`fill`): the task's own keys win; the component fills
what the task leaves out (a key it has not, or leaves empty): ``command``, ``image``,
``language``, ``requirements``, its ``arguments`` as the task's ``params`` (a task's params, as
cnvrg's flow page writes them, are its whole list; an argument with ``values: []`` stays unset
until a run's conf gives it), and a deploy component's deploy keys and ``kind``. A component's
``conditions`` are not taken: a flow's conditions are the ones its file writes. At run time the task's
working directory is the project's files with the component's folder copied over them (cnvrg
clones the component into ``/cnvrg``), so its scripts, ``requirements.txt`` and ``prerun.sh``
are the ones that run.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flow_airflow.spec.errors import FlowError
from flow_airflow.spec.models import is_empty, scalar_text
from flow_airflow.spec.source import read_source, read_text

FILE = "library.yaml"
MAX_DEPTH = 3  # <place>/<a>/<b>/<c>/library.yaml is the deepest found
MAX_FOLDERS = 2000  # folders looked into, per place
MAX_BYTES = 1 << 18  # a library.yaml larger than this is refused
DEPLOY_KINDS = frozenset({"webservice", "webserver", "webserivce"})  # webserivce: a published file's spelling
DEPLOY_KEYS = ("file_name", "function_name", "prep_file", "prep_function", "accept_files", "input_example",
               "input_schema", "output_schema")
FILLED = ("image", "language", "requirements")  # taken from the component when the task leaves them out


def slug_of(title: str) -> str:
    """A component's slug, as cnvrg makes it of its title: lowercase, each space a hyphen."""
    return title.strip().replace(" ", "-").lower()


def version_order(version: str) -> tuple:
    """How versions sort: by their numbers (``1.10.0`` after ``1.9.2``), text after numbers."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in version.replace("-", ".").split("."))


@dataclass(frozen=True)
class Component:
    """One ``library.yaml`` and its folder.

    :param slug: what ``library:`` names (:func:`slug_of` of its title).
    :param version: its ``version`` as text (``""`` when it has none).
    :param folder: the folder holding it (absolute): copied into the task's working directory.
    :param data: the keys of its ``library.yaml``.
    :param digest: sha256 of its ``library.yaml`` text.
    """

    slug: str
    version: str
    folder: Path
    data: dict[str, Any] = field(hash=False, compare=False)
    digest: str = ""

    @property
    def title(self) -> str:
        return str(self.data.get("title", "")).strip()

    @property
    def is_deploy(self) -> bool:
        """A deploy (webservice) component: ``kind: webservice``, or deploy keys as its ``arguments``."""
        kind = str(self.data.get("kind") or "").strip().lower()
        return kind in DEPLOY_KINDS or isinstance(self.data.get("arguments"), dict)


@dataclass(frozen=True)
class Used:
    """A task's component, and the keys the task took from it (:func:`fill`: ``command``, ``image``, ``params`` ...)."""

    component: Component
    gave: tuple[str, ...] = ()


@dataclass(frozen=True)
class Broken:
    """A ``library.yaml`` that cannot be read as a component: where, and why."""

    file: Path
    problem: str


@dataclass
class Catalog:
    """The components of the places looked in, by slug then version, in the order the places come."""

    places: list[Path]
    found: dict[str, dict[str, Component]] = field(default_factory=dict)
    broken: list[Broken] = field(default_factory=list)
    #: each ``library.yaml`` read (path, size, mtime in ns): a plan made with the catalog is stale when
    #: :func:`signature_of` its places differs (:mod:`flow_airflow.plan.cache`)
    signature: tuple[tuple[str, int, int], ...] = ()

    def versions(self, slug: str) -> list[str]:
        """The versions of ``slug`` here, lowest first."""
        return sorted(self.found.get(slug, {}), key=version_order)

    def get(self, slug: str, version: str | None) -> Component | None:
        """The component ``slug`` at ``version`` (its highest when None); None when there is none."""
        versions = self.found.get(slug)
        if not versions:
            return None
        if version is None:
            return versions[self.versions(slug)[-1]]
        return versions.get(version)

    def is_near(self, slug: str) -> bool:
        """Whether ``slug`` is no component's but one is there of a near name, or of other versions."""
        return bool(self.versions(slug)) or bool(difflib.get_close_matches(slug, list(self.found), n=1, cutoff=0.6))


def places(project_dir: Path, folders: Sequence[Path] = ()) -> list[Path]:
    """Where components are looked for: the flow's folder, then ``folders`` (``[flow_airflow] library_folders``:
    :func:`flow_airflow.settings.library_folders`)."""
    return list(dict.fromkeys(p.expanduser().resolve() for p in [project_dir, *folders]))


def find(project_dir: Path, folders: Sequence[Path] = ()) -> Catalog:
    """The components a flow in ``project_dir`` can name (:func:`places`); the first place having a slug keeps
    it (a later place's versions of it are not taken)."""
    catalog = Catalog(places(project_dir, folders))
    read: list[tuple[str, int, int]] = []
    for place in catalog.places:
        of_place: dict[str, dict[str, Component]] = {}
        for file in _files(place):
            read.append((str(file), *_stat(file)))
            item = _read(file, *read[-1][1:])
            if isinstance(item, Broken):
                catalog.broken.append(item)
                continue
            previous = of_place.setdefault(item.slug, {}).setdefault(item.version, item)
            if previous is not item:
                catalog.broken.append(Broken(file, f"'{item.slug}' {item.version or '(no version)'} is also in "
                                                   f"{previous.folder}: that one is used"))
        for slug, versions in of_place.items():
            catalog.found.setdefault(slug, versions)
    catalog.signature = tuple(read)
    return catalog


def _stat(file: Path) -> tuple[int, int]:
    try:
        info = file.stat()
    except OSError:
        return -1, -1
    return info.st_size, info.st_mtime_ns


def signature_of(where: tuple[Path, ...]) -> tuple[tuple[str, int, int], ...]:
    """Each `library.yaml` below `where` (path, size, mtime in ns): what a catalog of those places was read from."""
    return tuple((str(f), *_stat(f)) for place in where for f in _files(place))


def _files(place: Path) -> list[Path]:
    """The ``library.yaml`` files below ``place`` (:data:`MAX_DEPTH`, :data:`MAX_FOLDERS`), in path order."""
    found: list[Path] = []
    folders = 0
    level = [place]
    for depth in range(MAX_DEPTH + 1):
        below: list[Path] = []
        for folder in level:
            folders += 1
            if folders > MAX_FOLDERS:
                return sorted(found)
            try:
                with os.scandir(folder) as entries:
                    for entry in entries:
                        if entry.name.startswith(".") or entry.name in ("__pycache__", "node_modules"):
                            continue
                        if entry.name == FILE and depth and entry.is_file(follow_symlinks=False):
                            found.append(Path(entry.path))
                        elif entry.is_dir(follow_symlinks=False):
                            below.append(Path(entry.path))
            except OSError:
                continue
        level = sorted(below)
    return sorted(found)


@functools.lru_cache(maxsize=1024)
def _read(file: Path, size: int, mtime: int) -> Component | Broken:
    """One ``library.yaml`` (cached by its size and time), as a :class:`Component` or why it is none."""
    if size > MAX_BYTES:
        return Broken(file, f"larger than {MAX_BYTES // 1024} KiB")
    try:  # as a flow file is read: bounded nesting and aliases, duplicate keys refused
        text = read_text(file)
        data = read_source(file, text).data
    except FlowError as e:
        first = e.issues[0] if e.issues else None
        where = f" (line {first.line})" if first and first.line else ""
        return Broken(file, f"is not valid YAML{where}: {first.message if first else e}")
    if not isinstance(data, dict) or not isinstance(data.get("title"), str) or not data["title"].strip():
        return Broken(file, "has no 'title': a component is named by the slug of its title")
    version = "" if is_empty(data.get("version")) else scalar_text(data["version"])
    return Component(slug_of(data["title"]), version, file.parent.resolve(), data,
                     hashlib.sha256(text.encode()).hexdigest())


def fill(task: dict[str, Any], component: Component) -> tuple[dict[str, Any], list[str]]:
    """The task's keys with what ``component`` gives where the task leaves a key out (the module's rules), and
    the keys that came from it.

    :param task: a task as written in the flow file (a mapping).
    """
    merged = dict(task)
    taken: list[str] = []

    def take(key: str, value: Any) -> None:
        if is_empty(merged.get(key)) and not is_empty(value):
            merged[key] = value
            taken.append(key)

    data = component.data
    if is_empty(task.get("input")) and is_empty(task.get("command")):
        take("command", data.get("command"))
    for key in FILLED:
        take(key, data.get(key))
    arguments = data.get("arguments")
    if task.get("type") == "deploy":
        take("kind", "webservice" if component.is_deploy else None)
        for key in DEPLOY_KEYS if isinstance(arguments, dict) else ():
            take(key, arguments.get(key))
    elif isinstance(arguments, list):
        take("params", [{k: v for k, v in a.items() if k in ("key", "type", "value", "values")}
                        for a in arguments if isinstance(a, dict)])
    return merged, taken
