"""cnvrg's absolute paths, where a compute's layout puts them (``computes.base.Layout``).

In a cnvrg container the project is at ``/cnvrg``, each parent's end state at
``/input/<task>/`` and a dataset at ``/data/<dataset>/`` (spec, "Task Environment
Creation", "Artifacts Flow", "Data Tasks"). Published flows name them in params and commands
(``--filename=/input/prepare/ratings.csv``). On the local compute these paths mean the
experiment's own folders: flow-airflow maps them where the flow names them (the command
line, the start of a param value, the ``CNVRG_*`` variables made of params and tags).
A path built inside a script (``open("/input/" + name)``) cannot be mapped: scripts read
``INPUT_<TASK>`` or the relative ``input/<task>`` for that.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path, PurePath

ROOTS = ("/cnvrg", "/input", "/data")
_WORD_START = r"(?:(?<=^)|(?<=[\s=:'\"(,;|&<>]))"
_SHELL_PATH = re.compile(_WORD_START + r"(?P<root>/cnvrg|/input|/data)(?=/|$|[\s'\";|&)<>,:])")
_INPUT = re.compile(_WORD_START + r"/input/(?P<folder>[^/\s'\";|&)<>,:]+)(?P<rest>/[^\s'\";|&)<>,]*)?")
_DATA = re.compile(_WORD_START + r"/data/(?P<name>[^/\s'\";|&)<>,:]+)")
_PLAIN = re.compile(r"[A-Za-z0-9_./+@%-]+")


def local_paths(workdir: Path, data: Path) -> dict[str, Path]:
    """What cnvrg's absolute roots mean for one experiment on the local compute."""
    return {"/cnvrg": workdir, "/input": workdir / "input", "/data": data}


def map_path(value: str, paths: Mapping[str, PurePath]) -> str:
    """``/input/prepare/a.csv`` -> ``<workdir>/input/prepare/a.csv``; other values unchanged."""
    for root, local in paths.items():
        if value == root or value.startswith(root + "/"):
            return str(local) + value[len(root) :]
    return value


def map_command(command: str, paths: Mapping[str, PurePath]) -> str | None:
    """The shell line with cnvrg's absolute paths mapped (where a word starts).

    None when a local folder's name would need shell quoting (the line is then left as is).
    """
    if not all(_PLAIN.fullmatch(str(p)) for p in paths.values()):
        return None
    return _SHELL_PATH.sub(lambda m: str(paths[m["root"]]), command)


def names_roots(text: str) -> bool:
    return _SHELL_PATH.search(text) is not None


def input_references(text: str) -> list[tuple[str, str]]:
    """The ``(folder, rest)`` of each ``/input/<folder>/<rest>`` a command or value names."""
    return [(m["folder"], (m["rest"] or "").lstrip("/")) for m in _INPUT.finditer(text)]


def plan_notes(script: str, values: list[str], parent_folders: list[str], single_mode: bool,
               datasets: list[str] | None = None) -> list[str]:
    """Why the ``/input`` and ``/data`` paths a task names cannot work (for ``flow-airflow plan``); [] when they can.

    ``datasets``: those of the data tasks before it (``/data/<name>``). What a compute does not
    provide is its own ``plan_notes``.
    """
    notes = []
    texts = [script, *values]
    for folder in sorted({f for text in texts for f, _ in input_references(text)}):
        if single_mode:
            notes.append(f"it names /input/{folder}, but a task in single mode receives no inputs")
        elif folder not in parent_folders and re.sub(r"_\d+$", "", folder) not in parent_folders:
            have = ", ".join(f"/input/{f}" for f in parent_folders) or "none"
            notes.append(f"it names /input/{folder}, which no parent task fills (its inputs: {have})")
    given = [] if single_mode else (datasets or [])
    for name in sorted({m["name"] for text in texts for m in _DATA.finditer(text)} - set(given)):
        have = ", ".join(f"/data/{d}" for d in given) or "none"
        notes.append(f"it names /data/{name}, which no data task before it gives (its datasets: {have})")
    return notes
