"""``parallel_jobs`` of a flow exported from cnvrg's flow page, measured on a real ``airflow standalone`` (issue 26):
Train's 8 experiments (1.5 s each; parallelism 8) never run more than 2 at once, and do run 2 at once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flow_airflow.cli import LOADER

FLOWS = Path(__file__).parent.parent / "flows"
pytestmark = pytest.mark.e2e
DAG = "exported_experiments"


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of the spans ``(start, end)`` that overlap at one moment."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])  # an end before a start
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def test_parallel_jobs_bounds_the_experiments_running_at_once(airflow_server) -> None:
    server = airflow_server
    server.add_file("flows.py", LOADER)
    server.copy_tree(FLOWS / "exports" / "experiments", "exports_experiments")
    server.touch("flows.py")
    server.wait_for_dag(DAG, timeout=120)
    run_id, state = server.run_dag(DAG, timeout=300)
    assert state == "success"
    spans = []
    for ti in server.task_instances(DAG, run_id, "train.run"):
        log = server.task_log(DAG, run_id, "train.run", map_index=ti["map_index"])
        [start] = re.findall(r"START ([\d.]+)", log)
        [end] = re.findall(r"END ([\d.]+)", log)
        spans.append((float(start), float(end)))
    assert len(spans) == 8
    assert most_at_once(spans) == 2, spans  # parallel_jobs: 2
