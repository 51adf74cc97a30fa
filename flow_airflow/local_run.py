"""One run of a flow through real Airflow in this process (``dag.test``): ``flow-airflow run``.

The flow gets a bundle of its own (a folder holding a loader for just that file), listed
before the configured bundles, so that a file anywhere can be run without touching the
dags folder; the run, its task instances and experiment records land in the metadata DB
of ``AIRFLOW_HOME`` like any other run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flow_airflow import settings
from flow_airflow.common.routes import slug
from flow_airflow.plan.flow_plan import dag_id_for
from flow_airflow.spec.load import LoadedFlow, load_flow

BUNDLE = "flow-airflow-run"
LOADER = '''"""flow-airflow run: the DAG of one flow file."""
from pathlib import Path

from flow_airflow.loader import load_dags

globals().update(load_dags(__file__, files=[Path({file!r})]))
'''


@dataclass
class ExperimentResult:
    task: str
    index: int
    state: str
    label: str = ""
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class RunResult:
    dag_id: str
    run_id: str
    state: str
    experiments: list[ExperimentResult]

    def of(self, title: str, state: str | None = "success") -> list[ExperimentResult]:
        """The experiments of one flow task (in the given state; any when None)."""
        return [e for e in self.experiments if e.task == title and (state is None or e.state == state)]


def run_flow(file: str | Path, conf: dict[str, Any] | None = None, listener: Any = None) -> RunResult:
    """Run the flow in ``file`` once and return what every experiment did.

    :param conf: the run's ``conf`` (as a trigger through the UI or REST API gives it).
    :param listener: an Airflow listener (``airflow.listeners.hookimpl`` methods) told of each
        task instance as it ends, e.g. :class:`flow_airflow.run_report.Progress`.
    :raises FlowError: the flow file is broken.
    """
    file = Path(file).resolve()
    flow = load_flow(file)  # a broken flow stops here, with its FlowError
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
    run = bag.dags[dag_id].test(run_conf=conf)
    return collect(dag_id, run.run_id, str(run.state), titles_of(flow))


def titles_of(flow: LoadedFlow) -> dict[str, str]:
    """Each flow task's experiments' task id (``<slug>.run``) -> the task's title, in the file's order."""
    return {f"{slug(t.title)}.run": t.title for t in flow.spec.tasks}


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
    """The experiments of a DAG run, from the metadata DB: state, params and tags of each.

    ``titles`` maps the run task ids to the flow tasks' titles.
    """
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        ).all()
        xcoms = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == "return_value"
            )
        ).all()
        records = {(x.task_id, x.map_index): XComModel.deserialize_value(x) for x in xcoms}
        experiments = []
        order = list(titles)
        for ti in sorted(tis, key=lambda t: (order.index(t.task_id) if t.task_id in titles else -1, t.map_index)):
            if ti.task_id not in titles:
                continue
            value = records.get((ti.task_id, ti.map_index))
            if isinstance(value, list):  # a batch of routes ([flow_airflow] batch_routes): a record each
                experiments += [
                    ExperimentResult(task=titles[ti.task_id], index=r.get("index", 0), state=str(ti.state),
                                     label=r.get("label") or "no params", params=r.get("params", {}),
                                     tags=r.get("tags", {}))
                    for r in value
                ]
                continue
            record = value or {}
            experiments.append(
                ExperimentResult(
                    task=titles[ti.task_id],
                    index=max(ti.map_index, 0),
                    state=str(ti.state),
                    label=shown_label(ti.rendered_map_index, ti.map_index, bool(value)),
                    params=record.get("params", {}),
                    tags=record.get("tags", {}),
                )
            )
    return RunResult(dag_id, run_id, state, experiments)


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
