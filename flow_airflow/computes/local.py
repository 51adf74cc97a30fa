"""The local compute: the command runs as a subprocess of the task, on the worker.

cnvrg's folders are the workspace's own (``/cnvrg`` is the workspace, ``/input`` its ``input``,
``/data`` its ``.cnvrg_data``); the task's ``image:`` and ``requirements`` are not used (the log
says so); network folders (``mount_folders``) cannot be mounted: such a task fails saying why.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from flow_airflow.computes.base import DATA, INPUT, Compute, ComputeSettings, Launch, Layout, LineCallback

if TYPE_CHECKING:
    from flow_airflow.spec import models

MAX_LINE = 1024 * 1024  # characters of one output line kept in memory and in the log


def _lines(stream: IO[str]) -> Iterator[str]:
    """The lines of ``stream`` without their line break; a line over MAX_LINE is cut, saying so.

    Memory stays bounded whatever the command prints (a line of gigabytes without a break).
    """
    while chunk := stream.readline(MAX_LINE):
        if chunk.endswith("\n") or len(chunk) < MAX_LINE:
            yield chunk.rstrip("\n")
            continue
        dropped = 0
        while (rest := stream.readline(MAX_LINE)) and not rest.endswith("\n"):
            dropped += len(rest)
        dropped += len(rest.rstrip("\n"))
        yield f"{chunk} … [line cut: {dropped:,} more characters not shown]"


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
        self._process = subprocess.Popen(
            [shell, "-c", launch.command],
            cwd=launch.cwd,
            env=dict(launch.env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if on_error_line is None else subprocess.PIPE,
            text=True,
            errors="replace",
            bufsize=1,
            start_new_session=True,  # so that kill() reaches the command's own children too
        )
        assert self._process.stdout is not None
        lock = threading.Lock()

        def pump(stream: IO[str], callback: Callable[[str], None]) -> None:
            for line in _lines(stream):
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
