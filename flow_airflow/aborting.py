"""Aborting a running DAG run as cnvrg aborts a flow run: what had ended stays as it ended, nothing starts after.

Used by the experiments page's "Stop" (``flow_airflow.experiments.api.stop_run``) and by ``flow-airflow run``
when it is interrupted (``flow_airflow.local_run``). Airflow is imported inside the function.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


class NotAbortable(Exception):
    """The run cannot be aborted (there is no such run, or it has ended): the sentence says why."""


def abort_run(session: Session, dag_id: str, run_id: str, note: str, now: datetime,
              user_id: str | None = None) -> None:
    """Abort one running run of ``dag_id``.

    The task instances that run (or are deferred, or wait for an approval) are failed, one by one;
    those that have not started are skipped, without a start date; finished ones, and the records
    their experiments left, are not touched. The run is failed, ended at ``now``, with ``note`` as its
    note. (Airflow's own ``PATCH dagRuns state=failed`` fails *every* instance of a mapped task of
    which one still runs, finished experiments included: ``set_state`` is given whole tasks.)

    :param session: a metadata DB session; committed by the caller.
    :param note: the run's note from now on (what the pages show: "Stopped by <user> at <time> UTC").
    :param now: the moment of the abort (UTC).
    :param user_id: Airflow's id of the user who aborts it (the note's author); None: no user.
    :raises NotAbortable: no such run, or it has ended.
    """
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.state import DagRunState, State, TaskInstanceState
    from sqlalchemy import select

    run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id).with_for_update())
    if run is None:
        raise NotAbortable(f"No run {run_id} of {dag_id}")
    if run.state in State.finished_dr_states:
        raise NotAbortable(f"{run_id} has ended ({run.state}): there is nothing to stop")
    running = {TaskInstanceState.RUNNING, TaskInstanceState.DEFERRED, TaskInstanceState.UP_FOR_RESCHEDULE,
               TaskInstanceState.AWAITING_INPUT}
    tis = session.scalars(select(TI).where(TI.dag_id == dag_id, TI.run_id == run_id).with_for_update()).all()
    for ti in tis:
        if ti.state in running:  # its worker sees the state and ends the task (as for Airflow's "mark failed")
            ti.state, ti.end_date = TaskInstanceState.FAILED, now
            ti.duration = (now - ti.start_date).total_seconds() if ti.start_date else None
        elif ti.state not in State.finished:  # not started: never will (a queued one's worker is refused)
            ti.state, ti.end_date = TaskInstanceState.SKIPPED, now
    run.set_state(DagRunState.FAILED)
    run.end_date = now
    if run.dag_run_note is None:
        run.note = (note, user_id)
    else:
        run.dag_run_note.content, run.dag_run_note.user_id = note, user_id
    session.flush()
