"""Two workers that share nothing but the bucket (``artifacts_folder`` on moto's S3 server).

Worker A is this process: it runs the flow (``dag.test``); the parent experiment succeeds and its end
state goes to the bucket; the child, which runs only on worker B, fails here. Worker A's folders are
then removed. Worker B is another OS process with its own Airflow home, workspaces folder and dataset
cache: ``airflow tasks test`` runs the child's task instance of the same DAG run (the same metadata
database, for the parent's record in XCom) and the child reads the parent's files from the bucket.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.airflow

FLOW = """
flow: Two Workers
tasks:
  - {title: Parent, type: exec, input: python3 parent.py, computes: [local]}
  - {title: Child, type: exec, input: python3 child.py, computes: [local]}
relations:
  - {from: Parent, to: Child}
"""
PARENT = """import os
os.makedirs("output", exist_ok=True)
open("output/model.txt", "w").write("made on " + os.environ["WORKER"] + " in " + os.getcwd())
print("cnvrg_tag_worker:", os.environ["WORKER"])
"""
CHILD = """import os, sys
if os.environ["WORKER"] != "B":
    print("the child runs on worker B only")
    sys.exit(1)
print("cnvrg_tag_read:", open(os.path.join(os.environ["INPUT_PARENT"], "output", "model.txt")).read())
print("cnvrg_tag_child_in:", os.getcwd())
"""


def test_the_child_on_another_worker_reads_the_parents_end_state_from_the_bucket(
    s3, airflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
) -> None:
    from airflow.configuration import conf

    from flow_airflow import settings
    from flow_airflow.local_run import BUNDLE, run_flow

    bucket = s3.bucket("two-workers")
    url = f"s3://{s3.conn_id}@{bucket}/flows"
    worker_a, worker_b = tmp_path / "worker-a", tmp_path / "worker-b"
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__ARTIFACTS_FOLDER", url)
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__WORKSPACES_FOLDER", str(worker_a / "workspaces"))
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__DATASETS_CACHE_FOLDER", str(worker_a / "cache"))
    monkeypatch.setenv("WORKER", "A")
    settings.reset()
    project = tmp_path / "project"
    project.mkdir()
    for name, text in {"flow.yaml": FLOW, "parent.py": PARENT, "child.py": CHILD}.items():
        (project / name).write_text(text)
    result = run_flow(project / "flow.yaml")
    [parent] = result.of("Parent")
    assert parent.tags == {"worker": "A"} and parent.record is not None
    assert parent.record["output"].startswith(url + "/")
    assert [e.state for e in result.of("Child", None)] == ["failed"]
    assert f"flows/{result.dag_id}/" in " ".join(s3.keys(bucket))
    shutil.rmtree(worker_a)  # nothing of worker A is left but the bucket (and the metadata DB's records)
    capfd.readouterr()

    env = {**os.environ, "AIRFLOW_HOME": str(worker_b / "home"), "WORKER": "B",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": conf.get("database", "sql_alchemy_conn"),
           "AIRFLOW__FLOW_AIRFLOW__WORKSPACES_FOLDER": str(worker_b / "workspaces"),
           "AIRFLOW__FLOW_AIRFLOW__DATASETS_CACHE_FOLDER": str(worker_b / "cache")}
    (worker_b / "home").mkdir(parents=True)
    airflow = Path(sys.executable).parent / "airflow"
    done = subprocess.run([str(airflow), "tasks", "test", "-B", BUNDLE, result.dag_id, "child.run", result.run_id,
                           "--map-index", "0"], capture_output=True, text=True, env=env, timeout=300)
    said = done.stdout + done.stderr
    assert done.returncode == 0, said[-4000:]
    made = f"made on A in {worker_a / 'workspaces'}"
    assert f"cnvrg_tag_read: {made}" in said  # the parent's file, written on A, read on B from the bucket
    assert f"cnvrg_tag_child_in: {worker_b / 'workspaces'}" in said
    assert f"the files of Parent #0, from {parent.record['output']}" in said
    assert not worker_a.exists()
