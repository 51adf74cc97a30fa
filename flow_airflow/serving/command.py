"""The serving app's configuration and its gunicorn command line (argv lists only, never a shell).

:class:`EndpointConfig` is the JSON file the app (``flow_airflow/serving/app.py``) reads from
``CNVRG_ENDPOINT_CONFIG``; :func:`gunicorn_argv` is the command that serves it. Light on purpose
(pydantic and the standard library): the deploy operator and the CLI import it.

Flask configuration (spec "Deploy Task Keys"): ``config_vars: [KEY=VALUE, ...]`` "are the key value
pairs for the Flask config of the endpoint"; the blueprint dialect writes ``flask_config: [{key,
value}]``. Both go into the app's ``app.config`` (the predict function reads them as
``flask.current_app.config["KEY"]``). A ``config_vars`` value is text, typed the way Flask types
configuration read from text (``Config.from_prefixed_env``): JSON when it parses (``0.5``,
``true``, ``[1, 2]``), else the string; ``flask_config`` values keep their YAML type. A key in both:
``flask_config`` wins.

gunicorn configuration (blueprint ``gunicorn_config: [{key, value}]``): gunicorn's own setting
names (``workers``, ``threads``, ``timeout``; ``-`` or ``_``, any case), checked and passed as
command-line options; the settings flow-airflow owns (``bind``, ``chdir``, ``pythonpath``, ...) and
settings that would run other code or change users are refused, naming the allowed ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from flow_airflow.spec.models import DeployTask

APP_FILE = Path(__file__).with_name("app.py")  # the serving app; its folder is ``app_dir`` on this machine
APP_MODULE = "app:application"  # app.py's WSGI callable, found through --pythonpath <app_dir>
DEFAULT_WORKERS = 1
DEFAULT_THREADS = 4

# gunicorn settings a deploy task may set: name -> (kind, smallest value or allowed values)
GUNICORN_SETTINGS: dict[str, tuple[str, Any]] = {
    "workers": ("int", 1), "threads": ("int", 1), "timeout": ("int", 0), "graceful_timeout": ("int", 0),
    "keepalive": ("int", 0), "max_requests": ("int", 0), "max_requests_jitter": ("int", 0),
    "backlog": ("int", 1), "worker_connections": ("int", 1), "limit_request_line": ("int", 0),
    "limit_request_fields": ("int", 0), "limit_request_field_size": ("int", 0),
    "worker_class": ("choice", ("sync", "gthread")),  # others need packages the image may lack
    "log_level": ("choice", ("debug", "info", "warning", "error", "critical")),
    "preload_app": ("flag", None),
}
OWNED = frozenset({"bind", "chdir", "pythonpath", "wsgi_app", "daemon", "pidfile", "config", "reload",
                   "user", "group", "umask", "worker_tmp_dir", "paste", "check_config", "print_config"})


class GunicornConfigError(ValueError):
    """A ``gunicorn_config`` entry that cannot be used; the message names the key and why."""


class EndpointConfig(BaseModel):
    """What the serving app needs; ``model_dump_json()`` is the file it reads.

    ``title``: the endpoint's name (letters, digits, hyphens: it is in the URL
    ``/api/v1/endpoints/<title>``); ``version``: the served version (shown by ``/health``);
    ``project_dir``: the run's files (the working directory and first ``sys.path`` entry; the model
    is under ``input/<task>`` there, ``/input/<task>`` in containers); ``file_name`` /
    ``function_name``: the predict function; ``prep_file`` / ``prep_function``: the optional
    preprocessing before it; ``accept_files``: the input is a file; ``flask_config``: Flask
    configuration; ``open``: no API key needed; ``input_example``: a request body's
    ``input_params`` that must answer (the deploy check), or None; ``timeout``: seconds a prediction
    may take (then 504, and the worker is replaced; ``[flow_airflow] endpoint_timeout``), None: no bound.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field(pattern=r"^[A-Za-z0-9-]+$")
    version: str = Field(min_length=1)
    project_dir: str = Field(min_length=1)
    file_name: str = Field(min_length=1)
    function_name: str = Field(min_length=1)
    prep_file: str | None = None
    prep_function: str | None = None
    accept_files: bool = False
    flask_config: dict[str, Any] = Field(default_factory=dict)
    open: bool = False
    input_example: Any = None
    timeout: float | None = Field(None, gt=0)

    @classmethod
    def for_task(cls, task: DeployTask, *, title: str, version: str, project_dir: str,
                 open: bool = False, timeout: float | None = None) -> EndpointConfig:
        """The configuration of a deploy task's endpoint (blueprint ``''`` prep hooks mean none)."""
        return cls(title=title, version=version, project_dir=project_dir, file_name=task.file_name,
                   function_name=task.function_name, prep_file=task.prep_file or None,
                   prep_function=task.prep_function or None, accept_files=bool(task.accept_files),
                   flask_config=flask_config_of(task), open=open, input_example=task.input_example,
                   timeout=timeout)


def flask_config_of(task: DeployTask) -> dict[str, Any]:
    """``config_vars`` (``KEY=VALUE``, typed as Flask types text) then ``flask_config`` (``{key, value}``)."""
    config: dict[str, Any] = {}
    for item in task.config_vars:
        key, _, text = item.partition("=")
        try:
            config[key.strip()] = json.loads(text)
        except ValueError:
            config[key.strip()] = text
    config.update({kv.key: kv.value for kv in task.flask_config})
    return config


def gunicorn_argv(config: EndpointConfig, *, bind: str, app_dir: str, python: str = "python3",
                  gunicorn_config: Iterable[tuple[str, Any]] | Mapping[str, Any] = ()) -> list[str]:
    """``[python, -m, gunicorn, --bind, bind, --workers, 1, --threads, 4, --chdir, <project_dir>,
    --pythonpath, app_dir, <task's settings>..., app:application]``.

    ``app_dir``: the folder holding ``app.py``; ``gunicorn_config``: ``(key, value)`` pairs, a mapping
    or the task's ``{key, value}`` models, overriding the defaults.
    The process also needs ``CNVRG_ENDPOINT_CONFIG`` (and ``CNVRG_ENDPOINT_API_KEY``) in its environment.
    :raises GunicornConfigError: an unknown, owned or badly typed setting.
    """
    settings: dict[str, Any] = {"workers": DEFAULT_WORKERS, "threads": DEFAULT_THREADS}
    for key, value in _pairs(gunicorn_config):
        name = _setting_name(key)
        settings[name] = _checked(name, value)
    argv = [python, "-m", "gunicorn", "--bind", bind]
    for name, value in settings.items():
        option = "--" + name.replace("_", "-")
        if GUNICORN_SETTINGS[name][0] == "flag":
            argv += [option] if value else []
        else:
            argv += [option, str(value)]
    return [*argv, "--chdir", config.project_dir, "--pythonpath", app_dir, APP_MODULE]


def _pairs(entries: Iterable[Any] | Mapping[str, Any]) -> list[tuple[str, Any]]:
    if isinstance(entries, Mapping):
        return list(entries.items())
    return [(e.key, e.value) if hasattr(e, "key") else tuple(e) for e in entries]


def _setting_name(key: str) -> str:
    name = re.sub(r"[-\s]+", "_", str(key).strip().lstrip("-")).lower()
    if name in OWNED:
        raise GunicornConfigError(f"gunicorn_config '{key}': set by flow-airflow, not by a deploy task")
    if name not in GUNICORN_SETTINGS:
        raise GunicornConfigError(f"gunicorn_config '{key}': not a gunicorn setting a deploy task may set "
                                  f"(allowed: {', '.join(sorted(GUNICORN_SETTINGS))})")
    return name


def _checked(name: str, value: Any) -> Any:
    """``value`` as the setting's kind: a whole number at least the minimum, one of the choices, or a flag."""
    kind, rule = GUNICORN_SETTINGS[name]
    text = str(value).strip().lower()
    if kind == "flag":
        if text not in ("true", "false", "1", "0", "yes", "no"):
            raise GunicornConfigError(f"gunicorn_config '{name}': '{value}' is not true or false")
        return text in ("true", "1", "yes")
    if kind == "choice":
        if text not in rule:
            raise GunicornConfigError(f"gunicorn_config '{name}': '{value}' is not one of {', '.join(rule)}")
        return text
    if isinstance(value, bool) or not re.fullmatch(r"\d+", text) or int(text) < rule:
        raise GunicornConfigError(f"gunicorn_config '{name}': '{value}' is not a whole number >= {rule}")
    return int(text)
