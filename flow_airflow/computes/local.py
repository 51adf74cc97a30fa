"""The local compute: the command runs as a subprocess of the task, on the worker."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path


class LocalCompute:
    """Runs a shell command line in a working directory, streaming its output line by line."""

    kind = "local"

    def __init__(self, name: str = "local", settings: Mapping[str, object] | None = None):
        self.name = name
        self.settings = dict(settings or {})
        self._process: subprocess.Popen[str] | None = None

    def run(self, command: str, *, cwd: Path, env: Mapping[str, str], on_line: Callable[[str], None]) -> int:
        """Run ``command`` (a shell line whose arguments are already quoted); return its exit code."""
        shell = shutil.which("bash") or "/bin/sh"
        self._process = subprocess.Popen(
            [shell, "-c", command],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            start_new_session=True,  # so that kill() reaches the command's own children too
        )
        assert self._process.stdout is not None
        for line in self._process.stdout:
            on_line(line.rstrip("\n"))
        return self._process.wait()

    def kill(self) -> None:
        if self._process and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
