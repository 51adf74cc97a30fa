"""Issue 28, part 1: a run that asks for reuse takes the experiments whose key an earlier one that succeeded
has, and runs only what changed; real runs through Airflow (``dag.test()``), the index on disk."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from flow_airflow.local_run import RunResult, run_flow
from flow_airflow.runtime.reuse import Reused, ReuseIndex

pytestmark = pytest.mark.airflow

FLOWS = Path(__file__).parents[1] / "flows"
REUSE = {"flow_airflow": {"reuse": True}}


@pytest.fixture(autouse=True)
def _own_artifacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test its own artifact store, and so its own reuse index: no key of another test's runs."""
    from flow_airflow import settings

    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__ARTIFACTS_FOLDER", str(tmp_path / "artifacts"))
    settings.reset()


def _project(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(FLOWS / name, target)
    return target / "flow.yaml"


def _reused(result: RunResult, title: str) -> list[bool]:
    return [e.reused is not None for e in result.of(title)]


def test_a_changed_value_reruns_only_its_routes(airflow_home: Path, tmp_path: Path) -> None:
    """grid_three again with one value of Grid Search C changed: A, B and C's unchanged routes are reused,
    the 6 routes of the new value run; the records and inputs are right."""
    file = _project(tmp_path, "grid_three")
    first = run_flow(file)
    assert first.state == "success"
    assert all(e.record and len(e.record["key"]) == 64 for e in first.experiments)

    conf = {"Grid Search C": {"c": ["10", "20", "30", "40", "55"]}, **REUSE}
    second = run_flow(file, conf)
    assert second.state == "success"
    assert _reused(second, "Grid Search A") == [True, True]
    assert _reused(second, "Grid Search B") == [True, True, True]
    c = second.of("Grid Search C")
    assert len(c) == 30
    ran = [e for e in c if e.reused is None]
    assert sorted(e.params["c"] for e in ran) == ["55"] * 6
    assert all(e.reused["run_id"] == first.run_id for e in c if e.reused is not None)
    earlier = {(e.params["c"], e.label): e.tags for e in first.of("Grid Search C")}
    for e in c:  # a reused experiment's record is the earlier one's; a new one got its own argument
        if e.reused is not None:
            assert e.tags == earlier[(e.params["c"], e.label)]
        else:
            assert e.tags["args"] == "--c 55 --fixed same-for-all"
    # the reused experiment's end state is stored for this run, as if it had run
    a0 = second.of("Grid Search A")[0].record
    from flow_airflow.runtime.workspace import folder_name

    assert a0 is not None and folder_name(second.run_id, "run id") in str(a0["output"])
    assert (Path(a0["output"]) / "output").is_dir() or Path(a0["output"]).is_dir()


def test_reuse_is_asked_for_never_assumed(airflow_home: Path, tmp_path: Path) -> None:
    file = _project(tmp_path, "grid_two")
    assert run_flow(file).state == "success"
    again = run_flow(file)
    assert not any(e.reused for e in again.experiments)
    assert run_flow(file, {"flow_airflow": {"reuse": False}}).experiments[0].reused is None


def test_a_changed_file_or_image_reruns_what_starts_from_it(airflow_home: Path, tmp_path: Path) -> None:
    """Every experiment starts from the whole project folder (cnvrg copies it into each), so a changed
    project file reruns them all; a changed param reruns its task and what follows, not the task before it."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "a.py").write_text("print('cnvrg_tag_v: 1')\n")
    (project / "c.py").write_text("print('cnvrg_tag_v: c')\n")
    file = project / "flow.yaml"
    file.write_text("""\
flow: Reuse Files
tasks:
  - {title: A, type: exec, input: python3 a.py, computes: [local]}
  - title: B
    type: exec
    input: python3 c.py
    computes: [local]
    params: [{key: n, value: 1}]
  - {title: C, type: exec, input: python3 c.py, computes: [local]}
relations:
  - {from: A, to: B}
  - {from: B, to: C}
""")
    assert run_flow(file).state == "success"
    (project / "a.py").write_text("print('cnvrg_tag_v: 2')\n")
    second = run_flow(file, REUSE)
    assert [e.reused is None for e in second.experiments] == [True, True, True]
    assert second.of("A")[0].tags == {"v": "2"}
    third = run_flow(file, {"B": {"n": ["2"]}, **REUSE})  # B's param: B and C run, A is reused
    assert [(e.task, e.reused is not None) for e in third.experiments] == [("A", True), ("B", False), ("C", False)]
    fourth = run_flow(file, {"B": {"n": ["2"]}, **REUSE})  # nothing changed since: everything reused
    assert all(e.reused is not None for e in fourth.experiments)


def test_a_failed_experiment_is_never_reused(airflow_home: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "flaky.py").write_text("import os, sys\nsys.exit(0 if os.path.exists('ok') else 3)\n")
    file = project / "flow.yaml"
    file.write_text("flow: Reuse Failed\ntasks:\n"
                    "  - {title: F, type: exec, input: python3 flaky.py, computes: [local]}\nrelations: []\n")
    first = run_flow(file)
    assert first.state == "failed"
    second = run_flow(file, REUSE)
    assert second.state == "failed" and second.experiments[0].reused is None


def test_a_deleted_end_state_reruns_the_experiment(airflow_home: Path, tmp_path: Path) -> None:
    file = _project(tmp_path, "grid_two")
    first = run_flow(file)
    stored = first.of("Grid Search A")[0].record
    assert stored is not None
    shutil.rmtree(stored["output"])
    second = run_flow(file, REUSE)
    assert second.state == "success"
    assert _reused(second, "Grid Search A") == [False, True, True]
    # the routes after the rerun experiment have a parent of the same key: reused too
    assert all(_reused(second, "Grid Search B"))


def test_a_run_can_reuse_from_the_command_line(airflow_home: Path, tmp_path: Path) -> None:
    file = _project(tmp_path, "grid_two")
    cli = [sys.executable, "-m", "flow_airflow.cli", "run", str(file)]
    first = subprocess.run(cli, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    second = subprocess.run([*cli, "--reuse"], capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    assert "(12 experiments: 12 success, 12 of them reused)" in second.stdout
    assert "success (reused: " in second.stdout


def _entry(key: str, n: int) -> Reused:
    record: Any = {"task": "T", "index": n, "params": {}, "tags": {"n": str(n)}, "output": None}
    return Reused(key=key, dag_id="d", run_id=f"r{n}", task="T", index=n, when="2026-12-07T00:00:00+00:00",
                  record=record)


def test_two_writers_of_one_key_keep_one_entry(tmp_path: Path) -> None:
    index = ReuseIndex(tmp_path, logging.getLogger("test"))
    key = "ab" * 32
    written: list[bool] = []
    threads = [threading.Thread(target=lambda n=n: written.append(index.put(_entry(key, n)))) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(written) == [False] * 7 + [True]
    files = list((tmp_path / ".reuse").rglob("*"))
    assert [f.name for f in files if f.is_file()] == [f"{key}.json"]
    got = index.get(key)
    assert got is not None and got.record["tags"]["n"] == str(got.index)


def test_a_damaged_entry_means_run_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    index = ReuseIndex(tmp_path, logging.getLogger("test"))
    key = "cd" * 32
    index.put(_entry(key, 1))
    path = tmp_path / ".reuse" / key[:2] / f"{key}.json"
    path.write_text(json.dumps({"key": key})[:-3])
    assert index.get(key) is None
    assert "damaged" in caplog.text
    with pytest.raises(ValueError, match="only an experiment that succeeded"):
        index.put(Reused(key=key, dag_id="d", run_id="r", task="T", index=0, when="now",
                         record={"task": "T", "failed": "failed: exit 1"}))


def test_reuse_on_object_storage(airflow_home: Path, tmp_path: Path, s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The index beside artifacts on object storage (moto's S3 server): written once, read back by the
    next run, which reuses."""
    from flow_airflow import settings

    bucket = s3.bucket("reuse")
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__ARTIFACTS_FOLDER", f"s3://{s3.conn_id}@{bucket}/flows")
    settings.reset()
    file = _project(tmp_path, "grid_two")
    assert run_flow(file).state == "success"
    second = run_flow(file, REUSE)
    assert second.state == "success" and all(e.reused for e in second.experiments)
    assert sum(k.startswith("flows/.reuse/") for k in s3.keys(bucket)) == 12
