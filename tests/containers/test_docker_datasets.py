"""Data tasks on the Docker compute, through real Airflow (``dag.test``) and the machine's Docker engine.

A task after a data task finds the dataset at cnvrg's ``/data/<name>`` inside its container: its
own writable copy, or with ``use_cached: true`` the worker's read-only copy bound read-only, made
once for a whole grid (spec, "Data Tasks"; issue 15).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flow_airflow import settings
from flow_airflow.datasets.store import DatasetStore
from flow_airflow.local_run import run_flow

pytestmark = [pytest.mark.airflow, pytest.mark.containers]


@pytest.fixture
def on_docker(python_image: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``[flow_airflow] computes`` = ``{"docker": {"kind": "docker", "image": <python image>}}``, no network."""
    template = {"kind": "docker", "image": python_image, "network_mode": "none"}
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__COMPUTES", json.dumps({"docker": template}))
    settings.reset()
    yield
    settings.reset()


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DatasetStore:
    """A dataset store of the test's own (``[flow_airflow] datasets_folder``)."""
    root = tmp_path / "datasets"
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__DATASETS_FOLDER", str(root))
    return DatasetStore(root)


# appended to the example's train.py: where it read the dataset from, as it saw it in its container
WHERE = """
import pathlib
print("cnvrg_tag_data_dir:", data_dir)
print("cnvrg_tag_cwd:", os.getcwd())
print("cnvrg_tag_in_docker:", os.path.exists("/.dockerenv"))
print("cnvrg_tag_rows:", len(pathlib.Path("/data/iris/iris.csv").read_text().splitlines()) - 1)
"""


def test_data_and_deploy_train_reads_iris_v1_at_data_iris_in_its_container(
    store: DatasetStore, project: Callable[..., Path], airflow_home: Path, on_docker: None,
    docker_engine: object, capfd: pytest.CaptureFixture[str],
) -> None:
    from flow_airflow.datasets.cli import push_flow_datasets

    file = project("data_and_deploy")
    assert push_flow_datasets(file.parent, no_event=True)[0].startswith("dataset 'iris' version 'v1': new commit")
    rows = len((file.parent / "datasets" / "iris" / "v1" / "iris.csv").read_text().splitlines()) - 1
    (file.parent / "datasets").rename(file.parent / "not_here")  # Train reads the store's copy, not the project's
    file.write_text(file.read_text().replace("computes: [local]", "computes: [docker]"))
    train_py = file.parent / "train.py"
    train_py.write_text(train_py.read_text() + WHERE)
    v1 = store.resolve("iris", "v1").commit
    result = run_flow(file)
    [iris] = result.of("Iris")
    assert iris.tags == {"dataset": "iris", "commit": v1}
    [train] = result.of("Train")
    assert train.state == "success", capfd.readouterr()
    assert train.tags == {"classes": "3", "data_dir": "/data/iris", "cwd": "/cnvrg", "in_docker": "True",
                          "rows": str(rows)}
    assert train.record is not None and train.record["upstream"]["Iris"]["tags"]["commit"] == v1
    assert json.loads((Path(train.record["output"]) / "output" / "model.json").read_text()).keys() == {
        "setosa", "versicolor", "virginica"}
    text = "".join(capfd.readouterr())
    assert "running on compute 'docker'" in text
    assert f"dataset iris@{v1[:12]} (v1), 1 file(s) at /data/iris: this experiment's own copy, 1 file(s) copied" \
        in text


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
    computes: [docker]
    params: [{key: n, value: [1, 2, 3]}, {key: file, value: /data/numbers/b.txt}]
relations:
  - {from: Data, to: Read}
"""
READ = """import errno, os, sys
folder = os.environ["CNVRG_DATASET_NUMBERS"]
print("cnvrg_tag_folder:", folder)
print("cnvrg_tag_total:", sum(int(open(os.path.join(folder, f)).read()) for f in sorted(os.listdir(folder))))
given = dict(zip((a[2:] for a in sys.argv[1::2]), sys.argv[2::2]))
print("cnvrg_tag_data:", open(given["file"]).read())  # /data/numbers/b.txt in a param means the dataset
mount = [line.split() for line in open("/proc/self/mountinfo") if line.split()[4] == folder]
print("cnvrg_tag_mount:", ",".join(sorted(set(mount[-1][5].split(",")) & {"ro", "rw"})) if mount else "none")
errors = []
for path, how in ((os.path.join(folder, "new.txt"), "x"), (os.path.join(folder, "a.txt"), "a")):
    try:
        open(path, how).write("1")
        errors.append("written")
    except OSError as e:
        errors.append(errno.errorcode[e.errno])
print("cnvrg_tag_write:", ",".join(errors))
"""


def test_use_cached_on_docker_is_a_read_only_mount_copied_once_for_a_grid(
    store: DatasetStore, tmp_path: Path, airflow_home: Path, on_docker: None, capfd: pytest.CaptureFixture[str],
) -> None:
    data = tmp_path / "numbers"
    data.mkdir()
    (data / "a.txt").write_text("40")
    (data / "b.txt").write_text("2")
    commit, _ = store.push("numbers", data)
    project = tmp_path / "project"
    project.mkdir()
    (project / "flow.yaml").write_text(GRID)
    (project / "read.py").write_text(READ)
    result = run_flow(project / "flow.yaml")
    reads = result.of("Read")
    assert len(reads) == 3 and len(result.of("Data")) == 1  # a data task does not multiply routes
    assert [e.state for e in reads] == ["success"] * 3, capfd.readouterr()
    for read in reads:
        assert read.tags["folder"] == "/data/numbers"
        assert read.tags["total"] == "42"
        assert read.tags["data"] == "2"  # /data/numbers/b.txt in a param is the dataset
        assert read.tags["mount"] == "ro"  # bound read-only
        assert read.tags["write"] == "EROFS,EROFS"  # neither a new file nor an existing one can be written
    text = "".join(capfd.readouterr())
    assert text.count("running on compute 'docker'") == 3
    assert text.count("use_cached, the worker's read-only copy") == 3
    assert text.count("made now: 2 file(s) copied") == 1  # the first experiment of the grid made it
    assert text.count("copied nothing: kept from before") == 2  # the others copied nothing
    cached = store.root / "cache" / "numbers" / commit
    assert sorted(p.name for p in cached.iterdir()) == ["a.txt", "b.txt"]  # nothing written through the mount
    assert (cached / "a.txt").read_text() == "40"
