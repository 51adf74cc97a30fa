"""cnvrg's SDKs as published scripts call them (v1 ``cnvrg``, ``cnvrgv2``), run for real on the local compute
through ``dag.test()``: each call lands in the experiment's record (tags, series, charts, images), on the
experiments API, or in the dataset store (``put_files``: a new version and its asset event, which queues the
flow triggered by the dataset); ``requirements.txt`` lines naming the SDKs are left out; a call without a
stand-in fails the experiment naming it. The stand-ins themselves: runtime/sdk/, the worker's side:
runtime/tags.py and runtime/sdk_calls.py.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from flow_airflow.datasets.store import DatasetStore
from flow_airflow.local_run import run_flow
from flow_airflow.runtime import sdk_calls

FLOW = """
flow: SDK Calls
tasks:
  - {title: Train, type: exec, input: python3 train.py, computes: [local]}
  - {title: Publish, type: exec, input: python3 publish.py, computes: [local]}
  - {title: Unknown, type: exec, input: python3 unknown.py, computes: [local]}
relations:
  - {from: Train, to: Publish}
"""

# the calls of cnvrg's published scripts, v1 and v2, and cnvrg's stdout line charts
TRAIN = """
import struct, zlib
from cnvrg import Experiment
from cnvrg.charts import Bar, MatrixHeatmap, Scatterplot
from cnvrg.charts.pandas_analyzer import Heatmap
from cnvrgv2 import Experiment as ExperimentV2, LineChart, BarChart, Heatmap as HeatmapV2, ScatterPlot

e = Experiment()
e.log_param("model", "logistic regression")
e.log_metric("loss", Ys=[0.9, 0.5, 0.25])
e.log_metric("accuracy_score", 0.875)
e.log_chart("confusion", [MatrixHeatmap([[5, 1], [2, 7]])], x_ticks=["no", "yes"], y_ticks=["no", "yes"])
e.log_chart("importance", [Bar(x=["age", "plan"], y=[0.7, 0.3], name="weight")], title="Feature importance")
e.log_chart("fit", [Scatterplot(x=[1, 2, 3], y=[2, 4, 6])])
e.log_chart("cells", Heatmap([((0, 0), 1.0), ((1, 0), 2.0)]))
# as cnvrg's published sk-learn trainers call them
e.log_chart("Feature Importance", x_axis="Features", y_axis="Importance", data=Bar(x=["a", "b"], y=[0.25, 0.75]))
e.log_chart("report", data=Heatmap(z=[(0, 0, 0.5), (1, 0, 0.75)]), y_ticks=["churn"], x_ticks=["precision", "recall"])
e.log_metric("train_acc", [0.5, 0.75], grouping=["train_acc"] * 2)
e.log_metric("errors", [3, 2, 1], grouping=["train", "valid", "train"])
png = b"\\x89PNG\\r\\n\\x1a\\n" + b"".join(
    struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    for t, d in [(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)), (b"IDAT", zlib.compress(b"\\x00\\x80")),
                 (b"IEND", b"")])
open("roc.png", "wb").write(png)
e.log_artifacts(["roc.png"])

v2 = ExperimentV2()
v2.log_param("solver", "lbfgs")
curve = LineChart("learning", x_axis="epoch", y_axis="f1")
curve.add_series([0.5, 0.6], "train")
v2.create_chart(curve)
v2.update_chart("learning", [0.7], series_name="train")
v2.update_chart("learning", [0.55], series_name="valid")
v2.create_chart(BarChart("counts", x_ticks=["churn", "stay"], Ys=[30, 70]))
matrix = HeatmapV2("matrix", x_ticks=["a", "b"], y_ticks=["a", "b"])
matrix.add_series([(1, 2), (3, 4)])
v2.create_chart(matrix)
v2.log_metric(ScatterPlot("points", Ys=[[1, 1], [2, 3]]))

print("cnvrg_linechart_Recall value: 0.5")
print("cnvrg_linechart_Recall value: 0.625")
print("cnvrg_linechart_Recall group: val key: 3 value: '0.4'")
print("cnvrg_linechart_Lift x: 2 y: 1.5")
print('"cnvrg_linechart_Quoted value: 0.5"')  # as published Hugging Face callbacks print them
print("cnvrg_linechart_Epochs key: epoch 1 value: 5e-1")
"""

# cnvrg's connectors: the dataset may not exist yet (reload raises), then create it, then put the files
PUBLISH = """
import os
from cnvrgv2 import Cnvrg
from cnvrgv2.errors import CnvrgHttpError

cnvrg = Cnvrg()
assert cnvrg.projects.get("anything").slug == os.environ["CNVRG_PROJECT"]
ds = cnvrg.datasets.get("churn_sdk")
try:
    ds.reload()
except CnvrgHttpError as e:
    print("not there:", e)
    ds = cnvrg.datasets.create(name="churn_sdk")
os.makedirs("export/part", exist_ok=True)
open("export/churn.csv", "w").write("id,churn\\n1,0\\n")
open("export/part/extra.csv", "w").write("id\\n2\\n")
os.chdir("export")
print("staged:", ds.put_files(paths=["churn.csv", "part"]))

from cnvrg import Experiment
from cnvrg.modules import CnvrgError

assert not hasattr(Experiment(), "log_image")  # no stand-in: an AttributeError too, so hasattr says False
try:
    from cnvrg import Library
except CnvrgError as e:
    Experiment().log_param("v1_error", e)
"""

UNKNOWN = """
from cnvrgv2 import Cnvrg
Cnvrg().flows.list()
"""

TRIGGERED = """
flow: Churn Retrain
triggers: {datasets: [churn_sdk]}
tasks:
  - {title: Data, type: data, dataset: churn_sdk}
  - {title: Read, type: exec, input: python3 read.py, computes: [local]}
relations:
  - {from: Data, to: Read}
"""


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture(scope="module")
def sdk_run(airflow_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One run of the SDK flow, with a dataset store of its own that holds ``churn_sdk`` v1 (``old.csv``), and the
    flow triggered by ``churn_sdk`` known to Airflow (synced, unpaused) before the run puts a new version."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    from tests.datasets.test_events import sync_as_the_dag_processor

    tmp = tmp_path_factory.mktemp("sdk")
    patch = pytest.MonkeyPatch()
    patch.setenv("AIRFLOW__FLOW_AIRFLOW__DATASETS_FOLDER", str(tmp / "store"))
    store = DatasetStore(tmp / "store")
    store.push("churn_sdk", write(tmp / "v1", {"old.csv": "id\n0\n"}), "v1")
    triggered = write(tmp / "triggered", {"flow.yaml": TRIGGERED, "read.py": "print('cnvrg_tag_read: yes')\n"})
    run_flow(triggered / "flow.yaml")
    sync_as_the_dag_processor("churn_retrain")
    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == "churn_retrain").values(is_paused=False))
    requirements = "cnvrg==1.2.3\n# the SDKs\nCnvrgV2 >= 0.9\n"
    project = write(
        tmp / "project",
        {
            "flow.yaml": FLOW,
            "train.py": TRAIN,
            "publish.py": PUBLISH,
            "unknown.py": UNKNOWN,
            "requirements.txt": requirements,
        },
    )
    try:
        yield run_flow(project / "flow.yaml"), store
    finally:
        patch.undo()


pytestmark = pytest.mark.airflow


def test_each_sdk_call_lands_in_the_record(sdk_run: Any) -> None:
    result, _ = sdk_run
    [train] = result.of("Train")
    record = train.record
    assert train.tags["model"] == "logistic regression" and train.tags["solver"] == "lbfgs"
    assert train.tags["accuracy_score"] == "0.875" and train.tags["loss"] == "0.25"
    assert record["series"]["loss"] == {"ys": [0.9, 0.5, 0.25], "xs": [0, 1, 2]}
    assert record["series"]["train_acc"] == {"ys": [0.5, 0.75], "xs": [0, 1]} and train.tags["train_acc"] == "0.75"
    charts = record["charts"]
    cells = [[0, 0, 5], [1, 0, 1], [0, 1, 2], [1, 1, 7]]  # [x, y, value]: row y of the matrix
    assert charts["confusion"] == {
        "type": "heatmap",
        "x_ticks": ["no", "yes"],
        "y_ticks": ["no", "yes"],
        "series": [{"name": "Series 0", "data": cells}],
    }
    assert charts["importance"] == {
        "type": "bar",
        "title": "Feature importance",
        "x_ticks": ["age", "plan"],
        "series": [{"name": "weight", "data": [0.7, 0.3]}],
    }
    assert charts["fit"]["type"] == "scatter" and charts["fit"]["series"][0]["data"] == [[1, 2], [2, 4], [3, 6]]
    assert charts["cells"]["series"][0]["data"] == [[0, 0, 1.0], [1, 0, 2.0]]
    assert charts["Feature Importance"] == {
        "type": "bar",
        "x_axis": "Features",
        "y_axis": "Importance",
        "x_ticks": ["a", "b"],
        "series": [{"name": "Series 0", "data": [0.25, 0.75]}],
    }
    assert charts["report"]["x_ticks"] == ["precision", "recall"] and charts["report"]["y_ticks"] == ["churn"]
    assert charts["errors"] == {
        "type": "line",
        "series": [{"name": "train", "data": [[0, 3], [1, 1]]}, {"name": "valid", "data": [[0, 2]]}],
    }
    assert charts["learning"] == {
        "type": "line",
        "x_axis": "epoch",
        "y_axis": "f1",
        "series": [{"name": "train", "data": [0.5, 0.6, 0.7]}, {"name": "valid", "data": [0.55]}],
    }
    assert charts["counts"]["series"] == [{"name": None, "data": [30, 70]}] and charts["counts"]["type"] == "bar"
    assert charts["matrix"]["series"][0]["data"] == [[0, 0, 1], [1, 0, 2], [0, 1, 3], [1, 1, 4]]
    assert charts["points"] == {"type": "scatter", "series": [{"name": None, "data": [[1, 1], [2, 3]]}]}
    # stdout line charts: a point each, x its number unless key or x gives it, a line per group
    assert charts["Recall"]["series"] == [
        {"name": None, "data": [[0, 0.5], [1, 0.625]]},
        {"name": "val", "data": [[3, 0.4]]},
    ]
    assert charts["Lift"]["series"] == [{"name": None, "data": [[2, 1.5]]}]
    assert charts["Quoted"]["series"] == [{"name": None, "data": [[0, 0.5]]}]
    assert charts["Epochs"]["series"] == [{"name": None, "data": [["epoch 1", 0.5]]}]
    assert record["images"] == ["output/roc.png"]


def test_the_experiments_api_gives_the_charts_and_the_images(sdk_run: Any) -> None:
    from tests.experiments.test_api import client_for

    result, _ = sdk_run
    client = client_for({result.dag_id})
    base = f"/flow-airflow/api/experiments/{result.dag_id}/{quote(result.run_id, safe='')}"
    body = client.get(base).json()
    [train] = [e for e in body["experiments"] if e["task"] == "Train"]
    assert {k: c["type"] for k, c in train["charts"].items()} == {
        "confusion": "heatmap",
        "importance": "bar",
        "fit": "scatter",
        "cells": "heatmap",
        "learning": "line",
        "counts": "bar",
        "matrix": "heatmap",
        "points": "scatter",
        "Recall": "line",
        "Lift": "line",
        "Feature Importance": "bar",
        "report": "heatmap",
        "errors": "line",
        "Quoted": "line",
        "Epochs": "line",
    }
    assert train["images"] == ["output/roc.png"] and "output/roc.png" in train["artifacts"]
    image = client.get(f"{base}/artifacts/{train['task_id']}/{train['index']}/output/roc.png")
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    compared = client.get(f"/flow-airflow/api/experiments/{result.dag_id}?run={quote(result.run_id, safe='')}").json()
    [again] = [e for e in compared["experiments"] if e["task"] == "Train"]
    assert again["charts"] == train["charts"] and again["images"] == train["images"]


def test_put_files_makes_a_version_and_its_asset_event_queues_the_triggered_flow(sdk_run: Any) -> None:
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    result, store = sdk_run
    [publish] = result.of("Publish")
    [put] = publish.record["put_files"]
    commit = store.latest("churn_sdk")
    assert put["dataset"] == "churn_sdk" and put["commit"] == commit and put["new"] and put["files"] == 2
    # the files put, over the latest version's (cnvrg's put_files adds to the dataset), relative paths kept
    assert sorted(store.resolve("churn_sdk").files) == ["churn.csv", "old.csv", "part/extra.csv"]
    assert "asset event" in put["event"] and "flows triggered by this dataset will run" in put["event"]
    with create_session() as session:
        asset = session.scalar(select(AssetModel).where(AssetModel.name == "cnvrg-dataset/churn_sdk"))
        events = session.scalars(select(AssetEvent).where(AssetEvent.asset_id == asset.id)).all()
        assert [e.extra["commit"] for e in events] == [commit]
        queued = session.scalars(select(AssetDagRunQueue).where(AssetDagRunQueue.asset_id == asset.id)).all()
        assert [q.target_dag_id for q in queued] == ["churn_retrain"]
    assert not any(".flow-airflow-put" in name for name in _stored(publish))  # staged files: no artifact
    assert publish.tags["v1_error"].startswith("cnvrg: cnvrg.Library has no stand-in in flow-airflow")


def _stored(experiment: Any) -> list[str]:
    root = Path(experiment.record["output"])
    return [p.relative_to(root).as_posix() for p in root.rglob("*")]


def test_a_call_without_a_stand_in_fails_the_experiment_naming_it(sdk_run: Any) -> None:
    result, _ = sdk_run
    [unknown] = result.of("Unknown", state=None)
    assert unknown.state == "failed"
    assert "cnvrgv2: Cnvrg.flows has no stand-in in flow-airflow" in unknown.record["failed"]


def test_requirements_naming_the_sdks_are_left_out_saying_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    text = "numpy==1.26\ncnvrg==1.2.3\n CNVRGv2[extra] >=0.9 ; python_version>'3'\ncnvrg-tools==1\ncnvrgv2\n"
    requirements = write(tmp_path, {"requirements.txt": text}) / "requirements.txt"
    with caplog.at_level(logging.WARNING):
        filtered = sdk_calls.without_sdks(requirements, logging.getLogger("test"))
    assert filtered is not None and filtered.read_text() == "numpy==1.26\ncnvrg-tools==1\n"
    assert [r.getMessage().split(" is left out")[0] for r in caplog.records] == [
        "requirements.txt line 2 (cnvrg==1.2.3)",
        "requirements.txt line 3 (CNVRGv2[extra] >=0.9 ; python_version>'3')",
        "requirements.txt line 5 (cnvrgv2)",
    ]
    assert (
        sdk_calls.without_sdks(
            write(tmp_path / "b", {"requirements.txt": "pandas\n"}) / "requirements.txt", logging.getLogger("test")
        )
        is None
    )


def test_the_run_leaves_the_sdk_requirements_out_and_installs_nothing_else(sdk_run: Any) -> None:
    result, _ = sdk_run
    [train] = result.of("Train")
    assert train.state == "success"  # pip never asked for the real cnvrg (no network, no cnvrg server here)


def test_the_sdk_put_folder_is_the_runtimes() -> None:
    from flow_airflow.runtime.environment import SDK_PATH

    assert f'PUT_FOLDER = "{sdk_calls.PUT_FOLDER}"' in (SDK_PATH / "cnvrg" / "_flow.py").read_text()
