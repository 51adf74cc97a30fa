"""Where the dataset store keeps its files: a local folder, or object storage (``s3://<conn id>@bucket/prefix``).

The store (:mod:`flow_airflow.datasets.store`) speaks to one :class:`Place` in relative keys
(``iris/commits/<commit>.json``, ``objects/ab/<sha256>``): a :class:`FolderPlace` keeps each key as a
file under a folder, an :class:`ObjectPlace` as an object under a URL that Airflow's
``ObjectStoragePath`` opens, as the artifact store's (:mod:`flow_airflow.object_storage`: the same URL
parsing, connection check and concurrent transfers).

Every key is written whole, once (a reader never sees half of it): keys that can change are avoided
by the store's layout, so that no lock is needed on object storage (which has none); a local folder
also takes a lock per dataset (:meth:`Place.locked`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from flow_airflow.object_storage import check_usable, is_url, local_path, transfer

#: Where a folder place writes a key before renaming it into place (one folder: cheap to sweep).
INCOMING = ".incoming"
#: Seconds after which an unlocked file in :data:`INCOMING` is a dead writer's.
STALE_SECONDS = 60.0


class DatasetError(ValueError):
    """A dataset, commit, name or query that does not exist or cannot be made; the message says why."""


class Place:
    """Keys under one root; see the module docstring. ``where``: the root as the user named it."""

    where: str

    def read(self, key: str) -> bytes | None:
        """The key's content; None when there is no such key."""
        raise NotImplementedError

    def write(self, key: str, data: bytes) -> None:
        """Write the key whole (a reader sees the old content or the new, never half)."""
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def children(self, key: str) -> list[str]:
        """The names directly under the folder ``key`` ("" for the root), sorted; [] when there is none."""
        raise NotImplementedError

    def upload(self, file: Path, key: str) -> None:
        """Keep a local file's content at ``key``, whole."""
        raise NotImplementedError

    def download(self, pairs: list[tuple[str, Path]]) -> None:
        """Copy each key to its local path (its folder exists). :raises FileNotFoundError: a key is missing."""
        raise NotImplementedError

    @contextlib.contextmanager
    def locked(self, dataset: str) -> Iterator[None]:
        """Hold the dataset's lock where the place has locks (a local folder); else nothing."""
        yield

    def sweep(self) -> list[str]:
        """Remove what writers that died left behind (a folder's half-written files); what was removed.
        Object storage has none: an object is whole or absent."""
        return []


class FolderPlace(Place):
    """Keys as files under a local folder."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.where = str(self.root)

    def _path(self, key: str) -> Path:
        """The file of ``key``; :class:`DatasetError` when it leads out of the root (``..``, a link put there)."""
        path = self.root / key
        real, root = os.path.realpath(path), os.path.realpath(self.root)
        if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
            raise DatasetError(f"'{key}' leads out of the dataset store {self.root} (to {real}): "
                               "the store was changed by hand")
        return path

    def read(self, key: str) -> bytes | None:
        path = self._path(key)
        return path.read_bytes() if path.is_file() else None

    def write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._incoming() as (f, tmp):
            f.write(data)
            f.flush()
            os.replace(tmp, path)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def children(self, key: str) -> list[str]:
        folder = self._path(key)
        return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []

    def upload(self, file: Path, key: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with self._incoming() as (f, tmp), open(file, "rb") as source:
            shutil.copyfileobj(source, f, 1 << 20)
            f.flush()
            os.replace(tmp, target)

    @contextlib.contextmanager
    def _incoming(self) -> Iterator[tuple[IO[bytes], str]]:
        """A new file in ``<root>/.incoming/`` to write a key into before it is renamed into place, locked
        (``flock``) by this process while it is written; removed if it was not renamed."""
        folder = self._path(INCOMING)
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                yield f, tmp
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def sweep(self) -> list[str]:
        """Remove what writers that died left in ``<root>/.incoming/``: files no process holds locked,
        older than :data:`STALE_SECONDS` (a file just made may not be locked yet). What was removed."""
        folder = self._path(INCOMING)
        removed = []
        for entry in os.scandir(folder) if folder.is_dir() else ():
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime > time.time() - STALE_SECONDS:
                    continue
                with open(entry.path, "rb") as f:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: its writer lives
                    os.unlink(entry.path)
                    removed.append(entry.name)
        return removed

    def download(self, pairs: list[tuple[str, Path]]) -> None:
        for key, path in pairs:
            shutil.copyfile(self._path(key), path)

    @contextlib.contextmanager
    def locked(self, dataset: str) -> Iterator[None]:
        folder = self._path(dataset)
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


class ObjectPlace(Place):
    """Keys as objects under an object-storage URL (its connection named in it: ``s3://<conn id>@bucket/prefix``).

    :raises ValueError: no filesystem is installed for the URL's scheme, or its connection cannot be read.
    """

    def __init__(self, url: str):
        from airflow.sdk import ObjectStoragePath

        check_usable(url, what="the dataset store")
        root = ObjectStoragePath(url)
        self.fs = root.fs
        self.base = root.path.rstrip("/")  # the filesystem's path of the root: "bucket/prefix"
        self.where = url.rstrip("/")

    def _path(self, key: str) -> str:
        return f"{self.base}/{key}" if key else self.base

    def read(self, key: str) -> bytes | None:
        try:
            return self.fs.cat_file(self._path(key))
        except FileNotFoundError:
            return None

    def write(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(self._path(key), data)

    def exists(self, key: str) -> bool:
        try:
            self.fs.info(self._path(key))
        except FileNotFoundError:
            return False
        return True

    def children(self, key: str) -> list[str]:
        path = self._path(key).rstrip("/")
        self.fs.invalidate_cache(path)  # another process (a push) may have added keys since
        try:
            found = self.fs.ls(path, detail=False)
        except FileNotFoundError:
            return []
        return sorted({str(p).rstrip("/").rpartition("/")[2] for p in found} - {""})

    def upload(self, file: Path, key: str) -> None:
        transfer(self.fs, "put_file", [(str(file), self._path(key))])

    def download(self, pairs: list[tuple[str, Path]]) -> None:
        transfer(self.fs, "get_file", [(self._path(key), str(path)) for key, path in pairs])


def open_place(root: Path | str) -> Place:
    """The place of ``root``: a folder (a path, a ``file://`` URL) or object storage (another URL)."""
    if isinstance(root, str) and is_url(root):
        return ObjectPlace(root)
    return FolderPlace(local_path(str(root)))
