"""The dataset store on object storage: a real S3-compatible server (moto's, on 127.0.0.1) through an
Airflow connection (``s3://flow_s3@<bucket>/<prefix>``): the store alone, the CLI in its own process,
and a flow reading what it pushed in real Airflow (``dag.test()``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from flow_airflow.datasets.store import DatasetError, DatasetStore


def folder(root: Path, files: dict[str, str]) -> Path:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


@pytest.fixture
def bucket(s3, request) -> str:
    name = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())
    return s3.bucket(name[:60].strip("-"))


def test_push_log_query_resolve_on_s3_and_nothing_written_twice(s3, bucket: str, tmp_path: Path) -> None:
    store = DatasetStore(f"s3://{s3.conn_id}@{bucket}/data", cache=tmp_path / "cache")
    v1, new = store.push("iris", folder(tmp_path / "1", {"a.csv": "1", "sub/b.txt": "2"}), "v1")
    assert new
    keys = s3.keys(bucket)
    assert [k for k in keys if "/objects/" in k] == sorted(f"data/{store.object_key(sha)}" for sha, _ in
                                                           store.select("iris", v1).files.values())
    assert f"data/iris/commits/{v1}.json" in keys and f"data/iris/names/v1={v1}" in keys
    bodies = {k: s3.client().get_object(Bucket=bucket, Key=k)["ETag"] for k in keys}
    assert store.push("iris", folder(tmp_path / "again", {"a.csv": "1", "sub/b.txt": "2"})) == (v1, False)
    assert {k: s3.client().get_object(Bucket=bucket, Key=k)["ETag"] for k in s3.keys(bucket)} == bodies
    v2, _ = store.push("iris", folder(tmp_path / "2", {"a.csv": "1", "sub/b.txt": "3"}), "v2")
    assert len([k for k in s3.keys(bucket) if "/objects/" in k]) == 3  # a.csv is kept once for both
    with pytest.raises(DatasetError, match="the name 'v1' already means commit"):
        store.push("iris", folder(tmp_path / "3", {"a.csv": "9"}), "v1")  # versions are immutable
    store.save_query("iris", "csv", ["*.csv"])
    assert store.datasets() == ["iris"]
    assert store.latest("iris") == v2 and store.resolve("iris").commit == v2
    assert store.resolve("iris", "v1").commit == v1 and store.resolve("iris", v1[:8]).commit == v1
    assert [(e["commit"], e["names"], e["files"]) for e in store.log("iris")] == [(v2, ["v2"], 2), (v1, ["v1"], 2)]
    assert list(store.resolve("iris", query="csv").files) == ["a.csv"]
    with pytest.raises(DatasetError, match=rf"no commit or version named 'v9' \(its names: v1, v2; its latest "
                                           rf"commits: {v2[:12]}, {v1[:12]}\)"):
        store.resolve("iris", "v9")
    with pytest.raises(DatasetError, match=rf"no dataset 'wine' in the dataset store s3://flow_s3@{bucket}/data"):
        store.resolve("wine")


def test_use_cached_copies_from_the_bucket_once_and_checkouts_are_verified(s3, bucket: str, tmp_path: Path) -> None:
    store = DatasetStore(f"s3://{s3.conn_id}@{bucket}/data", cache=tmp_path / "cache")
    commit, _ = store.push("iris", folder(tmp_path / "1", {"a.csv": "40", "b/c.csv": "2"}))
    selection = store.resolve("iris")
    cached, copied = store.cached(selection)
    assert copied == 2 and cached == tmp_path / "cache" / "iris" / commit
    assert (cached / "b/c.csv").read_text() == "2" and (cached / "a.csv").stat().st_mode & 0o777 == 0o444
    assert store.cached(selection) == (cached, 0)  # the second experiment copies nothing
    assert store.checkout(selection, tmp_path / "own") == 2 and (tmp_path / "own/a.csv").read_text() == "40"
    sha = selection.files["a.csv"][0]
    s3.client().put_object(Bucket=bucket, Key=f"data/{store.object_key(sha)}", Body=b"41")  # changed by hand
    with pytest.raises(DatasetError, match=r"'a.csv' of iris@.* differs from what was pushed"):
        store.checkout(selection, tmp_path / "again")


def test_an_unknown_connection_is_said(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="the dataset store s3://nowhere_conn@b/p cannot be used: its connection "
                                         "'nowhere_conn' cannot be read"):
        DatasetStore("s3://nowhere_conn@b/p", cache=tmp_path)


FLOW = """
flow: S3 Data
tasks:
  - {title: Data, type: data, dataset: numbers, data_commit: v1}
  - {title: Cached, type: data, dataset: numbers, use_cached: true}
  - {title: Read, type: exec, input: python3 read.py, computes: [local]}
  - title: Read Cached
    type: exec
    input: python3 read.py
    computes: [local]
    params: [{key: n, value: [1, 2]}]
relations:
  - {from: Data, to: Read}
  - {from: Cached, to: Read Cached}
"""
READ = """import os
root = os.environ["CNVRG_DATASET_NUMBERS"]  # /data/numbers on the local compute
print("cnvrg_tag_total:", sum(int(open(os.path.join(root, f)).read()) for f in ("a.txt", "b.txt")))
"""


@pytest.mark.airflow
def test_cli_push_in_its_own_process_then_a_flow_reads_it(
    s3, bucket: str, tmp_path: Path, airflow_home: Path, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from flow_airflow.local_run import run_flow

    url = f"s3://{s3.conn_id}@{bucket}/datasets"
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__DATASETS_FOLDER", url)
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__DATASETS_CACHE_FOLDER", str(tmp_path / "worker-cache"))
    data = folder(tmp_path / "numbers", {"a.txt": "40", "b.txt": "2"})
    pushed = subprocess.run([sys.executable, "-m", "flow_airflow.cli", "dataset", "push", "numbers", str(data),
                             "--name", "v1", "--no-event"], capture_output=True, text=True, env=os.environ)
    assert pushed.returncode == 0, pushed.stderr
    commit = pushed.stdout.strip()
    assert f"datasets/numbers/commits/{commit}.json" in s3.keys(bucket)
    listed = subprocess.run([sys.executable, "-m", "flow_airflow.cli", "dataset", "list"], capture_output=True,
                            text=True, env=os.environ)
    assert listed.stdout == f"numbers: latest {commit[:12]} (v1), 2 file(s); 1 version(s), 0 query(ies)\n"
    for command, answer in ((["query", "numbers", "first", "a.*"], f"saved query 'first' of 'numbers': today it "
                             f"selects numbers@{commit[:12]} (v1), query 'first', 1 file(s)\n"),
                            (["log", "numbers"], f"{commit} (v1)  "), (["push", "numbers", str(data)], commit + "\n")):
        done = subprocess.run([sys.executable, "-m", "flow_airflow.cli", "dataset", *command], capture_output=True,
                              text=True, env=os.environ)
        assert done.returncode == 0 and done.stdout.startswith(answer), (command, done.stdout, done.stderr)
    project = tmp_path / "project"
    project.mkdir()
    (project / "read.py").write_text(READ)
    (project / "flow.yaml").write_text(FLOW)
    capfd.readouterr()
    result = run_flow(project / "flow.yaml")
    assert [e.tags for e in result.of("Data")] == [{"dataset": "numbers", "commit": commit}]
    assert [e.tags for e in result.of("Read")] == [{"total": "42"}]
    assert [e.tags for e in result.of("Read Cached")] == [{"total": "42"}, {"total": "42"}]
    text = "".join(capfd.readouterr())
    assert text.count("at /data/numbers: this experiment's own copy, 2 file(s) copied") == 1
    assert text.count("made now: 2 file(s) copied") == 1 and text.count("copied nothing: kept from before") == 1
    assert sorted(p.name for p in (tmp_path / "worker-cache" / "numbers" / commit).iterdir()) == ["a.txt", "b.txt"]


def test_a_pod_stager_fetches_a_dataset_from_the_bucket(s3, bucket: str, tmp_path: Path) -> None:
    """``pod_stage in`` (what the pod's stage-inputs container runs) with the dataset store on S3."""
    import io
    import json
    import tarfile

    from flow_airflow.computes.kubernetes import pod_stage

    url = f"s3://{s3.conn_id}@{bucket}/data"
    store = DatasetStore(url, cache=tmp_path / "cache")
    store.push("iris", folder(tmp_path / "1", {"a.csv": "1", "deep/b.csv": "22"}), "v1")
    files = {p: list(f) for p, f in store.resolve("iris", "v1").files.items()}
    workspace = tmp_path / "ws"
    (workspace / ".cnvrg_data" / "iris").mkdir(parents=True)
    exchange = tmp_path / "exchange"
    pod_stage.pack_to(workspace, None, f"{exchange}/workspace.tar",
                      {"store": url, "datasets": [{"name": "iris", "files": files, "read_only": True}]})
    pod = tmp_path / "pod"
    pod.mkdir()
    assert pod_stage.main(["in", str(exchange), str(pod)]) == 0
    assert (pod / ".cnvrg_data/iris/deep/b.csv").read_text() == "22"
    assert (pod / ".cnvrg_data/iris/a.csv").read_text() == "1"
    assert (pod / ".cnvrg_data/iris/a.csv").stat().st_mode & 0o777 == 0o444
    (pod / ".flow-airflow-exit").write_text("0")
    assert pod_stage.main(["out", str(exchange), str(pod)]) == 0
    with tarfile.open(fileobj=io.BytesIO((exchange / "end.tar").read_bytes())) as archive:
        assert archive.getnames() == []  # the dataset does not travel back
    files["a.csv"][0] = files["deep/b.csv"][0]  # a list that does not match the bucket's content
    pod_stage.pack_to(workspace, None, f"{exchange}/workspace.tar",
                      {"store": url, "datasets": [{"name": "iris", "files": files, "read_only": False}]})
    with pytest.raises(SystemExit, match=r"'a\.csv' of dataset iris differs from what was pushed"):
        pod_stage.main(["in", str(exchange), str(tmp_path / "pod2")])
    assert json.loads((tmp_path / "pod2/.flow-airflow-sdk/datasets.json").read_text())["store"] == url


def test_pushes_of_one_dataset_at_the_same_moment_all_land(s3, bucket: str, tmp_path: Path) -> None:
    """Object storage has no locks: every key a push writes is new, so concurrent pushes do not lose one."""
    from concurrent.futures import ThreadPoolExecutor

    store = DatasetStore(f"s3://{s3.conn_id}@{bucket}/data", cache=tmp_path / "cache")
    folders = [folder(tmp_path / str(n), {"a.csv": str(n)}) for n in range(6)]
    with ThreadPoolExecutor(6) as pool:
        pushed = list(pool.map(lambda n: store.push("iris", folders[n], f"v{n}")[0], range(6)))
    assert sorted(e["commit"] for e in store.log("iris")) == sorted(pushed)
    assert store.names("iris") == {f"v{n}": pushed[n] for n in range(6)}
