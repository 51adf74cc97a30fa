"""Params given when a run is triggered: the run's ``conf``, checked and applied (at run time).

The shape (the DAG's params, Airflow's trigger form, see :func:`flow_airflow.render.params.flow_params`)::

    {"<task title>": {"<param key>": ["0.1", "0.01"] | "0.1, 0.01" | "0.1" | null}}

A list is a grid, a text is one value or a comma-separated grid (as in the flow file), ``null``,
``""`` or ``[]`` mean "not set" (the param is not passed). Tasks and params left out keep the
file's values. The key ``flow_airflow`` holds options of the run, not a task's params:
``{"flow_airflow": {"reuse": true}}`` (:func:`reuse_asked`). Airflow checks the shape when the run
is triggered (each task's JSON Schema); a key naming no task with params, which Airflow cannot
refuse, fails the run at its first task.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

Scalar = (str, int, float, bool)
OPTIONS = "flow_airflow"  # the conf's key of the run's options
RUN_OPTIONS = {"reuse": bool}  # option -> its type


class ConfError(ValueError):
    """A run's conf that does not fit the flow: the message says what and what is known."""


def check(conf: Any, known: Mapping[str, list[str]]) -> dict[str, dict[str, list[str] | None]]:
    """The run's overrides, ``{title: {key: values or None}}``, from its ``conf``.

    ``known``: each task title with params -> its param keys. Raises :class:`ConfError`.
    """
    if not conf:
        return {}
    if not isinstance(conf, Mapping):
        raise ConfError(f"the run's conf must be an object of tasks, not {_kind(conf)}")
    result: dict[str, dict[str, list[str] | None]] = {}
    for title, given in conf.items():
        if title == OPTIONS and title not in known:
            _check_options(given)
            continue
        if title not in known:
            tasks = ", ".join(f"'{t}'" for t in known) or "none"
            raise ConfError(f"the run's conf names '{title}', which is no task with params of this flow "
                            f"(tasks with params: {tasks}); use {{\"<task title>\": {{\"<param>\": [values]}}}}")
        if not isinstance(given, Mapping):
            raise ConfError(f"conf '{title}' must be an object of params, e.g. {{\"{(known[title] or ['x'])[0]}\": "
                            f"[\"1\", \"2\"]}}, not {_kind(given)}")
        result[title] = {}
        for key, value in given.items():
            if key not in known[title]:
                raise ConfError(f"conf '{title}' names the param '{key}', which '{title}' does not have "
                                f"(its params: {', '.join(known[title])})")
            result[title][key] = values_of(title, key, value)
    return result


def _check_options(given: Any) -> None:
    if not isinstance(given, Mapping):
        raise ConfError(f"conf '{OPTIONS}' holds the run's options, an object such as {{\"reuse\": true}}, "
                        f"not {_kind(given)}")
    for option, value in given.items():
        if option not in RUN_OPTIONS:
            raise ConfError(f"conf '{OPTIONS}' names the option '{option}', which is none of "
                            f"{', '.join(RUN_OPTIONS)}")
        if not isinstance(value, RUN_OPTIONS[option]):
            raise ConfError(f"conf '{OPTIONS}' option '{option}' is true or false, not {_kind(value)}")


def reuse_asked(context: Any) -> bool:
    """Whether this run reuses experiments of the same key (:mod:`flow_airflow.runtime.reuse`): its conf's
    ``{"flow_airflow": {"reuse": ...}}``, else ``[flow_airflow] reuse`` (false by default)."""
    from flow_airflow import settings

    conf = getattr(context.get("dag_run"), "conf", None) or {}
    options = conf.get(OPTIONS) if isinstance(conf, Mapping) else None
    if isinstance(options, Mapping) and isinstance(options.get("reuse"), bool):
        return bool(options["reuse"])
    return bool(settings.value("reuse"))


def values_of(title: str, key: str, value: Any) -> list[str] | None:
    """A param's values from the conf, validated like the file's own: None when not set."""
    from flow_airflow.spec import models

    if value is None or value == "" or value == []:
        return None
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, Scalar):
            raise ConfError(f"conf '{title}' param '{key}': a value is text, a number or true/false, "
                            f"not {_kind(item)}")
    grid = models.Param(key=key, value=value).grid()
    return [v for v in grid if v.strip()] or None


def apply(params: list[list[Any]], overrides: Mapping[str, list[str] | None]) -> list[tuple[str, list[str]]]:
    """The task's params (``[[key, values]]``, the file's order, [] when not set) with the overrides;
    params that are not set are left out."""
    merged = [(key, overrides.get(key, values)) for key, values in params]
    return [(key, list(values)) for key, values in merged if values]


def task_params(context: Any, title: str, params: list[list[Any]], log: logging.Logger) -> list[tuple[str, list[str]]]:
    """The params a task runs with in this run: the file's, with the run's conf over them.

    Fails the task (no retry) when the conf does not fit the flow.
    """
    overrides = run_overrides(context, log).get(title, {})
    for key, values in overrides.items():
        log.info("param '%s' from the run's conf: %s", key, "not set" if values is None else values)
    return apply(params, overrides)


def run_overrides(context: Any, log: logging.Logger | None = None) -> dict[str, dict[str, list[str] | None]]:
    """The checked overrides of the run (``conf``), or an ``AirflowFailException`` saying why not
    (also logged as one line, when ``log`` is given)."""
    from airflow.sdk.exceptions import AirflowFailException

    dag_run = context.get("dag_run")
    conf = getattr(dag_run, "conf", None)
    if not conf:
        return {}
    try:
        return check(conf, known_params(context["dag"]))
    except ConfError as e:
        message = f"{e}. The run's conf was: {json.dumps(conf)}"
        if log:
            log.error("%s", message)
        raise AirflowFailException(message) from None


def known_params(dag: Any) -> dict[str, list[str]]:
    """Task title -> param keys, from the DAG's params (their JSON Schemas)."""
    params = dag.params
    return {title: list((params.get_param(title).schema or {}).get("properties", {})) for title in params}


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", type(None): "null"}.get(type(value), f"'{value}'")
