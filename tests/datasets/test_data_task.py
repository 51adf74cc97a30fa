"""Data tasks through real Airflow (``dag.test()``): the version they resolve and what the tasks after them read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from flow_airflow.datasets.store import DatasetStore
from flow_airflow.local_run import run_flow

pytestmark = pytest.mark.airflow


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DatasetStore:
    """A dataset store of the test's own (``[flow_airflow] datasets_folder``)."""
    root = tmp_path / "datasets"
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__DATASETS_FOLDER", str(root))
    return DatasetStore(root)


def write_flow(folder: Path, text: str, scripts: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in scripts.items():
        (folder / name).write_text(body)
    (folder / "flow.yaml").write_text(text)
    return folder / "flow.yaml"


def test_data_and_deploy_train_reads_iris_v1(
    store: DatasetStore, project: Callable[..., Path], airflow_home: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from flow_airflow.datasets.cli import push_flow_datasets

    file = project("data_and_deploy")
    assert push_flow_datasets(file.parent, no_event=True)[0].startswith("dataset 'iris' version 'v1': new commit")
    (file.parent / "datasets").rename(file.parent / "not_here")  # Train reads the store's copy, not the project's
    v1 = store.resolve("iris", "v1").commit
    result = run_flow(file)
    [iris] = result.of("Iris")
    assert iris.tags == {"dataset": "iris", "commit": v1}
    assert iris.record is not None and iris.record["dataset"]["names"] == ["v1"]
    [train] = result.of("Train")
    assert train.tags == {"classes": "3"}
    assert train.record is not None and train.record["upstream"]["Iris"]["tags"]["commit"] == v1
    assert [e.state for e in result.of("Serve", None)] == ["success"]  # serves it: tests/endpoints
    text = "".join(capfd.readouterr())
    assert f"dataset iris@{v1[:12]} (v1), 1 file(s): its data_commit (commit {v1})" in text
    assert "dataset iris@" in text and "at /data/iris: this experiment's own copy, 1 file(s) copied" in text


GRID = """
flow: Cached Grid
tasks:
  - title: Data
    type: data
    dataset: numbers
    use_cached: true
  - title: Read
    type: exec
    input: python3 read.py
    computes: [local]
    params: [{key: n, value: [1, 2, 3]}, {key: file, value: /data/numbers/b.txt}]
relations:
  - {from: Data, to: Read}
"""
READ = """import os, sys
folder = os.environ["CNVRG_DATASET_NUMBERS"]
print("cnvrg_tag_total:", sum(int(open(os.path.join(folder, f)).read()) for f in sorted(os.listdir(folder))))
print("cnvrg_tag_mode:", oct(os.stat(os.path.join(folder, "a.txt")).st_mode & 0o777))
given = dict(zip((a[2:] for a in sys.argv[1::2]), sys.argv[2::2]))
print("cnvrg_tag_data:", open(given["file"]).read())  # /data/numbers/b.txt in a param means the dataset
"""


def test_use_cached_copies_a_commit_once_for_a_grid(
    store: DatasetStore, tmp_path: Path, airflow_home: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "numbers"
    data.mkdir()
    (data / "a.txt").write_text("40")
    (data / "b.txt").write_text("2")
    commit, _ = store.push("numbers", data)
    file = write_flow(tmp_path / "project", GRID, {"read.py": READ})
    result = run_flow(file)
    reads = result.of("Read")
    assert len(reads) == 3 and len(result.of("Data")) == 1  # a data task does not multiply routes
    assert {e.tags["total"] for e in reads} == {"42"}
    assert {e.tags["mode"] for e in reads} == {"0o444"}  # the worker's copy is read-only
    assert {e.tags["data"] for e in reads} == {"2"}  # /data/numbers is the dataset
    text = "".join(capfd.readouterr())
    assert text.count("use_cached, the worker's read-only copy") == 3
    assert text.count("made now: 2 file(s) copied") == 1  # the first experiment of the grid made it
    assert text.count("copied nothing: kept from before") == 2  # the others copied nothing
    assert (store.root / "cache" / "numbers" / commit).is_dir()


QUERY = """
flow: Query Flow
tasks:
  - {title: Data, type: data, dataset: shapes, data_query: csv}
  - {title: Pinned, type: data, dataset: shapes, data_commit: v9}
  - {title: List, type: exec, input: python3 list.py, computes: [local]}
  - {title: Never, type: exec, input: 'true', computes: [local]}
relations:
  - {from: Data, to: List}
  - {from: Pinned, to: Never}
"""
LIST = """import os
root = os.environ["CNVRG_DATASET_SHAPES"]
print("cnvrg_tag_files:", ",".join(sorted(os.path.relpath(os.path.join(d, f), root)
                                          for d, _, files in os.walk(root) for f in files)))
"""


def test_a_query_selects_files_and_an_unknown_version_says_what_exists(
    store: DatasetStore, tmp_path: Path, airflow_home: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "shapes"
    (data / "sub").mkdir(parents=True)
    for name in ("a.csv", "sub/b.csv", "c.png"):
        (data / name).write_text(name)
    commit, _ = store.push("shapes", data, "v1")
    store.save_query("shapes", "csv", ["*.csv"])
    result = run_flow(write_flow(tmp_path / "project", QUERY, {"list.py": LIST}))
    assert result.of("List")[0].tags == {"files": "a.csv,sub/b.csv"}
    assert result.of("Data")[0].tags == {"dataset": "shapes", "commit": commit, "query": "csv"}
    assert [e.state for e in result.of("Pinned", None)] == ["failed"]
    text = "".join(capfd.readouterr())
    assert (f"'Pinned' cannot use dataset 'shapes': dataset 'shapes' has no commit or version named 'v9' (its names: "
            f"v1; its latest commits: {commit[:12]})") in text
    assert "the files its data_query 'csv' selects (*.csv) of the latest, at run start" in text
