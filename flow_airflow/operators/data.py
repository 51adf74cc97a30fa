"""The operator of a data task (``type: data``): a version of a dataset for the tasks after it.

At run start it resolves the version the task asks for (spec, "Data task fields"): ``data_commit``
(a commit, a unique prefix of one, or a version name such as ``v1``), else ``data_query`` (the
files of the latest commit that a saved query selects), else the latest commit; when the run was
started by a new version of the dataset (the asset event of ``cnvrg-dataset://<name>``), "latest"
is the commit of that event. Its record (XCom) holds the resolved commit, so a run can always be
reproduced; every experiment after it gets that version at ``/data/<name>``
(:func:`flow_airflow.runtime.prepare.stage_datasets`). A data task has one route: it does not
multiply the routes of the tasks after it. Errors say, in plain words, what exists.
"""

from __future__ import annotations

from typing import Any

from flow_airflow.common.records import Record
from flow_airflow.operators.base import FlowTaskOperator


class DataTaskOperator(FlowTaskOperator):
    """Resolves a data task's dataset version and records it (XCom) for the tasks after it."""

    ui_color = "#e6f4ea"

    def run_route(self, ti: Any, route: dict[str, Any], index: int, parents: dict[str, list[Record]],
                  project_env: dict[str, str]) -> Record:
        """The version of the dataset for this run: its record, with ``dataset`` telling the tasks after it."""
        from flow_airflow.common.routes import record_route
        from flow_airflow.spec import models

        task = self.setup.task
        assert isinstance(task, models.DataTask)
        selection, patterns, why = self._resolve(task)
        self.log.info("dataset %s: %s (commit %s)", selection.describe(), why, selection.commit)
        self.log.info("the tasks after '%s' find it at /data/%s (%s)", task.title, task.dataset,
                      "a read-only copy kept on the worker (use_cached)" if task.use_cached
                      else "a copy of their own per experiment")
        tags = {"dataset": task.dataset, "commit": selection.commit}
        if task.data_query:
            tags["query"] = task.data_query
        return Record(task=task.title, index=index, params=dict(route["params"]), tags=tags, output=None,
                      route=record_route(task.title, index, parents, self.setup.gathered), upstream={},
                      label=route.get("label") or "", labels={},
                      dataset={"name": task.dataset, "commit": selection.commit, "query": task.data_query,
                               "patterns": patterns, "names": selection.names, "files": len(selection.files),
                               "use_cached": bool(task.use_cached)})

    def _resolve(self, task: Any) -> tuple[Any, list[str] | None, str]:
        """The task's version (a ``Selection``), its query's patterns, and why this version, in words.

        A run started by a new version of the dataset uses that version where the task asks for the
        latest (no ``data_commit``), its query's selection of it too. :class:`ExperimentFailed`
        saying what exists when there is no such dataset, version or query.
        """
        from flow_airflow.datasets.events import triggered_commit
        from flow_airflow.datasets.store import DatasetError, configured
        from flow_airflow.runtime.experiment import ExperimentFailed

        wanted, why = task.data_commit, "its data_commit"
        if not (wanted and wanted.strip()):
            wanted = triggered_commit(_context(), task.dataset)
            why = "the version whose asset event started this run" if wanted else "the latest, at run start"
        try:
            store = configured()
            selection = store.resolve(task.dataset, wanted)
            if not task.data_query:
                return selection, None, why
            queries = store.queries(task.dataset)
            if task.data_query not in queries:
                store.resolve(task.dataset, query=task.data_query)  # raises, naming the queries there are
            patterns = queries[task.data_query]
            return (store.select(task.dataset, selection.commit, patterns, task.data_query), patterns,
                    f"the files its data_query '{task.data_query}' selects ({', '.join(patterns)}) of {why}")
        except DatasetError as e:
            raise ExperimentFailed(f"'{task.title}' cannot use dataset '{task.dataset}': {e}"
                                   + _hint(task, self)) from None


def _context() -> Any:
    """The running task's context (its run's triggering asset events); empty outside a task."""
    from airflow.sdk import get_current_context

    try:
        return get_current_context()
    except RuntimeError:
        return {}


def _hint(task: Any, operator: FlowTaskOperator) -> str:
    """How to push the dataset when the flow's own folder holds it (``datasets/<name>/``) and the store does not."""
    from pathlib import Path

    from flow_airflow.datasets.store import configured

    folder = Path(operator.setup.project_dir) / "datasets" / task.dataset
    if not folder.is_dir() or task.dataset in configured().datasets():
        return ""
    return (f". The flow's folder holds {folder}: 'flow-airflow import' of the flow pushes it, or "
            f"'flow-airflow dataset push {task.dataset} {folder}/<version> --name <version>'")
