"""Flows exported from cnvrg's flow page run through real Airflow (``dag.test()``, issue 26): tests/flows/exports.

``parallel_jobs`` measured with Airflow's scheduler: tests/e2e/test_exports_e2e.py (``dag.test()`` runs one task
instance at a time); an update of an endpoint: tests/endpoints/test_export_update.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from flow_airflow.local_run import RunResult, run_flow

pytestmark = pytest.mark.airflow


def test_an_exported_grid_runs_with_the_pages_meaning(run: Callable[..., RunResult]) -> None:
    result = run("exports/experiments")  # the scripts assert the argv and inputs they get
    assert result.state == "success"
    assert len(result.of("Prepare")) == 1
    assert sorted((e.params["epochs"], e.params["lr"]) for e in result.of("Train")) == sorted(
        (epochs, lr) for epochs in ("5", "8", "12", "16") for lr in ("0.1", "0.01"))
    assert {e.tags["accuracy"] for e in result.of("Train") if e.params == {"epochs": "16", "lr": "0.1"}} == {"1.6"}
    [report] = result.of("Report")  # standalone_mode: once, no input/ (report.py asserts it)
    assert report.tags["standalone"] == "yes"


def test_a_run_whose_grid_passes_max_jobs_fails_saying_so(airflow_home: Path, project: Callable[..., Path],
                                                         capfd: pytest.CaptureFixture[str]) -> None:
    result = run_flow(project("exports/experiments"), conf={"Train": {"lr": ["0.1", "0.01", "0.001"]}})
    text = "".join(capfd.readouterr())
    assert result.state == "failed"
    assert result.of("Train") == [] and len(result.of("Train", "failed")) == 8  # none ran: the grid is never cut
    assert ("'Train' does not run: its grid has 12 experiments, more than its max_jobs (8): flow-airflow runs every "
            "route of a grid, never a part of it") in text


def test_a_grid_made_at_run_time_past_max_jobs_fails_saying_so(airflow_home: Path, tmp_path: Path,
                                                              capfd: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "flow.yaml"
    file.write_text("""\
flow: Hyper Past Max Jobs
tasks:
  - title: Params
    type: exec
    input: python3 -c "print('cnvrg_tag_route: 1,2,3')"
    computes: [local]
  - title: Dynamic
    type: exec
    input: "true"
    computes: [local]
    max_jobs: 2
    params:
      - key: route
        value: "{{ Params.route | hyper }}"
relations:
  - from: Params
    to: Dynamic
""")
    result = run_flow(file)
    text = "".join(capfd.readouterr())
    assert result.state == "failed" and result.of("Dynamic") == []
    assert "'Dynamic' does not run: its grid has 3 experiments, more than its max_jobs (2)" in text
