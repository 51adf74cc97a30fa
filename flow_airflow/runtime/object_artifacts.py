"""End states kept on object storage (``s3://``, ``gs://``, ... through Airflow's ``ObjectStoragePath``).

An end state at ``<location>`` (``s3://<conn id>@bucket/prefix/<dag>/<run>/<task>/<index>``) is
its files as objects under ``<location>/`` (``output/model.json`` at ``<location>/output/model.json``)
and a manifest beside them, ``<location>.manifest.json``, listing every entry:

- a file: its size, SHA-256, mode and modification time (restored when staged);
- a folder: so that an empty one (an empty ``output/``) is staged too;
- a link: its target. Object storage has no links: a link is kept in the manifest only and made
  again, as a link, when staged (:mod:`~flow_airflow.runtime.workspace` keeps only relative links
  inside the working directory; one that would leave the staged folder is refused).

The manifest is written last, in one request: a reader stages only what it lists, so it never sees
half of an end state. Keys are the same on every try of an experiment: a retry writes its files over
the earlier try's (a file whose SHA-256 and size are already listed is not sent again; before any file
is replaced, the old manifest is removed, so a try that stops half-way leaves no manifest vouching for
objects it changed) and then removes the objects its own manifest does not list, so nothing is
stored twice. A staged file is
checked against its SHA-256: a file replaced meanwhile fails the staging instead of passing wrong data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

from flow_airflow.object_storage import check_usable, transfer

__all__ = ["ObjectArtifacts", "check_usable", "scan", "transfer"]

MANIFEST_SUFFIX = ".manifest.json"
VERSION = 1

log = logging.getLogger(__name__)

Entry = dict[str, Any]  # {"path", "type": "file"|"dir"|"link", ...}


class ObjectArtifacts:
    """Put, stage and list end states under one object-storage URL (its connection in the URL or ``conn_id``).

    :raises ValueError: no filesystem is installed for the URL's scheme, or its connection does not exist.
    """

    def __init__(self, url: str, conn_id: str | None = None, what: str = "the artifact store"):
        from airflow.sdk import ObjectStoragePath

        check_usable(url, conn_id, what)
        root = ObjectStoragePath(url, conn_id=conn_id)
        self.root = root
        self.text = url.rstrip("/")  # as given (``str(root)`` may lose a slash of ``s3://``)
        self.fs: AbstractFileSystem = root.fs
        self.base = root.path.rstrip("/")  # the filesystem's path of the root: "bucket/prefix"

    def url(self, relative: str) -> str:
        """The location of ``relative`` (below the root) as a URL naming its connection."""
        return f"{self.text}/{relative}"

    def _fs_path(self, location: str) -> str:
        root = self.text
        if location != root and not location.startswith(root + "/"):
            raise ValueError(f"{location} is not in the artifact store {root}")
        return self.base + location[len(root):]

    def put(self, save: Callable[[Path], object], location: str) -> str:
        """Keep what ``save(folder)`` writes into a fresh local ``folder`` at ``location``; return it."""
        where = self._fs_path(location)
        with tempfile.TemporaryDirectory(prefix="flow-airflow-put-") as scratch:
            folder = Path(scratch) / "state"
            save(folder)
            entries = scan(folder)
            before = {e["path"]: e for e in self._manifest(where) or []}
            sent = [(str(folder / e["path"]), f"{where}/{e['path']}") for e in entries
                    if e["type"] == "file" and not _same_file(before.get(e["path"]), e)]
            if before and sent:  # from now on its objects change: the old manifest would vouch for them
                self.fs.rm_file(where + MANIFEST_SUFFIX)
            transfer(self.fs, "put_file", sent)
            manifest = {"version": VERSION, "entries": entries}
            self.fs.pipe_file(where + MANIFEST_SUFFIX, json.dumps(manifest, indent=1).encode())
        stale = self._stale(where, {e["path"] for e in entries if e["type"] == "file"})
        if stale:
            self.fs.rm(stale)
        files = sum(e["type"] == "file" for e in entries)
        log.info("stored %d file(s) at %s (%d sent, %d already there, %d stale removed)",
                 files, location, len(sent), files - len(sent), len(stale))
        return location

    def get(self, location: str, folder: Path) -> None:
        """Stage the end state at ``location`` into ``folder`` (created; must not exist). Links become links.

        :raises FileNotFoundError: nothing is kept there (no manifest).
        :raises ValueError: a file changed while staged, or an entry would leave ``folder``.
        """
        where = self._fs_path(location)
        entries = self._manifest(where)
        if entries is None:
            raise FileNotFoundError(f"the artifacts of an upstream experiment are missing: {location}")
        folder.mkdir(parents=True)
        files = _lay_out(folder, entries, location)
        try:
            transfer(self.fs, "get_file", [(f"{where}/{e['path']}", str(path)) for e, path in files])
        except FileNotFoundError as e:
            missing = str(e.filename)[len(where) + 1:]
            raise FileNotFoundError(f"the artifacts of an upstream experiment are incomplete: {location}/"
                                    f"{missing} is missing") from None
        for entry, path in files:
            if path.stat().st_size != entry["size"] or _sha256(path) != entry["sha256"]:
                raise ValueError(f"'{entry['path']}' of {location} changed while it was staged (the experiment "
                                 "was run again meanwhile?): stage it again")
            path.chmod(entry["mode"])
            os.utime(path, ns=(entry["mtime_ns"], entry["mtime_ns"]))

    def files(self, location: str) -> list[str]:
        """The relative paths of the files and links kept at ``location`` (sorted); [] when nothing is."""
        entries = self._manifest(self._fs_path(location)) or []
        return sorted(e["path"] for e in entries if e["type"] != "dir")

    def _manifest(self, where: str) -> list[Entry] | None:
        try:
            data = json.loads(self.fs.cat_file(where + MANIFEST_SUFFIX))
        except FileNotFoundError:
            return None
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ValueError(f"{where}{MANIFEST_SUFFIX} is not a flow-airflow manifest of version {VERSION}")
        return list(data["entries"])

    def _stale(self, where: str, kept: set[str]) -> list[str]:
        """Objects under ``where/`` that ``kept`` (relative paths) does not list: an earlier try's."""
        self.fs.invalidate_cache(where)
        try:
            found = self.fs.find(where + "/")
        except FileNotFoundError:
            return []
        prefix = where + "/"
        return [p for p in found if p.startswith(prefix) and p[len(prefix):] not in kept]


def scan(folder: Path) -> list[Entry]:
    """The manifest's entries of a saved end state: files, folders and links, relative paths, sorted."""
    entries: list[Entry] = []
    for current, dirs, names in os.walk(folder):
        for name in sorted(dirs + names):
            path = Path(current) / name
            rel = path.relative_to(folder).as_posix()
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                entries.append({"path": rel, "type": "link", "target": os.readlink(path)})
            elif stat.S_ISDIR(info.st_mode):
                entries.append({"path": rel, "type": "dir"})
            elif stat.S_ISREG(info.st_mode):
                entries.append({"path": rel, "type": "file", "size": info.st_size, "sha256": _sha256(path),
                                "mode": stat.S_IMODE(info.st_mode), "mtime_ns": info.st_mtime_ns})
    return sorted(entries, key=lambda e: e["path"])


def _same_file(before: Entry | None, now: Entry) -> bool:
    return bool(before) and before["type"] == "file" and (before["size"], before["sha256"]) == (
        now["size"], now["sha256"])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _inside(folder: Path, rel: str, *, link: bool = False) -> Path:
    """``folder / rel``, refusing a path that leaves ``folder`` (``folder`` itself only as a ``link`` target)."""
    normal = posixpath.normpath(rel)
    if posixpath.isabs(normal) or normal == ".." or normal.startswith("../") or (normal == "." and not link):
        raise ValueError(f"the manifest names '{rel}', outside the end state")
    return folder / normal


def _lay_out(folder: Path, entries: list[Entry], location: str) -> list[tuple[Entry, Path]]:
    """Make the folders and links of a manifest in ``folder``: the files to fetch, with their paths.

    Folders first, links last (so that no file is ever written through a link); each checked to stay
    inside ``folder`` (a manifest is data read from a bucket).
    """
    files: list[tuple[Entry, Path]] = []
    order = {"dir": 0, "file": 1, "link": 2}
    for entry in sorted(entries, key=lambda e: (order.get(e["type"], 3), e["path"])):
        path = _inside(folder, entry["path"])
        if entry["type"] == "dir":
            path.mkdir(parents=True, exist_ok=True)
        elif entry["type"] == "file":
            path.parent.mkdir(parents=True, exist_ok=True)
            files.append((entry, path))
        elif entry["type"] == "link":
            _inside(folder, posixpath.join(posixpath.dirname(entry["path"]), entry["target"]), link=True)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.symlink_to(entry["target"])
        else:
            raise ValueError(f"the manifest of {location} has an entry of unknown type: {entry!r}")
    return files
