"""The artifact store: where each experiment's end state is kept for the tasks after it.

One class, two kinds of place (``[flow_airflow] artifacts_folder``): a local folder (under the
Airflow home by default; ``file://`` URLs too), or object storage named by a URL that Airflow's
``ObjectStoragePath`` understands (``s3://<conn id>@bucket/prefix``: see
:mod:`~flow_airflow.runtime.object_artifacts`). A kept end state is laid out as the experiment's
working directory (``output/model.json`` stays ``output/model.json``); an experiment record's
``output`` is its location, a path or a URL. A failed experiment's end state is kept too, for
debugging, beside it under ``<index>.failed``: no task after it ever reads that one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from flow_airflow.object_storage import is_url, local_path
from flow_airflow.runtime.object_artifacts import ObjectArtifacts
from flow_airflow.runtime.workspace import folder_name

__all__ = ["ArtifactStore", "is_url", "local_path"]



class ArtifactStore:
    """The end states under ``root``: a local folder (:class:`~pathlib.Path`) or an object-storage URL (str)."""

    def __init__(self, root: Path | str):
        self.remote = ObjectArtifacts(root) if isinstance(root, str) and is_url(root) else None
        self.root: Path | str = root if self.remote else local_path(str(root))

    def location(self, dag_id: str, run_id: str, task_slug: str, index: int, *, failed: bool = False) -> Path | str:
        """``<root>/<dag_id>/<run_id>/<task slug>/<index>`` (``<index>.failed`` for a failed experiment).

        A :class:`~pathlib.Path` in a local folder, a URL on object storage.

        :raises ValueError: an id is empty, ``.`` or ``..`` (it would leave its folder).
        """
        parts = [folder_name(dag_id, "DAG id"), folder_name(run_id, "run id"), folder_name(task_slug, "task id")]
        relative = "/".join([*parts, f"{int(index)}.failed" if failed else str(int(index))])
        if self.remote:
            return self.remote.url(relative)
        assert isinstance(self.root, Path)
        return self.root / relative

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

        A reader never sees half of it: a local folder is replaced as a whole (a rename); on object
        storage the manifest is written last. Storing again at the same place (a retry) replaces it.
        ``failed``: the end state of a failed experiment, kept apart (see :meth:`location`).
        """
        target = self.location(dag_id, run_id, task_slug, index, failed=failed)
        if self.remote:
            return self.remote.put(save, str(target))
        assert isinstance(target, Path)
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
        """Copy a kept end state into ``folder`` (created; must not exist). Links stay links.

        ``location`` may be anywhere (a record's ``output``), not only under this store's root.
        """
        if is_url(location):
            ObjectArtifacts(location).get(location, folder)
            return
        source = local_path(location)
        if not source.is_dir():
            raise FileNotFoundError(f"the artifacts of an upstream experiment are missing: {location}")
        shutil.copytree(source, folder, symlinks=True)

    def files(self, location: str) -> list[str]:
        """The files and links kept at ``location``, as paths relative to it, sorted; [] when nothing is."""
        if is_url(location):
            return ObjectArtifacts(location).files(location)
        source = local_path(location)
        found = []
        for current, dirs, names in os.walk(source):
            for name in dirs + names:
                path = Path(current) / name
                if path.is_symlink() or not path.is_dir():
                    found.append(path.relative_to(source).as_posix())
        return sorted(found)
