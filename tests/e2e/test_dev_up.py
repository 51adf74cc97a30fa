"""``./dev up`` as a new user runs it: Airflow with the examples, approvers to log in, a banner when ready."""

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
import pytest

pytestmark = pytest.mark.e2e
REPO = Path(__file__).parents[2]


def test_dev_up_starts_airflow_with_the_approval_example_and_its_approvers(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # the test session's Airflow settings are not the user's: ./dev up chooses its own
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    env.update(PORT=str(port), AIRFLOW_HOME=str(tmp_path / "home"))
    out = (tmp_path / "dev-up.out").open("w+")
    proc = subprocess.Popen([str(REPO / "dev"), "up"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
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
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # what Ctrl-C in the terminal does to the whole group
        try:
            proc.wait(timeout=60)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out.close()
