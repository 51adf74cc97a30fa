"""Staging a data task's version into an experiment's workspace (``runtime.prepare.stage_datasets``), no Airflow."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path, PurePosixPath

import pytest

from flow_airflow.computes.base import DATA, Layout, Mount
from flow_airflow.datasets.store import DatasetStore
from flow_airflow.runtime.prepare import ExperimentFailed, seen, stage_datasets


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DatasetStore:
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__DATASETS_FOLDER", str(tmp_path / "store"))
    data = tmp_path / "v1"
    (data / "sub").mkdir(parents=True)
    (data / "a.csv").write_text("a")
    (data / "sub" / "b.png").write_text("b")
    store = DatasetStore(tmp_path / "store")
    store.push("iris", data, "v1")
    return store


def parents(store: DatasetStore, **info: object) -> dict[str, list]:
    commit = store.resolve("iris").commit
    return {"Iris": [{"task": "Iris", "index": 0, "output": None,
                      "dataset": {"name": "iris", "commit": commit, "use_cached": False, **info}}]}


class Log(logging.Logger):
    def __init__(self) -> None:
        super().__init__("staging")
        self.lines: list[str] = []

    def info(self, msg: object, *args: object, **kwargs: object) -> None:  # type: ignore[override]
        self.lines.append(str(msg) % args)


def test_an_own_copy_on_the_local_compute(store: DatasetStore, tmp_path: Path) -> None:
    work = tmp_path / "work"
    layout = Layout(cnvrg=work, input=work / "input", data=work / DATA, sdk=tmp_path)
    log = Log()
    found, mounts = stage_datasets(parents(store), work, layout, log)
    assert found == {"iris": work / DATA / "iris"} and mounts == ()
    assert sorted(p.relative_to(found["iris"]).as_posix() for p in found["iris"].rglob("*.*")) == ["a.csv", "sub/b.png"]
    assert log.lines == ["dataset iris@" + store.resolve("iris").short + " (v1), 2 file(s) at /data/iris: this "
                         "experiment's own copy, 2 file(s) copied"]


def test_a_query_stages_only_the_recorded_patterns(store: DatasetStore, tmp_path: Path) -> None:
    work = tmp_path / "work"
    layout = Layout(cnvrg=work, input=work / "input", data=work / DATA, sdk=tmp_path)
    found, _ = stage_datasets(parents(store, query="csv", patterns=["*.csv"]), work, layout, logging.getLogger("t"))
    assert [p.name for p in found["iris"].rglob("*") if p.is_file()] == ["a.csv"]


def test_use_cached_in_a_container_is_a_read_only_mount(store: DatasetStore, tmp_path: Path) -> None:
    work = tmp_path / "work"
    layout = Layout.container(work, tmp_path / "sdk")
    found, mounts = stage_datasets(parents(store, use_cached=True), work, layout, logging.getLogger("t"))
    cache = store.root / "cache" / "iris" / store.resolve("iris").commit
    assert mounts == (Mount(cache, "/data/iris", read_only=True),)
    assert found["iris"].is_dir() and not any(found["iris"].iterdir())  # the mount point
    assert seen(found["iris"], work, layout) == PurePosixPath("/data/iris")  # CNVRG_DATASET_IRIS in the container


def test_use_cached_on_the_local_compute_is_a_link(store: DatasetStore, tmp_path: Path) -> None:
    work = tmp_path / "work"
    layout = Layout(cnvrg=work, input=work / "input", data=work / DATA, sdk=tmp_path)
    found, mounts = stage_datasets(parents(store, use_cached=True), work, layout, logging.getLogger("t"))
    assert mounts == () and found["iris"].is_symlink() and (found["iris"] / "a.csv").read_text() == "a"


def test_a_commit_gone_from_the_store_fails_the_experiment(store: DatasetStore, tmp_path: Path) -> None:
    info = parents(store)
    info["Iris"][0]["dataset"]["commit"] = "0" * 40
    layout = Layout(cnvrg=tmp_path, input=tmp_path / "input", data=tmp_path / DATA, sdk=tmp_path)
    with pytest.raises(ExperimentFailed, match="dataset 'iris' cannot be staged at /data/iris: dataset 'iris' has no "
                                               "commit 0000"):
        stage_datasets(info, tmp_path, layout, logging.getLogger("t"))


def planted(store: DatasetStore, files: dict, commit: str = "f" * 40) -> str:
    """A commit written into the store by hand (not by a push), made the latest."""
    (store.root / "iris" / "commits" / f"{commit}.json").write_text(json.dumps({"files": files, "created": "x"}))
    (store.root / "iris" / "log" / f"99999999T000000000000Z-{commit}.json").write_text(
        json.dumps({"commit": commit, "created": "x", "name": None}))
    return commit


@pytest.mark.parametrize("case", ["path up", "absolute path", "object key up", "linked object folder",
                                  "linked workspace folder", "commit up", "dataset up"])
def test_staging_never_reads_or_writes_outside_the_store_and_the_workspace(
        store: DatasetStore, tmp_path: Path, case: str) -> None:
    """Issue 29, item 8: planted metadata made the worker copy a file from outside the store, or write one
    outside the workspace."""
    secret = tmp_path / "secret.txt"
    secret.write_text("s")
    sha = hashlib.sha256(b"s").hexdigest()
    real = store.resolve("iris").files["a.csv"]
    work = tmp_path / "work"
    info = parents(store)
    record = info["Iris"][0]["dataset"]
    if case == "path up":
        record["commit"] = planted(store, {"../../../escaped.txt": list(real)})
    elif case == "absolute path":
        record["commit"] = planted(store, {str(tmp_path / "escaped.txt"): list(real)})
    elif case == "object key up":
        record["commit"] = planted(store, {"a.csv": [f"../../{tmp_path.name}/secret.txt", 1]})
    elif case == "linked object folder":  # the store's folder of one hash made a link to elsewhere
        folder = store.root / "objects" / sha[:2]
        folder.symlink_to(tmp_path, target_is_directory=True)
        (tmp_path / sha).write_text("s")
        record["commit"] = planted(store, {"a.csv": [sha, 1]})
    elif case == "linked workspace folder":  # a link in the workspace where the copy goes
        (work / DATA / "iris").mkdir(parents=True)
        (work / DATA / "iris" / "sub").symlink_to(tmp_path, target_is_directory=True)
        (tmp_path / "b.png").write_text("kept")
    elif case == "commit up":
        record["commit"] = "../../../" + tmp_path.name + "/secret"
    else:
        record["name"] = "../store/iris"
    layout = Layout(cnvrg=work, input=work / "input", data=work / DATA, sdk=tmp_path)
    with pytest.raises(ExperimentFailed, match="cannot be staged") as e:
        stage_datasets(info, work, layout, logging.getLogger("t"))
    assert "changed by hand" in str(e.value) or "leads out of" in str(e.value) or "cannot be a dataset" in str(e.value)
    assert not (tmp_path / "escaped.txt").exists()
    assert case != "linked workspace folder" or (tmp_path / "b.png").read_text() == "kept"
    copied = [p for p in work.rglob("*") if p.is_file()] if work.exists() else []
    assert all(p.read_text() != "s" for p in copied)  # the secret never reached the workspace
