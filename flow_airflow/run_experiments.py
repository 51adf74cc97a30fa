"""The experiments of a DAG run, read from the Airflow metadata DB: one read model for every reader.

An experiment is one route of a flow task: a mapped task instance of ``<task slug>.run`` (or
one route of a batch of them, ``[flow_airflow] batch_routes``), its state and times, and its
record (the task instance's ``return_value`` XCom: ``flow_airflow.common.records.Record``, a
list of them for a batch). ``flow-airflow run``'s summary (``local_run``), the approvals page
(``approvals.store``) and the experiments page read them here. A running task reads the records
of the tasks before it through its own XCom pulls instead (``operators.xcom``).

Imports no web framework (the CLI uses it); Airflow and SQLAlchemy only inside functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flow_airflow.common import ids
from flow_airflow.common.records import Status, flatten, status_of

if TYPE_CHECKING:
    from sqlalchemy.orm import Session



@dataclass(frozen=True)
class ExperimentInstance:
    """One experiment of a run as the metadata DB has it: where it ran (``task_id``, ``map_index``), what it was
    and what it did (the task instance, or one route of its batch, and its record).

    ``record`` is its record as the experiment returned it (None: it left none, e.g. it failed,
    was skipped or never ran); ``params``, ``tags`` and ``label`` are read from it, the label
    as the Airflow UI shows the task instance (see :func:`shown_label`).
    """

    task: str  # the flow task's title
    task_id: str  # "<task slug>.run"
    map_index: int  # the task instance's; -1: the task never expanded (no route was planned)
    index: int  # the route's index among the task's experiments
    state: str  # the task instance's state ("success", "failed", "upstream_failed", "None", ...)
    label: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)
    start_date: datetime | None = None
    end_date: datetime | None = None
    record: dict[str, Any] | None = None

    @property
    def reused(self) -> dict[str, Any] | None:
        """The earlier experiment it was taken from, when it was reused (``dag_id``, ``run_id``, ``task``,
        ``index``, ``when``); None when it ran (:mod:`flow_airflow.runtime.reuse`)."""
        return (self.record or {}).get("reused")

    @property
    def duration(self) -> float | None:
        """Seconds the task instance ran (the whole batch, for a batch of routes), None if it did not end."""
        if self.start_date is None or self.end_date is None:
            return None
        return (self.end_date - self.start_date).total_seconds()

    def as_json(self) -> dict[str, Any]:
        """The experiment as the experiments page's JSON API gives it: where and what it ran, its state and
        times (ISO 8601, duration in seconds), ``lineage`` (task title -> experiment index on its route),
        ``upstream`` (the params and tags of the tasks before it), ``output`` (its artifacts' location in
        the artifact store), ``failed`` (why it did not succeed), ``series`` (metric -> values logged
        with ``log_metric(key, Ys=[...])``), ``charts`` (key -> the SDKs' chart: ``type``, ``series``, ticks),
        ``images`` (paths in its stored files), ``put_files`` (the dataset versions it made), ``key`` (what
        decides its result) and ``reused`` (the earlier experiment it was taken from, or None), from its
        record; ``has_record``: it left one."""
        record = self.record or {}
        return {
            "task": self.task, "task_id": self.task_id, "map_index": self.map_index, "index": self.index,
            "label": self.label, "state": self.state, "params": self.params, "tags": self.tags,
            "start_date": iso(self.start_date), "end_date": iso(self.end_date), "duration": self.duration,
            "lineage": record.get("route", {}), "upstream": record.get("upstream", {}),
            "output": record.get("output"), "failed": record.get("failed"), "series": record.get("series", {}),
            "charts": record.get("charts", {}), "images": record.get("images", []),
            "put_files": record.get("put_files", []), "key": record.get("key"), "reused": record.get("reused"),
            "has_record": self.record is not None,
        }


def iso(moment: datetime | None) -> str | None:
    """A moment as ISO 8601 text, None as None."""
    return moment.isoformat() if moment is not None else None


def of_run(
    session: Session, dag_id: str, run_id: str, titles: Mapping[str, str] | None = None
) -> list[ExperimentInstance]:
    """Every experiment of the DAG run ``dag_id`` / ``run_id``, task by task, in route order.

    :param titles: run task id (``<slug>.run``) -> flow task title, for the tasks wanted and their
        order (e.g. the flow file's order, ``local_run.titles_of``). None: every ``*.run`` task of
        the run, titled as its records say, in task id order.
    :returns: an experiment per task instance, or per route of a batch; an empty list for a run
        that does not exist.
    """
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    # the columns only, not ORM objects: a 10,000-route run is read in a fraction of the time
    query = select(TI.task_id, TI.map_index, TI.state, TI.start_date, TI.end_date, TI.rendered_map_index).where(
        TI.dag_id == dag_id, TI.run_id == run_id)
    if titles is None:
        query = query.where(TI.task_id.endswith(ids.suffix(ids.RUN)))
    else:
        query = query.where(TI.task_id.in_(sorted(titles)))
    tis = list(session.execute(query).all())
    xcoms = session.execute(select(XComModel.task_id, XComModel.map_index, XComModel.value).where(
        XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == "return_value",
        XComModel.task_id.in_(sorted({ti.task_id for ti in tis})),
    )).all()
    values = {(x.task_id, x.map_index): XComModel.deserialize_value(x) for x in xcoms}
    titles = titles if titles is not None else _titles(tis, values)
    order = list(titles)
    experiments: list[ExperimentInstance] = []
    place = {task_id: i for i, task_id in enumerate(order)}
    for ti in sorted(tis, key=lambda t: (place[t.task_id], t.map_index)):
        experiments += _experiments(ti, titles[ti.task_id], values.get((ti.task_id, ti.map_index)))
    return experiments


def _titles(tis: list[Any], values: Mapping[tuple[str, int], Any]) -> dict[str, str]:
    """Run task id -> flow task title, in task id order: the title its records name (the task instance
    rows of mapped tasks do not keep the task's display name), else the task id."""
    titles = {t: t for t in sorted({ti.task_id for ti in tis})}
    for (task_id, _), value in values.items():
        first = next(iter(flatten(value)), None)
        if first is not None and first.get("task"):
            titles[task_id] = str(first["task"])
    return titles


def _experiments(ti: Any, title: str, value: Any) -> list[ExperimentInstance]:
    """The experiments of one task instance: one, or a route each of a batch (its XCom is a list)."""
    common = {"task": title, "task_id": ti.task_id, "map_index": ti.map_index, "state": str(ti.state),
              "start_date": ti.start_date, "end_date": ti.end_date}
    if isinstance(value, list):  # a batch of routes ([flow_airflow] batch_routes): a record each
        return [
            ExperimentInstance(**{**common, "state": ended_as(common["state"], r)}, index=r.get("index", 0),
                               label=r.get("label") or "no params",
                               params=r.get("params", {}), tags=r.get("tags", {}), record=r)
            for r in flatten(value)
        ]
    record = value if isinstance(value, dict) else None
    common["state"] = ended_as(common["state"], record)
    return [ExperimentInstance(
        **common, index=max(ti.map_index, 0), label=shown_label(ti.rendered_map_index, ti.map_index, bool(value)),
        params=(record or {}).get("params", {}), tags=(record or {}).get("tags", {}), record=record,
    )]


def ended_as(state: str, record: Any) -> str:
    """An experiment's state: its task instance's, unless that says ``failed`` while the experiment left a
    record of success (no ``failed`` in it): the experiment ended well and its task instance was failed
    afterwards (Airflow's "mark run as failed" fails every instance of a mapped task of which one still
    ran, or the rest of its batch failed): ``success``, as it ended."""
    if state == "failed" and isinstance(record, dict) and status_of(record) is Status.SUCCESS:
        return "success"
    return state


def shown_label(rendered: str | None, map_index: int, has_record: bool) -> str:
    """The label of an experiment's task instance: its ``rendered_map_index``, unless Airflow made it up
    (an unrendered map index shows as its number, ``"0"``), then what :func:`unrendered_label` says."""
    if rendered and rendered != str(map_index):
        return rendered
    return unrendered_label(map_index, has_record)


def unrendered_label(map_index: int, has_record: bool) -> str:
    """The label of an experiment's task instance that Airflow shows by number only (no label was made).

    A task instance that ran and left a record has no varying params. Map index -1 (experiments are
    always mapped): the task never expanded, what plans its routes did not run (its upstream failed
    or was skipped), so none of its routes was planned. Else a planned route whose experiment did not
    run (an upstream task failed or was skipped first).
    """
    if has_record:
        return "no params"
    return "routes never planned" if map_index < 0 else f"route {map_index}, not run"


@dataclass(frozen=True)
class FlowTask:
    """A flow task as its DAG has it: its experiments' task id, title, the run task ids of its parents,
    and the task id of its condition (``<slug>.condition``, None: it has no conditions)."""

    task_id: str
    title: str
    parents: tuple[str, ...]
    condition: str | None


def flow_tasks(session: Session, dag_id: str) -> list[FlowTask]:
    """The flow tasks of the DAG ``dag_id`` (its latest serialized version), parents before children.

    :returns: [] when the DAG is not (or no longer) serialized.
    """
    from airflow.models.serialized_dag import SerializedDagModel

    dag = SerializedDagModel.get_dag(dag_id, session=session)
    if dag is None:
        return []
    tasks = dag.task_dict
    runs = [t for t in tasks if ids.is_role(t, ids.RUN)]

    def run_parents(task_id: str, seen: set[str]) -> set[str]:
        found: set[str] = set()
        for up in tasks[task_id].upstream_task_ids:
            if up not in seen:
                seen.add(up)
                found |= {up} if ids.is_role(up, ids.RUN) else run_parents(up, seen)
        return found

    parents = {t: run_parents(t, set()) for t in runs}
    depth: dict[str, int] = {}

    def depth_of(task_id: str) -> int:
        if task_id not in depth:
            depth[task_id] = 1 + max((depth_of(p) for p in parents[task_id]), default=-1)
        return depth[task_id]

    found = []
    for t in sorted(runs, key=lambda t: (depth_of(t), t)):
        condition = ids.task_id(ids.group_of(t), ids.CONDITION)
        found.append(FlowTask(t, str(tasks[t].task_display_name or t), tuple(sorted(parents[t])),
                              condition if condition in tasks else None))
    return found


def condition_choices(session: Session, dag_id: str, run_id: str) -> dict[str, dict[str, list[int]] | None]:
    """What each condition task of the run let through: ``<slug>.condition`` -> {parent title: the
    indexes of its experiments that passed} (read from the routes it planned, its XCom), or None when
    it has not run yet (or nothing passed: it was skipped; see its state and log).
    """
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    xcoms = session.scalars(select(XComModel).where(
        XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == "return_value",
        XComModel.task_id.endswith(ids.suffix(ids.CONDITION)),
    )).all()
    choices: dict[str, dict[str, list[int]] | None] = {}
    for x in xcoms:
        passed: dict[str, set[int]] = {}
        for route in flatten(XComModel.deserialize_value(x)):  # its routes, batched as its experiments are
            for parent, indexes in (route.get("parents") or {}).items():
                passed.setdefault(parent, set()).update(indexes)
        choices[x.task_id] = {p: sorted(ix) for p, ix in passed.items()}
    return choices


def condition_decisions(session: Session, dag_id: str, run_id: str) -> dict[str, dict[tuple[str, int], dict[str, Any]]]:
    """What each condition task of the run decided on each experiment it tested, and why, as it recorded
    it (its XCom ``decisions``, :func:`flow_airflow.common.conditions.decisions`): ``<slug>.condition`` ->
    {(parent title, experiment index): {"passed": bool, "why": [line, ...]}}. Kept also when nothing passed
    (the task was skipped after recording); a condition task not run yet (or older than the record) is absent.
    """
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    xcoms = session.scalars(select(XComModel).where(
        XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == "decisions",
        XComModel.task_id.endswith(ids.suffix(ids.CONDITION)),
    )).all()
    found: dict[str, dict[tuple[str, int], dict[str, Any]]] = {}
    for x in xcoms:
        for d in XComModel.deserialize_value(x) or []:
            found.setdefault(x.task_id, {})[(str(d["task"]), int(d["index"]))] = {
                "passed": bool(d["passed"]), "why": [str(line) for line in d.get("why", [])]}
    return found
