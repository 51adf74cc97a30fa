"""A push killed part-way (issue 29, item 10): a real process SIGKILLed right after it wrote its commit (before
its log entry), or in the middle of copying a file into the store. Before, the version was stranded: the
next push said "unchanged", it never became the latest and no asset event was recorded, and half-written
``.incoming.*`` files stayed. Now a push is all or nothing and the next one completes it and cleans up;
on a folder store and on S3 (moto)."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from flow_airflow.datasets.store import DatasetStore

INCOMING = ".incoming"  # where a folder store writes before renaming into place (datasets/places.py)

#: A push in its own process that kills itself (SIGKILL) at ``point``: "commit" right after writing its
#: commit's record, "upload" after writing 3 bytes of a file into the store.
KILLED_PUSH = r"""
import os, signal, sys
from pathlib import Path
from flow_airflow.datasets import places
from flow_airflow.datasets.store import DatasetStore

root, folder, point = sys.argv[1:4]
for place in (places.FolderPlace, places.ObjectPlace):
    write = place.write
    def killing_write(self, key, data, write=write):
        write(self, key, data)
        if point == "commit" and "/commits/" in key:
            os.kill(os.getpid(), signal.SIGKILL)
    place.write = killing_write
def killing_copy(source, target, length=0):
    target.write(source.read(3))
    target.flush()
    os.kill(os.getpid(), signal.SIGKILL)
def killing_copyfile(source, target):
    with open(source, "rb") as s, open(target, "wb") as t:
        killing_copy(s, t)
if point == "upload":
    places.shutil.copyfileobj, places.shutil.copyfile = killing_copy, killing_copyfile
DatasetStore(root, cache=Path(folder).parent / "cache").push("iris", Path(folder), "v2")
"""


def folder(root: Path, files: dict[str, str]) -> Path:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


def killed_push(root: str, data: Path, point: str) -> None:
    done = subprocess.run([sys.executable, "-c", KILLED_PUSH, root, str(data), point], capture_output=True,
                          text=True, env=os.environ, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr


def check_repaired(store: DatasetStore, data: Path, v1: str) -> None:
    """The killed push left no version; pushing the same folder again completes it, announced."""
    assert store.latest("iris") == v1 and [e["commit"] for e in store.log("iris")] == [v1]
    announced: list[tuple[str, list[str]]] = []
    v2, new = store.push("iris", data, "v2", announce=lambda commit, names: announced.append((commit, names)))
    assert new and announced == [(v2, ["v2"])]  # said "unchanged" and announced nothing before
    assert store.latest("iris") == v2 and store.resolve("iris", "v2").commit == v2
    assert [e["commit"] for e in store.log("iris")] == [v2, v1]
    assert store.push("iris", data, "v2") == (v2, False)  # and from then on it is kept


@pytest.mark.parametrize("point", ["commit", "upload"])
def test_a_push_killed_part_way_is_completed_and_cleaned_up_by_the_next(tmp_path: Path, point: str) -> None:
    store = DatasetStore(tmp_path / "store")
    v1, _ = store.push("iris", folder(tmp_path / "1", {"a.csv": "1"}), "v1")
    data = folder(tmp_path / "2", {"a.csv": "2", "b/big.csv": "x" * 100_000})
    killed_push(str(tmp_path / "store"), data, point)
    left = [p for p in (tmp_path / "store").rglob("*") if p.is_file() and p.parent.name == INCOMING]
    assert len(left) == (1 if point == "upload" else 0)
    for file in left:  # as it is a minute later: no writer holds it (its process is dead)
        os.utime(file, (0, 0))
    check_repaired(store, data, v1)
    assert not [p for p in (tmp_path / "store").rglob(".*") if p.is_file() and p.name != ".lock"]


def test_the_sweep_keeps_what_a_live_writer_holds(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "store")
    store.push("iris", folder(tmp_path / "1", {"a.csv": "1"}))
    held, dead = tmp_path / "store" / INCOMING / "held", tmp_path / "store" / INCOMING / "dead"
    held.write_text("half")
    dead.write_text("half")
    for file in (held, dead):
        os.utime(file, (0, 0))
    with held.open("rb") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # what a push that is writing does
        # another process sweeps
        subprocess.run([sys.executable, "-c", "import sys; from flow_airflow.datasets.places import FolderPlace; "
                        "print(FolderPlace(sys.argv[1]).sweep())", str(tmp_path / "store")], check=True)
        assert held.exists() and not dead.exists()


def test_a_push_killed_after_its_commit_on_s3_is_completed_by_the_next(s3, tmp_path: Path) -> None:
    bucket = s3.bucket("killed-push")
    url = f"s3://{s3.conn_id}@{bucket}/data"
    store = DatasetStore(url, cache=tmp_path / "cache")
    v1, _ = store.push("iris", folder(tmp_path / "1", {"a.csv": "1"}), "v1")
    data = folder(tmp_path / "2", {"a.csv": "2"})
    killed_push(url, data, "commit")
    assert any("/commits/" in k and v1 not in k for k in s3.keys(bucket))  # the commit was written, then killed
    check_repaired(store, data, v1)


def test_the_command_completes_a_killed_push_as_a_new_commit_and_announces_it(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "store")
    store.push("iris", folder(tmp_path / "1", {"a.csv": "1"}), "v1")
    data = folder(tmp_path / "2", {"a.csv": "2"})
    killed_push(str(tmp_path / "store"), data, "commit")
    done = subprocess.run([sys.executable, "-m", "flow_airflow.cli", "dataset", "push", "iris", str(data), "--name",
                           "v2"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "AIRFLOW__FLOW_AIRFLOW__DATASETS_FOLDER": str(tmp_path / "store")})
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert any(line.startswith("new commit ") for line in lines), lines  # was "unchanged: ..."
    assert any("asset event" in line for line in lines), lines  # the announcement was made (or said why not)
    assert store.latest("iris") in done.stdout.splitlines()
