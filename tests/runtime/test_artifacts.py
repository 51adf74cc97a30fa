"""The artifact store in a local folder (the default), and ``artifacts_folder`` as a folder or a URL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flow_airflow import settings
from flow_airflow.runtime.artifacts import ArtifactStore, is_url


def save_files(folder: Path) -> None:
    (folder / "output" / "empty").mkdir(parents=True)
    (folder / "output" / "a.txt").write_text("1")
    (folder / "link").symlink_to("output/a.txt")


def test_a_local_store_keeps_folders_links_and_lists_its_files(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    location = store.put(save_files, "dag", "manual__x:y", "train", 0)
    assert location == str(tmp_path / "store" / "dag" / "manual__x_y" / "train" / "0")
    store.get(location, tmp_path / "in")
    assert os.readlink(tmp_path / "in" / "link") == "output/a.txt" and (tmp_path / "in" / "output" / "empty").is_dir()
    assert store.files(location) == ["link", "output/a.txt"]
    assert store.put(save_files, "dag", "manual__x:y", "train", 0) == location  # a retry replaces it
    assert sorted(p.name for p in Path(location).parent.iterdir()) == ["0"]


def test_a_file_url_is_a_local_folder(tmp_path: Path) -> None:
    store = ArtifactStore(f"file://{tmp_path}/store")
    assert store.root == tmp_path / "store"
    assert Path(store.put(save_files, "d", "r", "t", 1)) == tmp_path / "store" / "d" / "r" / "t" / "1"
    assert store.files(f"file://{tmp_path}/store/d/r/t/1") == ["link", "output/a.txt"]


def test_what_names_object_storage() -> None:
    assert is_url("s3://aws_default@bucket/p") and is_url("gs://b") and is_url("s3a://b/p")
    assert not is_url("file:///tmp/x") and not is_url("/tmp/x") and not is_url("relative/s3://x")


@pytest.mark.parametrize(("raw", "root"), [
    ("", None),
    ("/srv/artifacts", Path("/srv/artifacts")),
    ("file:///srv/artifacts", Path("/srv/artifacts")),
    ("s3://aws_default@bucket/flows", "s3://aws_default@bucket/flows"),
])
def test_artifacts_folder_is_a_folder_or_a_url(monkeypatch: pytest.MonkeyPatch, raw: str, root: object) -> None:
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__ARTIFACTS_FOLDER", raw)
    assert settings.artifacts_root() == (root or settings.airflow_home() / "flow_artifacts")


@pytest.mark.parametrize("raw", ["s3://", "s3:///prefix", "9s://bucket", "file://relative"])
def test_a_broken_url_is_refused_in_plain_words(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__ARTIFACTS_FOLDER", raw)
    with pytest.raises(settings.SettingError, match=r"artifacts_folder must be a folder or a URL \(s3://"):
        settings.artifacts_root()
