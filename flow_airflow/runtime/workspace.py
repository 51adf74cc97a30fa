"""An experiment's working directory: a fresh copy of the project, with its inputs staged."""

from __future__ import annotations

import shutil
from pathlib import Path

# Not part of the project copy: what earlier local runs left behind.
_IGNORE = shutil.ignore_patterns("__pycache__", ".git", "input", "output", ".venv", "*.pyc")


def create(root: Path, project: Path) -> Path:
    """Make ``root`` a fresh copy of ``project`` (replacing what a previous try left)."""
    if root.exists():
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    if project.is_dir():
        shutil.copytree(project, root, ignore=_IGNORE, symlinks=True)
    else:
        root.mkdir()
    return root


def inside(root: Path, relative: str) -> Path:
    """``root / relative``, refusing a path that leaves ``root``."""
    path = (root / relative).resolve()
    if path != root.resolve() and root.resolve() not in path.parents:
        raise ValueError(f"'{relative}' is outside the working directory")
    return path
