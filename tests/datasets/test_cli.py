"""``flow-airflow dataset ...`` and ``flow-airflow import`` of a flow's datasets (no Airflow DB: ``--no-event``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flow_airflow.cli import main
from flow_airflow.datasets.store import DatasetStore

FLOWS = Path(__file__).parent.parent / "flows"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DatasetStore:
    root = tmp_path / "datasets"
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__DATASETS_FOLDER", str(root))
    return DatasetStore(root)


def test_push_list_log_query(store: DatasetStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "v1"
    data.mkdir()
    (data / "a.csv").write_text("x")
    assert main(["dataset", "push", "iris", str(data), "--name", "v1", "--no-event"]) == 0
    out, err = capsys.readouterr()
    commit = out.strip()
    assert store.resolve("iris", "v1").commit == commit
    assert err == f"new commit {commit[:12]} of 'iris' named 'v1'\n"
    assert main(["dataset", "push", "iris", str(data), "--no-event"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == commit and "unchanged: the dataset already has this content as commit" in err
    assert main(["dataset", "query", "iris", "csv", "*.csv"]) == 0
    assert capsys.readouterr().out == (f"saved query 'csv' of 'iris': today it selects iris@{commit[:12]} (v1), "
                                       "query 'csv', 1 file(s)\n")
    assert main(["dataset", "list"]) == 0
    assert capsys.readouterr().out == f"iris: latest {commit[:12]} (v1), 1 file(s); 1 version(s), 1 query(ies)\n"
    assert main(["dataset", "log", "iris"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{commit} (v1)  ") and lines[0].endswith("  1 file(s)")
    assert lines[1] == "query 'csv': *.csv"


def test_mistakes_are_one_line_and_exit_1(store: DatasetStore, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dataset", "log", "nope"]) == 1
    assert "there is no dataset 'nope'" in capsys.readouterr().err
    assert main(["dataset", "push", "iris", str(tmp_path / "missing"), "--no-event"]) == 1
    assert capsys.readouterr().err == f"{tmp_path / 'missing'} is not a folder\n"
    assert main(["dataset", "query", "nope", "q", "*"]) == 1


def test_import_pushes_the_flows_datasets(store: DatasetStore, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "project"
    shutil.copytree(FLOWS / "data_and_deploy", project)
    shutil.copytree(project / "datasets" / "iris" / "v1", project / "datasets" / "iris" / "v10")
    (project / "datasets" / "iris" / "v10" / "more.csv").write_text("a\n")
    shutil.copytree(project / "datasets" / "iris" / "v1", project / "datasets" / "iris" / "v2")
    (project / "datasets" / "iris" / "v2" / "iris.csv").write_text("other\n")
    dags = tmp_path / "dags"
    assert main(["import", str(project / "flow.yaml"), "--dags-folder", str(dags), "--no-event"]) == 0
    out = capsys.readouterr().out
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith("dataset")] == [
        "dataset 'iris' version 'v1'", "dataset 'iris' version 'v2'", "dataset 'iris' version 'v10'"]  # natural order
    assert [e["names"] for e in store.log("iris")] == [["v10"], ["v2"], ["v1"]]  # v10 is the latest
    assert main(["import", str(project / "flow.yaml"), "--dags-folder", str(dags), "--no-event", "--force"]) == 0
    assert "dataset 'iris' version 'v1': already kept as commit" in capsys.readouterr().out
    assert len(store.log("iris")) == 3  # importing again changes nothing
