"""What the experiments page shows of a DAG run, as JSON: built on ``flow_airflow.run_experiments``.

``run_view(session, dag_id, run_id, offset, limit)`` is the body of
``GET /flow-airflow/api/experiments/<dag_id>/<run_id>``::

    {"dag_id", "run_id", "state", "note", "conf", "start_date", "end_date",
     "paused",                                   # the flow is paused: nothing more of the run is scheduled
     "total", "offset", "limit",                 # paging over every experiment of the run
     "tasks": [{"task", "task_id", "total", "states": {state: count}, "condition", "parents", "spare"}],
     "spare": [{"task", "task_id", "count", "label"}],  # spare task instances, per task: not experiments
     "param_keys", "tag_keys", "differing",     # columns over the whole run; params whose values differ
     "pending": [{"task", "url"}],              # gates waiting for an approval
     "params": {task title: {param: value}},    # this run's params (the flow's, overridden by its conf)
     "goal": {"tag", "direction", "task"} | None,  # the metric the flow's own conditions seek (flow_goal)
     "experiments": [ExperimentInstance.as_json() + {"conditions": [...], "artifacts": [...]}]}

``stop_run`` is ``POST .../<dag_id>/<run_id>/stop``, the page's "Stop": see its docstring.

Airflow and the approvals store are imported inside functions (the plugin is loaded by every process).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flow_airflow import run_experiments
from flow_airflow.aborting import abort_run
from flow_airflow.common.ids import CONDITION, suffix
from flow_airflow.run_experiments import ExperimentInstance, FlowTask

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

MAX_LIMIT = 1000  # experiments per page of the API
ARTIFACTS_SHOWN = 50  # files listed per experiment


def run_view(session: Session, dag_id: str, run_id: str, offset: int = 0, limit: int = 200) -> dict[str, Any] | None:
    """The run and one page of its experiments (``offset``, ``limit`` <= ``MAX_LIMIT``); None: no such run."""
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    if run is None:
        return None
    tasks = run_experiments.flow_tasks(session, dag_id)
    every, spares = without_spares(ordered(run_experiments.of_run(session, dag_id, run_id), tasks))
    limit = max(0, min(limit, MAX_LIMIT))
    shown = every[offset:offset + limit]
    marks = condition_marks(session, dag_id, run_id, tasks, every)
    return {
        "dag_id": dag_id, "run_id": run_id, "state": str(run.state), "note": run.note, "conf": run.conf or {},
        "paused": held(run, paused_dags(session, {dag_id})),
        "start_date": run_experiments.iso(run.start_date), "end_date": run_experiments.iso(run.end_date),
        "total": len(every), "offset": offset, "limit": limit,
        "tasks": task_summaries(tasks, every, spares),
        "spare": spare_summary(spares),
        **columns(every),
        "pending": pending_approvals(session, dag_id, run_id),
        "params": run_params(session, dag_id, run.conf or {}),
        "goal": flow_goal(session, dag_id),
        "experiments": [{**e.as_json(), "conditions": marks.get((e.task, e.index), []) if e.record else [],
                         "artifacts": artifacts(e)} for e in shown],
    }


def ordered(experiments: list[ExperimentInstance], tasks: list[FlowTask]) -> list[ExperimentInstance]:
    """The run's experiments in the flow's order (parents first), titled as the DAG names its tasks
    (a task not yet run has no record to name it), each task's in route order."""
    place = {t.task_id: i for i, t in enumerate(tasks)}
    titles = {t.task_id: t.title for t in tasks}
    titled = [dataclasses.replace(e, task=titles.get(e.task_id, e.task)) for e in experiments]
    return sorted(titled, key=lambda e: (place.get(e.task_id, len(place)), e.task_id))  # stable: route order kept


SPARE_LABEL = "spare:"  # how a spare task instance is labelled (flow_airflow.operators.base)


def is_spare(e: ExperimentInstance) -> bool:
    """A spare task instance: one of the mapped task instances the DAG lists beyond the routes this run
    planned (its params or conf gave fewer), skipped without running anything. Not an experiment."""
    return e.record is None and e.state == "skipped" and e.label.startswith(SPARE_LABEL)


def without_spares(every: list[ExperimentInstance]) -> tuple[list[ExperimentInstance], list[ExperimentInstance]]:
    """The experiments of a run, and apart from them its spare task instances (see :func:`is_spare`)."""
    return [e for e in every if not is_spare(e)], [e for e in every if is_spare(e)]


def spare_summary(spares: list[ExperimentInstance]) -> list[dict[str, Any]]:
    """Per task with spare task instances: how many, and their label (e.g. ``spare: 17 route(s) in this run``)."""
    found: dict[str, dict[str, Any]] = {}
    for e in spares:
        found.setdefault(e.task_id, {"task": e.task, "task_id": e.task_id, "count": 0, "label": e.label})["count"] += 1
    return list(found.values())


def task_summaries(tasks: list[FlowTask], every: list[ExperimentInstance],
                   spares: list[ExperimentInstance] | None = None) -> list[dict[str, Any]]:
    """Per flow task: its experiments' count and states, its spare task instances' count (not counted
    as experiments), its parents' titles and its condition task."""
    titles = {t.task_id: t.title for t in tasks}
    found: dict[str, dict[str, Any]] = {}

    def summary(e: ExperimentInstance) -> dict[str, Any]:
        return found.setdefault(e.task_id, {"task": e.task, "task_id": e.task_id, "total": 0, "states": {},
                                            "condition": None, "parents": [], "spare": 0})

    for t in tasks:
        found[t.task_id] = {"task": t.title, "task_id": t.task_id, "total": 0, "states": {},
                            "condition": t.condition, "parents": [titles.get(p, p) for p in t.parents], "spare": 0}
    for e in every:
        summary(e)["total"] += 1
        summary(e)["states"][e.state] = summary(e)["states"].get(e.state, 0) + 1
    for e in spares or []:
        summary(e)["spare"] += 1
    return list(found.values())


def columns(every: list[ExperimentInstance]) -> dict[str, list[str]]:
    """The param and tag keys of the whole run (the table's columns, in first-seen order), and the
    params with more than one value among the experiments that have them ("only the params that differ")."""
    params: dict[str, set[str]] = {}
    tags: dict[str, None] = {}
    for e in every:
        for k, v in e.params.items():
            params.setdefault(k, set()).add(str(v))
        tags.update(dict.fromkeys(e.tags))
    differing = [k for k, values in params.items() if len(values) > 1]
    return {"param_keys": list(params), "tag_keys": list(tags), "differing": differing}


def condition_marks(session: Session, dag_id: str, run_id: str, tasks: list[FlowTask],
                    every: list[ExperimentInstance]) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """(task title, route index) -> what each condition after it decided on it: ``{"task": the task with
    the condition, "condition": its task id, "passed": bool, "why": [the condition's lines on it]}`` (``why``
    is empty for a parent the condition does not test); nothing for a condition not decided yet."""
    choices = run_experiments.condition_choices(session, dag_id, run_id)
    decided = run_experiments.condition_decisions(session, dag_id, run_id)
    titles = {t.task_id: t.title for t in tasks}
    skipped = _skipped_conditions(session, dag_id, run_id)
    marks: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for t in tasks:
        if t.condition is None or (t.condition not in choices and t.condition not in skipped):
            continue
        passed = choices.get(t.condition) or {}
        why = decided.get(t.condition, {})
        for parent in (titles.get(p, p) for p in t.parents):
            for e in (e for e in every if e.task == parent and e.record is not None):  # routes that ran
                ok = e.index in passed.get(parent, [])
                marks.setdefault((parent, e.index), []).append(
                    {"task": t.title, "condition": t.condition, "passed": ok,
                     "why": why.get((parent, e.index), {}).get("why", [])})
    return marks


def _skipped_conditions(session: Session, dag_id: str, run_id: str) -> set[str]:
    """The condition tasks of the run that were skipped: nothing passed (or a parent had no experiment)."""
    from airflow.models.taskinstance import TaskInstance as TI
    from sqlalchemy import select

    return set(session.scalars(select(TI.task_id).where(
        TI.dag_id == dag_id, TI.run_id == run_id, TI.task_id.endswith(suffix(CONDITION)), TI.state == "skipped")))


def pending_approvals(session: Session, dag_id: str, run_id: str) -> list[dict[str, str]]:
    """The run's gates that wait for a decision ("Pending Approval"), with the approval page's path."""
    from flow_airflow.approvals import store

    return [{"task": a.task, "url": a.path} for a in store.pending(session, {dag_id}) if a.run_id == run_id]


def run_params(session: Session, dag_id: str, conf: dict[str, Any]) -> dict[str, Any]:
    """This run's params: the flow's (the DAG's params, task title -> {param: value}), overridden by
    the run's ``conf`` (same shape, README "Params at trigger time"): the re-run form's start."""
    from airflow.models.serialized_dag import SerializedDagModel

    dag = SerializedDagModel.get_dag(dag_id, session=session)
    flow = dag.params.dump() if dag is not None else {}
    merged = {title: dict(values) for title, values in flow.items() if isinstance(values, dict)}
    for title, values in conf.items():
        if isinstance(values, dict) and title in merged:
            merged[title].update(values)
    return merged


GOALS = {"max": "max", "min": "min", "gt": "max", "lt": "min"}  # a condition's objective -> what is best


def flow_goal(session: Session, dag_id: str) -> dict[str, str] | None:
    """The metric the flow's own conditions seek, for the page's "best": the first ``max`` / ``min``
    condition in the flow file (``max accuracy``: accuracy, highest), else the first ``gt`` / ``lt`` one
    (``gt``: highest). ``{"tag", "direction": "max" | "min", "task": the task with the condition}``;
    None when no condition compares a tag (or the DAG keeps no flow file in its docs).

    The flow file is the one the DAG was compiled from: its docs hold its YAML
    (``flow_airflow.render.dag``), read here as data only.
    """
    from airflow.models.serialized_dag import SerializedDagModel

    from flow_airflow.spec.errors import FlowError
    from flow_airflow.spec.source import read_source

    dag = SerializedDagModel.get_dag(dag_id, session=session)
    docs = (dag.doc_md or "") if dag is not None else ""
    start = docs.find("```yaml\n")
    end = docs.find("\n```", start + 8)
    if start < 0 or end < 0:
        return None
    try:  # read as the loader reads a flow file (cnvrg's files are not always plain YAML)
        flow = read_source("flow.yaml", docs[start + 8:end]).data
    except FlowError:
        return None
    found: list[tuple[int, dict[str, str]]] = []
    for task in (flow.get("tasks") if isinstance(flow, dict) else None) or []:
        for c in (task.get("conditions") if isinstance(task, dict) else None) or []:
            objective = str(c.get("objective", "")).strip().lower() if isinstance(c, dict) else ""
            if objective in GOALS and c.get("tag_key"):
                goal = {"tag": str(c["tag_key"]).strip(), "direction": GOALS[objective],
                        "task": str(task.get("title", ""))}
                found.append((0 if objective in ("max", "min") else 1, goal))
    return min(found, key=lambda f: f[0])[1] if found else None


def artifacts(e: ExperimentInstance) -> list[str]:
    """The files of an experiment's stored output folder (relative paths, at most ``ARTIFACTS_SHOWN``)."""
    output = (e.record or {}).get("output")
    if not output:
        return []
    root = Path(output)
    if not root.is_dir():
        return []
    found: list[str] = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            found.append(path.relative_to(root).as_posix())
            if len(found) >= ARTIFACTS_SHOWN:
                break
    return found


def artifact_file(session: Session, dag_id: str, run_id: str, task_id: str, index: int, name: str) -> Path | None:
    """The stored file ``name`` of the experiment ``task_id`` #``index`` of the run, if it exists and lies
    inside that experiment's output folder (which lies in the artifact store); else None."""
    from flow_airflow import settings

    found = [e for e in run_experiments.of_run(session, dag_id, run_id) if e.task_id == task_id and e.index == index]
    output = (found[0].record or {}).get("output") if found else None
    if not output:
        return None
    root = Path(output).resolve()
    path = (root / name).resolve()
    store = settings.artifacts_root().resolve()
    if not (path.is_relative_to(root) and root.is_relative_to(store) and path.is_file()):
        return None
    return path


def may_edit_runs(user: Any, dag_id: str) -> bool:
    """Whether ``user`` may change the DAG's runs (stop one, trigger one), as Airflow's auth manager says."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    return bool(get_auth_manager().is_authorized_dag(method="PUT", access_entity=DagAccessEntity.RUN,
                                                     details=DagDetails(id=dag_id), user=user))


def stop_run(session: Session, dag_id: str, run_id: str, user: Any, now: datetime | None = None) -> str:
    """Stop a running run from the page (cnvrg's "Abort"): :func:`flow_airflow.aborting.abort_run`, with the
    note "Stopped by <user> at <time> UTC".

    :param session: a metadata DB session; committed by the caller.
    :param user: Airflow's user who stops it (its name and id go into the note).
    :param now: the moment of the stop (UTC); None: now.
    :returns: the note.
    :raises flow_airflow.aborting.NotAbortable: no such run, or it has ended.
    """
    now = now or datetime.now(UTC)
    note = f"Stopped by {user.get_name()} at {now.strftime('%Y-%m-%d %H:%M:%S')} UTC"
    abort_run(session, dag_id, run_id, note, now, str(user.get_id()))
    return note


FLOW_TAG = "cnvrg-flow"  # every flow's DAG carries it (flow_airflow.render.dag)
RECENT = 50


def run_exists(session: Session, dag_id: str, run_id: str) -> bool:
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    return session.scalar(select(DagRun.id).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)) is not None


STOPPED_NOTE = "Stopped"  # a run stopped from the page says "Stopped by <user> at <time>" in its note
UNFINISHED = ("queued", "running")


def run_status(state: str, note: str | None, paused: bool, pending: bool) -> str:
    """What a run is, in the page's words: "Paused" (its flow is paused: Airflow schedules nothing more
    of it until it is unpaused), "Pending Approval" (a gate waits), "Stopped" (stopped by a user,
    its note says), else its state ("Failed", "Success", "Running", "Queued")."""
    if paused and state in UNFINISHED:  # first: a decision made now waits for the unpause too
        return "Paused"
    if pending and state in UNFINISHED:
        return "Pending Approval"
    if state == "failed" and (note or "").startswith(STOPPED_NOTE):
        return "Stopped"
    return state.replace("_", " ").capitalize()


def held(run: Any, paused: set[str]) -> bool:
    """Whether the DagRun ``run`` waits for its flow's unpause: not finished, of a DAG among ``paused``,
    and scheduled by Airflow's scheduler (a ``dag.test()`` run, ``flow-airflow run``'s, goes on anyway)."""
    by = getattr(run.triggered_by, "value", run.triggered_by)  # DagRunTriggeredByType, a plain Enum
    return run.dag_id in paused and str(run.state) in UNFINISHED and by != "test"


def paused_dags(session: Session, dag_ids: set[str]) -> set[str]:
    """The DAGs among ``dag_ids`` that are paused."""
    from airflow.models.dag import DagModel
    from sqlalchemy import select

    return set(session.scalars(select(DagModel.dag_id).where(DagModel.dag_id.in_(sorted(dag_ids)),
                                                             DagModel.is_paused.is_(True))))


def best_value(session: Session, dag_id: str, run_id: str, goal: dict[str, str] | None) -> dict[str, Any] | None:
    """The best value of the flow's condition metric (``goal``, :func:`flow_goal`) among the run's
    experiments: ``{"tag", "direction", "value", "task", "label"}``, None when none has it (as a number)."""
    if goal is None:
        return None
    scored = []
    for e in run_experiments.of_run(session, dag_id, run_id):
        try:
            scored.append((float(e.tags[goal["tag"]]), e))
        except (KeyError, TypeError, ValueError):
            continue
    scored = [(v, e) for v, e in scored if v == v]  # not NaN
    if not scored:
        return None
    _, e = (max if goal["direction"] == "max" else min)(scored, key=lambda s: s[0])
    return {"tag": goal["tag"], "direction": goal["direction"], "value": e.tags[goal["tag"]], "task": e.task,
            "label": e.label}


def triggered_by(run: Any) -> str:
    """Who or what started the DagRun ``run``: ``by <user>``, ``flow-airflow run`` (``dag.test()``), or its
    run type (``scheduled``, ``asset_triggered``, ...)."""
    if getattr(run.triggered_by, "value", run.triggered_by) == "test":
        return "flow-airflow run"
    return f"by {run.triggering_user_name}" if run.triggering_user_name else str(run.run_type)


def short_run_id(run_id: str) -> str:
    """A run id as the pages show it (in full on hover): ``manual__2026-12-07T12:33:05.305041+00:00`` as
    ``manual 2026-12-07 12:33:05``; another id as it is."""
    kind, sep, moment = run_id.partition("__")
    if sep and len(moment) >= 19 and moment[4] == "-" and moment[10] == "T":
        return f"{kind} {moment[:10]} {moment[11:19]}"
    return run_id


def recent_runs(session: Session, dag_ids: set[str], limit: int = RECENT, best: bool = False) -> list[dict[str, Any]]:
    """The newest runs of the flows among ``dag_ids`` (DAGs tagged ``cnvrg-flow``), newest first: each with
    its flow's title, its status (:func:`run_status`), when and by whom it was triggered (``run_type``:
    manual, scheduled, ...; ``triggered_by_user``) and, with ``best``, the best value of the flow's
    condition metric (:func:`best_value`)."""
    from airflow.models.dag import DagModel, DagTag
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    from flow_airflow.approvals import store

    flows = select(DagTag.dag_id).where(DagTag.name == FLOW_TAG, DagTag.dag_id.in_(sorted(dag_ids)))
    query = (select(DagRun).where(DagRun.dag_id.in_(flows))
             .order_by(DagRun.run_after.desc(), DagRun.id.desc()).limit(limit))
    runs = list(session.scalars(query))
    shown = {r.dag_id for r in runs}
    titles = dict(session.execute(select(DagModel.dag_id, DagModel.dag_display_name)
                                  .where(DagModel.dag_id.in_(sorted(shown)))).all()) if shown else {}
    paused = paused_dags(session, shown) if shown else set()
    waiting = {(a.dag_id, a.run_id) for a in store.pending(session, shown)} if shown else set()
    goals = {d: flow_goal(session, d) for d in shown} if best else {}
    found = []
    for r in runs:
        state = str(r.state)
        found.append({
            "dag_id": r.dag_id, "flow": titles.get(r.dag_id) or r.dag_id, "run_id": r.run_id,
            "run_label": short_run_id(r.run_id), "state": state,
            "status": run_status(state, r.note, held(r, paused), (r.dag_id, r.run_id) in waiting),
            "run_after": run_experiments.iso(r.run_after), "queued_at": run_experiments.iso(r.queued_at),
            "start_date": run_experiments.iso(r.start_date), "end_date": run_experiments.iso(r.end_date),
            "run_type": str(r.run_type), "triggered_by_user": r.triggering_user_name, "triggered": triggered_by(r),
            **({"best": best_value(session, r.dag_id, r.run_id, goals.get(r.dag_id))} if best else {}),
        })
    return found
