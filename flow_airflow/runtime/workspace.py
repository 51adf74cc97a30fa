"""An experiment's working directory: a fresh copy of the project, and what it leaves behind.

cnvrg's layout (spec, "Task Environment Creation" and "Artifacts Flow"): the project at
``/cnvrg``, each parent's end state at ``/input/<task>/``. On the local compute the working
directory plays ``/cnvrg`` and holds ``input/<task>/`` itself.

Links are copied as links, never followed: a link that points out of the working directory
is not passed on to the next tasks (the log says so), at any depth, the output folder included.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from flow_airflow.computes.base import DATA, INPUT

# Left out of the project copy, at the top level only: what earlier local runs left behind.
LEFT_OUT = frozenset({"input", "output", ".venv", "__pycache__", ".git"})
PACKAGES = ".cnvrg_packages"  # requirements.txt is installed here
# What flow-airflow itself puts into a working directory: never part of an experiment's end state.
RUNTIME_FOLDERS = frozenset({INPUT, PACKAGES, DATA})  # DATA: cnvrg's /data/<dataset>

Snapshot = dict[str, tuple[object, ...]]  # relative path -> what identifies its content
Warn = Callable[[str], None]


class WorkspaceError(Exception):
    """The project folder cannot be copied (a named pipe, an unreadable file): the message says which."""


def folder_name(name: str, what: str) -> str:
    """``name`` (a DAG id, run id, task slug) as one folder name: a character other than a letter, a digit or
    ``-_.+`` becomes ``_``.

    :param name: the id.
    :param what: what it is, for the error ("run id").
    :raises ValueError: the name is empty, ``.`` or ``..``: a path made of it would leave its folder.
    """
    safe = "".join(c if c.isalnum() or c in "-_.+" else "_" for c in name)
    if safe in ("", ".", ".."):
        raise ValueError(f"the {what} {name!r} cannot name a folder (it would leave its parent folder)")
    return safe


def _ignore_top_level(top: str) -> Callable[[str, list[str]], set[str]]:
    def ignore(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if n in LEFT_OUT} if folder == top else set()

    return ignore


def create(root: Path, project: Path) -> Path:
    """Make ``root`` a fresh copy of ``project`` (replacing what a previous try left).

    Only the top-level ``input``, ``output``, ``.venv``, ``__pycache__`` and ``.git`` are left
    out; folders of those names deeper in the project are copied. Links stay links.
    """
    if root.exists():
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    if not project.is_dir():
        root.mkdir()
        return root
    try:
        shutil.copytree(project, root, ignore=_ignore_top_level(str(project)), symlinks=True)
    except shutil.Error as e:
        listed = e.args[0] if e.args and isinstance(e.args[0], list) else []
        problems = [f"{src}: {why}" for src, _, why in listed] or [str(e)]
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise WorkspaceError(f"cannot copy the project folder {project}: {'; '.join(problems[:3])}{more}") from None
    return root


def inside(root: Path, relative: str) -> Path:
    """``root / relative``, refusing a path that leaves ``root``."""
    path = (root / relative).resolve()
    if path != root.resolve() and root.resolve() not in path.parents:
        raise ValueError(f"'{relative}' is outside the working directory")
    return path


def _walk(
    root: Path, start: Path, skip: frozenset[str] = RUNTIME_FOLDERS
) -> Iterator[tuple[str, os.DirEntry[str], os.stat_result]]:
    """(path relative to ``root``, entry, lstat) below ``start``; links not followed, ``skip`` left out at the top.

    Iterative, so that the depth of a folder tree never meets Python's recursion limit.
    """
    stack = [start]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if folder == root and entry.name in skip:
                    continue
                info = entry.stat(follow_symlinks=False)
                yield Path(entry.path).relative_to(root).as_posix(), entry, info
                if stat.S_ISDIR(info.st_mode):
                    stack.append(Path(entry.path))


def _identity(path: str, info: os.stat_result) -> tuple[object, ...]:
    if stat.S_ISLNK(info.st_mode):
        return ("link", os.readlink(path))
    if stat.S_ISDIR(info.st_mode):
        return ("dir",)
    # ctime cannot be set by a program: any write (or touch) after the snapshot changes it
    return ("file", info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def snapshot(root: Path) -> Snapshot:
    """What the working directory holds before the experiment runs (to find what it changed)."""
    return {rel: _identity(entry.path, info) for rel, entry, info in _walk(root, root)}


def _links_into(path: Path, root: Path) -> bool:
    """Whether some folder on the way from ``root`` to ``path`` (or ``path`` itself) is a link."""
    current = root
    for part in path.relative_to(root).parts:
        current = current / part
        if current.is_symlink():
            return True
    return False


def save_end_state(
    workdir: Path, target: Path, *, baseline: Snapshot | None, only: str | None, warn: Warn
) -> int:
    """Copy the experiment's end state from ``workdir`` into ``target`` (created), relative paths kept.

    ``only``: the output folder (a project connected to Git passes only it on). ``baseline``:
    the snapshot taken before the run; files it holds unchanged are left out (the next task's
    copy of the project has them). A link is kept, as a relative link, only when it points
    inside the working directory. Returns how many entries were copied.
    """
    target.mkdir(parents=True)
    root = workdir.resolve()
    start = root / only if only else root
    if only and _links_into(start, root):
        warn(f"the output folder '{only}' is a link (or lies below one): nothing of it is passed on")
        return 0
    if not start.is_dir():
        return 0
    if only:
        (target / only).mkdir(parents=True, exist_ok=True)
    copied = 0
    for rel, entry, info in _walk(root, start):
        if baseline is not None and baseline.get(rel) == _identity(entry.path, info):
            continue
        dest = target / rel
        if stat.S_ISLNK(info.st_mode):
            if not _copy_link(rel, Path(entry.path), dest, root, warn):
                continue
        elif stat.S_ISDIR(info.st_mode):
            dest.mkdir(parents=True, exist_ok=True)
        elif stat.S_ISREG(info.st_mode):
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(entry.path, dest, follow_symlinks=False)
        else:
            warn(f"'{rel}' is not a file, a folder or a link: not passed on")
            continue
        copied += 1
    return copied


def _copy_link(rel: str, link: Path, dest: Path, root: Path, warn: Warn) -> bool:
    """Copy ``link`` as a relative link when it points inside ``root``; else warn and return False."""
    try:
        pointed = link.resolve()
    except (OSError, RuntimeError):  # a loop of links
        warn(f"'{rel}' is a link that leads nowhere (a loop): not passed on")
        return False
    if pointed != root and root not in pointed.parents:
        warn(f"'{rel}' is a link to {os.readlink(link)}, outside the working directory: not passed on")
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.symlink_to(os.path.relpath(pointed, link.parent))
    return True


def copy_project(source: Path, target: Path, *, left_out: frozenset[str] = LEFT_OUT) -> list[str]:
    """Copy a project folder for ``flow-airflow import``: links as links, nothing followed.

    ``target`` must not exist; on any failure nothing of it is left. Returns the links that
    point outside ``source`` (copied as they are, for the caller to report).
    """
    outside: list[str] = []
    top = source.resolve()
    try:
        shutil.copytree(source, target, ignore=_ignore_top_level(str(source)), symlinks=True)
        for rel, entry, info in _walk(target, target, frozenset()):
            if stat.S_ISLNK(info.st_mode):
                pointed = Path(os.path.normpath(top / Path(rel).parent / os.readlink(entry.path)))
                if pointed != top and top not in pointed.parents:
                    outside.append(f"{rel} -> {os.readlink(entry.path)}")
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return outside
