"""What ``flow-airflow gc`` removes: stored end states past the retention settings, and leftover workspaces.

Both stores are laid out by run: ``<artifacts>/<dag id>/<run id>/...``
(:class:`~flow_airflow.runtime.artifacts.ArtifactStore`) and ``<workspaces>/<dag id>/<run id>/...``
(:mod:`flow_airflow.runtime.experiment`). A run folder is matched to its DAG run in the metadata DB by its
folder name (:func:`~flow_airflow.runtime.workspace.folder_name`); a folder whose run is no longer there
counts as ended when the folder was last changed.

- Never touched: a run that is queued or running, a run whose end state an endpoint's version was made
  from (while the version's files are kept), the dataset store and the endpoint store.
- A workspace of a run that has ended is a leftover (an experiment removes its own when it ends, leaving
  the empty folders of its run; one whose files could not be stored is kept for inspection): always removed.
- A run's stored end states are removed when it ended more than ``retention_days`` ago, or is not among
  the newest ``retention_runs`` runs of its flow. Neither set: none are.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from flow_airflow import settings
from flow_airflow.runtime.workspace import folder_name

UNFINISHED = ("queued", "running")  # DagRunState values: a run still using its folders


@dataclass(frozen=True)
class Removal:
    """A folder ``flow-airflow gc`` removes, and why."""

    path: Path
    bytes: int
    what: str  # "workspace" or "artifacts"
    dag_id: str
    run_id: str
    why: str


@dataclass(frozen=True)
class RunFolder:
    """A run's folder in one store, with what the metadata DB says of the run."""

    path: Path
    dag_id: str
    run_id: str
    state: str | None  # None: the run is not in the metadata DB
    ended: float  # seconds since the epoch: the run's end (or start), else the folder's last change


def size(path: Path) -> int:
    """Bytes of the files under ``path`` (links counted as links, not followed; folders as nothing)."""
    total = 0
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            with contextlib.suppress(OSError):  # removed meanwhile
                found = os.lstat(os.path.join(root, name))
                total += 0 if stat.S_ISDIR(found.st_mode) else found.st_size
    return total


def _runs_in_db(dag_ids: list[str]) -> dict[tuple[str, str], tuple[str, str, float | None]]:
    """(DAG id, run folder name) -> (run id, state, end time) of the DAG runs of ``dag_ids`` in the metadata DB."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    found: dict[tuple[str, str], tuple[str, str, float | None]] = {}
    if not dag_ids:
        return found
    with create_session() as session:
        rows = session.execute(select(DagRun.dag_id, DagRun.run_id, DagRun.state, DagRun.end_date, DagRun.start_date)
                               .where(DagRun.dag_id.in_(dag_ids)))
        for dag_id, run_id, state, end, start in rows:
            try:
                name = folder_name(run_id, "run id")
            except ValueError:  # such a run never had a folder
                continue
            when: datetime | None = end or start
            found[(dag_id, name)] = (run_id, str(state), when.timestamp() if when else None)
    return found


def run_folders(root: Path, known: dict[tuple[str, str], tuple[str, str, float | None]] | None = None
                ) -> Iterator[RunFolder]:
    """The run folders ``<root>/<dag id>/<run folder>`` of a store (``<root>/.reuse`` and other dot folders
    are not DAGs' and are left alone).

    :param root: the store's folder (artifacts or workspaces).
    :param known: the metadata DB's runs (:func:`_runs_in_db`); looked up when None.
    """
    if not root.is_dir():
        return
    # a folder whose name starts with a dot is no DAG's (the reuse index, ``.reuse``): never a run folder
    dags = sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith("."))
    if known is None:
        known = _runs_in_db([d.name for d in dags])
    for dag in dags:
        for run in sorted(p for p in dag.iterdir() if p.is_dir() and not p.is_symlink()):
            run_id, state, ended = known.get((dag.name, run.name), (run.name, None, None))
            yield RunFolder(run, dag.name, run_id, state, ended if ended is not None else run.stat().st_mtime)


def served_runs() -> set[tuple[str, str]]:
    """(DAG id, run folder name) of every run an endpoint's version (whose files are still kept) was made from."""
    from flow_airflow.endpoints.store import EndpointStore

    served: set[tuple[str, str]] = set()
    root = settings.endpoints_root()
    if not root.is_dir():
        return served
    for endpoint in EndpointStore(root).all():
        for version in endpoint.versions:
            if Path(version.folder).exists():
                try:
                    served.add((version.dag_id, folder_name(version.run_id, "run id")))
                except ValueError:
                    continue
    return served


def _protected() -> list[Path]:
    """Folders gc never enters, should a store be set inside one of them."""
    stores = [settings.datasets_root(), settings.endpoints_root(), settings.datasets_cache_root()]
    return [p.resolve() for p in stores if isinstance(p, Path)]


def removals(days: float | None = None, runs: int | None = None, now: float | None = None) -> list[Removal]:
    """What ``flow-airflow gc`` would remove now.

    :param days: end states of runs that ended more than this many days ago go (None: ``retention_days``).
    :param runs: end states of runs beyond the newest this many of each flow go (None: ``retention_runs``).
    :param now: the time to judge ages by (seconds since the epoch; default: now).
    """
    configured_days, configured_runs = settings.retention()
    days = configured_days if days is None else days
    runs = configured_runs if runs is None else runs
    now = time.time() if now is None else now
    protected = _protected()
    served = served_runs()

    def allowed(folder: RunFolder) -> bool:
        path = folder.path.resolve()
        return (folder.state not in UNFINISHED
                and not any(path == p or p in path.parents or path in p.parents for p in protected))

    found = [Removal(f.path, size(f.path), "workspace", f.dag_id, f.run_id,
                     "a leftover working directory of a run that has ended")
             for f in run_folders(settings.workspaces_root()) if allowed(f)]
    artifacts = settings.artifacts_root()
    if not isinstance(artifacts, Path) or (days is None and runs is None):
        return found
    return found + [Removal(f.path, size(f.path), "artifacts", f.dag_id, f.run_id, why)
                    for f, why in _past_retention(run_folders(artifacts), days, runs, now)
                    if allowed(f) and (f.dag_id, f.path.name) not in served]


def _past_retention(folders: Iterator[RunFolder], days: float | None, runs: int | None,
                    now: float) -> Iterator[tuple[RunFolder, str]]:
    """The run folders past ``days`` or beyond the newest ``runs`` of their flow, and why."""
    by_flow: dict[str, list[RunFolder]] = {}
    for folder in folders:
        by_flow.setdefault(folder.dag_id, []).append(folder)
    for dag_id, of_flow in by_flow.items():
        for rank, folder in enumerate(sorted(of_flow, key=lambda f: f.ended, reverse=True)):
            if runs is not None and rank >= runs:
                yield folder, f"not among the newest {runs} runs of {dag_id}"
            elif days is not None and now - folder.ended > days * 86400:
                yield folder, f"ended {(now - folder.ended) / 86400:.1f} days ago (more than {days:g})"


def remove(found: list[Removal]) -> int:
    """Remove the folders of ``found``; the bytes they held."""
    freed = 0
    for removal in found:
        shutil.rmtree(removal.path, ignore_errors=True)
        if not removal.path.exists():
            freed += removal.bytes
            parent = removal.path.parent  # the DAG's folder, once it holds no run
            if parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
    return freed


def human(n: int) -> str:
    """``n`` bytes in words: ``1.5 MB``."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def gc(days: float | None, runs: int | None, delete: bool) -> int:
    """``flow-airflow gc``: list what goes (with sizes), and with ``delete`` remove it; the exit code.

    :param days: overrides ``retention_days``.
    :param runs: overrides ``retention_runs``.
    :param delete: remove the folders listed (else only list them).
    """
    if (days is not None and not days > 0) or (runs is not None and runs < 1):
        print("flow-airflow gc: --days takes a number of days > 0, --keep a whole number >= 1")
        return 2
    try:
        found = removals(days, runs)
    except settings.SettingError as e:
        print(f"flow-airflow gc: {e}")
        return 2
    for removal in found:
        print(f"{human(removal.bytes):>9}  {removal.what:<9}  {removal.path}  (run {removal.run_id}: {removal.why})")
    total = sum(r.bytes for r in found)
    if not isinstance(settings.artifacts_root(), Path):
        print(f"the artifacts on object storage ({settings.artifacts_root()}) are not collected: "
              "use the bucket's lifecycle rules")
    if not delete:
        print(f"{len(found)} folder(s), {human(total)}: would be removed (--delete removes them)")
        return 0
    freed = remove(found)
    print(f"removed {len(found)} folder(s), {human(freed)} freed")
    return 0
