"""The dataset store: content-addressed commits, names, queries, checkouts and the worker's cache (no Airflow)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from flow_airflow.datasets.events import triggered_commit
from flow_airflow.datasets.store import DatasetError, DatasetStore


def folder(root: Path, files: dict[str, str]) -> Path:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


def written(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file() and p.name != ".lock"}


def test_a_commit_is_named_by_its_content_and_written_once(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "store")
    one = folder(tmp_path / "one", {"a.csv": "1", "sub/b.txt": "2"})
    commit, new = store.push("iris", one, "v1")
    assert new and len(commit) == 40
    before = written(store.root)
    again = folder(tmp_path / "again", {"a.csv": "1", "sub/b.txt": "2"})  # the same content elsewhere
    assert store.push("iris", again) == (commit, False)
    assert written(store.root) == before  # nothing written twice
    assert store.push("wine", again)[0] == commit  # another dataset: the same commit, the files kept once
    assert len(list((store.root / "objects").rglob("*"))) == 4  # 2 folders, 2 files


def test_versions_names_and_log(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "store")
    v1, _ = store.push("iris", folder(tmp_path / "1", {"a.csv": "1"}), "v1")
    v2, _ = store.push("iris", folder(tmp_path / "2", {"a.csv": "2"}), "v2")
    assert store.latest("iris") == v2
    assert store.resolve("iris").commit == v2  # latest when blank
    assert store.resolve("iris", " ").commit == v2
    assert store.resolve("iris", "v1").commit == v1
    assert store.resolve("iris", v1[:8]).commit == v1  # a unique prefix
    assert store.resolve("iris", v1).names == ["v1"]
    assert [(e["commit"], e["names"], e["files"]) for e in store.log("iris")] == [(v2, ["v2"], 1), (v1, ["v1"], 1)]
    with pytest.raises(DatasetError, match="the name 'v1' already means commit"):
        store.push("iris", folder(tmp_path / "3", {"a.csv": "3"}), "v1")  # a name never changes
    assert store.datasets() == ["iris"]


def test_errors_say_what_exists(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "store")
    v1, _ = store.push("iris", folder(tmp_path / "1", {"a.csv": "1"}), "v1")
    with pytest.raises(DatasetError, match=r"there is no dataset 'wine' .*\(its datasets: 'iris'\); push one with"):
        store.resolve("wine")
    with pytest.raises(DatasetError) as e:
        store.resolve("iris", "v9")
    assert str(e.value) == (f"dataset 'iris' has no commit or version named 'v9' (its names: v1; its latest commits: "
                            f"{v1[:12]})")
    with pytest.raises(DatasetError, match=r"dataset 'iris' has no query 'csv' \(its queries: none\)"):
        store.resolve("iris", query="csv")
    with pytest.raises(DatasetError, match="either data_commit or data_query, not both"):
        store.resolve("iris", "v1", "csv")
    with pytest.raises(DatasetError, match="cannot be a dataset's name"):
        store.push("objects", tmp_path / "1")
    with pytest.raises(DatasetError, match="cannot be a version name"):
        store.push("iris", tmp_path / "1", "../v2")
    os.symlink("/etc/passwd", tmp_path / "1" / "link")
    with pytest.raises(DatasetError, match="is a link or a special file"):
        store.push("iris", tmp_path / "1")


def test_a_query_selects_files_of_the_latest_commit(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "store")
    store.push("imgs", folder(tmp_path / "1", {"train/a.png": "a", "train/b.csv": "b", "c.csv": "c"}))
    store.save_query("imgs", "csv", ["*.csv"])
    store.save_query("imgs", "train", ["train/"])
    assert sorted(store.resolve("imgs", query="csv").files) == ["c.csv", "train/b.csv"]  # '*' crosses folders
    assert sorted(store.resolve("imgs", query="train").files) == ["train/a.png", "train/b.csv"]
    assert json.loads((store.root / "imgs" / "queries.json").read_text()) == {"csv": ["*.csv"], "train": ["train/"]}
    store.save_query("imgs", "none", ["*.txt"])
    with pytest.raises(DatasetError, match=r"query 'none' of dataset 'imgs' \(\*.txt\) selects no file of commit"):
        store.resolve("imgs", query="none")
    with pytest.raises(DatasetError, match="at least one file pattern"):
        store.save_query("imgs", "empty", [])


def test_checkout_copies_and_the_cache_is_made_once(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "store")
    store.push("iris", folder(tmp_path / "1", {"a.csv": "1", "sub/b.txt": "2"}))
    selection = store.resolve("iris")
    assert store.checkout(selection, tmp_path / "mine") == 2
    assert (tmp_path / "mine" / "sub" / "b.txt").read_text() == "2"
    (tmp_path / "mine" / "a.csv").write_text("changed")  # an own copy is writable: the store keeps its file
    assert store.checkout(selection, tmp_path / "again") == 2 and (tmp_path / "again" / "a.csv").read_text() == "1"
    cached, copied = store.cached(selection)
    assert copied == 2 and (cached / "a.csv").read_text() == "1"
    assert (cached / "a.csv").stat().st_mode & 0o777 == 0o444 and cached.stat().st_mode & 0o777 == 0o555
    assert store.cached(selection) == (cached, 0)  # the second experiment copies nothing
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]  # no leftovers


class Event:
    def __init__(self, commit: str, when: str) -> None:
        self.extra, self.timestamp = {"commit": commit}, when


class Key:
    def __init__(self, uri: str) -> None:
        self.uri = uri


def test_the_commit_of_the_triggering_asset_event() -> None:
    iris, wine = Key("cnvrg-dataset://iris/"), Key("cnvrg-dataset://wine/")  # as Airflow normalizes them
    events = {iris: [Event("aaa111", "2026-01-01"), Event("bbb222", "2026-01-02")], wine: [Event("ccc", "2026-01-03")]}
    assert triggered_commit({"triggering_asset_events": events}, "iris") == "bbb222"  # the newest
    assert triggered_commit({"triggering_asset_events": events}, "other") is None
    assert triggered_commit({}, "iris") is None
    other = {iris: [Event("x", "2026-01-01")]}
    other[iris][0].extra = {"version": "v2"}  # as another system may post it through the REST API
    assert triggered_commit({"triggering_asset_events": other}, "iris") == "v2"
