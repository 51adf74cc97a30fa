"""The dataset store: versioned datasets, kept in one place (``[flow_airflow] datasets_folder``):
a folder (under the Airflow home by default), or object storage named by a URL of Airflow's
``ObjectStoragePath`` (``s3://<conn id>@bucket/prefix``), as the artifact store (:mod:`.places`).

A dataset has versions, called commits as in cnvrg: a commit is named by the hash of its content
(its files' paths, sizes and content hashes), so the same files always give the same commit and a
commit never changes. A commit may also carry names (``v1``); a name, once given, always means the
same commit. A dataset also has saved queries: a name and the file patterns it selects. The store
keeps every file once, by the hash of its content, whatever dataset or commit holds it::

    <root>/objects/<ab>/<sha256>             file contents
    <root>/<dataset>/commits/<commit>.json   {"files": {path: [sha256, size]}, "created": ...}
    <root>/<dataset>/log/<time>-<commit>.json one per new latest commit: {"commit", "created", "name"}
    <root>/<dataset>/names/<name>=<commit>   (empty) the name ``<name>`` means ``<commit>``
    <root>/<dataset>/queries.json            {"query name": ["*.csv", ...]}
    <cache>/<dataset>/<commit>/              read-only copies for ``use_cached: true`` (on the worker)

Every key but ``queries.json`` is written once and never changed, so object storage (which has no
locks) needs none: two pushes of one dataset at the same moment both land (a folder store also
takes a lock per dataset; on object storage, two saves of queries of one dataset at the same moment
keep the last). ``<cache>`` is on the worker: ``<root>/cache`` for a folder store, else
``[flow_airflow] datasets_cache_folder``.

Errors (:class:`DatasetError`) are in plain words and say what exists.
"""

from __future__ import annotations

import datetime
import fnmatch
import hashlib
import json
import os
import re
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flow_airflow.common.datasets import RESERVED, name_problem
from flow_airflow.datasets.places import DatasetError, FolderPlace, Place, open_place

COMMIT_LENGTH = 40
SHORT = 12
MIN_PREFIX = 6  # characters of a commit enough to name it, when they name only one


COMMIT = re.compile(f"[0-9a-f]{{{COMMIT_LENGTH}}}")
SHA256 = re.compile("[0-9a-f]{64}")


@dataclass(frozen=True)
class Selection:
    """A version of a dataset as a data task uses it: its commit and the files it selects."""

    dataset: str
    commit: str
    files: dict[str, tuple[str, int]]  # path -> (sha256, size), the query's selection when a query is used
    query: str | None = None
    names: list[str] = field(default_factory=list)

    @property
    def short(self) -> str:
        return self.commit[:SHORT]

    def describe(self) -> str:
        """``iris@3f2a9c1d0e4b (v1), 2 files`` (``, query 'csv'`` when a query selected them)."""
        names = f" ({', '.join(self.names)})" if self.names else ""
        query = f", query '{self.query}'" if self.query else ""
        return f"{self.dataset}@{self.short}{names}{query}, {len(self.files)} file(s)"


class DatasetStore:
    """The datasets kept under ``root``: a folder (a path) or an object-storage URL.

    ``cache``: the worker's folder of read-only copies (``use_cached``); ``<root>/cache`` by default
    for a folder store; ``cache_bound``: the bytes they may hold (least recently used evicted first).
    :raises ValueError: an object-storage URL that cannot be used (no filesystem for its scheme, its
    connection cannot be read).
    """

    def __init__(self, root: Path | str, cache: Path | None = None, cache_bound: int | None = None):
        self.place: Place = open_place(root)
        self.root: Path | str = self.place.root if isinstance(self.place, FolderPlace) else self.place.where
        if cache is None:
            if not isinstance(self.place, FolderPlace):
                raise ValueError(f"the dataset store {root} is on object storage: it needs a cache folder on "
                                 "the worker")
            cache = self.place.root / "cache"
        self.cache = Path(cache)
        self.cache_bound = cache_bound  # bytes the worker's copies may hold (None: no bound)
        self.evicted: list[str] = []  # the copies the last ``cached`` evicted

    # --- writing ---------------------------------------------------------------------------------

    def push(self, dataset: str, folder: Path, name: str | None = None,
             announce: Callable[[str, list[str]], object] | None = None, base: str | None = None) -> tuple[str, bool]:
        """Keep ``folder``'s files as a commit of ``dataset`` (made when new): ``(commit, whether new)``.

        Nothing is written when the dataset already has this content (but ``name``, when it is a new
        name of that commit); the latest commit is the last new one. Links and other non-files are
        refused. Raises :class:`DatasetError`.

        All or nothing: a version exists once its log entry does, written last (after its files and
        its commit, and after ``announce(commit, names)``, the Airflow asset event): a push killed
        before that left no version, and pushing the same content again completes it (announcing it
        again, so an event may come twice, never not at all). What killed writers left half-written
        in a folder store is removed by the next push (:meth:`Place.sweep`).

        :param dataset: the dataset's name.
        :param folder: the folder whose files are the version.
        :param name: a version name for it (``v2``), optional.
        :param announce: called with the commit and its new names once the commit is kept, before it
            is made the latest: the asset event of the new version.
        :param base: a commit of ``dataset`` whose files the version also holds, where ``folder`` has none of
            the same path (cnvrgv2's ``put_files``: the files put, added to the latest version's).
        """
        _check_name(dataset, "dataset")
        if name is not None:
            _check_name(name, "version name")
        folder = Path(folder)
        if not folder.is_dir():
            raise DatasetError(f"{folder} is not a folder")
        self.place.sweep()
        files = {path: self._keep(folder / path) for path in _files(folder)}
        if base is not None:
            files = {**self._files_of(dataset, base), **files}
        commit = _commit_of(files)
        with self.place.locked(dataset):
            names = self.names(dataset)
            if name is not None and names.get(name, commit) != commit:
                raise DatasetError(f"the name '{name}' already means commit {names[name][:SHORT]} of '{dataset}': "
                                   "a version name never changes; choose another")
            new = commit not in self._logged(dataset)
            if new:  # a version already kept stays where it is in the log (a revert: name it, and ask for it)
                now = datetime.datetime.now(datetime.UTC)
                created = now.isoformat(timespec="seconds")
                if not self.place.exists(_commit_key(dataset, commit)):  # else left by a push that did not end
                    self.place.write(_commit_key(dataset, commit), _json({"files": files, "created": created}))
                if announce is not None:
                    announce(commit, [name] if name else [])
                self.place.write(f"{dataset}/log/{now.strftime('%Y%m%dT%H%M%S%fZ')}-{commit}.json",
                                 _json({"commit": commit, "created": created, "name": name}))
            if name is not None and name not in names:
                self.place.write(f"{dataset}/names/{name}={commit}", b"")
        return commit, new

    def save_query(self, dataset: str, query: str, patterns: list[str]) -> None:
        """Save (or replace) the query ``query`` of ``dataset``: the files matching any of ``patterns``."""
        self._check_exists(dataset)
        if not query.strip():
            raise DatasetError("a query needs a name")
        if not patterns or not all(p.strip() for p in patterns):
            raise DatasetError("a query needs at least one file pattern, e.g. '*.csv' or 'train/*'")
        with self.place.locked(dataset):
            self.place.write(f"{dataset}/queries.json", _json({**self.queries(dataset), query: list(patterns)}))

    # --- reading ---------------------------------------------------------------------------------

    def datasets(self) -> list[str]:
        """The datasets' names, sorted."""
        return [d for d in self.place.children("") if d not in RESERVED and self.place.children(f"{d}/log")]

    def log(self, dataset: str) -> list[dict[str, Any]]:
        """Its commits as pushed, newest first: ``{"commit", "created", "name", "names", "files"}``."""
        self._check_exists(dataset)
        names: dict[str, list[str]] = {}
        for name, commit in self.names(dataset).items():
            names.setdefault(commit, []).append(name)
        entries = [json.loads(self.place.read(f"{dataset}/log/{key}") or b"{}")
                   for key in reversed(self.place.children(f"{dataset}/log"))]
        for entry in entries:
            entry["names"] = names.get(entry["commit"], [])
            entry["files"] = len(self._files_of(dataset, entry["commit"]))
        return entries

    def _logged(self, dataset: str) -> list[str]:
        """The commits of ``dataset`` in its log, oldest first: its versions (a commit without a log entry
        is a push that did not end)."""
        return [k.removesuffix(".json").rpartition("-")[2] for k in self.place.children(f"{dataset}/log")
                if k.endswith(".json")]

    def latest(self, dataset: str) -> str | None:
        """The commit pushed last (None when the dataset has none)."""
        keys = [k for k in self.place.children(f"{dataset}/log") if k.endswith(".json")]
        return keys[-1].removesuffix(".json").rpartition("-")[2] if keys else None

    def names(self, dataset: str) -> dict[str, str]:
        """Its version names -> their commits."""
        return dict(key.split("=", 1) for key in self.place.children(f"{dataset}/names") if "=" in key)

    def queries(self, dataset: str) -> dict[str, list[str]]:
        data = self.place.read(f"{dataset}/queries.json")
        return json.loads(data) if data else {}

    def resolve(self, dataset: str, commit: str | None = None, query: str | None = None) -> Selection:
        """The version a data task asks for: ``commit`` (a commit, a unique prefix of one, or a name;
        the latest when None or blank), or the files of the latest commit that ``query`` selects.

        Raises :class:`DatasetError` saying what exists (datasets, names and recent commits, queries).
        """
        if commit and query:
            raise DatasetError("use either data_commit or data_query, not both")
        self._check_exists(dataset)
        found = self._find_commit(dataset, commit.strip()) if commit and commit.strip() else self.latest(dataset)
        assert found is not None
        if not query:
            return self.select(dataset, found)
        queries = self.queries(dataset)
        if query not in queries:
            have = ", ".join(f"'{q}'" for q in sorted(queries)) or "none"
            raise DatasetError(f"dataset '{dataset}' has no query '{query}' (its queries: {have})")
        return self.select(dataset, found, queries[query], query)

    def select(self, dataset: str, commit: str, patterns: list[str] | None = None,
               query: str | None = None) -> Selection:
        """Commit ``commit`` (in full) of ``dataset``; only the files matching ``patterns`` when given."""
        _check_name(dataset, "dataset")
        files = self._files_of(dataset, commit)
        names = sorted(n for n, c in self.names(dataset).items() if c == commit)
        if patterns is None:
            return Selection(dataset, commit, files, query, names)
        chosen = {p: f for p, f in files.items() if any(_matches(p, pattern) for pattern in patterns)}
        if not chosen:
            raise DatasetError(f"query '{query}' of dataset '{dataset}' ({', '.join(patterns)}) selects no "
                               f"file of commit {commit[:SHORT]}")
        return Selection(dataset, commit, chosen, query, names)

    def object_key(self, sha: str) -> str:
        """The key of a file's content (by its SHA-256), relative to the root."""
        return f"objects/{sha[:2]}/{sha}"

    # --- serving ---------------------------------------------------------------------------------

    def checkout(self, selection: Selection, target: Path) -> int:
        """Copy the selection's files into ``target`` (created, writable): the number of files copied.

        Each file is checked against its SHA-256 and size. :raises DatasetError: a file is missing or differs.
        """
        target.mkdir(parents=True, exist_ok=True)
        pairs = []
        for path, (digest, _) in selection.files.items():
            local = _inside(target, path)  # a link in ``target`` never takes a file elsewhere
            local.parent.mkdir(parents=True, exist_ok=True)
            pairs.append((self.object_key(digest), local))
        try:
            self.place.download(pairs)
        except FileNotFoundError as e:
            raise DatasetError(f"the dataset store {self.place.where} lost a file of {selection.describe()}: "
                               f"{e.filename}") from None
        for (path, (digest, size)), (_, local) in zip(selection.files.items(), pairs, strict=True):
            if local.stat().st_size != size or _sha256(local) != digest:
                raise DatasetError(f"'{path}' of {selection.describe()} differs from what was pushed (sha256 "
                                   f"{digest[:SHORT]}): the dataset store {self.place.where} was changed by hand")
        return len(selection.files)

    def cached(self, selection: Selection) -> tuple[Path, int]:
        """A read-only copy of the selection kept on this worker between experiments and runs, made
        the first time it is asked for: ``(its folder, files copied now)`` (0 when it was there).

        It stays in use until this process ends; copies evicted to make room (``cache_bound``) are in
        :attr:`evicted` (:mod:`flow_airflow.datasets.cache`)."""
        from flow_airflow.datasets.cache import copy_of

        folder, copied, self.evicted = copy_of(self, selection)
        return folder, copied

    # --- inside ----------------------------------------------------------------------------------

    def _keep(self, file: Path) -> tuple[str, int]:
        """Store one file by its content (once): its sha256 and size."""
        sha = _sha256(file)
        key = self.object_key(sha)
        if not self.place.exists(key):
            self.place.upload(file, key)
        return sha, file.stat().st_size

    def _files_of(self, dataset: str, commit: str) -> dict[str, tuple[str, int]]:
        """The files of a commit, as its record in the store says: each a path inside the version's
        folder, a SHA-256 and a size; anything else is a store changed by hand (:class:`DatasetError`)."""
        if not COMMIT.fullmatch(commit):
            raise DatasetError(f"'{commit}' is no commit of dataset '{dataset}' (a commit is {COMMIT_LENGTH} hex "
                               f"digits): the dataset store {self.place.where} was changed by hand")
        data = self.place.read(_commit_key(dataset, commit))
        if data is None:
            raise DatasetError(f"dataset '{dataset}' has no commit {commit} in the dataset store {self.place.where}")
        broken = DatasetError(f"commit {commit[:SHORT]} of dataset '{dataset}' is not as flow-airflow writes it: "
                              f"the dataset store {self.place.where} was changed by hand")
        try:
            entries = json.loads(data)["files"].items()
            files = {path: (sha, size) for path, (sha, size) in entries}
        except (ValueError, KeyError, TypeError, AttributeError):
            raise broken from None
        for path, (sha, size) in files.items():
            if not (_plain_path(path) and isinstance(sha, str) and SHA256.fullmatch(sha)
                    and type(size) is int and size >= 0):
                raise broken
        return files

    def _find_commit(self, dataset: str, wanted: str) -> str:
        if wanted == "latest":
            found = self.latest(dataset)
            assert found is not None
            return found
        names = self.names(dataset)
        if wanted in names:
            return names[wanted]
        commits = list(dict.fromkeys(self._logged(dataset)))
        matching = [c for c in commits if c.startswith(wanted.lower())] if len(wanted) >= MIN_PREFIX else []
        if len(matching) == 1:
            return matching[0]
        recent = [e["commit"][:SHORT] for e in self.log(dataset)[:5]]
        have = (f"its names: {', '.join(sorted(names)) or 'none'}; its latest commits: {', '.join(recent)}")
        if len(matching) > 1:
            raise DatasetError(f"'{wanted}' names {len(matching)} commits of dataset '{dataset}': "
                               f"give more of it ({have})")
        raise DatasetError(f"dataset '{dataset}' has no commit or version named '{wanted}' ({have})")

    def _check_exists(self, dataset: str) -> None:
        if self.latest(dataset) is None:
            have = ", ".join(f"'{d}'" for d in self.datasets()) or "none"
            raise DatasetError(f"there is no dataset '{dataset}' in the dataset store {self.place.where} (its "
                               f"datasets: {have}); push one with: flow-airflow dataset push {dataset} FOLDER")


def configured() -> DatasetStore:
    """The dataset store of ``[flow_airflow] datasets_folder`` (its worker cache: ``datasets_cache_folder``).

    :raises DatasetError: an object-storage URL that cannot be used (the words say why).
    """
    from flow_airflow import settings

    try:
        gib = settings.value("datasets_cache_gib")
        return DatasetStore(settings.datasets_root(), settings.datasets_cache_root(),
                            None if gib is None else int(gib * 2**30))
    except ValueError as e:
        raise DatasetError(str(e)) from None


def read_only(folder: Path) -> None:
    """Make ``folder`` and everything under it read-only (folders stay listable)."""
    for path in sorted(folder.rglob("*"), reverse=True):
        path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH | (
            stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH if path.is_dir() else 0))
    folder.chmod(0o555)


def _plain_path(path: object) -> bool:
    """Whether ``path`` is a relative POSIX path down from a folder: no '..', '.', empty or absolute part."""
    return (isinstance(path, str) and bool(path) and "\0" not in path and not path.startswith("/")
            and all(part not in ("", ".", "..") for part in path.split("/")))


def _inside(folder: Path, path: str) -> Path:
    """``folder / path``, resolved (links too) and checked to be inside ``folder``: :class:`DatasetError` if not."""
    real, root = Path(os.path.realpath(folder / path)), Path(os.path.realpath(folder))
    if root not in real.parents:
        raise DatasetError(f"'{path}' leads out of {folder} (to {real}): not written")
    return real


def _commit_key(dataset: str, commit: str) -> str:
    return f"{dataset}/commits/{commit}.json"


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=1, sort_keys=True).encode()


def _files(folder: Path) -> list[str]:
    """The files under ``folder`` as sorted POSIX paths; a link or special file is refused."""
    found = []
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise DatasetError(f"{path} is a link or a special file: a dataset holds plain files only")
        if path.is_file():
            found.append(path.relative_to(folder).as_posix())
    return found


def _commit_of(files: dict[str, tuple[str, int]]) -> str:
    text = json.dumps(sorted([p, sha, size] for p, (sha, size) in files.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:COMMIT_LENGTH]


def _matches(path: str, pattern: str) -> bool:
    """A shell pattern against the whole path (``*`` also crosses folders); ``train/`` means what is under it."""
    pattern = pattern.strip().lstrip("/")
    if pattern.endswith("/"):
        pattern += "*"
    return fnmatch.fnmatchcase(path, pattern)


def _check_name(name: str, what: str) -> None:
    if problem := name_problem(name, what):
        raise DatasetError(problem)


def remove_folder(folder: Path) -> None:
    """Remove ``folder``, read-only parts included."""
    def writable(function: Any, path: str, _: Any) -> None:
        os.chmod(path, 0o700)
        function(path)

    for path in folder.rglob("*"):
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o700)
    shutil.rmtree(folder, onerror=writable)
