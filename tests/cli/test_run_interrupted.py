"""`flow-airflow run` interrupted (Ctrl-C, SIGTERM, a closed terminal) aborts its run as the page's Stop does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flow_airflow import settings

pytestmark = pytest.mark.airflow

# First ends at once; Second runs when the signal comes; Third would start after it
FLOW = """\
flow: Interrupted Run
tasks:
  - {title: First, type: exec, input: 'echo cnvrg_tag_acc: 0.9', computes: [local]}
  - {title: Second, type: exec, input: 'echo $$ > %s; sleep 60', computes: [local]}
  - {title: Third, type: exec, input: 'echo never', computes: [local]}
relations:
  - {from: First, to: Second}
  - {from: Second, to: Third}
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_run_is_aborted_keeping_what_ended(airflow_home: Path, tmp_path: Path,
                                                          sig: signal.Signals) -> None:
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.session import create_session
    from sqlalchemy import select

    pid_file = tmp_path / "pid"
    (tmp_path / "flow.yaml").write_text(FLOW % pid_file)
    cli = subprocess.Popen([sys.executable, "-m", "flow_airflow.cli", "run", str(tmp_path / "flow.yaml")],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                           env={**os.environ, "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False"})
    end = time.monotonic() + 120
    while not (pid_file.exists() and pid_file.read_text().strip()) and time.monotonic() < end:
        assert cli.poll() is None, "flow-airflow run ended before Second's command started"
        time.sleep(0.1)
    shell = int(pid_file.read_text())
    workdir = Path(os.readlink(f"/proc/{shell}/cwd"))
    cli.send_signal(sig)
    out, _ = cli.communicate(timeout=30)
    assert cli.returncode == 128 + sig, out
    assert f"{sig.name}: run manual__" in out and "of interrupted_run aborted" in out, out
    end = time.monotonic() + 3
    while (Path(f"/proc/{shell}").exists() or workdir.exists()) and time.monotonic() < end:
        time.sleep(0.05)
    assert not Path(f"/proc/{shell}").exists(), "Second's command outlived the interrupted run"
    assert not workdir.exists(), "the interrupted try's working directory was left behind"
    with create_session() as session:
        run = session.scalars(select(DagRun).where(DagRun.dag_id == "interrupted_run")
                              .order_by(DagRun.run_after.desc())).first()
        states = {ti.task_id: ti.state for ti in session.scalars(
            select(TI).where(TI.dag_id == "interrupted_run", TI.run_id == run.run_id))}
        assert run.state == "failed" and run.end_date is not None
        assert run.note.startswith(f"Interrupted: flow-airflow run got {sig.name} at ") and run.note.endswith(" UTC")
        assert states["first.run"] == "success"  # what ended stays as it ended
        assert states["second.run"] == "failed"
        assert states["third.run"] == "skipped"  # never started
        assert session.get(DagModel, "interrupted_run").is_paused is False  # as it was (paused while it ran)
    settings.reset()
