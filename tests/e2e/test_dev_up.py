"""``./dev up`` as a new user runs it: Airflow with the examples, approvers to log in, a banner when ready;
its airflow.cfg tells the command line the instance; SIGTERM ends all it started; what one left is found."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

pytestmark = pytest.mark.e2e
REPO = Path(__file__).parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def user_env(home: Path, port: int) -> dict[str, str]:
    """The test session's Airflow settings are not the user's: ./dev up chooses its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    return env | {"PORT": str(port), "AIRFLOW_HOME": str(home)}


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running (not gone, not zombies)."""
    left = []
    for p in processes:
        with contextlib.suppress(psutil.Error):
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                left.append(p)
    return left


def test_dev_up_starts_airflow_with_the_approval_example_and_its_approvers(tmp_path: Path) -> None:
    port = free_port()
    home = tmp_path / "home"
    env = user_env(home, port)
    out = (tmp_path / "dev-up.out").open("w+")
    proc = subprocess.Popen([str(REPO / "dev"), "up"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    started: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 300
        while "Airflow is ready at" not in (text := Path(out.name).read_text()):
            assert proc.poll() is None, text[-3000:]
            assert time.monotonic() < deadline, text[-3000:]
            time.sleep(2)
        assert f"Airflow is starting at  http://localhost:{port}" in text
        assert "logins: admin / admin, alice / alice, bob / bob" in text
        assert re.search(rf"parallelism: {max(2, os.cpu_count() or 2)} task instances at a time", text)
        base = f"http://localhost:{port}"
        token = httpx.post(f"{base}/auth/token", json={"username": "alice", "password": "alice"}, timeout=30)
        assert token.status_code == 201, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        deadline = time.monotonic() + 180
        while (dag := httpx.get(f"{base}/api/v2/dags/approval_gate", headers=headers, timeout=30)).status_code != 200:
            assert time.monotonic() < deadline, dag.text
            time.sleep(3)
        assert dag.json()["is_paused"] is False

        # the command line in another shell, with the one line the banner gives, finds this instance
        assert f"export AIRFLOW_HOME={home} PATH={REPO}/.venv/bin:$PATH" in text
        shell = {k: v for k, v in env.items() if k != "PORT"}
        for key, value in (("core dags_folder", f"{REPO}/dags"), ("api base_url", base),
                           ("core simple_auth_manager_users", "admin:admin,alice:user,bob:user")):
            got = subprocess.run([str(REPO / ".venv/bin/airflow"), "config", "get-value", *key.split()], env=shell,
                                 capture_output=True, text=True, timeout=120)
            assert got.stdout.strip() == value, (key, got.stdout, got.stderr[-2000:])

        # SIGTERM to ./dev up's pid alone (not its group): it ends everything it started, then itself
        started = psutil.Process(proc.pid).children(recursive=True)
        names = " ".join(" ".join(p.cmdline()) for p in started)
        assert all(c in names for c in ("scheduler", "api_server", "triggerer", "dag-processor")), names
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 143
        assert alive(started) == [], [" ".join(p.cmdline()) for p in alive(started)]
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{base}/api/v2/monitor/health", timeout=5)
        assert not (home / "dev-up.pid").exists()
        assert "stopping Airflow" in Path(out.name).read_text()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        for p in alive(started):
            p.kill()
        out.close()


def test_a_second_dev_up_says_what_an_earlier_one_left_and_dev_stop_ends_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = user_env(home, free_port())
    first = subprocess.Popen([str(REPO / "dev"), "up"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    left: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 120
        while not (home / "dev-up.pid").exists():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.5)
        standalone = psutil.Process(int((home / "dev-up.pid").read_text()))
        first.kill()  # SIGKILL: ./dev up can end nothing, airflow standalone runs on
        first.wait(timeout=30)
        time.sleep(3)
        left = [standalone, *standalone.children(recursive=True)]
        second = subprocess.run([str(REPO / "dev"), "up"], cwd=REPO, env=env, capture_output=True, text=True,
                                timeout=300)
        assert second.returncode == 1
        assert f"an earlier ./dev up still runs on {home}:" in second.stderr
        assert f"pid {standalone.pid}: " in second.stderr and "airflow standalone" in second.stderr
        assert "'./dev stop'" in second.stderr
        assert "Airflow is starting" not in second.stdout
        left = [standalone, *standalone.children(recursive=True)]
        stopped = subprocess.run([str(REPO / "dev"), "stop"], cwd=REPO, env=env, capture_output=True, text=True,
                                 timeout=120)
        assert stopped.returncode == 0 and f"processes of Airflow on {home}" in stopped.stdout, stopped
        assert alive(left) == []
        assert not (home / "dev-up.pid").exists()
    finally:
        for p in alive(left):
            p.kill()
