"""docker-compose.yaml for real: CeleryExecutor on PostgreSQL and Redis, two workers, artifacts in S3.

In order (one stack for the module, tests/compose/conftest.py): the stack comes up and lists the
example flows; grid_three runs with its experiments on both workers and its end states in the
bucket; an approval is decided through the approvals API against PostgreSQL; a worker killed in the
middle of an experiment loses nothing (the experiment is retried, its end state is stored once,
the run succeeds).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.compose.conftest import BUCKET, PREFIX, ComposeStack

pytestmark = [pytest.mark.containers, pytest.mark.compose]
EXAMPLES = Path(__file__).parents[2] / "dags" / "examples"
GRID, APPROVAL, KILL = "three_grid_searches", "approval_gate", "worker_kill"
WORKERS = {"airflow-worker-1", "airflow-worker-2"}


def _timed(stack: ComposeStack, name: str, start: float) -> None:
    stack.timings[name] = time.monotonic() - start


def test_the_stack_comes_up_and_lists_the_example_flows(stack: ComposeStack) -> None:
    start = time.monotonic()
    deadline, listed = start + 180, set()
    while time.monotonic() < deadline:
        listed = {d["dag_id"] for d in stack.api("GET", "/dags", params={"limit": 100})["dags"]}
        if {GRID, APPROVAL, KILL} <= listed and len(listed) >= len(list(EXAMPLES.iterdir())) + 1:
            break
        time.sleep(3)
    errors = stack.api("GET", "/importErrors")["import_errors"]
    assert not errors, errors
    assert {GRID, APPROVAL, KILL} <= listed, listed
    assert len(listed) == len(list(EXAMPLES.iterdir())) + 1, listed  # every example, and worker_kill
    version = stack.api("GET", "/version")["version"]
    assert version.startswith("3.3."), version
    _timed(stack, "flows listed", start)


def test_grid_three_runs_across_both_workers_with_artifacts_in_s3(stack: ComposeStack) -> None:
    start = time.monotonic()
    run_id = stack.trigger(GRID)
    assert stack.wait_for_run(GRID, run_id, timeout=420) == "success"
    _timed(stack, "grid_three run", start)
    experiments = [t for t in stack.task_instances(GRID, run_id) if t["task_id"].endswith(".run")]
    assert len(experiments) == 2 + 3 + 30, [(t["task_id"], t["map_index"]) for t in experiments]
    assert all(t["state"] == "success" for t in experiments)
    assert {t["hostname"] for t in experiments} == WORKERS  # both workers ran experiments, nothing else did
    # every experiment's end state is in the bucket: one manifest per route of each task
    keys = stack.keys(f"{PREFIX}/{GRID}/")
    manifests = [k for k in keys if k.endswith(".manifest.json")]
    assert len(manifests) == 2 + 3 + 30, manifests
    record = stack.xcom(GRID, run_id, "grid_search_c.run", 0)
    assert str(record["output"]).startswith(f"s3://flow_s3@{BUCKET}/{PREFIX}/{GRID}/"), record


def _ti(stack: ComposeStack, dag: str, run_id: str, task: str) -> dict[str, Any]:
    """A task instance; an experiment (``<task>.run``) is mapped over its routes: its route 0."""
    path = f"/dags/{dag}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task}"
    return stack.api("GET", f"{path}/0" if task.endswith(".run") else path)


def _wait_state(stack: ComposeStack, dag: str, run_id: str, task: str, states: set[str],
                timeout: float = 240) -> dict[str, Any]:
    deadline, ti = time.monotonic() + timeout, {}
    while time.monotonic() < deadline:
        ti = _ti(stack, dag, run_id, task)
        if ti["state"] in states:
            return ti
        assert ti["state"] not in ("failed", "upstream_failed"), ti
        time.sleep(1)
    raise AssertionError(f"{dag}/{task} not {states} after {timeout} s: {ti.get('state')}\n{stack.log_tail(40)}")


def test_an_approval_is_decided_once_on_postgresql(stack: ComposeStack) -> None:
    start = time.monotonic()
    run_id = stack.trigger(APPROVAL)
    _wait_state(stack, APPROVAL, run_id, "deploy_model.approval", {"deferred"})
    pending = stack.session.get(f"{stack.base_url}/flow-airflow/api/approvals").json()["pending"]
    assert [p for p in pending if p["run_id"] == run_id], pending
    url = f"{stack.base_url}/flow-airflow/api/approvals/{APPROVAL}/{quote(run_id, safe='')}/deploy_model.approval"

    def decide(user: str, decision: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {stack.token_for(user)}"}
        return httpx.post(url, json={"decision": decision}, headers=headers, timeout=30)

    refused = decide("admin", "approve")  # not one of the listed approvers
    assert refused.status_code == 403, refused.text
    approved = decide("bob", "approve")
    assert approved.status_code == 200, approved.text
    again = decide("alice", "reject")
    assert again.status_code == 409 and "already approved by bob" in again.json()["detail"], again.text
    assert stack.wait_for_run(APPROVAL, run_id, timeout=240) == "success"
    history = stack.session.get(f"{stack.base_url}/flow-airflow/api/approvals").json()["history"]
    mine = [h for h in history if h["run_id"] == run_id]
    assert len(mine) == 1 and (mine[0]["decided_by"], mine[0]["status"]) == ("bob", "approved"), mine
    page = stack.session.get(f"{stack.base_url}/flow-airflow/approvals")  # the page, from PostgreSQL too
    assert page.status_code == 200 and run_id in page.text and "approved" in page.text
    assert stack.dag_run(APPROVAL, run_id)["note"].startswith("Approved by bob at ")
    _timed(stack, "approval", start)


def _kill_worker(stack: ComposeStack, hostname: str) -> None:
    """SIGKILL the worker container's main process (a crash: its restart policy brings it back)."""
    service = {"airflow-worker-1": "airflow-worker-1", "airflow-worker-2": "airflow-worker-2"}[hostname]
    container = stack.container(service)
    pid = int(subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", container], capture_output=True,
                             text=True, check=True).stdout)
    os.kill(pid, signal.SIGKILL)


def test_a_worker_killed_in_an_experiment_loses_nothing(stack: ComposeStack) -> None:
    start = time.monotonic()
    run_id = stack.trigger(KILL)
    ti = _wait_state(stack, KILL, run_id, "train.run", {"running"})
    time.sleep(8)  # Train is in its 25 s of work: its output is written, nothing is stored yet
    assert _wait_state(stack, KILL, run_id, "train.run", {"running"})["try_number"] == 1
    killed = ti["hostname"]
    _kill_worker(stack, killed)
    assert stack.wait_for_run(KILL, run_id, timeout=300) == "success"
    _timed(stack, "worker kill run", start)
    train = _ti(stack, KILL, run_id, "train.run")
    assert train["state"] == "success" and train["try_number"] == 2, train
    # stored once: the objects under Train's end state are exactly what its one manifest lists
    keys = stack.keys(f"{PREFIX}/{KILL}/")
    train_keys = [k for k in keys if "/train/" in k or "/train.run/" in k]
    manifests = [k for k in train_keys if k.endswith(".manifest.json")]
    assert len(manifests) == 1, train_keys
    manifest = json.loads(stack.s3().get_object(Bucket=BUCKET, Key=manifests[0])["Body"].read())
    folder = manifests[0].removesuffix(".manifest.json") + "/"
    files = {e["path"]: e["sha256"] for e in manifest["entries"] if e["type"] == "file"}
    assert "output/model.json" in files, manifest
    assert sorted(train_keys) == sorted([manifests[0], *(folder + f for f in files)]), (train_keys, files)
    model_body = stack.s3().get_object(Bucket=BUCKET, Key=folder + "output/model.json")["Body"].read()
    assert hashlib.sha256(model_body).hexdigest() == files["output/model.json"]
    model = json.loads(model_body)
    assert model["host"] == train["hostname"], (model, train)  # the retry's end state, not the killed try's
    check = _ti(stack, KILL, run_id, "check.run")
    assert check["state"] == "success", check
    print(f"\n[compose] killed {killed} during Train's first try; the retry ran on {train['hostname']}; "
          f"objects of Train: {train_keys}")
