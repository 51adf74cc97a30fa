"""``flow-airflow run`` as a user runs it (a real subprocess): a line per experiment, then a summary."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

FLOWS = Path(__file__).parent.parent / "flows"
pytestmark = pytest.mark.airflow  # `flow-airflow run` runs Airflow (dag.test on its own metadata DB)


def cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AIRFLOW_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "flow_airflow.cli", *args], capture_output=True, text=True,
                          env=env, timeout=600)


def test_run_prints_a_line_per_experiment_then_a_summary(tmp_path: Path) -> None:
    done = cli("run", str(FLOWS / "dynamic_routes" / "flow.yaml"), home=tmp_path / "home")
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    log_file = Path(re.search(r"Airflow's log: (\S+)", lines[0])[1])
    assert lines[0].startswith("Running 'Dynamic Routes' (DAG dynamic_routes)")
    # Params' count is known before the run; Dynamic's only once Params logged its route tag
    assert re.fullmatch(r"\[1/1\+\] Params +no params  success  \d+\.\ds  route=1,2,3", lines[1])
    progress = sorted(lines[2:5], key=lambda line: line.split("route=")[1])
    for n, line in enumerate(progress, start=1):
        assert re.fullmatch(rf"\[[234]/4\] Dynamic +route={n}  success  \d+\.\ds  args=--route {n}", line), line
    assert re.fullmatch(r"DAG 'dynamic_routes', run manual__\S+: success \(4 experiments: 4 success\) in \d+\.\ds",
                        lines[5])
    assert lines[6:] == [
        "  Params #0 [no params] success  tags: route=1,2,3",
        "  Dynamic #0 [route=1] success  tags: args=--route 1",
        "  Dynamic #1 [route=2] success  tags: args=--route 2",
        "  Dynamic #2 [route=3] success  tags: args=--route 3",
        f"Airflow's log of this run: {log_file}",
    ]
    assert "[DAG TEST]" not in done.stdout + done.stderr  # Airflow's own lines are in the log file
    assert "[DAG TEST]" in log_file.read_text()
    assert (tmp_path / "home" / "airflow.db").exists()  # the metadata DB was created on the way


def test_a_failed_experiment_is_said_on_stderr_and_fails_the_command(tmp_path: Path) -> None:
    done = cli("run", str(FLOWS / "run_failure" / "flow.yaml"), home=tmp_path / "home")
    assert done.returncode == 1
    train = sorted((line for line in done.stdout.splitlines() if line.startswith("[") and "Train" in line),
                   key=lambda line: line.split("lr=")[1])
    assert [re.sub(r"\[\d/3\] Train  (lr=0\.\d)  (\w+)  .*", r"\1 \2", line) for line in train] == [
        "lr=0.1 success", "lr=0.2 failed", "lr=0.3 success"]
    assert "3 experiments: 1 failed, 2 success" in done.stdout
    assert "Train [lr=0.2]:" in done.stderr and "exited with code 3" in done.stderr
    assert "Traceback" not in done.stderr


def test_verbose_shows_airflow_output(tmp_path: Path) -> None:
    done = cli("run", "--verbose", str(FLOWS / "single_mode" / "flow.yaml"), home=tmp_path / "home")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[DAG TEST]" in done.stdout + done.stderr
    assert "Airflow's log" not in done.stdout


def test_conf_that_is_not_json_is_refused(tmp_path: Path) -> None:
    done = cli("run", "--conf", "{oops", str(FLOWS / "single_mode" / "flow.yaml"), home=tmp_path / "home")
    assert done.returncode == 2 and done.stderr.startswith("--conf is not valid JSON")
