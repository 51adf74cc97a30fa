"""``flow-airflow dataset push|list|log|query``: the dataset store from the command line.

Also what ``flow-airflow import`` does with a flow's ``datasets/<name>/<version>/`` folders:
:func:`push_flow_datasets`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flow_airflow.datasets.store import SHORT, DatasetError, DatasetStore, configured


def store() -> DatasetStore:
    """The configured dataset store (:func:`~flow_airflow.datasets.store.configured`)."""
    return configured()


@contextlib.contextmanager
def logs_to_stderr() -> Iterator[None]:
    """Airflow's log lines (a connection read, ...) to standard error while a command runs: standard
    output is its answer (``COMMIT=$(flow-airflow dataset push ...)``)."""
    import logging

    import structlog

    handlers = [h for h in logging.getLogger().handlers
                if isinstance(h, logging.StreamHandler) and h.stream is sys.__stdout__]
    factory = structlog.get_config()["logger_factory"]
    for handler in handlers:
        handler.setStream(sys.stderr)
    try:
        from airflow._shared.logging.structlog import LoggerFactory, NamedWriteLogger

        structlog.configure(logger_factory=LoggerFactory(NamedWriteLogger, io=sys.stderr))
    except ImportError:  # another Airflow layout: its structlog lines stay where Airflow sends them
        pass
    try:
        yield
    finally:
        structlog.configure(logger_factory=factory)
        for handler in handlers:
            handler.setStream(sys.__stdout__)


def _plain(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``command``, its :class:`DatasetError` printed in one line (exit code 1) instead of a traceback;
    Airflow's log lines on standard error."""
    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            with logs_to_stderr():
                return command(args)
        except DatasetError as e:
            print(e, file=sys.stderr)
            return 1

    return run


def push(args: argparse.Namespace) -> int:
    """Keep a folder as a version of a dataset; print its commit; announce a new one to Airflow (asset event)."""
    events: list[str] = []
    try:
        commit, new = store().push(args.dataset, Path(args.folder), args.name,
                                   None if args.no_event else _announcer(args.dataset, events))
    except DatasetError as e:
        print(e, file=sys.stderr)
        return 1
    print(commit)
    print(f"{'new commit' if new else 'unchanged: the dataset already has this content as commit'} "
          f"{commit[:SHORT]} of '{args.dataset}'" + (f" named '{args.name}'" if args.name else ""), file=sys.stderr)
    for line in events:
        print(line, file=sys.stderr)
    return 0


def _announcer(dataset: str, said: list[str]) -> Callable[[str, list[str]], None]:
    """What :meth:`DatasetStore.push` calls to announce a new version: its asset event, the words in ``said``."""
    from flow_airflow.datasets.events import announcer

    return announcer(dataset, said)


def list_datasets(args: argparse.Namespace) -> int:
    """Each dataset: its latest commit, its names, how many versions and queries."""
    datasets = store()
    names = datasets.datasets()
    if not names:
        print(f"no datasets in {datasets.root}")
    for name in names:
        log = datasets.log(name)
        latest = log[0]
        called = f" ({', '.join(latest['names'])})" if latest["names"] else ""
        print(f"{name}: latest {latest['commit'][:SHORT]}{called}, {latest['files']} file(s); "
              f"{len(log)} version(s), {len(datasets.queries(name))} query(ies)")
    return 0


def log(args: argparse.Namespace) -> int:
    """The versions of a dataset, newest first; then its saved queries."""
    datasets = store()
    try:
        entries = datasets.log(args.dataset)
    except DatasetError as e:
        print(e, file=sys.stderr)
        return 1
    for entry in entries:
        called = f" ({', '.join(entry['names'])})" if entry["names"] else ""
        print(f"{entry['commit']}{called}  {entry['created']}  {entry['files']} file(s)")
    for query, patterns in sorted(datasets.queries(args.dataset).items()):
        print(f"query '{query}': {' '.join(patterns)}")
    return 0


def query(args: argparse.Namespace) -> int:
    """Save a query of a dataset: its name and the file patterns it selects; print what it selects now."""
    datasets = store()
    try:
        datasets.save_query(args.dataset, args.query, args.patterns)
        selection = datasets.resolve(args.dataset, query=args.query)
    except DatasetError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"saved query '{args.query}' of '{args.dataset}': today it selects {selection.describe()}")
    return 0


def push_flow_datasets(project_dir: Path, no_event: bool = False) -> list[str]:
    """Push a flow's ``datasets/<name>/<version>/`` folders (versions in natural order, ``v2`` before
    ``v10``; each named after its folder): a line per version saying what happened.

    Raises :class:`DatasetError` for a folder that cannot be a version.
    """
    folder = project_dir / "datasets"
    lines: list[str] = []
    if not folder.is_dir():
        return lines
    datasets = store()
    for dataset in sorted(p for p in folder.iterdir() if p.is_dir()):
        for version in sorted((p for p in dataset.iterdir() if p.is_dir()), key=_natural):
            events: list[str] = []
            commit, new = datasets.push(dataset.name, version, version.name,
                                        None if no_event else _announcer(dataset.name, events))
            lines.append(f"dataset '{dataset.name}' version '{version.name}': "
                         f"{'new commit' if new else 'already kept as commit'} {commit[:SHORT]}")
            lines += [f"  {line}" for line in events]
    return lines


def _natural(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def add_commands(commands: Any) -> None:
    """``flow-airflow dataset ...`` under ``commands`` (the top parser's subparsers)."""
    top = commands.add_parser(
        "dataset", help="keep versions of datasets for data tasks; list them; save queries",
        description="Keep versions of datasets for data tasks. The dataset store is [flow_airflow] datasets_folder "
        "($AIRFLOW_HOME/flow_datasets by default).")
    sub = top.add_subparsers(dest="dataset_command", required=True, metavar="<dataset command>",
                             help="push, list, log or query ('flow-airflow dataset <command> --help')")
    p = sub.add_parser("push", help="keep a folder as a new version of a dataset; print its commit",
                       description="Keep a folder as a new version (commit) of a dataset and print the commit. "
                       "The same content gives the same commit and writes nothing new. Flows triggered by the "
                       "dataset run on it (an Airflow asset event of cnvrg-dataset://NAME).")
    p.add_argument("dataset", metavar="NAME", help="the dataset's name")
    p.add_argument("folder", metavar="FOLDER", help="the folder holding the version's files")
    p.add_argument("--name", metavar="VERSION", help="also name the version (e.g. v2); a name never changes")
    p.add_argument("--no-event", action="store_true", help="do not tell Airflow (no asset event, no triggered runs)")
    p.set_defaults(func=_plain(push))
    p = sub.add_parser("list", help="list the datasets with their latest versions")
    p.set_defaults(func=_plain(list_datasets))
    p = sub.add_parser("log", help="list the versions of a dataset, newest first, and its queries")
    p.add_argument("dataset", metavar="NAME", help="the dataset's name")
    p.set_defaults(func=_plain(log))
    p = sub.add_parser("query", help="save a query of a dataset: the files its patterns select",
                       description="Save a query: data tasks with data_query: QUERY get only the files of the "
                       "latest version matching a PATTERN (shell patterns on the whole path, '*' crossing folders; "
                       "'train/' means everything under train).")
    p.add_argument("dataset", metavar="NAME", help="the dataset's name")
    p.add_argument("query", metavar="QUERY", help="the query's name (data_query: QUERY in a flow)")
    p.add_argument("patterns", metavar="PATTERN", nargs="+", help="file patterns the query selects, e.g. '*.csv'")
    p.set_defaults(func=_plain(query))
