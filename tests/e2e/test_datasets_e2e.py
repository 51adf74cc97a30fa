"""``flow-airflow dataset push`` starts the flows a dataset triggers, on a real ``airflow standalone``."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flow_airflow.cli import LOADER

pytestmark = pytest.mark.e2e

DAG_ID = "data_trigger_e2e"
FLOW = """flow: Data Trigger E2E
triggers: {datasets: [e2e_numbers]}
tasks:
  - {title: Data, type: data, dataset: e2e_numbers}
  - {title: Read, type: exec, input: python3 read.py, computes: [local]}
relations:
  - {from: Data, to: Read}
"""
READ = 'import os\nprint("cnvrg_tag_a:", open(os.path.join(os.environ["CNVRG_DATASET_E2E_NUMBERS"], "a.txt")).read())\n'


@pytest.fixture(scope="module")
def server(airflow_server):
    airflow_server.add_file("flows.py", LOADER)
    return airflow_server


def push(server, folder: Path, *args: str) -> tuple[str, str]:
    """``flow-airflow dataset push`` as a user runs it beside the server: (the commit, what it said)."""
    done = subprocess.run([sys.executable, "-m", "flow_airflow.cli", "dataset", "push", "e2e_numbers", str(folder),
                           *args], env=server.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    [commit] = [line for line in done.stdout.splitlines() if re.fullmatch(r"[0-9a-f]{40}", line)]  # Airflow may log
    return commit, done.stderr


def version(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / name).mkdir()
    (tmp_path / name / "a.txt").write_text(text)
    return tmp_path / name


def triggered_runs(server, count: int, timeout: float = 150) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = server.api("GET", f"/dags/{DAG_ID}/dagRuns")["dag_runs"]
        runs = [r for r in runs if r["run_type"] == "asset_triggered"]
        if len(runs) >= count:
            return sorted(runs, key=lambda r: r["run_after"])
        time.sleep(1)
    raise AssertionError(f"not {count} asset-triggered runs after {timeout}s\n{server.log_tail(40)}")


def test_a_pushed_version_starts_the_flow_which_reads_it(server, tmp_path: Path) -> None:
    push(server, version(tmp_path, "v1", "one"), "--name", "v1")
    server.add_file("datatrig/read.py", READ)
    server.add_file("datatrig/flow.yaml", FLOW)
    server.touch("flows.py")
    server.wait_for_dag(DAG_ID, timeout=90)
    v2, said = push(server, version(tmp_path, "v2", "two"), "--name", "v2")
    assert "of cnvrg-dataset://e2e_numbers: flows triggered by this dataset will run on this commit" in said
    [run] = triggered_runs(server, 1)
    assert server.wait_for_run(DAG_ID, run["dag_run_id"]) == "success"
    assert server.xcom(DAG_ID, run["dag_run_id"], "data.run", map_index=0)["tags"]["commit"] == v2  # recorded
    assert server.xcom(DAG_ID, run["dag_run_id"], "read.run", map_index=0)["tags"] == {"a": "two"}

    # another system posts the event through Airflow's REST API, naming a version: the run reads that one
    push(server, version(tmp_path, "v3", "three"), "--name", "v3", "--no-event")  # the latest, unannounced
    [asset] = server.api("GET", "/assets", params={"uri_pattern": "cnvrg-dataset://e2e_numbers"})["assets"]
    server.api("POST", "/assets/events", json={"asset_id": asset["id"], "extra": {"commit": "v1"}})
    run = triggered_runs(server, 2)[-1]
    assert server.wait_for_run(DAG_ID, run["dag_run_id"]) == "success"
    assert server.xcom(DAG_ID, run["dag_run_id"], "read.run", map_index=0)["tags"] == {"a": "one"}
