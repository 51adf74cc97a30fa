"""The local compute: the command runs as a subprocess of the task, on the worker.

cnvrg's folders are the workspace's own (``/cnvrg`` is the workspace, ``/input`` its ``input``,
``/data`` its ``.cnvrg_data``); the task's ``image:`` and ``requirements`` are not used (the log
says so); network folders (``mount_folders``) cannot be mounted: such a task fails saying why.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from flow_airflow.computes.base import (
    DATA,
    INPUT,
    MAX_LINE,
    Compute,
    ComputeSettings,
    Launch,
    Layout,
    LineCallback,
    lines,
    supervisor_pid,
)

if TYPE_CHECKING:
    from flow_airflow.spec import models

GRACE_SECONDS = 1.0  # after the task process died: SIGTERM to the command, SIGKILL after this

# The command's guard: a small parent of the shell, the leader of the command's process group. It holds
# the read end of a pipe whose write end only the task process has: when the task process dies (even by
# SIGKILL) the pipe ends, and the guard ends the whole group (SIGTERM, then SIGKILL after a grace period)
# and removes the try's working directory (a killed try stores nothing; its retry has a directory of its
# own). The removal is left to a child that leaves the group first (setsid), as SIGKILL to the group
# ends the guard too; it waits until no process of the group is left (zombies aside: /proc).
# Under Airflow's supervisor (a real worker, not dag.test), the guard also watches the supervisor, the task
# process's parent (a pidfd): killing the worker's supervisor leaves the task process running, blocked on
# the command, and its result could no longer be reported; the group is ended the same way.
# A pipe rather than PR_SET_PDEATHSIG: that signal follows the *thread* that started the child, and
# reaches the shell only, not its children. SIGTERM sent to the group (kill()) is left to the command:
# the guard waits for the shell and ends as it ended (its exit code, or the same signal).
GUARD = """
import glob, os, select, shutil, signal, subprocess, sys, threading, time
signal.signal(signal.SIGTERM, lambda *_: None)
def members(group):
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = open(stat).read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            yield stat
shell = subprocess.Popen(sys.argv[5:])
def watched():
    fds = [int(sys.argv[1])]
    if int(sys.argv[4]):
        try:
            fds.append(os.pidfd_open(int(sys.argv[4])))
        except ProcessLookupError:  # the supervisor is gone already
            return
        except OSError:  # no pidfd here: the task process alone is watched
            pass
    while True:
        ready = select.select(fds, [], [])[0]
        if fds[0] in ready and not os.read(fds[0], 1) or fds[1:] and fds[1] in ready:
            return
def watch():
    watched()
    ending.set()
    group = os.getpgid(0)
    os.killpg(group, signal.SIGTERM)
    end = time.monotonic() + float(sys.argv[2])
    while shell.poll() is None and time.monotonic() < end:
        time.sleep(0.05)
    left, told = os.pipe()
    if os.fork() == 0:
        os.setsid()
        os.write(told, b"x")
        while any(members(group)) and time.monotonic() < end + 60:
            time.sleep(0.05)
        if not any(members(group)):
            shutil.rmtree(sys.argv[3], ignore_errors=True)
        os._exit(0)
    os.read(left, 1)
    os.killpg(group, signal.SIGKILL)
ending = threading.Event()
watcher = threading.Thread(target=watch, daemon=True)
watcher.start()
code = shell.wait()
if ending.is_set():  # the task process died: the watcher ends the group, this guard with it
    watcher.join()
if code < 0:
    if -code != signal.SIGKILL:
        signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
sys.exit(code)
"""


class LocalSettings(ComputeSettings):
    """A template of kind ``local``: ``{"kind": "local"}`` (it has no other setting)."""

    kind: Literal["local"] = "local"


class LocalCompute(Compute):
    """Runs the launch's shell line in the workspace, streaming its output line by line."""

    kind = "local"
    Settings = LocalSettings

    def __init__(self, name: str | None = None, settings: ComputeSettings | Mapping[str, Any] | None = None):
        super().__init__(name, settings)
        self._process: subprocess.Popen[str] | None = None

    def refusal(self, task: models.Task) -> str | None:
        folders = getattr(task, "mount_folders", None)
        if folders:
            return (f"'{task.title}' mounts network folders ({', '.join(folders)}), which the local "
                    f"compute '{self.name}' cannot do")
        return None

    def layout(self, workspace: Path, sdk: Path) -> Layout:
        return Layout(cnvrg=workspace, input=workspace / INPUT, data=workspace / DATA, sdk=sdk)

    def ignores(self, launch: Launch) -> dict[str, str]:
        ignored = {"requirements": "not enforced by the local compute"}
        if launch.image:
            ignored["image"] = "not used by the local compute: the command runs on the worker"
        return ignored

    def run(self, launch: Launch, on_line: LineCallback, on_error_line: LineCallback | None = None) -> int:
        """Run the launch's command line with ``bash -c`` (``sh -c`` without bash) in its ``cwd``.

        Standard error is read by a second thread, so that neither stream blocks the other.
        """
        shell = shutil.which("bash") or "/bin/sh"
        alive, self._alive = os.pipe()  # the guard's end, and ours (closed when this process ends)
        try:
            self._process = self._start(launch, shell, alive, on_error_line is not None)
        finally:
            os.close(alive)
        try:
            return self._stream(on_line, on_error_line)
        finally:
            os.close(self._alive)

    def _start(self, launch: Launch, shell: str, alive: int, split: bool) -> subprocess.Popen[str]:
        """The command under its guard (:data:`GUARD`), in a session of its own."""
        return subprocess.Popen(
            [sys.executable, "-I", "-c", GUARD, str(alive), str(GRACE_SECONDS), str(launch.workspace),
             str(supervisor_pid()), shell, "-c", launch.command],
            pass_fds=(alive,),
            cwd=launch.cwd,
            env=dict(launch.env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if split else subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            start_new_session=True,  # so that kill() reaches the command's own children too
        )

    def _stream(self, on_line: LineCallback, on_error_line: LineCallback | None) -> int:
        """The command's output into the callbacks (stderr by a second thread); its exit code."""
        assert self._process is not None and self._process.stdout is not None
        lock = threading.Lock()

        def pump(stream: IO[str], callback: Callable[[str], None]) -> None:
            # read with universal newlines ("\r", "\r\n" become "\n"), at most MAX_LINE characters at a time
            for line in lines(iter(functools.partial(stream.readline, MAX_LINE), "")):
                with lock:
                    callback(line)

        errors = None
        if on_error_line is not None and self._process.stderr is not None:
            errors = threading.Thread(target=pump, args=(self._process.stderr, on_error_line), daemon=True)
            errors.start()
        pump(self._process.stdout, on_line)
        if errors is not None:
            errors.join()
        return self._process.wait()

    def kill(self) -> None:
        if self._process and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
