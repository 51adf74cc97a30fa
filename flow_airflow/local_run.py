"""One run of a flow through real Airflow in this process (``dag.test``): ``flow-airflow run``.

The flow gets a bundle of its own (a folder holding a loader for just that file), listed
before the configured bundles, so that a file anywhere can be run without touching the
dags folder; the run, its task instances and experiment records land in the metadata DB
of ``AIRFLOW_HOME`` like any other run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flow_airflow import run_experiments, settings
from flow_airflow.common.ids import run_task_id
from flow_airflow.common.routes import slug
from flow_airflow.plan.flow_plan import dag_id_for
from flow_airflow.run_experiments import ExperimentInstance
from flow_airflow.spec.load import LoadedFlow, load_flow

BUNDLE = "flow-airflow-run"
LOADER = '''"""flow-airflow run: the DAG of one flow file."""
from pathlib import Path

from flow_airflow.loader import load_dags

globals().update(load_dags(__file__, files=[Path({file!r})]))
'''


@dataclass
class RunResult:
    """A run of ``flow-airflow run``: the DAG run and its experiments (``flow_airflow.run_experiments``)."""

    dag_id: str
    run_id: str
    state: str
    experiments: list[ExperimentInstance]

    def of(self, title: str, state: str | None = "success") -> list[ExperimentInstance]:
        """The experiments of one flow task (in the given state; any when None)."""
        return [e for e in self.experiments if e.task == title and (state is None or e.state == state)]


def run_flow(file: str | Path, conf: dict[str, Any] | None = None, listener: Any = None,
             say: Callable[[str], object] = print) -> RunResult:
    """Run the flow in ``file`` once and return what every experiment did.

    :param conf: the run's ``conf`` (as a trigger through the UI or REST API gives it).
    :param listener: an Airflow listener (``airflow.listeners.hookimpl`` methods) told of each
        task instance as it ends, e.g. :class:`flow_airflow.run_report.Progress`.
    :param say: prints a line for the user (that a scheduler serves the same metadata DB).
    :raises FlowError: the flow file is broken.
    """
    file = Path(file).resolve()
    flow = load_flow(file, library_folders=settings.library_folders())  # a broken flow stops here, with its FlowError
    dag_id = dag_id_for(flow.spec.name)
    bundle = settings.airflow_home() / "flow_airflow_run" / dag_id
    bundle.mkdir(parents=True, exist_ok=True)
    (bundle / "flow.py").write_text(LOADER.format(file=str(file)), encoding="utf-8")
    _add_bundle(bundle)

    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.utils.db import upgradedb

    upgradedb()
    bag = BundleDagBag(dag_folder=str(bundle), bundle_path=bundle, bundle_name=BUNDLE)
    if dag_id not in bag.dags:
        errors = "\n".join(bag.import_errors.values())
        raise RuntimeError(f"the flow did not compile into a DAG:\n{errors}")
    if listener is not None:
        from airflow.sdk.listener import get_listener_manager

        get_listener_manager().add_listener(listener)
    if scheduler_alive():
        say(f"a scheduler serves this metadata DB: DAG '{dag_id}' is paused while this run runs, so that only "
            "this process runs its task instances (then as it was)")
    with paused_for_the_scheduler(bag, dag_id) as restore, aborted_on_signal(dag_id, restore, say):
        run = bag.dags[dag_id].test(run_conf=conf)
    remove_empty_workspace(dag_id, run.run_id)
    return collect(dag_id, run.run_id, str(run.state), titles_of(flow))


def remove_empty_workspace(dag_id: str, run_id: str) -> None:
    """The run's folder of working directories, once its experiments have removed their own (only empty folders
    left): a run leaves nothing there, unless a failed experiment's files could not be stored."""
    from flow_airflow.runtime.workspace import folder_name

    dag = settings.workspaces_root() / dag_id
    try:
        folder = dag / folder_name(run_id, "run id")
    except ValueError:  # such a run made no folder
        return
    if folder.is_dir() and all(p.is_dir() and not p.is_symlink() for p in folder.rglob("*")):
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):  # another run's folder is there
            dag.rmdir()


@contextlib.contextmanager
def paused_for_the_scheduler(bag: Any, dag_id: str) -> Iterator[Callable[[], None]]:
    """The DAG paused while this process runs it, then as it was: this run is this process's only.
    Yields what puts it back as it was (for a process that ends before the block does).

    A scheduler on the same metadata DB (``./dev up`` beside) would queue the run's task instances
    to its own executor too, and two processes would run each one; it examines and queues those of
    unpaused DAGs only (``DagRun.get_running_dag_runs_to_examine``,
    ``SchedulerJobRunner._executable_task_instances_to_queued``), while ``dag.test`` runs a paused
    DAG's. The DAG gets its row in the metadata DB first when it has none (as ``dag.test`` would).
    """
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import sync_bag_to_db
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
    if DagModel.get_current(dag_id) is None:
        sync_bag_to_db(bag, BUNDLE, None)
    with create_session() as session:
        model = session.get(DagModel, dag_id)
        was_paused, model.is_paused = model.is_paused, True

    def restore() -> None:
        with create_session() as session:
            session.get(DagModel, dag_id).is_paused = was_paused

    try:
        yield restore
    finally:
        restore()


INTERRUPTS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def aborted_on_signal(dag_id: str, restore: Callable[[], None], say: Callable[[str], object]) -> Iterator[None]:
    """While ``dag.test`` runs: SIGINT (Ctrl-C), SIGTERM or SIGHUP aborts the run this process started, as the
    experiments page's Stop does (:func:`flow_airflow.aborting.abort_run`: finished experiments kept, the
    running ones failed, the rest skipped, the note "Interrupted: flow-airflow run got <signal> at <time> UTC"),
    puts the DAG back as it was (``restore``) and ends the process with 128 + the signal's number.

    The process ends at once (``os._exit``): ``dag.test`` would otherwise fail only the running task (Airflow's
    task runner takes any exception for the task's failure) and run the next ones. The command of the
    running experiment dies with this process (its compute's guard), and the try's working directory goes.
    A run killed by SIGKILL stays "running" in the metadata DB (mark it failed in the UI).

    :param say: tells the user what was aborted (one line).
    """
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType
    from sqlalchemy import select

    from flow_airflow.aborting import abort_run

    since = datetime.now(UTC)

    def abort(signum: int, _frame: object) -> None:
        now, name = datetime.now(UTC), signal.Signals(signum).name
        note = f"Interrupted: flow-airflow run got {name} at {now.strftime('%Y-%m-%d %H:%M:%S')} UTC"
        try:
            with create_session() as session:  # the session dag.test holds (scoped): its changes are committed too
                mine = session.scalars(select(DagRun.run_id).where(
                    DagRun.dag_id == dag_id, DagRun.state == DagRunState.RUNNING,
                    DagRun.triggered_by == DagRunTriggeredByType.TEST, DagRun.run_after >= since)).all()
                for run_id in mine:
                    abort_run(session, dag_id, run_id, note, now)
            restore()
            say(f"{name}: run {', '.join(mine) or '(none started yet)'} of {dag_id} aborted "
                "(finished experiments kept, the running ones failed, the rest skipped)")
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(128 + signum)

    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return
    from airflow.listeners import hookimpl
    from airflow.sdk.listener import get_listener_manager

    class KeepHandler:
        """Puts the handler back on SIGTERM as each task starts: Airflow's task runner replaced it with its own,
        which only kills that task (``BaseOperator.on_kill``) and lets ``dag.test`` run the next ones."""

        @hookimpl
        def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
            signal.signal(signal.SIGTERM, abort)

    keeper = KeepHandler()
    get_listener_manager().add_listener(keeper)
    before = {s: signal.signal(s, abort) for s in INTERRUPTS}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
        get_listener_manager().pm.unregister(keeper)



def scheduler_alive() -> bool:
    """Whether a scheduler serves this metadata DB (its heartbeat in Airflow's ``job`` table is recent)."""
    from airflow.jobs.job import most_recent_job

    job = most_recent_job("SchedulerJob")
    return job is not None and job.is_alive()


def titles_of(flow: LoadedFlow) -> dict[str, str]:
    """Each flow task's experiments' task id (``<slug>.run``) -> the task's title, in the file's order."""
    return {run_task_id(slug(t.title)): t.title for t in flow.spec.tasks}


def _add_bundle(path: Path) -> None:
    """List a bundle for ``path`` first among the configured ones, for this process only."""
    from airflow.configuration import conf

    key = "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"
    configured = json.loads(conf.get("dag_processor", "dag_bundle_config_list"))
    bundles = [b for b in configured if b.get("name") != BUNDLE]
    ours = {
        "name": BUNDLE,
        "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
        "kwargs": {"path": str(path), "refresh_interval": 0},
    }
    os.environ[key] = json.dumps([ours, *bundles])


def collect(dag_id: str, run_id: str, state: str, titles: dict[str, str]) -> RunResult:
    """The experiments of a DAG run, from the metadata DB (``flow_airflow.run_experiments.of_run``).

    ``titles`` maps the run task ids to the flow tasks' titles.
    """
    from airflow.utils.session import create_session

    with create_session() as session:
        return RunResult(dag_id, run_id, state, run_experiments.of_run(session, dag_id, run_id, titles))
