"""A supervised process (computes/local/supervise.py): outlives its starter, restarted when it dies, stopped
on request."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from pathlib import Path

from flow_airflow.computes.local import supervise

SERVER = "import http.server; http.server.HTTPServer(('127.0.0.1', int(__import__('sys').argv[1])), " \
         "http.server.SimpleHTTPRequestHandler).serve_forever()"


def child_pids(log: Path) -> list[int]:
    return [int(p) for p in re.findall(r"\[supervise\] started pid (\d+)", log.read_text())]


def wait_for(condition: object, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_dead_process_is_started_again_and_stop_ends_both(tmp_path: Path) -> None:
    from flow_airflow.computes.replicas import free_port

    pidfile, log = tmp_path / "run" / "x.pid", tmp_path / "logs" / "x.log"
    pid = supervise.start([sys.executable, "-c", SERVER, str(free_port())], pidfile=pidfile, log=log,
                          env=dict(os.environ), cwd=tmp_path)
    assert os.getsid(pid) == pid  # its own session: the end of the Airflow task does not reach it
    wait_for(lambda: len(child_pids(log)) == 1)
    first = child_pids(log)[0]
    os.kill(first, signal.SIGKILL)  # it dies
    wait_for(lambda: len(child_pids(log)) == 2)
    assert "ended with code -9: starting it again in 2 s" in log.read_text()
    second = child_pids(log)[1]
    assert supervise.alive(pidfile)
    assert supervise.stop(pidfile)
    assert not supervise.alive(pidfile) and not pidfile.exists()
    for gone in (pid, second):
        assert not Path(f"/proc/{gone}").exists() or "Z" in Path(f"/proc/{gone}/stat").read_text().split(")")[1][:3]
    assert log.read_text().rstrip().endswith("[supervise] stopped")
    assert not supervise.stop(pidfile)  # nothing runs: nothing to stop


def test_a_pid_file_naming_another_program_is_not_that_programs_end(tmp_path: Path) -> None:
    pidfile = tmp_path / "x.pid"
    pidfile.write_text(str(os.getpid()))  # this test's own process: not a supervisor
    assert not supervise.alive(pidfile)
    assert not supervise.stop(pidfile)


def test_the_log_rotates_by_size(tmp_path: Path) -> None:
    pidfile, log = tmp_path / "run" / "x.pid", tmp_path / "logs" / "x.log"
    chatty = "import time\nfor i in range(2000): print(f'line {i:05d} ' + 'x' * 80, flush=True)\ntime.sleep(60)"
    supervise.start([sys.executable, "-c", chatty], pidfile=pidfile, log=log, env=dict(os.environ), cwd=tmp_path,
                    log_bytes=20_000)
    wait_for(lambda: "line 01999" in log.read_text())
    assert supervise.stop(pidfile)
    files = sorted(log.parent.iterdir())
    assert [f.name for f in files] == ["x.log", *[f"x.log.{i}" for i in range(1, supervise.LOG_BACKUPS + 1)]]
    assert all(f.stat().st_size <= 20_000 for f in files)  # 2000 lines of 92 bytes: 184 kB, kept to 4 x 20 kB
    assert "line 01999" in log.read_text() and "line 00000" not in "".join(f.read_text() for f in files)
    assert log.read_text().rstrip().endswith("[supervise] stopped")
