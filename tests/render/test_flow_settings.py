"""Flow settings in real runs: project environment variables, notifications, restarts."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import pytest

from flow_airflow.local_run import run_flow

pytestmark = pytest.mark.airflow


def write_flow(tmp_path: Path, text: str, scripts: dict[str, str] | None = None) -> Path:
    for name, body in (scripts or {}).items():
        (tmp_path / name).write_text(body)
    (tmp_path / "flow.yaml").write_text(text)
    return tmp_path / "flow.yaml"


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[list]:
    """A real SMTP server on localhost; Airflow's SMTP connection points at it."""
    from aiosmtpd.controller import Controller

    received: list = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": port,
        "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "flows@example.com", "timeout": 10,
                  "retry_limit": 1},
    }))
    yield received
    controller.stop()


def test_notifications_go_to_the_listed_emails(airflow_home: Path, tmp_path: Path, smtp: list) -> None:
    file = write_flow(tmp_path, """\
flow: Notifying
tasks:
  - title: Works
    type: exec
    input: "true"
    computes: [local]
    notify_on_success: true
    notify_on_error: true
    emails: [ops@example.com, lead@example.com]
  - title: Breaks
    type: exec
    input: "exit 4"
    computes: [local]
    notify_on_error: true
    emails: ops@example.com
  - {title: Quiet, type: exec, input: "true", computes: [local], notify_on_success: false}
relations: []
""")
    result = run_flow(file)
    assert result.state == "failed"
    mails = sorted((message["Subject"], tuple(to), message) for to, message in smtp)
    assert [(subject, to) for subject, to, _ in mails] == [
        ("flow-airflow: Breaks of Notifying failed", ("ops@example.com",)),
        ("flow-airflow: Works of Notifying succeeded", ("ops@example.com", "lead@example.com")),
    ]
    failure = mails[0][2].get_payload()[0].get_payload(decode=True).decode()
    assert "&#39;Breaks&#39; failed: its command exited with code 4" in failure


def test_project_environment_reaches_every_experiment(
    airflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.models import Variable

    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__ENV", json.dumps({"REGION": "eu-west", "MODE": "config"}))
    Variable.set("flow_airflow_env", json.dumps({"MODE": "variable", "API_TOKEN": "s3cr3t-t0ken-value"}))
    try:
        file = write_flow(tmp_path, """\
flow: Project Env
tasks:
  - {title: Show, type: exec, input: python3 show.py, computes: [local]}
relations: []
""", {"show.py": """\
import os
print("cnvrg_tag_region:", os.environ["REGION"])
print("cnvrg_tag_mode:", os.environ["MODE"])
assert os.environ["API_TOKEN"] == "s3cr3t-t0ken-value"
"""})
        result = run_flow(file)
    finally:
        Variable.delete("flow_airflow_env")
    assert result.state == "success"
    assert result.of("Show")[0].tags == {"region": "eu-west", "mode": "variable"}  # the Variable wins


def test_restart_if_stuck_retries_a_failed_experiment(airflow_home: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__RESTART_IF_STUCK_RETRY_DELAY", "0")
    marker = tmp_path / "tries"
    file = write_flow(tmp_path, f"""\
flow: Flaky
tasks:
  - title: Flaky
    type: exec
    input: echo x >> {marker} && test $(wc -l < {marker}) -ge 3
    computes: [local]
    restart_if_stuck: true
relations: []
""")
    result = run_flow(file)
    assert result.state == "success"
    assert marker.read_text().count("x") == 3  # failed twice, succeeded on the second retry
