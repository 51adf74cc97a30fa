"""The ``[flow_airflow]`` settings: one typed model, every key read in plain-word errors, declared to Airflow."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from flow_airflow import computes, settings
from flow_airflow.approvals import config as approvals_config

PACKAGE = Path(settings.__file__).parent


def test_every_key_read_in_the_code_is_in_the_model() -> None:
    read = set()
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        read |= set(re.findall(r"(?<![\w.])settings\.(?:get|value)\(\s*\"(\w+)\"", text))
        read |= set(re.findall(r"conf\.get\w*\(\s*(?:settings\.SECTION|\"flow_airflow\"),\s*\"(\w+)\"", text))
    assert read and read <= set(settings.FlowAirflowSettings.model_fields), read


def test_defaults_when_not_set_or_blank(monkeypatch: pytest.MonkeyPatch) -> None:
    home = Path(os.environ["AIRFLOW_HOME"])
    assert settings.artifacts_root() == home / "flow_artifacts"
    assert settings.workspaces_root() == home / "flow_workspaces"
    assert computes.templates() == {"local": {"kind": "local"}}
    assert settings.restart_if_stuck() == (2, 60.0)
    assert approvals_config.approval_timeout() == 7 * 24 * 3600 and approvals_config.poll_interval() == 10
    assert approvals_config.approver_emails() == {}
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__BATCH_ROUTES", " ")
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__RESTART_IF_STUCK_RETRIES", "")
    assert settings.batch_routes("any") == 1 and settings.restart_if_stuck() == (2, 60.0)
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__CACHE_FOLDER", "")
    assert settings.value("cache_folder") == ""  # blank: no cache, not the default
    whole = settings.current()
    assert whole.batch_routes == 1 and whole.cache_folder == "" and whole.file_budget_seconds == 5.0


def test_values_are_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__RESTART_IF_STUCK_RETRIES", "3")
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__RESTART_IF_STUCK_RETRY_DELAY", "0.5")
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__APPROVER_EMAILS", '{"bob": "bob@example.com", "eve": ""}')
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__COMPUTES", '{"gpu": {"kind": "local"}, "k8s": {"kind": "kubernetes"}}')
    assert settings.restart_if_stuck() == (3, 0.5)
    assert approvals_config.approver_emails() == {"bob": "bob@example.com"}
    assert computes.templates() == {"local": {"kind": "local"}, "gpu": {"kind": "local"}, "k8s": {"kind": "kubernetes"}}


@pytest.mark.parametrize(
    ("key", "raw", "message"),
    [
        ("batch_routes", "x", "[flow_airflow] batch_routes must be a whole number >= 1 (or a JSON object of them), "
                              "got 'x'"),
        ("batch_routes", '{"big": 0}', "[flow_airflow] batch_routes must be a whole number >= 1 (or a JSON object of "
                                       "them), got '{\"big\": 0}'"),
        ("batch_routes", "2.5", "batch_routes must be a whole number >= 1"),
        ("restart_if_stuck_retries", "two", "[flow_airflow] restart_if_stuck_retries must be a whole number >= 0, "
                                            "got 'two'"),
        ("approval_poll_interval", "0", "[flow_airflow] approval_poll_interval must be a number of seconds > 0, "
                                        "got '0'"),
        ("env", "[1, 2]", "[flow_airflow] env must be a JSON object of variable name -> value, got '[1, 2]'"),
        ("computes", "{", "[flow_airflow] computes must be a JSON object of template name -> settings "
                          "({\"kind\": ...}), got '{'"),
    ],
)
def test_a_bad_value_is_one_sentence_naming_the_key(key: str, raw: str, message: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"AIRFLOW__FLOW_AIRFLOW__{key.upper()}", raw)
    with pytest.raises(settings.SettingError) as caught:
        settings.value(key)
    assert message in str(caught.value) and "\n" not in str(caught.value) and "pydantic" not in str(caught.value)
    with pytest.raises(settings.SettingError):
        settings.current()
    settings.reset()


def test_a_template_its_kind_refuses_is_one_sentence_naming_the_template(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checked by the registry of compute kinds (``computes.templates``), not by the settings module."""
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__COMPUTES", '{"gpu": {"kind": "local", "cpu": 2}}')
    settings.reset()
    with pytest.raises(settings.SettingError) as caught:
        computes.templates()
    assert str(caught.value) == ("[flow_airflow] computes must be a JSON object of template name -> settings "
                                 "({\"kind\": ...}): template 'gpu' (kind local): 'cpu' is not one of its settings "
                                 "(kind)")
    settings.reset()


def test_a_bad_key_fails_only_what_reads_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__RESTART_IF_STUCK_RETRIES", "two")
    assert settings.batch_routes("any") == 1 and computes.templates()["local"] == {"kind": "local"}


@pytest.mark.airflow
def test_airflow_lists_the_section(tmp_path: Path) -> None:
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__FLOW_AIRFLOW__BATCH_ROUTES": "7"}
    airflow = Path(sys.executable).parent / "airflow"
    listed = subprocess.run([str(airflow), "config", "list", "--section", "flow_airflow", "--include-descriptions"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    keys = re.findall(r"^# (\w+) = $", listed.stdout, re.MULTILINE)
    assert keys == list(settings.FlowAirflowSettings.model_fields)
    assert "# Routes one task instance runs in turn" in listed.stdout
    got = subprocess.run([str(airflow), "config", "get-value", "flow_airflow", "batch_routes"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert got.stdout.strip() == "7"
