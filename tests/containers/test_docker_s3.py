"""The Docker compute with the artifact store and the dataset store on object storage (moto's S3 server).

The example flows give on Docker, with ``artifacts_folder = s3://...``, the routes, tags and stored
files they give on the local compute with a local folder; a data task's dataset, pushed to the bucket,
is at ``/data/<name>`` in the container.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flow_airflow import settings
from flow_airflow.local_run import RunResult, run_flow
from flow_airflow.runtime.artifacts import ArtifactStore
from tests.containers.test_docker_flows import docker_template, on_docker, outcome  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.airflow, pytest.mark.containers, pytest.mark.usefixtures("docker_template")]


def outcome_s3(result: RunResult, tmp_path: Path) -> list[tuple[Any, ...]]:
    """As ``outcome``, each experiment's stored files read back from the bucket."""
    rows = []
    for n, e in enumerate(sorted(result.experiments, key=lambda e: (e.task, e.index))):
        files = []
        if e.record:
            folder = tmp_path / "read" / str(n)
            ArtifactStore(e.record["output"]).get(e.record["output"], folder)
            files = sorted((str(p.relative_to(folder)), p.read_bytes()) for p in folder.rglob("*") if p.is_file())
        rows.append((e.task, e.index, e.state, e.params, e.tags, files))
    return rows


@pytest.mark.parametrize("name", ["artifacts_tags", "conditions"])
def test_example_flows_on_docker_with_artifacts_on_s3(
    name: str, s3, airflow_home: Path, project: Callable[..., Path], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local_file = project(name)
    local = run_flow(local_file)
    bucket = s3.bucket(f"docker-{name.replace('_', '-')}")
    url = f"s3://{s3.conn_id}@{bucket}/flows"
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__ARTIFACTS_FOLDER", url)
    settings.reset()
    on_s3 = run_flow(on_docker(local_file))
    assert local.state == on_s3.state == "success"
    assert all(e.record["output"].startswith(url + "/") for e in on_s3.experiments if e.record)
    assert outcome_s3(on_s3, tmp_path) == outcome(local)
    assert any(key.endswith(".manifest.json") for key in s3.keys(bucket))


FLOW = """
flow: Docker S3 Data
tasks:
  - {title: Data, type: data, dataset: numbers, use_cached: true}
  - {title: Read, type: exec, input: python3 read.py /data/numbers, computes: [docker]}
relations:
  - {from: Data, to: Read}
"""
READ = """import os, sys
root = sys.argv[1]
print("cnvrg_tag_total:", sum(int(open(os.path.join(root, f)).read()) for f in sorted(os.listdir(root))))
print("cnvrg_tag_in_container:", os.path.isdir("/cnvrg") and os.getcwd() == "/cnvrg")
os.makedirs("output", exist_ok=True)
open("output/total.txt", "w").write("42")
"""


def test_a_dataset_from_the_bucket_at_data_on_docker_its_outputs_to_the_bucket(
    s3, airflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flow_airflow.datasets.store import configured

    bucket = s3.bucket("docker-data")
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__ARTIFACTS_FOLDER", f"s3://{s3.conn_id}@{bucket}/flows")
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__DATASETS_FOLDER", f"s3://{s3.conn_id}@{bucket}/datasets")
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__DATASETS_CACHE_FOLDER", str(tmp_path / "cache"))
    settings.reset()
    data = tmp_path / "numbers"
    data.mkdir()
    (data / "a.txt").write_text("40")
    (data / "b.txt").write_text("2")
    commit, _ = configured().push("numbers", data, "v1")
    project = tmp_path / "project"
    project.mkdir()
    (project / "read.py").write_text(READ)
    (project / "flow.yaml").write_text(FLOW)
    result = run_flow(project / "flow.yaml")
    [read] = result.of("Read")
    assert read.tags == {"total": "42", "in_container": "True"}
    assert sorted(p.name for p in (tmp_path / "cache" / "numbers" / commit).iterdir()) == ["a.txt", "b.txt"]
    assert read.record is not None
    assert ArtifactStore(read.record["output"]).files(read.record["output"]) == ["output/total.txt"]
