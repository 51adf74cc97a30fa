"""The artifact store: where each experiment's output folder is kept for the tasks after it.

One class, one place: a local folder (under the Airflow home by default) today; object
storage can replace it behind the same two methods.
"""

from __future__ import annotations

import shutil
from pathlib import Path


class ArtifactStore:
    def __init__(self, root: Path):
        self.root = root

    def location(self, dag_id: str, run_id: str, task_slug: str, index: int) -> Path:
        safe_run = "".join(c if c.isalnum() or c in "-_.+" else "_" for c in run_id)
        return self.root / dag_id / safe_run / task_slug / str(index)

    def put(self, folder: Path, dag_id: str, run_id: str, task_slug: str, index: int) -> str:
        """Keep a copy of ``folder`` (which may not exist: then an empty output); return its location."""
        target = self.location(dag_id, run_id, task_slug, index)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        if folder.is_dir():
            shutil.copytree(folder, target, symlinks=True)
        else:
            target.mkdir()
        return str(target)

    def get(self, location: str, folder: Path) -> None:
        """Copy a kept output into ``folder`` (created; must not exist)."""
        source = Path(location)
        if not source.is_dir():
            raise FileNotFoundError(f"the artifacts of an upstream experiment are missing: {location}")
        shutil.copytree(source, folder, symlinks=True)
