"""``flow_airflow.serving.command``: the app's configuration from a deploy task, and gunicorn's argv."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from flow_airflow.serving.command import EndpointConfig, GunicornConfigError, flask_config_of, gunicorn_argv
from flow_airflow.spec.models import DeployTask


def deploy_task(**keys: object) -> DeployTask:
    return DeployTask.model_validate({"title": "Serve", "type": "deploy", "endpoint_title": "iris-classifier",
                                      "file_name": "predict.py", "function_name": "predict", **keys})


def config(**keys: object) -> EndpointConfig:
    return EndpointConfig.for_task(deploy_task(**keys), title="iris-classifier", version="3",
                                   project_dir="/runs/7/serve")


def test_argv_has_the_defaults_the_project_and_the_app() -> None:
    argv = gunicorn_argv(config(), bind="127.0.0.1:8123", app_dir="/opt/serving", python="/usr/bin/python3")
    assert argv == ["/usr/bin/python3", "-m", "gunicorn", "--bind", "127.0.0.1:8123", "--workers", "1",
                    "--threads", "4", "--chdir", "/runs/7/serve", "--pythonpath", "/opt/serving", "app:application"]


def test_blueprint_gunicorn_config_overrides_the_defaults() -> None:
    task = deploy_task(gunicorn_config=[{"key": "workers", "value": 2}, {"key": "timeout", "value": "120"},
                                        {"key": "worker-class", "value": "gthread"},
                                        {"key": "preload_app", "value": True}])
    argv = gunicorn_argv(config(), bind="0.0.0.0:80", app_dir="/a", gunicorn_config=task.gunicorn_config)
    assert argv[argv.index("--workers") + 1] == "2"
    assert argv[argv.index("--timeout") + 1] == "120"
    assert argv[argv.index("--worker-class") + 1] == "gthread"
    assert "--preload-app" in argv and argv[-1] == "app:application"
    assert gunicorn_argv(config(), bind="b", app_dir="a", gunicorn_config={"threads": "8"}).count("--threads") == 1


@pytest.mark.parametrize(("entry", "message"), [
    (("bind", "0.0.0.0:1"), "set by flow-airflow"),
    (("--chdir", "/"), "set by flow-airflow"),
    (("user", "root"), "set by flow-airflow"),
    (("config", "python:evil"), "set by flow-airflow"),
    (("reload_extra_file", "x"), "not a gunicorn setting a deploy task may set"),
    (("workers", "0"), "not a whole number >= 1"),
    (("workers", "two"), "not a whole number >= 1"),
    (("timeout", True), "not a whole number >= 0"),
    (("worker_class", "gevent"), "not one of sync, gthread"),
    (("preload_app", "maybe"), "not true or false"),
])
def test_unknown_owned_or_bad_settings_are_refused(entry: tuple[str, object], message: str) -> None:
    with pytest.raises(GunicornConfigError, match=message):
        gunicorn_argv(config(), bind="b", app_dir="a", gunicorn_config=[entry])


def test_config_vars_and_flask_config_are_the_flask_config() -> None:
    task = deploy_task(config_vars=["THRESHOLD=0.5", "NAME=iris", "FLAGS=[1, 2]", "DEBUG_X=true", "EMPTY="],
                       flask_config=[{"key": "NAME", "value": "from-flask-config"}, {"key": "N", "value": 3}])
    assert flask_config_of(task) == {"THRESHOLD": 0.5, "NAME": "from-flask-config", "FLAGS": [1, 2],
                                     "DEBUG_X": True, "EMPTY": "", "N": 3}


def test_the_config_file_is_what_the_app_reads() -> None:
    blueprint = config(prep_file="", prep_function="", accept_files=True, input_example={"text": ""},
                       config_vars=["A=1"])
    assert json.loads(blueprint.model_dump_json()) == {
        "title": "iris-classifier", "version": "3", "project_dir": "/runs/7/serve", "file_name": "predict.py",
        "function_name": "predict", "prep_file": None, "prep_function": None, "accept_files": True,
        "flask_config": {"A": 1}, "open": False, "input_example": {"text": ""}, "timeout": None}


def test_a_title_must_be_url_safe_and_unknown_keys_are_refused() -> None:
    with pytest.raises(ValidationError, match="title"):
        EndpointConfig(title="iris classifier", version="1", project_dir="/p", file_name="f.py", function_name="f")
    with pytest.raises(ValidationError, match="api_key"):
        EndpointConfig(title="a", version="1", project_dir="/p", file_name="f.py", function_name="f", api_key="k")
