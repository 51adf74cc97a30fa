"""Self-test of the e2e harness: a hand-written DAG run by a real ``airflow standalone``."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

pytestmark = pytest.mark.e2e

GOOD_DAG = """
from airflow.sdk import DAG, task, get_current_context

with DAG(dag_id="harness_selftest", schedule=None, catchup=False, tags=["e2e"]):

    @task(map_index_template="{{ item_label }}")
    def square(x: int) -> int:
        get_current_context()["item_label"] = f"item-{x}"
        print(f"squaring {x}")
        return x * x

    @task
    def total(values) -> int:
        return sum(values)

    total(square.expand(x=[1, 2, 3]))
"""

# Mentions "airflow" and "dag" so DAG discovery safe mode still parses it.
BROKEN_DAG = """
from airflow.sdk import DAG

with DAG(dag_id="harness_broken", schedule=None:
    pass
"""


def test_mapped_dag_runs_and_broken_file_reports(airflow_server, capsys):
    server = airflow_server
    t_copy = time.monotonic()
    server.add_file("harness_broken.py", BROKEN_DAG)
    server.add_file("harness_selftest.py", GOOD_DAG)

    dag = server.wait_for_dag("harness_selftest", timeout=90)
    t_visible = time.monotonic() - t_copy
    assert dag["is_paused"] is False
    assert dag["has_import_errors"] is False

    err = server.wait_for_import_error("harness_broken.py", timeout=60)
    assert "SyntaxError" in err["stack_trace"]
    assert err["bundle_name"] == "dags-folder"

    t_run = time.monotonic()
    run_id = server.trigger("harness_selftest", conf={"note": "selftest"})
    state = server.wait_for_run("harness_selftest", run_id, timeout=180)
    t_run = time.monotonic() - t_run
    assert state == "success", server.ti_states("harness_selftest", run_id)

    tis = server.task_instances("harness_selftest", run_id)
    mapped = [t for t in tis if t["task_id"] == "square"]
    assert [t["map_index"] for t in mapped] == [0, 1, 2]
    assert [t["rendered_map_index"] for t in mapped] == ["item-1", "item-2", "item-3"]
    assert {t["state"] for t in tis} == {"success"}
    [total] = [t for t in tis if t["task_id"] == "total"]
    assert total["map_index"] == -1

    assert server.xcom("harness_selftest", run_id, "square", map_index=2) == 9
    assert server.xcom("harness_selftest", run_id, "total") == 14

    log = server.task_log("harness_selftest", run_id, "square", map_index=1)
    assert "squaring 2" in log

    assert server.dag_run("harness_selftest", run_id)["conf"] == {"note": "selftest"}

    with capsys.disabled():
        print(
            f"\n[e2e timings] standalone startup {server.startup_seconds:.1f}s, "
            f"dag visible {t_visible:.1f}s after copy, run {t_run:.1f}s"
        )


def test_users_and_roles(airflow_server):
    server = airflow_server
    assert server.token_for("admin").count(".") == 2  # a JWT
    with pytest.raises(AssertionError, match="401"):
        server.token_for("admin", "wrong-password")

    server.add_file("harness_roles.py", GOOD_DAG.replace("harness_selftest", "harness_roles"))
    server.wait_for_dag("harness_roles")
    body = {"logical_date": None}
    alice = server.session_for("alice").post("/dags/harness_roles/dagRuns", json=body)
    assert alice.status_code == 200, alice.text
    assert alice.json()["triggering_user_name"] == "alice"

    carol = server.session_for("carol")  # viewer: may read, may not trigger
    assert carol.get("/dags/harness_roles").status_code == 200
    assert carol.post("/dags/harness_roles/dagRuns", json=body).status_code == 403

    # Airflow 3.3 requires the logical_date key (null is fine).
    assert server.session.post("/dags/harness_roles/dagRuns", json={}).status_code == 422


def test_changed_and_removed_dag_file(airflow_server):
    server = airflow_server
    server.add_file("harness_change.py", GOOD_DAG.replace("harness_selftest", "harness_change"))
    server.wait_for_dag("harness_change")

    before = datetime.now(UTC)
    changed = (GOOD_DAG.replace("harness_selftest", "harness_change").replace("[1, 2, 3]", "[1, 2, 3, 4]")
               .replace('tags=["e2e"]', 'tags=["e2e", "changed"]'))
    server.add_file("harness_change.py", changed)
    server.wait_for_dag("harness_change", parsed_after=before, timeout=180)
    # A parse that began before the write can end after it: wait for the changed DAG itself.
    deadline = time.monotonic() + 180
    while "changed" not in {t["name"] for t in server.get_dag("harness_change")["tags"]}:
        assert time.monotonic() < deadline, "the changed DAG file was never parsed"
        time.sleep(0.5)
    run_id, state = server.run_dag("harness_change")
    assert state == "success"
    assert len(server.task_instances("harness_change", run_id, task_id="square")) == 4

    (server.dags_folder / "harness_change.py").unlink()
    deadline = time.monotonic() + 180
    while not server.get_dag("harness_change")["is_stale"]:
        assert time.monotonic() < deadline, "removed DAG never went stale"
        time.sleep(0.5)
    assert server.session.post("/dags/harness_change/dagRuns", json={"logical_date": None}).status_code == 404
