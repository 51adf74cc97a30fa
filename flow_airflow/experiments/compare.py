"""A flow across its recent runs, as JSON: every experiment of the chosen runs, compared on one page.

``flow_view(session, dag_id, run_ids, last, offset, limit)`` is the body of
``GET /flow-airflow/api/experiments/<dag_id>?run=<run id>&run=...&last=N&offset=&limit=``::

    {"dag_id", "total", "offset", "limit",       # paging over every experiment of the chosen runs
     "runs": [{"run_id", "state", "paused", "run_after", "start_date", "end_date", "conf", "total"}],  # newest first
     "spare": [{"run_id", "task", "task_id", "count", "label"}],  # spare task instances: not experiments
     "recent": [{"run_id", "state", "run_after", ...}],  # the flow's recent runs (to choose from)
     "tasks", "param_keys", "tag_keys", "differing",     # as the run's view, over every chosen run
     "pending": [{"run_id", "task", "url"}],
     "params": {task title: {param: value}},   # the newest chosen run's params (the re-run form's start)
     "goal": {"tag", "direction", "task"} | None,  # as the run's view
     "experiments": [run view's experiment + {"run_id"}]}  # run by run (newest first), each in flow order

The chosen runs: ``run_ids`` (at most ``MAX_RUNS``), else the ``last`` newest (``DEFAULT_RUNS``).
Each run is read as its own page reads it (``flow_airflow.experiments.api``, ``flow_airflow.run_experiments``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flow_airflow import run_experiments
from flow_airflow.experiments import api
from flow_airflow.run_experiments import ExperimentInstance

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

DEFAULT_RUNS = 5
MAX_RUNS = 20


class UnknownRuns(LookupError):
    """Some chosen run ids are no runs of the DAG (``args[0]``: them, in the order given)."""


def chosen_runs(session: Session, dag_id: str, run_ids: list[str], last: int) -> list[Any]:
    """The DagRun rows chosen, newest first: ``run_ids`` (deduplicated), else the ``last`` newest runs.

    :raises UnknownRuns: a run id of ``run_ids`` is no run of ``dag_id``.
    """
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    query = select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.run_after.desc(), DagRun.id.desc())
    if not run_ids:
        return list(session.scalars(query.limit(max(1, min(last, MAX_RUNS)))))
    wanted = list(dict.fromkeys(run_ids))
    found = list(session.scalars(query.where(DagRun.run_id.in_(wanted))))
    missing = [r for r in wanted if r not in {run.run_id for run in found}]
    if missing:
        raise UnknownRuns(missing)
    return found


def flow_view(session: Session, dag_id: str, run_ids: list[str], last: int = DEFAULT_RUNS,
              offset: int = 0, limit: int = 200) -> dict[str, Any]:
    """The chosen runs of the flow and one page of their experiments (``limit`` <= ``api.MAX_LIMIT``).

    :raises UnknownRuns: see :func:`chosen_runs`.
    """
    runs = chosen_runs(session, dag_id, run_ids, last)
    tasks = run_experiments.flow_tasks(session, dag_id)
    every: list[tuple[str, ExperimentInstance, dict[tuple[str, int], list[dict[str, Any]]]]] = []
    summaries = []
    paused = api.paused_dags(session, {dag_id})
    spares: list[ExperimentInstance] = []
    spare_lines: list[dict[str, Any]] = []
    for run in runs:
        experiments, spare = api.without_spares(api.ordered(run_experiments.of_run(session, dag_id, run.run_id), tasks))
        spares += spare
        spare_lines += [{"run_id": run.run_id, **line} for line in api.spare_summary(spare)]
        marks = api.condition_marks(session, dag_id, run.run_id, tasks, experiments)
        every += [(run.run_id, e, marks) for e in experiments]
        summaries.append({"run_id": run.run_id, "state": str(run.state),
                          "paused": api.held(run, paused),
                          "run_after": run_experiments.iso(run.run_after),
                          "start_date": run_experiments.iso(run.start_date),
                          "end_date": run_experiments.iso(run.end_date),
                          "conf": run.conf or {}, "total": len(experiments)})
    limit = max(0, min(limit, api.MAX_LIMIT))
    experiments = [e for _, e, _ in every]
    chosen = {run.run_id for run in runs}
    return {
        "dag_id": dag_id, "total": len(every), "offset": offset, "limit": limit, "runs": summaries,
        "recent": api.recent_runs(session, {dag_id}),
        "tasks": api.task_summaries(tasks, experiments, spares),
        "spare": spare_lines,
        **api.columns(experiments),
        "pending": [{"run_id": a.run_id, "task": a.task, "url": a.path} for a in _pending(session, dag_id)
                    if a.run_id in chosen],
        "params": api.run_params(session, dag_id, runs[0].conf or {}) if runs else {},
        "goal": api.flow_goal(session, dag_id),
        "experiments": [{**e.as_json(), "run_id": run_id,
                         "conditions": marks.get((e.task, e.index), []) if e.record else [],
                         "artifacts": api.artifacts(e)} for run_id, e, marks in every[offset:offset + limit]],
    }


def _pending(session: Session, dag_id: str) -> list[Any]:
    from flow_airflow.approvals import store

    return store.pending(session, {dag_id})
