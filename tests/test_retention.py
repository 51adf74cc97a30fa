"""flow-airflow gc: real runs through Airflow fill real folders; gc lists them with sizes, then frees the bytes
past the retention settings, keeping running runs, endpoints' sources and the dataset store."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flow_airflow import retention, settings
from flow_airflow.cli import main
from flow_airflow.local_run import run_flow
from flow_airflow.retention import size
from flow_airflow.runtime.workspace import folder_name

pytestmark = pytest.mark.airflow

FLOW = """\
flow: Kept Runs
tasks:
  - title: Train
    type: exec
    input: python3 train.py
    computes: [local]
    params:
      - {key: lr, value: [0.1, 0.2]}
relations: []
"""
# each experiment keeps 300 kB; lr 0.2 fails (its end state is kept apart, as <index>.failed)
TRAIN = """\
import os, sys
os.makedirs("output", exist_ok=True)
open("output/model.bin", "wb").write(os.urandom(300_000))
sys.exit(1 if "0.2" in " ".join(sys.argv) else 0)
"""


@pytest.fixture
def stores(airflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Artifacts, workspaces, endpoints and datasets folders of this test alone (datasets inside artifacts)."""
    places = {"artifacts": tmp_path / "art", "workspaces": tmp_path / "ws", "endpoints": tmp_path / "ep",
              "datasets": tmp_path / "art" / "flow_datasets"}
    for key, path in places.items():
        monkeypatch.setenv(f"AIRFLOW__FLOW_AIRFLOW__{key.upper()}_FOLDER", str(path))
    settings.reset()
    yield places
    settings.reset()


def _project(tmp_path: Path, flow: str, files: dict[str, str]) -> Path:
    (tmp_path / "p").mkdir(exist_ok=True)
    for name, text in files.items():
        (tmp_path / "p" / name).write_text(text)
    (tmp_path / "p" / "flow.yaml").write_text(flow)
    return tmp_path / "p" / "flow.yaml"


def test_gc_lists_then_frees_runs_past_retention_keeping_served_and_datasets(
        stores: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from flow_airflow.endpoints.store import Endpoint, EndpointStore, Version

    flow = _project(tmp_path, FLOW, {"train.py": TRAIN})
    runs = [run_flow(flow) for _ in range(3)]
    dag = runs[0].dag_id
    art, ws = stores["artifacts"] / dag, stores["workspaces"]
    for result in runs:
        assert result.state == "failed"
        kept = sorted(p.name for p in (art / folder_name(result.run_id, "run id") / "train").iterdir())
        assert kept == ["0", "1.failed"], kept
    # one copy of a failed experiment: its end state is stored, its working directory gone (and the run's
    # folder of working directories, left empty)
    assert not ws.exists() or list(ws.iterdir()) == []
    first, second, third = (art / folder_name(r.run_id, "run id") for r in runs)
    assert 600_000 <= size(first) < 700_000

    # a working directory kept from a run that has ended (its files could not be stored), a dataset commit,
    # an endpoint whose version was made from the first run
    leftover = ws / dag / first.name / "train" / "1.try1"
    leftover.mkdir(parents=True)
    (leftover / "big.bin").write_bytes(os.urandom(200_000))
    commit = stores["datasets"] / "iris" / "commits" / "abc"
    commit.mkdir(parents=True)
    (commit / "data.csv").write_bytes(os.urandom(50_000))
    version = stores["endpoints"] / "model" / "versions" / "1"
    version.mkdir(parents=True)
    EndpointStore(stores["endpoints"]).save(Endpoint(name="model", host="127.0.0.1", port=1, current=1, versions=[
        Version(version=1, dag_id=dag, run_id=runs[0].run_id, task="Train", folder=str(version))]))

    before = size(stores["artifacts"]) + size(ws)
    capsys.readouterr()
    assert main(["gc", "--keep", "1"]) == 0
    listing = capsys.readouterr().out
    assert size(stores["artifacts"]) + size(ws) == before  # a dry run removes nothing
    lines = [line for line in listing.splitlines() if "(run " in line]
    assert len(lines) == 2, listing  # the second run's end states, and the first's leftover working directory
    [stored] = [line for line in lines if "artifacts" in line]
    assert str(second) in stored and "not among the newest 1 runs" in stored and "600.0 kB" in stored, listing
    assert any(str(ws / dag / first.name) in line and "workspace" in line and "200.0 kB" in line
               for line in lines), listing
    assert "2 folder(s), 800.0 kB: would be removed" in listing
    expected = size(second) + size(ws)

    assert main(["gc", "--keep", "1", "--delete"]) == 0
    assert "removed 2 folder(s), 800.0 kB freed" in capsys.readouterr().out
    after = size(stores["artifacts"]) + size(ws)
    assert before - after == expected == 800_000
    assert not second.exists() and not (ws / dag).exists()
    assert first.exists() and third.exists() and (commit / "data.csv").is_file()  # served, newest, a dataset
    # the reuse index beside the artifacts (the experiments that succeeded) is no run: gc leaves it
    assert any((stores["artifacts"] / ".reuse").rglob("*.json"))

    # the settings, as gc reads them: one day of retention keeps these runs of a moment ago
    os.environ["AIRFLOW__FLOW_AIRFLOW__RETENTION_DAYS"] = "1"
    try:
        settings.reset()
        assert retention.removals() == []
        assert [r.path for r in retention.removals(now=time.time() + 2 * 86400)] == [third]  # first is served
    finally:
        del os.environ["AIRFLOW__FLOW_AIRFLOW__RETENTION_DAYS"]
        settings.reset()


SLOW = """\
flow: Still Running
tasks:
  - {title: Prep, type: exec, input: 'mkdir -p output && head -c 100000 /dev/urandom > output/data', computes: [local]}
  - {title: Wait, type: exec, input: 'echo started > %s; sleep 6', computes: [local]}
relations:
  - {from: Prep, to: Wait}
"""


def test_gc_never_removes_a_run_still_running(stores: dict[str, Path], tmp_path: Path) -> None:
    started = tmp_path / "started"
    flow = _project(tmp_path, SLOW % started, {})
    cli = subprocess.Popen([sys.executable, "-m", "flow_airflow.cli", "run", str(flow)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    try:
        end = time.monotonic() + 120
        while not started.exists() and time.monotonic() < end:
            assert cli.poll() is None, "flow-airflow run ended before Wait started"
            time.sleep(0.1)
        [run] = [p for p in (stores["artifacts"] / "still_running").iterdir()]
        [workdir] = (stores["workspaces"] / "still_running").glob("*/wait/0.try1")
        assert size(run) >= 100_000
        assert retention.removals(days=1e-9, runs=1, now=time.time() + 86400) == []  # queued or running: kept
        assert retention.gc(1e-9, None, delete=True) == 0
        assert run.exists() and workdir.exists()
    finally:
        assert cli.wait(timeout=120) == 0
    # once it has ended: its end states (its working directories are gone)
    assert [r.path for r in retention.removals(days=1e-9)] == [run]
    assert not workdir.parents[1].exists()
