"""A try's end state is its own, and ids never lead a path out of its folder: flows through real Airflow."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flow_airflow import settings
from flow_airflow.local_run import run_flow
from flow_airflow.runtime.artifacts import ArtifactStore
from flow_airflow.runtime.prepare import safe

pytestmark = pytest.mark.airflow

RETRIED = """\
flow: Retried Orphan
tasks:
  - {title: Train, type: exec, input: python3 train.py, computes: [local], restart_if_stuck: true}
relations: []
"""
# try 1 leaves a process of its own session behind (as a killed task's command did) and fails; the
# process writes into try 1's working directory while try 2 runs
TRAIN = """\
import os, pathlib, subprocess, sys, time
tries = pathlib.Path({tries!r})
tries.write_text(tries.read_text() + "x" if tries.exists() else "x")
if len(tries.read_text()) == 1:
    late = os.path.join(os.getcwd(), "output", "orphan.txt")
    subprocess.Popen(["setsid", "sh", "-c", f"sleep 3; echo orphan > {{late}}"])
    sys.exit(1)
time.sleep(6)
pathlib.Path("output/model.txt").write_text("try 2")
"""


def test_a_retry_stores_nothing_an_earlier_try_left_running(airflow_home: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__RESTART_IF_STUCK_RETRY_DELAY", "0")
    settings.reset()
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "train.py").write_text(TRAIN.format(tries=str(tmp_path / "tries")))
    (tmp_path / "p" / "flow.yaml").write_text(RETRIED)
    result = run_flow(tmp_path / "p" / "flow.yaml")
    assert (tmp_path / "tries").read_text() == "xx"
    assert result.state == "success"
    [train] = result.of("Train")
    kept = ArtifactStore(settings.artifacts_root()).files(train.record["output"])
    assert "output/model.txt" in kept and "output/orphan.txt" not in kept, kept


def test_a_run_id_that_would_leave_its_folder_is_refused(airflow_home: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capfd: pytest.CaptureFixture[str]) -> None:
    from airflow.models.dagrun import DagRun

    monkeypatch.setattr(DagRun, "generate_run_id", staticmethod(lambda **_: "."))  # a run id given through the API
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "flow.yaml").write_text(
        "flow: Dot Run\ntasks:\n  - {title: Train, type: exec, input: mkdir -p output && touch output/m, "
        "computes: [local]}\nrelations: []\n")
    result = run_flow(tmp_path / "p" / "flow.yaml")
    assert result.state == "failed"
    out, err = capfd.readouterr()
    assert "'Train' cannot start: the run id '.' cannot name a folder" in out + err
    store = Path(settings.artifacts_root()) / result.dag_id
    assert not (store / "train").exists() and not list(store.glob("*/0*"))
    assert not (settings.workspaces_root() / result.dag_id / "train").exists()


@pytest.mark.parametrize("run_id", [".", "..", "", "a/../..", "../x"])
def test_every_path_made_of_ids_stays_in_its_folder(tmp_path: Path, run_id: str) -> None:
    store = ArtifactStore(tmp_path / "store")
    try:
        where = Path(store.location("dag", run_id, "train", 0))
    except ValueError as e:
        assert "cannot name a folder" in str(e)
        return
    assert where.parent.parent.parent == tmp_path / "store" / "dag" and where.name == "0"
    assert "/" not in safe(run_id) and safe(run_id) not in (".", "..")
    for dag_id in (".", ".."):
        with pytest.raises(ValueError, match="DAG id"):
            store.location(dag_id, "run", "train", 0)
    with pytest.raises(ValueError, match="task id"):
        store.location("dag", "run", "..", 0)


SLOW = ("flow: Killed Run\ntasks:\n  - {title: Train, type: exec, input: 'echo $$ > %s; sleep 60', computes: [local]}\n"
        "relations: []\n")


def test_flow_airflow_run_killed_takes_its_command_and_its_workspace_along(airflow_home: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    (tmp_path / "flow.yaml").write_text(SLOW % pid_file)
    cli = subprocess.Popen([sys.executable, "-m", "flow_airflow.cli", "run", str(tmp_path / "flow.yaml")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    end = time.monotonic() + 120
    while not (pid_file.exists() and pid_file.read_text().strip()) and time.monotonic() < end:
        assert cli.poll() is None, "flow-airflow run ended before its command started"
        time.sleep(0.1)
    shell = int(pid_file.read_text())
    workdir = Path(os.readlink(f"/proc/{shell}/cwd"))  # the try's working directory
    assert workdir.name == "0.try1" and settings.workspaces_root() in workdir.parents
    cli.send_signal(signal.SIGKILL)
    cli.wait()
    end = time.monotonic() + 2
    while Path(f"/proc/{shell}").exists() and time.monotonic() < end:
        time.sleep(0.05)
    assert not Path(f"/proc/{shell}").exists(), "the command outlived flow-airflow run"
    while workdir.exists() and time.monotonic() < end + 2:
        time.sleep(0.05)
    assert not workdir.exists(), "the killed run's working directory was left behind"
