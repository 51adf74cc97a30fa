"""A supervised process that outlives the Airflow task that starts it: a local replica, an endpoint's front.

``python -m flow_airflow.computes.local.supervise --pidfile P --log L -- ARGV...`` runs ARGV, its output
appended to L, and starts it again when it dies (after 1 s, doubling to at most 30 s while it keeps
dying within a minute of starting). L rotates by size: past ``--log-bytes`` (``LOG_BYTES``, 10 MiB)
it becomes ``L.1`` (``L.1`` becomes ``L.2``, up to ``LOG_BACKUPS``; the oldest is removed), as
:class:`logging.handlers.RotatingFileHandler` does (the supervisor writes ARGV's output line by
line through one). SIGTERM stops it: ARGV gets SIGTERM (gunicorn and uvicorn then
finish the requests they hold), SIGKILL after ``GRACE`` seconds. The pid file holds the supervisor's
pid while it runs.

:func:`start` launches it detached (its own session, so that the end of the Airflow task, which
signals its own process group, does not reach it); :func:`stop` ends it by its pid file.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import logging.handlers
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

MODULE = "flow_airflow.computes.local.supervise"  # what a supervisor's command line runs (how pid_of knows one)
FORMERLY = ("flow_airflow.endpoints.supervise",)  # its name before: supervisors started then are still known
GRACE = 30.0  # seconds the supervised process may take to finish its requests after SIGTERM
MAX_BACKOFF = 30.0
LOG_BYTES = 10 * 1024 * 1024  # a log file rotates past this size ...
LOG_BACKUPS = 3  # ... keeping this many earlier files


def start(argv: Sequence[str], *, pidfile: Path, log: Path, env: Mapping[str, str], cwd: Path,
          log_bytes: int = LOG_BYTES) -> int:
    """Start ``argv`` supervised and detached; return the supervisor's pid (also in ``pidfile``).

    :param log: where ``argv``'s output goes, rotated past ``log_bytes``.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:  # the supervisor's own failure to start, if any; its output goes through rotation
        process = subprocess.Popen(
            [sys.executable, "-m", MODULE, "--pidfile", str(pidfile), "--log", str(log), "--log-bytes",
             str(log_bytes), "--", *argv],
            cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=out,
            start_new_session=True, close_fds=True,
        )
    _write_pid(pidfile, process.pid)
    return process.pid


def _write_pid(pidfile: Path, pid: int) -> None:
    """``pid`` into ``pidfile`` atomically (a reader never sees it empty)."""
    temporary = pidfile.with_name(f".{pidfile.name}.{pid}")
    temporary.write_text(str(pid))
    os.replace(temporary, pidfile)


def pid_of(pidfile: Path) -> int | None:
    """The supervisor's pid when it runs, else None (also when the pid now belongs to another program)."""
    try:
        pid = int(Path(pidfile).read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
        for _ in range(50):  # empty while the process is still being exec'd (just started)
            if command:
                break
            time.sleep(0.02)
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if any(name.encode() in command for name in (MODULE, *FORMERLY)) and _running(pid) else None


def alive(pidfile: Path) -> bool:
    return pid_of(pidfile) is not None


def stop(pidfile: Path, timeout: float = GRACE + 5) -> bool:
    """SIGTERM to the supervisor of ``pidfile``, waiting until it has ended; whether it was running."""
    pid = pid_of(pidfile)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _running(pid):
        time.sleep(0.1)
    if _running(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(FileNotFoundError):
        Path(pidfile).unlink()
    return True


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs (reaped if it is our child; a zombie counts as ended)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def rotating_log(path: Path, max_bytes: int = LOG_BYTES) -> logging.Logger:
    """A logger writing bare lines to ``path``, rotated past ``max_bytes`` (``LOG_BACKUPS`` kept)."""
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=LOG_BACKUPS,
                                                   encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger(f"{MODULE}.{path}")
    logger.propagate, logger.level = False, logging.INFO
    logger.addHandler(handler)
    return logger


def _copy(stream: Any, log: logging.Logger) -> None:
    """Every line of ``stream`` to ``log``, until it ends."""
    for line in iter(stream.readline, b""):
        log.info(line.decode("utf-8", errors="replace").rstrip("\n"))


def supervise(argv: list[str], pidfile: Path, log: logging.Logger | None = None) -> int:
    """Run ``argv`` until SIGTERM, starting it again each time it dies; the exit code on stop.

    :param log: where ``argv``'s output and the supervisor's lines go (default: this process's stdout).
    """
    say = log.info if log is not None else functools.partial(print, flush=True)
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def on_term(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.terminate()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    _write_pid(pidfile, os.getpid())
    backoff = 1.0
    while not stopping:
        began = time.monotonic()
        child = subprocess.Popen(argv, stdout=subprocess.PIPE if log else None, stderr=subprocess.STDOUT)
        if stopping:  # SIGTERM came while it was being started (``child`` was not set yet)
            child.terminate()
        if log is not None:
            threading.Thread(target=_copy, args=(child.stdout, log), daemon=True).start()
        say(f"[supervise] started pid {child.pid}: {' '.join(argv[:3])} ...")
        code = child.wait()
        if stopping:
            break
        backoff = 1.0 if time.monotonic() - began > 60 else min(backoff * 2, MAX_BACKOFF)
        say(f"[supervise] pid {child.pid} ended with code {code}: starting it again in {backoff:g} s")
        deadline = time.monotonic() + backoff
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.1)
    if child is not None:
        try:
            child.wait(GRACE)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    say("[supervise] stopped")
    return 0


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}")
    parser.add_argument("--pidfile", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--log-bytes", type=int, default=LOG_BYTES)
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    given = parser.parse_args(args)
    argv = given.argv[1:] if given.argv[:1] == ["--"] else given.argv
    return supervise(argv, given.pidfile, rotating_log(given.log, given.log_bytes))


if __name__ == "__main__":
    sys.exit(main())
