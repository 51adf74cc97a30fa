"""The stand-in SDKs in a container (the Docker compute mounts them read-only at ``SDK_TARGET``): the same
calls as tests/runtime/test_sdks.py land in the record and the dataset store as on the local compute."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flow_airflow.datasets.store import DatasetStore
from flow_airflow.local_run import run_flow
from tests.containers.test_docker_flows import docker_template, on_docker  # noqa: F401 (a fixture)
from tests.runtime.test_sdks import FLOW, PUBLISH, TRAIN, UNKNOWN, write

pytestmark = [pytest.mark.airflow, pytest.mark.containers]


def test_the_sdks_on_docker_give_what_they_give_locally(
    airflow_home: Path,
    tmp_path: Path,
    docker_template: Any,  # noqa: F811 (the fixture, imported)
    docker_engine: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__DATASETS_FOLDER", str(tmp_path / "store"))
    store = DatasetStore(tmp_path / "store")
    project = write(
        tmp_path / "sdk",
        {
            "flow.yaml": FLOW.replace("SDK Calls", "SDK Calls Docker"),
            "train.py": TRAIN,
            "publish.py": PUBLISH,
            "unknown.py": UNKNOWN,
            "requirements.txt": "cnvrgv2==1.1.8\n",
        },
    )
    result = run_flow(on_docker(project / "flow.yaml"))
    [train], [publish] = result.of("Train"), result.of("Publish")
    charts = train.record["charts"]
    assert sorted(charts) == [
        "Epochs",
        "Feature Importance",
        "Lift",
        "Quoted",
        "Recall",
        "cells",
        "confusion",
        "counts",
        "errors",
        "fit",
        "importance",
        "learning",
        "matrix",
        "points",
        "report",
    ]
    assert charts["learning"]["series"] == [
        {"name": "train", "data": [0.5, 0.6, 0.7]},
        {"name": "valid", "data": [0.55]},
    ]
    assert train.record["images"] == ["output/roc.png"] and train.tags["accuracy_score"] == "0.875"
    created, put = publish.record["put_files"]  # a new dataset: created (an empty first version), the files put
    assert created["files"] == 0 and put["files"] == 2 and put["commit"] == store.latest("churn_sdk")
    assert [e["commit"] for e in store.log("churn_sdk")] == [put["commit"], created["commit"]]
    assert sorted(store.resolve("churn_sdk").files) == ["churn.csv", "part/extra.csv"]
    [unknown] = result.of("Unknown", state=None)
    assert "cnvrgv2: Cnvrg.flows has no stand-in in flow-airflow" in unknown.record["failed"]
