"""The experiment record: what one experiment leaves (its task instance's XCom) for the tasks after it.

Compile time makes stand-in records (``common.routes.stand_in_records``), run time the real ones
(``flow_airflow.operators``, ``flow_airflow.runtime``); the experiments page, the approvals page and
``flow-airflow run`` read them back. A record says how its experiment ended (:class:`Status`, with
the reason in ``failed``); a task instance that runs a batch of routes (``[flow_airflow]
batch_routes``) leaves the list of their records (:func:`batches`, :func:`flatten`).
No Airflow import here: planning tasks, unit tests and the command line use it alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, TypedDict


class Record(TypedDict, total=False):
    """What one experiment leaves for the tasks after it."""

    task: str
    index: int
    params: dict[str, str]
    tags: dict[str, str]
    output: str | None  # where the artifact store keeps its output folder
    route: dict[str, int]  # task title -> experiment index, for every task on this route
    upstream: dict[str, dict[str, dict[str, str]]]  # title -> {"params", "tags"} of tasks before
    label: str  # what the UI shows for its task instance: see common.routes.label_text
    labels: dict[str, str]  # the parts of its label: "" -> its own varying params, title -> a task's before it
    series: dict[str, dict[str, list[Any]]]  # metric -> {"ys", "xs"}: what log_metric(key, Ys=[...]) logged
    # the SDKs' charts (log_chart, create_chart, update_chart, cnvrg_linechart_ lines): key -> {"type" (line, bar,
    # scatter, heatmap), "series": [{"name", "data"}], "title", "x_ticks", "y_ticks", ...} (runtime.tags.TagLog)
    charts: dict[str, dict[str, Any]]
    images: list[str]  # the images it logged (log_artifacts of a .png/.jpg, log_images): paths in its output
    # the dataset versions its put_files committed: [{"dataset", "commit", "new", "files", "event"}]
    put_files: list[dict[str, Any]]
    # set when the experiment did not succeed: "<status>: <reason>" (see not_succeeded, status_of, reason_of)
    failed: str
    # a data task's version of its dataset: {"name", "commit", "query", "patterns", "names", "files", "use_cached"}
    dataset: dict[str, Any]
    # a deploy task's endpoint: {"name", "url", "version", "compute"} (flow_airflow.operators.deploy)
    endpoint: dict[str, Any]
    key: str  # an exec experiment's key: what decides its result (flow_airflow.runtime.reuse)
    # set when it was not run but taken from an earlier experiment of the same key: {"dag_id", "run_id",
    # "task", "index", "when"} of that one
    reused: dict[str, Any]


class Status(StrEnum):
    """How an experiment ended, as its record says (in the words of Airflow's task instance states)."""

    SUCCESS = "success"  # it ran and succeeded: its record has no ``failed``
    FAILED = "failed"  # it ran (or tried to start) and failed
    SKIPPED = "skipped"  # it did not run: it follows a parent experiment that did not succeed, or left no record


def not_succeeded(record: Record, status: Status, reason: str) -> Record:
    """Mark ``record`` as not succeeded (``status`` FAILED or SKIPPED) saying why in one line: its ``failed``
    is ``"<status>: <reason>"``, the text the experiments page and the condition log show."""
    record["failed"] = f"{status}: {reason}"
    return record


def status_of(record: Mapping[str, Any]) -> Status:
    """How the experiment of ``record`` ended: SUCCESS without ``failed``, else what its ``failed`` starts with
    (any text but ``failed...``: SKIPPED)."""
    failed = str(record.get("failed") or "")
    if not failed:
        return Status.SUCCESS
    return Status.FAILED if failed.startswith(Status.FAILED) else Status.SKIPPED


def reason_of(record: Mapping[str, Any]) -> str:
    """Why the experiment of ``record`` did not succeed, without its status (``""`` when it succeeded)."""
    failed = str(record.get("failed") or "")
    status, colon, reason = failed.partition(": ")
    return reason if colon and status in (Status.FAILED, Status.SKIPPED) else failed


def succeeded(records: Iterable[Record]) -> list[Record]:
    """The records of experiments that succeeded (one that did not leaves a record all the same)."""
    return [r for r in records if status_of(r) is Status.SUCCESS]


def flatten(values: Any) -> list[Record]:
    """The records in XCom values, in their order: a record, a batch's list of them, or a list of those
    (``xcom_pull`` over the task instances of a mapped task); anything else (None: no record) is left out."""
    values = [values] if isinstance(values, dict) else list(values or [])
    flat = [r for v in values for r in (v if isinstance(v, list) else [v])]
    return [r for r in flat if isinstance(r, dict)]


def batches(routes: list[Any], batch: int) -> list[Any]:
    """What a task's experiments are mapped over: a route each, or a list of ``batch`` routes each."""
    if batch <= 1:
        return routes
    return [routes[i : i + batch] for i in range(0, len(routes), batch)]


def batches_of_json(routes: list[str], batch: int) -> list[str]:
    """:func:`batches` of routes given as JSON text, as JSON text."""
    if batch <= 1:
        return routes
    return ["[" + ",".join(chunk) + "]" for chunk in batches(routes, batch)]
