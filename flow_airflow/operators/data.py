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

from flow_airflow.common.routes import Record
from flow_airflow.operators.base import FlowTaskOperator


class DataTaskOperator(FlowTaskOperator):
    """Resolves a data task's dataset version and records it (XCom) for the tasks after it."""

    ui_color = "#e6f4ea"

    def run_route(self, ti: Any, route: dict[str, Any], index: int, parents: dict[str, list[Record]],
                  project_env: dict[str, str]) -> Record:
        """The version of the dataset for this run: its record, with ``dataset`` telling the tasks after it."""
        from flow_airflow import settings
        from flow_airflow.common.routes import lineage
        from flow_airflow.datasets.events import triggered_commit
        from flow_airflow.datasets.store import DatasetError, DatasetStore
        from flow_airflow.runtime.experiment import ExperimentFailed
        from flow_airflow.spec import models

        task = self.setup.task
        assert isinstance(task, models.DataTask)
        store = DatasetStore(settings.datasets_root())
        wanted, why = task.data_commit, "its data_commit"
        if not (wanted and wanted.strip()) and not task.data_query:
            wanted, why = triggered_commit(_context(), task.dataset), "the asset event that started this run"
            why = why if wanted else "the latest, at run start"
        try:
            selection = store.resolve(task.dataset, wanted, task.data_query)
        except DatasetError as e:
            raise ExperimentFailed(f"'{task.title}' cannot use dataset '{task.dataset}': {e}") from None
        patterns = store.queries(task.dataset)[task.data_query] if task.data_query else None
        why = f"the files its data_query '{task.data_query}' selects ({', '.join(patterns or [])}) of the latest" \
            if task.data_query else why
        self.log.info("dataset %s: %s (commit %s)", selection.describe(), why, selection.commit)
        self.log.info("the tasks after '%s' find it at /data/%s (%s)", task.title, task.dataset,
                      "a read-only copy kept on the worker (use_cached)" if task.use_cached
                      else "a copy of their own per experiment")
        tags = {"dataset": task.dataset, "commit": selection.commit}
        if task.data_query:
            tags["query"] = task.data_query
        return Record(task=task.title, index=index, params=dict(route["params"]), tags=tags, output=None,
                      route={**lineage(parents, self.setup.gathered), task.title: index}, upstream={},
                      label=route.get("label") or "", labels={},
                      dataset={"name": task.dataset, "commit": selection.commit, "query": task.data_query,
                               "patterns": patterns, "names": selection.names, "files": len(selection.files),
                               "use_cached": bool(task.use_cached)})


def _context() -> Any:
    """The running task's context (its run's triggering asset events); empty outside a task."""
    from airflow.sdk import get_current_context

    try:
        return get_current_context()
    except RuntimeError:
        return {}
