"""The compute interface without Airflow: the registry, template settings, what the local compute
refuses or leaves out, and a new kind plugged in by one class and one registry entry, whose
container layout (``/cnvrg``, ``/input/<task>``, ``/data``) reaches the launch it is given."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Literal

import pytest

from flow_airflow import computes
from flow_airflow.computes.base import Compute, ComputeSettings, Launch, Layout, LineCallback
from flow_airflow.computes.local.compute import LocalCompute
from flow_airflow.spec.models import ExecTask


class FakeContainerSettings(ComputeSettings):
    kind: Literal["fake"] = "fake"
    tag_line: str = "cnvrg_tag_ran: yes"


class FakeContainerCompute(Compute):
    """A container-like kind: cnvrg's layout bound from the workspace; it records the launch instead of running it."""

    kind = "fake"
    Settings = FakeContainerSettings
    launches: ClassVar[list[Launch]] = []

    def layout(self, workspace: Path, sdk: Path) -> Layout:
        return Layout.container(workspace, sdk)

    def ignores(self, launch: Launch) -> dict[str, str]:
        return {"requirements": "not enforced by the fake compute"}

    def run(self, launch: Launch, on_line: LineCallback, on_error_line: LineCallback | None = None) -> int:
        self.launches.append(launch)
        assert isinstance(self.settings, FakeContainerSettings)
        on_line(self.settings.tag_line)
        (launch.workspace / "output" / "made.txt").write_text("inside")  # what the command would leave
        return 0

    def kill(self) -> None:
        pass


@pytest.fixture
def fake_kind(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(computes.KINDS, "fake", computes.Kind(f"{__name__}:FakeContainerCompute",
                                                             "flow_airflow.computes.local.replicas:LocalReplicas"))
    computes.compute_class.cache_clear()
    FakeContainerCompute.launches = []
    yield
    computes.compute_class.cache_clear()


def test_an_unknown_kind_is_an_error_naming_the_kinds() -> None:
    with pytest.raises(computes.UnknownKind, match="no compute of kind 'gpu': the kinds are docker, kubernetes, local"):
        computes.compute_class("gpu")
    assert computes.compute_class("local") is LocalCompute


def test_each_kind_gives_its_compute_and_its_replicas_from_its_folder() -> None:
    for kind in ("local", "docker", "kubernetes"):
        compute, replicas = computes.compute_class(kind), computes.replicas_class(kind)
        assert compute.kind == replicas.kind == kind
        assert compute.__module__ == f"flow_airflow.computes.{kind}.compute"
        assert replicas.__module__ == f"flow_airflow.computes.{kind}.replicas"
    assert [k for k in computes.KINDS if computes.replicas_class(k).autoscales] == ["kubernetes"]  # max_replica
    with pytest.raises(computes.UnknownKind, match="no compute of kind 'gpu'"):
        computes.replicas_on({"name": "big", "kind": "gpu"}, Path("/endpoints/e"))


def test_choose_skips_templates_it_cannot_use_saying_why() -> None:
    templates = {"local": {"kind": "local"}, "hpc": {"kind": "slurm"}, "medium": {"kind": "local"}}
    choice = computes.choose(["gpu", "hpc", "medium"], templates)
    assert (choice.name, choice.kind) == ("medium", "local")
    assert choice.notes == ("compute template 'gpu' is not configured here; skipped",
                            "compute template 'hpc' is of kind 'slurm', which no compute here runs (kinds: "
                            f"{', '.join(computes.KINDS)}); skipped")
    assert isinstance(choice.compute(), LocalCompute) and choice.compute().name == "medium"


def test_a_template_key_its_kind_does_not_have_is_refused() -> None:
    with pytest.raises(ValueError, match="cpu"):
        computes.create({"name": "medium", "kind": "local", "settings": {"kind": "local", "cpu": 2}})


def test_the_local_compute_refuses_network_folders_and_leaves_out_image_and_requirements(tmp_path: Path) -> None:
    task = ExecTask.model_validate({"title": "Mount", "type": "exec", "input": "ls /data/x",
                                    "mount_folders": ["10.0.0.1:/share"]})
    local = LocalCompute("medium")
    assert local.refusal(task) == ("'Mount' mounts network folders (10.0.0.1:/share), which the local compute "
                                   "'medium' cannot do")
    assert local.plan_notes(task, [task.script]) == []  # datasets are staged on it (data tasks)
    launch = Launch.local("true", tmp_path, {})
    assert set(local.ignores(launch)) == {"requirements"}  # no image named: none to leave out
    assert set(local.ignores(dataclasses.replace(launch, image="python:3.11"))) == {"image", "requirements"}
    layout = local.layout(tmp_path, Path("/sdk"))
    assert layout.roots() == {"/cnvrg": tmp_path, "/input": tmp_path / "input", "/data": tmp_path / ".cnvrg_data"}
    assert layout.mounts == ()


def test_the_local_compute_runs_a_launch_and_kill_stops_it(tmp_path: Path) -> None:
    import threading
    import time

    local = LocalCompute()
    lines: list[str] = []
    launch = Launch.local("echo started; sleep 30; echo never", tmp_path, dict(os.environ))
    threading.Timer(0.5, local.kill).start()
    start = time.perf_counter()
    code = local.run(launch, lines.append)
    assert lines == ["started"] and code != 0 and time.perf_counter() - start < 10


def test_a_new_kind_is_one_class_and_one_entry_and_gets_cnvrgs_container_layout(
    fake_kind: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flow_airflow.computes import ComputeChoice
    from flow_airflow.runtime.artifacts import ArtifactStore
    from flow_airflow.runtime.experiment import ExperimentRun

    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__ARTIFACTS_FOLDER", str(tmp_path / "store"))
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__WORKSPACES_FOLDER", str(tmp_path / "ws"))
    parent = ArtifactStore(tmp_path / "store").location("d", "r", "prepare", 0)
    (parent / "output").mkdir(parents=True)
    (parent / "output" / "a.csv").write_text("1,2\n")
    (tmp_path / "project").mkdir()
    messages: list[str] = []
    log = logging.getLogger("test.fake")
    log.addHandler(handler := logging.Handler())
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    log.setLevel(logging.INFO)
    experiment = ExperimentRun(
        spec=ExecTask.model_validate({
            "title": "Train", "type": "exec", "computes": ["box"], "image": "python:3.11",
            "input": "python3 /cnvrg/train.py --data /input/prepare/output/a.csv",
            "params": [{"key": "out", "value": "/cnvrg/output/m"}], "requirements": {"cpu": 2, "memory": 4}}),
        route={"params": [["out", "/cnvrg/output/m"]], "parents": {}},
        parents={"Prepare": [{"task": "Prepare", "index": 0, "params": {}, "tags": {"rows": "2"},
                              "output": str(parent), "route": {"Prepare": 0}, "upstream": {}}]},
        gathered=[], dag_id="d", run_id="r", index=0, project_dir=tmp_path / "project",
        compute=ComputeChoice("box", "fake", {"kind": "fake"}), base_env={}, log=log,
    )
    record = experiment.run()
    [launch] = FakeContainerCompute.launches
    assert launch.command == "python3 /cnvrg/train.py --data /input/prepare/output/a.csv --out /cnvrg/output/m"
    assert str(launch.cwd) == "/cnvrg" and launch.image == "python:3.11"
    assert launch.resources == {"cpu": 2.0, "memory": 4.0}
    env = launch.env
    assert (env["CNVRG_WORKDIR"], env["CNVRG_OUTPUT_DIR"], env["INPUT_PREPARE"]) == (
        "/cnvrg", "/cnvrg/output", "/input/prepare")
    assert env["PYTHONPATH"] == "/opt/flow-airflow/sdk" and env["CNVRG_TAG_OUT"] == "/cnvrg/output/m"
    assert launch.own_env({"CNVRG_WORKDIR": "/cnvrg", "HOME": "/root"}) == {k: v for k, v in env.items()
                                                                          if k != "CNVRG_WORKDIR"}
    workspace = launch.workspace
    assert launch.inputs == {"prepare": workspace / "input" / "prepare"}
    assert [(m.source, m.target) for m in launch.mounts][:3] == [
        (workspace, "/cnvrg"), (workspace / "input", "/input"), (workspace / ".cnvrg_data", "/data")]
    assert (launch.workspace.parent.parent.parent.parent, launch.name) == (tmp_path / "ws", "d.r.train.0")
    assert "requirements: cpu=2.0, memory=4.0 (not enforced by the fake compute)" in messages
    assert "image: python:3.11" in messages
    assert record["tags"] == {"ran": "yes"}
    assert (Path(record["output"]) / "output" / "made.txt").read_text() == "inside"
