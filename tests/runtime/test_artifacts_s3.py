"""The artifact store on object storage: a real S3-compatible server (moto's, on 127.0.0.1), no Airflow DB."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from flow_airflow.runtime.artifacts import ArtifactStore


def end_state(files: dict[str, str], links: dict[str, str] | None = None, dirs: tuple[str, ...] = ()
              ) -> Callable[[Path], None]:
    """A ``save`` callback writing ``files`` (path -> text), ``links`` (path -> target) and empty ``dirs``."""

    def save(folder: Path) -> None:
        folder.mkdir(parents=True)
        for rel, text in files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(text)
        for rel, target in (links or {}).items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).symlink_to(target)
        for rel in dirs:
            (folder / rel).mkdir(parents=True, exist_ok=True)

    return save


@pytest.fixture
def store(s3, request) -> tuple[ArtifactStore, str]:
    """A store on a fresh bucket of the test server, and the bucket's name."""
    name = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())
    bucket = s3.bucket(name[:60].strip("-"))
    return ArtifactStore(f"s3://{s3.conn_id}@{bucket}/flows"), bucket


def test_an_end_state_round_trips_with_paths_links_empty_folders_and_modes(store, tmp_path: Path) -> None:
    artifacts, bucket = store

    def save(folder: Path) -> None:
        end_state({"output/model.json": "{}", "models/deep/m bin é.txt": "weights", "run.sh": "echo hi\n"},
                  links={"latest": "models/deep/m bin é.txt"}, dirs=("output/empty",))(folder)
        (folder / "run.sh").chmod(0o755)
        os.utime(folder / "output/model.json", ns=(1_000_000_000, 1_000_000_000))

    location = artifacts.put(save, "dag", "manual__2026-11-30T10:00:00+00:00", "train", 0)
    assert location == f"s3://flow_s3@{bucket}/flows/dag/manual__2026-11-30T10_00_00+00_00/train/0"
    staged = tmp_path / "input" / "train"
    artifacts.get(location, staged)
    assert (staged / "output/model.json").read_text() == "{}"
    assert (staged / "models/deep/m bin é.txt").read_text() == "weights"
    assert os.path.islink(staged / "latest") and os.readlink(staged / "latest") == "models/deep/m bin é.txt"
    assert (staged / "latest").read_text() == "weights"
    assert (staged / "output/empty").is_dir() and not list((staged / "output/empty").iterdir())
    assert os.access(staged / "run.sh", os.X_OK)
    assert (staged / "output/model.json").stat().st_mtime_ns == 1_000_000_000
    assert artifacts.files(location) == ["latest", "models/deep/m bin é.txt", "output/model.json", "run.sh"]


def test_the_objects_are_in_the_bucket_under_readable_keys_with_a_manifest(s3, store) -> None:
    artifacts, bucket = store
    artifacts.put(end_state({"output/a.txt": "1"}, links={"b": "output/a.txt"}), "dag", "r1", "train", 3)
    prefix = "flows/dag/r1/train/"
    assert s3.keys(bucket) == [f"{prefix}3.manifest.json", f"{prefix}3/output/a.txt"]  # a link is no object
    body = s3.client().get_object(Bucket=bucket, Key=f"{prefix}3/output/a.txt")["Body"].read()
    assert body == b"1"
    manifest = json.loads(s3.client().get_object(Bucket=bucket, Key=f"{prefix}3.manifest.json")["Body"].read())
    assert {e["path"]: e["type"] for e in manifest["entries"]} == {"b": "link", "output": "dir", "output/a.txt": "file"}


def test_a_retry_stores_nothing_twice(s3, store, caplog: pytest.LogCaptureFixture) -> None:
    artifacts, bucket = store
    first = end_state({"output/a.txt": "1", "output/b.txt": "2", "old.txt": "x"})
    location = artifacts.put(first, "dag", "r", "train", 0)
    keys = s3.keys(bucket)
    with caplog.at_level(logging.INFO, logger="flow_airflow.runtime.object_artifacts"):
        assert artifacts.put(first, "dag", "r", "train", 0) == location  # the same try again
    assert s3.keys(bucket) == keys
    assert "stored 3 file(s)" in caplog.text and "(0 sent, 3 already there, 0 stale removed)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="flow_airflow.runtime.object_artifacts"):
        artifacts.put(end_state({"output/a.txt": "1", "output/b.txt": "changed"}), "dag", "r", "train", 0)
    assert "(1 sent, 1 already there, 1 stale removed)" in caplog.text
    prefix = "flows/dag/r/train/0"
    assert s3.keys(bucket) == [f"{prefix}.manifest.json", f"{prefix}/output/a.txt", f"{prefix}/output/b.txt"]
    assert artifacts.files(location) == ["output/a.txt", "output/b.txt"]


def test_a_failed_experiment_is_kept_apart(store, tmp_path: Path) -> None:
    artifacts, _ = store
    ok = artifacts.put(end_state({"a": "ok"}), "dag", "r", "t", 1)
    failed = artifacts.put(end_state({"a": "failed"}), "dag", "r", "t", 1, failed=True)
    assert failed == ok + ".failed"
    artifacts.get(ok, tmp_path / "x")
    assert (tmp_path / "x" / "a").read_text() == "ok"


def test_what_was_never_stored_is_missing_clearly(store, tmp_path: Path) -> None:
    artifacts, _ = store
    where = str(artifacts.location("dag", "r", "t", 9))
    with pytest.raises(FileNotFoundError, match="artifacts of an upstream experiment are missing: s3://"):
        artifacts.get(where, tmp_path / "x")
    assert artifacts.files(where) == []


def test_a_file_replaced_meanwhile_fails_the_staging(s3, store, tmp_path: Path) -> None:
    artifacts, bucket = store
    location = artifacts.put(end_state({"a.txt": "mine"}), "dag", "r", "t", 0)
    s3.client().put_object(Bucket=bucket, Key="flows/dag/r/t/0/a.txt", Body=b"theirs")
    with pytest.raises(ValueError, match=r"'a.txt' of s3://.* changed while it was staged"):
        artifacts.get(location, tmp_path / "x")
    s3.client().delete_object(Bucket=bucket, Key="flows/dag/r/t/0/a.txt")
    with pytest.raises(FileNotFoundError, match=r"incomplete: s3://.*/t/0/a.txt is missing"):
        artifacts.get(location, tmp_path / "y")


@pytest.mark.parametrize("entry", [
    {"path": "../escape.txt", "type": "dir"},
    {"path": "l", "type": "link", "target": "../../etc/passwd"},
    {"path": "l", "type": "link", "target": "/etc/passwd"},
])
def test_a_manifest_naming_paths_outside_is_refused(s3, store, tmp_path: Path, entry: dict) -> None:
    artifacts, bucket = store
    location = artifacts.put(end_state({}), "dag", "r", "t", 0)
    manifest = {"version": 1, "entries": [entry]}
    s3.client().put_object(Bucket=bucket, Key="flows/dag/r/t/0.manifest.json", Body=json.dumps(manifest).encode())
    with pytest.raises(ValueError, match="outside the end state"):
        artifacts.get(location, tmp_path / "in" / "t")
    assert not (tmp_path / "in" / "escape.txt").exists()


def test_an_unknown_connection_or_scheme_is_refused_clearly(s3) -> None:
    said = "the artifact store s3://nowhere@b/p cannot be used: its connection 'nowhere' cannot be read"
    with pytest.raises(ValueError, match=said):
        ArtifactStore("s3://nowhere@b/p")
    with pytest.raises(ValueError, match=r"no filesystem for 'nosuch://' is installed"):
        ArtifactStore("nosuch://bucket/p")


def test_many_files_travel_in_batches(store, tmp_path: Path) -> None:
    artifacts, _ = store
    files = {f"output/{i:03}.txt": str(i) * i for i in range(40)}  # more than CONCURRENCY at once
    location = artifacts.put(end_state(files), "dag", "r", "t", 0)
    artifacts.get(location, tmp_path / "x")
    assert {f"output/{p.name}": p.read_text() for p in (tmp_path / "x" / "output").iterdir()} == files
    assert artifacts.files(location) == sorted(files)


def test_a_link_to_the_end_state_itself_is_kept(store, tmp_path: Path) -> None:
    artifacts, _ = store
    location = artifacts.put(end_state({"a/f": "1"}, links={"a/top": ".."}), "dag", "r", "t", 0)
    artifacts.get(location, tmp_path / "x")
    assert os.readlink(tmp_path / "x" / "a" / "top") == ".." and (tmp_path / "x" / "a" / "top" / "a" / "f").exists()


def test_a_try_that_stopped_half_way_leaves_nothing_vouched_for(
    s3, store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Try 1 stored a.txt; try 2 replaced it and died before its manifest; try 3 (a.txt as in try 1) sends it again."""
    artifacts, bucket = store
    artifacts.put(end_state({"a.txt": "first"}), "dag", "r", "t", 0)

    def dies_half_way(folder: Path) -> None:
        end_state({"a.txt": "second"})(folder)
        s3.client().put_object(Bucket=bucket, Key="flows/dag/r/t/0/zzz.txt", Body=b"x")  # a slow file, still uploading

    def killed(*args: object, **kwargs: object) -> None:
        raise OSError("worker killed")

    monkeypatch.setattr(artifacts.remote.fs, "pipe_file", killed)  # the manifest is never written
    with pytest.raises(OSError, match="worker killed"):
        artifacts.put(dies_half_way, "dag", "r", "t", 0)
    monkeypatch.undo()
    with pytest.raises(FileNotFoundError, match="missing"):  # not the first try's files with the second's bytes
        artifacts.get(str(artifacts.location("dag", "r", "t", 0)), tmp_path / "between")
    location = artifacts.put(end_state({"a.txt": "first"}), "dag", "r", "t", 0)
    artifacts.get(location, tmp_path / "x")
    assert (tmp_path / "x" / "a.txt").read_text() == "first"
    assert s3.keys(bucket) == ["flows/dag/r/t/0.manifest.json", "flows/dag/r/t/0/a.txt"]
