"""Flows through real Airflow (``dag.test``) with their artifact store on S3 (moto's server on 127.0.0.1)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

import pytest
from airflow.listeners import hookimpl

from flow_airflow import settings
from flow_airflow.local_run import run_flow

pytestmark = pytest.mark.airflow

_FLOWS = importlib.util.spec_from_file_location("runtime_flows", Path(__file__).parent / "test_runtime_flows.py")
assert _FLOWS and _FLOWS.loader
runtime_flows = importlib.util.module_from_spec(_FLOWS)
_FLOWS.loader.exec_module(runtime_flows)


@pytest.fixture
def bucket_store(s3, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """``artifacts_folder`` on a fresh bucket of the test server: the bucket's name."""
    name = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:60].strip("-")
    s3.bucket(name)
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__ARTIFACTS_FOLDER", f"s3://{s3.conn_id}@{name}/flows")
    return name


def test_the_end_state_travels_through_the_bucket(airflow_home: Path, tmp_path: Path, s3, bucket_store: str) -> None:
    """Files, a nested folder, a link and an edited project file reach the next tasks from S3, as from a folder."""
    flow = runtime_flows.write_flow(tmp_path / "p", runtime_flows.END_STATE_FLOW, runtime_flows.END_STATE_FILES)
    result = run_flow(flow)
    assert result.state == "success", result
    assert result.of("Check")[0].tags == {"checked": "yes"}  # check.py and refine.py asserted what they received
    make = result.of("Make")[0].record
    assert make is not None and make["output"] == f"s3://flow_s3@{bucket_store}/flows/end_state/{_safe(result.run_id)}/make/0"
    keys = s3.keys(bucket_store, f"flows/end_state/{_safe(result.run_id)}/")
    assert [k.split("/", 3)[3] for k in keys] == [
        "check/0.manifest.json",
        "make/0.manifest.json", "make/0/models/deep/m.bin", "make/0/notes/edited.txt", "make/0/output/out.txt",
        "refine/0.manifest.json", "refine/0/output/refined.txt",
    ]  # the link "latest" is in make's manifest only; check left an empty output/ folder
    local = settings.airflow_home() / "flow_artifacts" / "end_state"
    assert not local.exists() or not any(local.iterdir())


PARENT_CHILD = """\
flow: Two Workers
tasks:
  - {title: Parent, type: exec, input: python3 parent.py, computes: [local]}
  - {title: Child, type: exec, input: python3 child.py, computes: [local]}
relations:
  - {from: Parent, to: Child}
"""
PARENT_CHILD_FILES = {
    "parent.py": "import os\nopen('output/model.txt', 'w').write('made in ' + os.getcwd())\n",
    "child.py": "import os\nprint('cnvrg_tag_read: ' + open('input/parent/output/model.txt').read())\n"
                "print('cnvrg_tag_cwd: ' + os.getcwd())\n",
}


class SecondWorker:
    """When the parent's experiment ends on "worker A", wipe A's folders and send the next tasks to "worker B".

    A worker's own state is its workspaces folder (working directories, kept staged inputs) and, with
    a local artifact store, the store: with the store on S3, wiping A leaves the child only the bucket.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, a: Path, b: Path):
        self.monkeypatch, self.a, self.b = monkeypatch, a, b
        self.wiped: list[str] = []

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        if task_instance.dag_id == "two_workers" and task_instance.task_id == "parent.run":
            self.wiped = sorted(str(p.relative_to(self.a)) for p in self.a.rglob("*"))
            shutil.rmtree(self.a)
            self.monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__WORKSPACES_FOLDER", str(self.b))


def test_two_workers_that_share_nothing_but_the_bucket(
    airflow_home: Path, tmp_path: Path, s3, bucket_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = tmp_path / "worker_a", tmp_path / "worker_b"
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__WORKSPACES_FOLDER", str(a))
    worker = SecondWorker(monkeypatch, a, b)
    result = run_flow(runtime_flows.write_flow(tmp_path / "p", PARENT_CHILD, PARENT_CHILD_FILES), listener=worker)
    assert result.state == "success", result
    assert worker.wiped, "the parent ran in worker A's workspaces"  # A was there, and gone before the child ran
    assert not a.exists()
    tags = result.of("Child")[0].tags
    assert tags["read"] == f"made in {a}/two_workers/{_safe(result.run_id)}/parent/0.try1"
    assert tags["cwd"] == f"{b}/two_workers/{_safe(result.run_id)}/child/0.try1"
    assert f"flows/two_workers/{_safe(result.run_id)}/parent/0/output/model.txt" in s3.keys(bucket_store)


def _safe(run_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.+" else "_" for c in run_id)


def test_a_failed_experiment_is_kept_apart_in_the_bucket(
    airflow_home: Path, tmp_path: Path, s3, bucket_store: str, capfd: pytest.CaptureFixture[str]
) -> None:
    flow = runtime_flows.write_flow(tmp_path / "p", """\
flow: Fails On S3
tasks:
  - {title: Boom, type: exec, input: python3 boom.py, computes: [local]}
relations: []
""", {"boom.py": "open('output/partial.txt', 'w').write('half')\nraise SystemExit(3)\n"})
    result = run_flow(flow)
    assert result.state == "failed"
    run = _safe(result.run_id)
    assert s3.keys(bucket_store) == [f"flows/fails_on_s3/{run}/boom/0.failed.manifest.json",
                                     f"flows/fails_on_s3/{run}/boom/0.failed/output/partial.txt"]
    out, err = capfd.readouterr()
    assert f"files are stored at s3://flow_s3@{bucket_store}/flows/fails_on_s3/{run}/boom/0.failed" in out + err
