"""A real ``airflow standalone`` for the run and scale benchmarks: the e2e harness of the tests.

``tests/e2e/server.py`` holds :class:`AirflowServer` (free ports, temp ``AIRFLOW_HOME``,
LocalExecutor on SQLite) and ``tests/e2e/client.py`` its REST helpers. They are imported from the
repository (put on ``sys.path``), so that the benchmarks use the very launcher the end-to-end tests use.
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from flow_airflow.cli import LOADER  # noqa: E402, F401 -- one loader with every flow, for run.py and scale.py
from tests.e2e.client import _parse_ts  # noqa: E402 -- needs REPO on sys.path
from tests.e2e.server import AirflowServer, ServerOptions  # noqa: E402, F401 -- for run.py and scale.py


def parse_ts(value: str | None) -> datetime | None:
    return _parse_ts(value) if value else None


def run_seconds(run: dict[str, Any]) -> float:
    """Wall time of a finished DAG run: from being queued (triggered) to its end, server clock."""
    start = parse_ts(run.get("queued_at")) or parse_ts(run["start_date"])
    end = parse_ts(run["end_date"])
    assert start and end, run
    return (end - start).total_seconds()


def wait_for_run(server: Any, dag_id: str, run_id: str, timeout: float, poll: float = 0.5) -> dict[str, Any]:
    """Poll until the run has finished; return the run (``state``, ``queued_at``, ``end_date``...)."""
    deadline = time.monotonic() + timeout
    while True:
        run = server.dag_run(dag_id, run_id)
        if run["state"] in ("success", "failed"):
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"{dag_id}/{run_id} still {run['state']} after {timeout}s\n{server.log_tail(40)}")
        time.sleep(poll)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
