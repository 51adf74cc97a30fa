"""``flow-airflow run`` on the Airflow home a scheduler serves (``./dev up`` beside): the run is the command's own.

Each experiment appends its route and process to a ledger: a route the scheduler's workers ran too
shows twice (issue 27, item 2: the two deleted each other's working directory).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flow_airflow.cli import LOADER

pytestmark = pytest.mark.e2e

FLOW = """\
flow: Beside Scheduler
tasks:
  - title: Train
    type: exec
    input: python3 train.py
    computes: [local]
    params:
      - key: seed
        value: [1, 2, 3, 4]
relations: []
"""


def test_run_beside_a_scheduler_runs_each_experiment_once_in_its_own_process(airflow_server, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    airflow_server.add_file("flows.py", LOADER)
    airflow_server.add_file("beside_scheduler/flow.yaml", FLOW)
    airflow_server.add_file("beside_scheduler/train.py", textwrap.dedent(f"""\
        import os, sys, time
        with open({str(ledger)!r}, "a") as ledger:
            ledger.write(f"{{sys.argv[1:]}} {{os.getppid()}}\\n")
        time.sleep(3)  # long enough for a scheduler to queue the routes still waiting
        """))
    airflow_server.touch("flows.py")
    # the scheduler serves this DAG, unpaused, as ./dev up serves dags/examples
    assert airflow_server.wait_for_dag("beside_scheduler", timeout=120)["is_paused"] is False
    done = subprocess.run(
        [sys.executable, "-m", "flow_airflow.cli", "run",
         str(airflow_server.dags_folder / "beside_scheduler/flow.yaml")],
        env=airflow_server.env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = ledger.read_text().splitlines()
    assert sorted(line.rsplit(" ", 1)[0] for line in runs) == [f"['--seed', '{n}']" for n in (1, 2, 3, 4)], runs
    assert "(4 experiments: 4 success)" in done.stdout
    assert "a scheduler serves this metadata DB: DAG 'beside_scheduler' is paused while this run runs" in done.stdout
    assert airflow_server.get_dag("beside_scheduler")["is_paused"] is False  # as it was before the run
