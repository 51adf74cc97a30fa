"""The local compute: the command runs as a subprocess of the task, on the worker."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO

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


class LocalCompute:
    """Runs a shell command line in a working directory, streaming its output line by line."""

    kind = "local"

    def __init__(self, name: str = "local", settings: Mapping[str, object] | None = None):
        self.name = name
        self.settings = dict(settings or {})
        self._process: subprocess.Popen[str] | None = None

    def run(
        self,
        command: str,
        *,
        cwd: Path,
        env: Mapping[str, str],
        on_line: Callable[[str], None],
        on_error_line: Callable[[str], None] | None = None,
    ) -> int:
        """Run ``command`` (a shell line whose arguments are already quoted); return its exit code.

        Each line of its standard output goes to ``on_line``; of its standard error to
        ``on_error_line`` (to ``on_line`` too when that is None), read by a second thread so
        that neither stream blocks the other. The two callbacks are never called at once.
        """
        shell = shutil.which("bash") or "/bin/sh"
        self._process = subprocess.Popen(
            [shell, "-c", command],
            cwd=cwd,
            env=dict(env),
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
