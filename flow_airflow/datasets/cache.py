"""The worker's read-only copies of dataset versions for ``use_cached: true``, and their eviction.

A copy is made the first time an experiment on this worker asks for a version (or a query's
selection of it), at ``<cache>/<dataset>/<key>`` (``<commit>[.<query hash>]``), and served to every
later one. Beside the copies, ``<cache>/.state/<dataset>.<key>.used`` (its modification time: when
the copy was last served) and ``.lock``: a process that serves a copy holds a shared lock on it until
the process ends (a task instance's process, so for all the routes it runs), and eviction takes the
lock exclusively, so a copy in use is never removed.

With a size bound (``[flow_airflow] datasets_cache_gib``), making a copy evicts the least recently
used copies not in use until the copies fit in it (a copy larger than the bound alone is kept while it
is used: the bound may be exceeded, never a copy in use taken away).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING

from flow_airflow.datasets.store import SHORT, read_only, remove_folder

if TYPE_CHECKING:
    from flow_airflow.datasets.store import DatasetStore, Selection

_HELD: dict[str, IO[str]] = {}  # the shared locks of the copies this process serves (held until it ends)


def copy_of(store: DatasetStore, selection: Selection) -> tuple[Path, int, list[str]]:
    """The worker's copy of ``selection`` (made when missing), held in use by this process: ``(its folder,
    files copied now, the copies evicted to make room)``."""
    key = selection.commit + (f".{hashlib.sha256(selection.query.encode()).hexdigest()[:12]}"
                              if selection.query else "")
    folder = store.cache / selection.dataset / key
    folder.parent.mkdir(parents=True, exist_ok=True)
    _hold(folder)
    _state(folder, "used").touch()
    if folder.is_dir():
        return folder, 0, []
    fresh = Path(tempfile.mkdtemp(prefix=f".{key[:SHORT]}.", dir=folder.parent))
    try:
        copied = store.checkout(selection, fresh / "copy")
        read_only(fresh / "copy")
        try:
            (fresh / "copy").rename(folder)
        except OSError:  # another experiment made it meanwhile: use theirs
            copied = 0
    finally:
        with contextlib.suppress(OSError):
            remove_folder(fresh)
    return folder, copied, evict(store.cache, store.cache_bound) if store.cache_bound is not None else []


def evict(cache: Path, bound: int) -> list[str]:
    """Remove the least recently used copies not in use until all of them hold at most ``bound`` bytes:
    what was removed (``<dataset>/<key> (<size> bytes)``), oldest first."""
    copies = sorted(_copies(cache))
    total = sum(size for _, size, _ in copies)
    evicted = []
    for _, size, folder in copies:
        if total <= bound:
            break
        with _lock(folder) as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # in use
                continue
            remove_folder(folder)
            fcntl.flock(lock, fcntl.LOCK_UN)
        total -= size
        evicted.append(f"{folder.parent.name}/{folder.name} ({size} bytes)")
    return evicted


def _copies(cache: Path) -> list[tuple[float, int, Path]]:
    """Each copy under ``cache``: when it was last served, its size in bytes, its folder."""
    found = []
    for dataset in (p for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".")) if cache.is_dir() else ():
        for folder in (p for p in dataset.iterdir() if p.is_dir() and not p.name.startswith(".")):
            used = _state(folder, "used")
            when = used.stat().st_mtime if used.exists() else folder.stat().st_mtime
            size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
            found.append((when, size, folder))
    return found


def _state(folder: Path, what: str) -> Path:
    """A copy's ``used`` or ``lock`` file."""
    state = folder.parent.parent / ".state"
    state.mkdir(exist_ok=True)
    return state / f"{folder.parent.name}.{folder.name}.{what}"


def _lock(folder: Path) -> IO[str]:
    """The lock file of a copy, opened (the lock files stay: removing one would let two locks coexist)."""
    return _state(folder, "lock").open("a")


def _hold(folder: Path) -> None:
    """Hold ``folder``'s copy in use (a shared lock) until this process ends."""
    if str(folder) in _HELD:
        return
    lock = _lock(folder)
    fcntl.flock(lock, fcntl.LOCK_SH)
    _HELD[str(folder)] = lock
    os.set_inheritable(lock.fileno(), False)
