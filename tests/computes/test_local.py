"""The local compute's command dies with the task process: a real process running it is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from flow_airflow.computes.base import Launch, Layout
from flow_airflow.computes.local.compute import LocalCompute

TASK = """
import sys
from pathlib import Path
from flow_airflow.computes.base import Launch, Layout
from flow_airflow.computes.local.compute import LocalCompute

ws = Path(sys.argv[1])
launch = Launch(name="t", command=sys.argv[2], shown="", workspace=ws, cwd=ws, env={"PATH": "/usr/bin:/bin"},
                layout=Layout(cnvrg=ws, input=ws / "input", data=ws / "data", sdk=ws))
LocalCompute().run(launch, print, print)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie has ended
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def _wait_for(path: Path, seconds: float = 20) -> str:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if path.exists() and path.read_text().strip():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} was never written")


def test_a_sigkilled_task_process_takes_its_command_its_children_and_its_workspace_along(tmp_path: Path) -> None:
    # the command starts a child of its own that ignores SIGTERM (so it takes the SIGKILL after the grace
    # period), then both sleep; the orphan would write a file after 3 s
    ws = tmp_path / "workspace"
    ws.mkdir()
    (ws / "train.py").write_text("the project")
    command = (f"sh -c \"trap '' TERM; sleep 60\" & echo $$ $! > {tmp_path}/pids; sleep 3; "
               f"echo late > {tmp_path}/late; wait")
    task = subprocess.Popen([sys.executable, "-c", TASK, str(ws), command])
    shell, child = map(int, _wait_for(tmp_path / "pids").split())
    task.send_signal(signal.SIGKILL)
    task.wait()
    end = time.monotonic() + 2
    while (_alive(shell) or _alive(child)) and time.monotonic() < end:
        time.sleep(0.05)
    assert not _alive(shell) and not _alive(child), "the command outlived its task process"
    while ws.exists() and time.monotonic() < end + 2:
        time.sleep(0.05)
    assert not ws.exists(), "the killed try's working directory was left behind"
    time.sleep(3)
    assert not (tmp_path / "late").exists()


def _launch(ws: Path, command: str) -> Launch:
    return Launch(name="t", command=command, shown=command, workspace=ws, cwd=ws, env={"PATH": os.environ["PATH"]},
                  layout=Layout(cnvrg=ws, input=ws / "input", data=ws / "data", sdk=ws))


def test_the_guard_keeps_exit_codes_signals_and_output(tmp_path: Path) -> None:
    lines: list[str] = []
    errors: list[str] = []
    compute = LocalCompute()
    assert compute.run(_launch(tmp_path, "echo out; echo err >&2; exit 3"), lines.append, errors.append) == 3
    assert (lines, errors) == (["out"], ["err"])
    assert compute.run(_launch(tmp_path, "kill -9 $$"), lines.append) == -9  # as the shell ended
    script = textwrap.dedent("""\
        trap 'echo stopping; exit 7' TERM
        echo started
        while true; do sleep 0.1; done
    """)
    seen: list[str] = []

    def on_line(line: str) -> None:
        seen.append(line)
        if line == "started":
            compute.kill()  # SIGTERM to the group: the command handles it, the guard waits for it

    assert compute.run(_launch(tmp_path, script), on_line) == 7
    assert seen[0] == "started" and seen[-1] == "stopping"


SUPERVISED = """
import subprocess, sys, time
# a stand-in for Airflow's supervisor: the parent of the task process; it starts it and waits
task = subprocess.Popen([sys.executable, "-c", sys.argv[1], *sys.argv[2:]])
task.wait()
"""
UNDER_SUPERVISOR = """
import sys
from airflow.sdk.execution_time import task_runner
task_runner.SUPERVISOR_COMMS = object()  # as task_runner.main() sets it: a supervisor's socket
""" + TASK


def _orphaned_by_the_supervisor(tmp_path: Path, task: str) -> tuple[int, subprocess.Popen[bytes]]:
    """The command's shell pid once the 'supervisor' of its task process was SIGKILLed (the task lives on)."""
    ws = tmp_path / "workspace"
    ws.mkdir()
    command = f"echo $$ > {tmp_path}/pid; sleep 60"
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISED, task, str(ws), command])
    shell = int(_wait_for(tmp_path / "pid", 60))
    supervisor.send_signal(signal.SIGKILL)
    supervisor.wait()
    return shell, supervisor


def test_the_command_dies_with_the_workers_supervisor_though_the_task_process_lives(tmp_path: Path) -> None:
    """issue 29 item 3: kill -9 of the executor's worker (Airflow's supervisor, the task process's parent)."""
    shell, _ = _orphaned_by_the_supervisor(tmp_path, UNDER_SUPERVISOR)
    end = time.monotonic() + 5
    while _alive(shell) and time.monotonic() < end:
        time.sleep(0.05)
    assert not _alive(shell), "the command outlived the supervisor of its task"


def test_without_a_supervisor_the_parent_of_the_task_process_may_go(tmp_path: Path) -> None:
    """dag.test() and flow-airflow run have none: a task process whose parent ends (nohup, a closed
    terminal) keeps its command."""
    shell, _ = _orphaned_by_the_supervisor(tmp_path, TASK)
    time.sleep(2)
    try:
        assert _alive(shell), "the command died with the parent of a task process that has no supervisor"
    finally:
        os.killpg(os.getpgid(shell), signal.SIGKILL)
