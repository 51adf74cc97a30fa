"""A pushed version as an Airflow asset event of ``cnvrg-dataset://<name>`` (a real metadata DB)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flow_airflow.cli import main
from flow_airflow.datasets.store import DatasetStore
from flow_airflow.local_run import run_flow

pytestmark = pytest.mark.airflow

FLOW = """
flow: Retrain Numbers
triggers: {datasets: [numbers_ev]}
tasks:
  - {title: Data, type: data, dataset: numbers_ev}
  - {title: Read, type: exec, input: python3 read.py, computes: [local]}
relations:
  - {from: Data, to: Read}
"""


def sync_as_the_dag_processor(dag_id: str) -> None:
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

    from flow_airflow import settings
    from flow_airflow.local_run import BUNDLE

    bundle = settings.airflow_home() / "flow_airflow_run" / dag_id
    sync_bag_to_db(BundleDagBag(dag_folder=str(bundle), bundle_path=bundle, bundle_name=BUNDLE), BUNDLE, None)


def test_a_push_records_the_asset_event_that_queues_the_flow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel, TaskInletAssetReference
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select, update

    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__DATASETS_FOLDER", str(tmp_path / "store"))
    store = DatasetStore(tmp_path / "store")
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "a.txt").write_text("one")
    assert main(["dataset", "push", "numbers_ev", str(tmp_path / "v1"), "--name", "v1"]) == 0
    assert "no asset event: no flow names cnvrg-dataset://numbers_ev yet" in capsys.readouterr().err
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "flow.yaml").write_text(FLOW)
    (tmp_path / "project" / "read.py").write_text(
        'import os\nprint("cnvrg_tag_a:", open(os.environ["CNVRG_DATASET_NUMBERS_EV"] + "/a.txt").read())\n')
    result = run_flow(tmp_path / "project" / "flow.yaml")
    sync_as_the_dag_processor("retrain_numbers")  # the DAG's assets and inlets, as Airflow records them
    with create_session() as session:  # unpaused, as a user does: Airflow queues runs of unpaused DAGs only
        session.execute(update(DagModel).where(DagModel.dag_id == "retrain_numbers").values(is_paused=False))
    assert [e.tags["a"] for e in result.of("Read")] == ["one"]
    assert result.of("Data")[0].tags["commit"] == store.resolve("numbers_ev", "v1").commit
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "a.txt").write_text("two")
    capsys.readouterr()
    assert main(["dataset", "push", "numbers_ev", str(tmp_path / "v2"), "--name", "v2"]) == 0
    out, err = capsys.readouterr()
    v2 = out.strip().splitlines()[-1]  # the commit (Airflow's own log lines may come before)
    assert "of cnvrg-dataset://numbers_ev: flows triggered by this dataset will run on this commit" in err
    with create_session() as session:
        asset = session.scalar(select(AssetModel).where(AssetModel.name == "cnvrg-dataset/numbers_ev"))
        assert asset is not None
        [event] = session.scalars(select(AssetEvent).where(AssetEvent.asset_id == asset.id)).all()
        assert event.extra == {"commit": v2, "names": ["v2"]}
        queued = session.scalars(select(AssetDagRunQueue).where(AssetDagRunQueue.asset_id == asset.id)).all()
        assert [q.target_dag_id for q in queued] == ["retrain_numbers"]  # the scheduler starts its run
        inlets = session.scalars(select(TaskInletAssetReference).where(
            TaskInletAssetReference.asset_id == asset.id)).all()
        assert [(i.dag_id, i.task_id) for i in inlets] == [("retrain_numbers", "data.run")]  # the asset graph
