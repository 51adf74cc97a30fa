"""A real ``airflow standalone`` for the run and scale benchmarks: the e2e harness of the tests.

``tests/e2e/conftest.py`` holds :class:`AirflowServer` (free ports, temp ``AIRFLOW_HOME``,
LocalExecutor on SQLite, REST helpers). It is loaded here by path, under a name of its own,
so that the benchmarks use the very launcher the end-to-end tests use.
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
_HARNESS = REPO / "tests" / "e2e" / "conftest.py"


def _harness() -> Any:
    name = "flow_airflow_e2e_harness"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _HARNESS)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


harness = _harness()
AirflowServer = harness.AirflowServer
ServerOptions = harness.ServerOptions
LOADER = (REPO / "dags" / "flows.py").read_text()


def parse_ts(value: str | None) -> datetime | None:
    return harness._parse_ts(value) if value else None


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
