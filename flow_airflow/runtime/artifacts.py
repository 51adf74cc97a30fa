"""The artifact store: where each experiment's end state is kept for the tasks after it.

One class, one place: a local folder (under the Airflow home by default) today; object
storage can replace it behind the same two methods. A kept end state is a folder laid out
as the experiment's working directory (``output/model.json`` stays ``output/model.json``);
an experiment record's ``output`` is its location. A failed experiment's end state is kept
too, for debugging, beside it under ``<index>.failed``: no task after it ever reads that one.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


class ArtifactStore:
    def __init__(self, root: Path):
        self.root = root

    def location(self, dag_id: str, run_id: str, task_slug: str, index: int, *, failed: bool = False) -> Path:
        """``<root>/<dag_id>/<run_id>/<task slug>/<index>`` (``<index>.failed`` for a failed experiment)."""
        safe_run = "".join(c if c.isalnum() or c in "-_.+" else "_" for c in run_id)
        return self.root / dag_id / safe_run / task_slug / (f"{index}.failed" if failed else str(index))

    def put(
        self,
        save: Callable[[Path], object],
        dag_id: str,
        run_id: str,
        task_slug: str,
        index: int,
        *,
        failed: bool = False,
    ) -> str:
        """Keep what ``save(folder)`` writes into a fresh ``folder``; return its location.

        The kept folder is replaced as a whole (a rename), so a reader never sees half of it.
        ``failed``: the end state of a failed experiment, kept apart (see :meth:`location`).
        """
        target = self.location(dag_id, run_id, task_slug, index, failed=failed)
        target.parent.mkdir(parents=True, exist_ok=True)
        fresh = Path(tempfile.mkdtemp(prefix=f".{index}.", dir=target.parent))
        try:
            save(fresh / "state")
            if target.exists():
                old = fresh / "old"
                target.rename(old)
            (fresh / "state").rename(target)
        finally:
            shutil.rmtree(fresh, ignore_errors=True)
        return str(target)

    def get(self, location: str, folder: Path) -> None:
        """Copy a kept end state into ``folder`` (created; must not exist). Links stay links."""
        source = Path(location)
        if not source.is_dir():
            raise FileNotFoundError(f"the artifacts of an upstream experiment are missing: {location}")
        shutil.copytree(source, folder, symlinks=True)
