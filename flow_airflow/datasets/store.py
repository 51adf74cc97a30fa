"""The dataset store: versioned datasets, kept in one folder (``[flow_airflow] datasets_folder``).

A dataset has versions, called commits as in cnvrg: a commit is named by the hash of its content
(its files' paths, sizes and content hashes), so the same files always give the same commit and a
commit never changes. A commit may also carry names (``v1``); a name, once given, always means the
same commit. A dataset also has saved queries: a name and the file patterns it selects. The store
keeps every file once, by the hash of its content, whatever dataset or commit holds it::

    <root>/objects/<ab>/<sha256>          file contents
    <root>/<dataset>/commits/<commit>.json {"files": {path: [sha256, size]}, "created": ...}
    <root>/<dataset>/log.jsonl            one line per new latest commit: {"commit", "created", "name"}
    <root>/<dataset>/names.json           {"v1": commit}
    <root>/<dataset>/queries.json         {"query name": ["*.csv", ...]}
    <root>/cache/<dataset>/<commit>/      read-only copies for ``use_cached: true`` (on the worker)

Errors (:class:`DatasetError`) are in plain words and say what exists.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import fnmatch
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
COMMIT_LENGTH = 40
SHORT = 12
RESERVED = frozenset({"objects", "cache"})  # the store's own folders
MIN_PREFIX = 6  # characters of a commit enough to name it, when they name only one


class DatasetError(ValueError):
    """A dataset, commit, name or query that does not exist or cannot be made; the message says why."""


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
    """The datasets kept under ``root`` (a folder)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    # --- writing ---------------------------------------------------------------------------------

    def push(self, dataset: str, folder: Path, name: str | None = None) -> tuple[str, bool]:
        """Keep ``folder``'s files as a commit of ``dataset`` (made when new): ``(commit, whether new)``.

        Nothing is written when the dataset already has this content (but ``name``, when it is a new
        name of that commit); the latest commit is the last new one. Links and other non-files are
        refused. Raises :class:`DatasetError`.
        """
        _check_name(dataset, "dataset")
        if name is not None:
            _check_name(name, "version name")
        folder = Path(folder)
        if not folder.is_dir():
            raise DatasetError(f"{folder} is not a folder")
        files = {path: self._keep(folder / path) for path in _files(folder)}
        commit = _commit_of(files)
        with self._locked(dataset):
            names = self.names(dataset)
            if name is not None and names.get(name, commit) != commit:
                raise DatasetError(f"the name '{name}' already means commit {names[name][:SHORT]} of '{dataset}': "
                                   "a version name never changes; choose another")
            new = not self._commit_file(dataset, commit).exists()
            if new:  # a version already kept stays where it is in the log (a revert: name it, and ask for it)
                created = _now()
                _write_json(self._commit_file(dataset, commit), {"files": files, "created": created})
                with (self.root / dataset / "log.jsonl").open("a", encoding="utf-8") as log:
                    log.write(json.dumps({"commit": commit, "created": created, "name": name}) + "\n")
            if name is not None and name not in names:
                _write_json(self.root / dataset / "names.json", {**names, name: commit})
        return commit, new

    def save_query(self, dataset: str, query: str, patterns: list[str]) -> None:
        """Save (or replace) the query ``query`` of ``dataset``: the files matching any of ``patterns``."""
        self._check_exists(dataset)
        if not query.strip():
            raise DatasetError("a query needs a name")
        if not patterns or not all(p.strip() for p in patterns):
            raise DatasetError("a query needs at least one file pattern, e.g. '*.csv' or 'train/*'")
        with self._locked(dataset):
            _write_json(self.root / dataset / "queries.json", {**self.queries(dataset), query: list(patterns)})

    # --- reading ---------------------------------------------------------------------------------

    def datasets(self) -> list[str]:
        """The datasets' names, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "log.jsonl").is_file())

    def log(self, dataset: str) -> list[dict[str, Any]]:
        """Its commits as pushed, newest first: ``{"commit", "created", "name", "names", "files"}``."""
        self._check_exists(dataset)
        names: dict[str, list[str]] = {}
        for name, commit in self.names(dataset).items():
            names.setdefault(commit, []).append(name)
        lines = (self.root / dataset / "log.jsonl").read_text(encoding="utf-8").splitlines()
        entries = [json.loads(line) for line in reversed(lines) if line.strip()]
        for entry in entries:
            entry["names"] = names.get(entry["commit"], [])
            entry["files"] = len(self._files_of(dataset, entry["commit"]))
        return entries

    def latest(self, dataset: str) -> str | None:
        """The commit pushed last (None when the dataset has none)."""
        log = self.root / dataset / "log.jsonl"
        if not log.is_file():
            return None
        lines = [line for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
        return json.loads(lines[-1])["commit"] if lines else None

    def names(self, dataset: str) -> dict[str, str]:
        return _read_json(self.root / dataset / "names.json")

    def queries(self, dataset: str) -> dict[str, list[str]]:
        return _read_json(self.root / dataset / "queries.json")

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
        if not self._commit_file(dataset, commit).is_file():
            raise DatasetError(f"dataset '{dataset}' has no commit {commit} in the dataset store {self.root}")
        files = self._files_of(dataset, commit)
        names = sorted(n for n, c in self.names(dataset).items() if c == commit)
        if patterns is None:
            return Selection(dataset, commit, files, query, names)
        chosen = {p: f for p, f in files.items() if any(_matches(p, pattern) for pattern in patterns)}
        if not chosen:
            raise DatasetError(f"query '{query}' of dataset '{dataset}' ({', '.join(patterns)}) selects no "
                               f"file of commit {commit[:SHORT]}")
        return Selection(dataset, commit, chosen, query, names)

    # --- serving ---------------------------------------------------------------------------------

    def checkout(self, selection: Selection, target: Path) -> int:
        """Copy the selection's files into ``target`` (created, writable): the number of files copied."""
        target.mkdir(parents=True, exist_ok=True)
        for path, (digest, _) in selection.files.items():
            (target / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self._object(digest), target / path)
        return len(selection.files)

    def cached(self, selection: Selection) -> tuple[Path, int]:
        """A read-only copy of the selection kept on this worker between experiments and runs, made
        the first time it is asked for: ``(its folder, files copied now)`` (0 when it was there)."""
        key = selection.commit + (f".{hashlib.sha256(selection.query.encode()).hexdigest()[:12]}"
                                  if selection.query else "")
        folder = self.root / "cache" / selection.dataset / key
        if folder.is_dir():
            return folder, 0
        folder.parent.mkdir(parents=True, exist_ok=True)
        fresh = Path(tempfile.mkdtemp(prefix=f".{key[:SHORT]}.", dir=folder.parent))
        copied = self.checkout(selection, fresh / "copy")
        for path in sorted((fresh / "copy").rglob("*"), reverse=True):
            path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH | (
                stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH if path.is_dir() else 0))
        (fresh / "copy").chmod(0o555)
        try:
            (fresh / "copy").rename(folder)
        except OSError:  # another experiment made it meanwhile: use theirs
            copied = 0
        with contextlib.suppress(OSError):
            _remove(fresh)
        return folder, copied

    # --- inside ----------------------------------------------------------------------------------

    def _keep(self, file: Path) -> tuple[str, int]:
        """Store one file by its content (once): its sha256 and size."""
        digest = hashlib.sha256()
        with file.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        sha = digest.hexdigest()
        target = self._object(sha)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".incoming.", dir=target.parent)
            os.close(fd)
            shutil.copyfile(file, tmp)
            os.replace(tmp, target)
        return sha, file.stat().st_size

    def _object(self, sha: str) -> Path:
        return self.root / "objects" / sha[:2] / sha

    def _commit_file(self, dataset: str, commit: str) -> Path:
        return self.root / dataset / "commits" / f"{commit}.json"

    def _files_of(self, dataset: str, commit: str) -> dict[str, tuple[str, int]]:
        data = json.loads(self._commit_file(dataset, commit).read_text(encoding="utf-8"))
        return {path: (sha, size) for path, (sha, size) in data["files"].items()}

    def _find_commit(self, dataset: str, wanted: str) -> str:
        if wanted == "latest":
            found = self.latest(dataset)
            assert found is not None
            return found
        names = self.names(dataset)
        if wanted in names:
            return names[wanted]
        commits = [p.stem for p in (self.root / dataset / "commits").glob("*.json")]
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
            raise DatasetError(f"there is no dataset '{dataset}' in the dataset store {self.root} (its datasets: "
                               f"{have}); push one with: flow-airflow dataset push {dataset} FOLDER")

    @contextlib.contextmanager
    def _locked(self, dataset: str) -> Iterator[None]:
        folder = self.root / dataset
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


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
    if what == "dataset" and name in RESERVED:
        raise DatasetError(f"'{name}' cannot be a dataset's name: the store keeps its own {name} folder")
    if not NAME.fullmatch(name):
        raise DatasetError(f"'{name}' cannot be a {what}: use letters, digits, '.', '_' and '-', starting "
                           "with a letter or digit")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _write_json(path: Path, value: Any) -> None:
    """Write ``value`` as JSON to ``path`` whole (a rename): a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".writing.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def _remove(folder: Path) -> None:
    """Remove ``folder``, read-only parts included."""
    def writable(function: Any, path: str, _: Any) -> None:
        os.chmod(path, 0o700)
        function(path)

    for path in folder.rglob("*"):
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o700)
    shutil.rmtree(folder, onerror=writable)
