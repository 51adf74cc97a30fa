"""The Docker compute on the machine's engine, without Airflow: a launch runs in its container, its
output streams line by line, its exit code comes back, kill stops it, and no container is left."""

from __future__ import annotations

import dataclasses
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from flow_airflow.computes.base import Launch
from flow_airflow.computes.docker.compute import LABEL, DockerCompute
from flow_airflow.runtime.environment import SDK_PATH
from flow_airflow.runtime.prepare import ExperimentFailed

pytestmark = pytest.mark.containers


def make(tmp_path: Path, image: str, command: str, **keys: Any) -> tuple[DockerCompute, Launch]:
    compute = DockerCompute("docker", {"kind": "docker", "image": image, "network_mode": "none", **keys})
    workspace = tmp_path / "ws"
    workspace.mkdir(exist_ok=True)
    layout = compute.layout(workspace, SDK_PATH)
    launch = Launch(name=f"test.{tmp_path.name}", command=command, shown=command, workspace=workspace,
                    cwd=layout.cnvrg, env={"PYTHONPATH": "/opt/flow-airflow/sdk"}, layout=layout)
    return compute, launch


def ours(engine: Any) -> list[dict]:
    return engine.containers(all=True, filters={"label": LABEL})


def test_output_streams_stdout_and_stderr_apart_and_the_exit_code_returns(
    tmp_path: Path, python_image: str, docker_engine: Any
) -> None:
    command = ("echo one; echo oops >&2; python3 -c 'import time; time.sleep(1.2)'; echo two; "
               "touch output.txt; exit 3")
    compute, launch = make(tmp_path, python_image, command)
    out: list[tuple[str, float]] = []
    err: list[str] = []
    start = time.monotonic()
    assert compute.run(launch, lambda line: out.append((line, time.monotonic() - start)), err.append) == 3
    assert [line for line, _ in out] == ["one", "two"] and err == ["oops"]
    assert out[1][1] - out[0][1] > 1.0  # as printed, not at the end
    assert (launch.workspace / "output.txt").stat().st_uid == os.getuid()
    assert ours(docker_engine) == []


@pytest.mark.parametrize("command", ["python3 long.py", "echo shell; python3 long.py; echo after"])
def test_kill_stops_the_container_and_leaves_none(
    tmp_path: Path, python_image: str, docker_engine: Any, command: str
) -> None:
    """Also when the command is a shell's child (a compound line): every process in the container hears SIGTERM,
    the script's handler runs to its end (as with ``killpg`` on the local compute) and the shell starts nothing more."""
    script = ("import signal, sys, time\n"
              "signal.signal(signal.SIGTERM, lambda *_: (print('terminated', flush=True), sys.exit(143)))\n"
              "print('started', flush=True)\n"
              "time.sleep(600)\n")
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "long.py").write_text(script)
    compute, launch = make(tmp_path, python_image, command)
    out: list[str] = []
    started = threading.Event()

    def on_line(line: str) -> None:
        out.append(line)
        if line == "started":
            started.set()

    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(compute.run(launch, on_line)))
    runner.start()
    assert started.wait(60), out
    assert len(ours(docker_engine)) == 1
    begin = time.monotonic()
    compute.kill()
    runner.join(30)
    assert not runner.is_alive() and time.monotonic() - begin < 8  # SIGTERM was heard, not the grace period
    heard = [line for line in out if line != "shell"]
    assert result == [143] and heard == ["started", "terminated"]  # no "after"
    assert ours(docker_engine) == []


def test_a_killed_compute_starts_nothing_more(tmp_path: Path, python_image: str, docker_engine: Any) -> None:
    compute, launch = make(tmp_path, python_image, "echo ran")
    compute.kill()  # the task was killed while requirements.txt was installing: the command does not start
    out: list[str] = []
    assert compute.run(launch, out.append) == 143 and out == []
    assert ours(docker_engine) == []


def test_an_image_that_is_not_there_fails_saying_so(tmp_path: Path, python_image: str) -> None:
    compute, launch = make(tmp_path, "flow-airflow/absent:none", "true", pull="never")
    said = "the image flow-airflow/absent:none is not on the Docker engine, and the Docker compute 'docker' " \
           'does not pull ("pull": "never")'
    with pytest.raises(ExperimentFailed, match=re.escape(said)):
        compute.run(launch, print)
    compute, launch = make(tmp_path, "flow-airflow/absent:none", "true")  # no registry answers here
    with pytest.raises(ExperimentFailed, match="the Docker compute 'docker' cannot start the container: "):
        compute.run(launch, print)


def test_an_engine_that_does_not_answer_fails_saying_so(tmp_path: Path, python_image: str) -> None:
    compute, launch = make(tmp_path, python_image, "true", base_url="unix:///nonexistent/docker.sock")
    with pytest.raises(ExperimentFailed, match=re.escape("cannot reach the engine at unix:///nonexistent/docker.sock")):
        compute.run(launch, print)


def test_killing_the_experiment_stops_its_container(tmp_path: Path, python_image: str, docker_engine: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """What the operator's ``on_kill`` calls (the task was killed or timed out): the container stops at once,
    the experiment fails saying its command exited 143, and no container is left."""
    from flow_airflow.computes import ComputeChoice
    from flow_airflow.runtime.experiment import ExperimentRun
    from flow_airflow.spec.models import ExecTask

    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__WORKSPACES_FOLDER", str(tmp_path / "ws"))
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__ARTIFACTS_FOLDER", str(tmp_path / "store"))
    from flow_airflow import settings

    settings.reset()
    project = tmp_path / "project"
    project.mkdir()
    (project / "long.py").write_text("import time\nprint('started', flush=True)\ntime.sleep(600)\n")
    task = ExecTask.model_validate({"title": "Long", "type": "exec", "input": "python3 long.py"})
    experiment = ExperimentRun(
        spec=task, route={"params": [], "parents": {}}, parents={}, gathered=[], dag_id="kill",
        run_id="r1", index=0, project_dir=project, base_env=dict(os.environ),
        compute=ComputeChoice("docker", "docker", {"image": python_image, "network_mode": "none"}),
    )
    failure: list[BaseException] = []

    def run() -> None:
        try:
            experiment.run()
        except Exception as e:  # what the operator would report
            failure.append(e)

    runner = threading.Thread(target=run)
    runner.start()
    deadline = time.monotonic() + 60
    while not any(c["State"] == "running" for c in ours(docker_engine)) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # python3 is up
    begin = time.monotonic()
    experiment.kill()
    runner.join(30)
    settings.reset()
    assert not runner.is_alive() and time.monotonic() - begin < 8
    assert [str(e) for e in failure] == ["'Long' failed: its command exited with code 143 (its last line: started)"]
    assert ours(docker_engine) == []


def test_a_gpu_the_engine_cannot_give_fails_saying_so(tmp_path: Path, python_image: str, docker_engine: Any) -> None:
    """``requirements: {gpu: 1}`` is a GPU device request; this engine has no GPU runtime: the engine's words."""
    compute, launch = make(tmp_path, python_image, "echo never")
    launch = dataclasses.replace(launch, resources={"gpu": 1})
    with pytest.raises(ExperimentFailed, match=r"the Docker compute 'docker' could not run the container: .*gpu"):
        compute.run(launch, print)
    assert ours(docker_engine) == []


TASK = """
import sys
from pathlib import Path
from flow_airflow.computes.base import Launch
from flow_airflow.computes.docker.compute import DockerCompute
from flow_airflow.runtime.environment import SDK_PATH

compute = DockerCompute("docker", {"kind": "docker", "image": sys.argv[2], "network_mode": "none"})
ws = Path(sys.argv[1])
layout = compute.layout(ws, SDK_PATH)
launch = Launch(name=sys.argv[3], command="echo started; sleep 600", shown="", workspace=ws, cwd=layout.cnvrg,
                env={}, layout=layout)
compute.run(launch, lambda line: print(line, flush=True))
"""


def test_a_sigkilled_task_process_takes_its_container_and_workspace_along(
    tmp_path: Path, python_image: str, docker_engine: Any
) -> None:
    """SIGKILL never reaches on_kill: the container's guard removes it once the task process is gone."""
    import signal
    import subprocess
    import sys

    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "train.py").write_text("the project")
    name = f"test.{tmp_path.name}.killed"
    task = subprocess.Popen([sys.executable, "-c", TASK, str(workspace), python_image, name],
                            stdout=subprocess.PIPE, text=True)
    assert task.stdout is not None and task.stdout.readline().strip() == "started"
    [running] = [c for c in ours(docker_engine) if c["Labels"][LABEL] == name]
    assert running["State"] == "running"
    task.send_signal(signal.SIGKILL)
    task.wait()
    end = time.monotonic() + 20
    while (any(c["Labels"][LABEL] == name for c in ours(docker_engine)) or workspace.exists()) \
            and time.monotonic() < end:
        time.sleep(0.2)
    assert not any(c["Labels"][LABEL] == name for c in ours(docker_engine)), "the container outlived its task"
    assert not workspace.exists(), "the killed try's working directory was left behind"


def test_the_container_dies_with_the_workers_supervisor_though_the_task_process_lives(
    tmp_path: Path, python_image: str, docker_engine: Any
) -> None:
    """issue 29 item 3: kill -9 of the executor's worker (the task process's parent, Airflow's supervisor)
    leaves the task process blocked on the container's log: the guard removes the container."""
    import signal
    import subprocess
    import sys

    workspace = tmp_path / "ws"
    workspace.mkdir()
    name = f"test.{tmp_path.name}.orphaned"
    supervised = ("from airflow.sdk.execution_time import task_runner\n"
                  "task_runner.SUPERVISOR_COMMS = object()  # as task_runner.main() sets it: a supervisor's socket\n"
                  + TASK)
    supervisor = subprocess.Popen(  # a stand-in for the supervisor: the task process's parent
        [sys.executable, "-c", "import subprocess, sys; subprocess.Popen(sys.argv[1:]).wait()",
         sys.executable, "-c", supervised, str(workspace), python_image, name])
    end = time.monotonic() + 60
    while not any(c["Labels"][LABEL] == name for c in ours(docker_engine)) and time.monotonic() < end:
        time.sleep(0.2)
    assert any(c["Labels"][LABEL] == name for c in ours(docker_engine)), "the container never started"
    supervisor.send_signal(signal.SIGKILL)
    supervisor.wait()
    end = time.monotonic() + 20
    while any(c["Labels"][LABEL] == name for c in ours(docker_engine)) and time.monotonic() < end:
        time.sleep(0.2)
    assert not any(c["Labels"][LABEL] == name for c in ours(docker_engine)), "the container outlived the supervisor"
