"""The environment variables cnvrg gives an experiment.

Variable names follow the spec ("Tags and Parameters Flow"): upper case, spaces to
underscores; flow-airflow also leaves out every other symbol (as cnvrg does for folder
names), so a name holds only ``[A-Z0-9_]``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from pathlib import PurePath

from flow_airflow.computes.base import SDK_PATH
from flow_airflow.runtime.paths import map_path

# Names cnvrg (and flow-airflow) set themselves: a tag or param never takes them over.
RESERVED = frozenset(
    {
        "CNVRG_TASKS_PASSED_CONDITION",
        "CNVRG_OUTPUT_DIR",
        "CNVRG_WORKDIR",
        "CNVRG_EXPERIMENT_TITLE",
        "CNVRG_EXPERIMENT_SLUG",
        "CNVRG_PROJECT",
        "CNVRG_JOB_ID",
        "CNVRG_JOB_NAME",
    }
)
# What the flow's values may add to an environment (the rest of ~2 MiB is argv and the worker's own).
ENV_BUDGET = 1024 * 1024

Warn = Callable[[str], None]


def env_name(*parts: str) -> str:
    """``CNVRG_TASK_A_MODEL_ACCURACY`` from ('CNVRG', 'Task A', 'model accuracy').

    Accents are dropped (``é`` -> ``E``), spaces and hyphens become ``_`` (``Data-Preprocessing`` ->
    ``DATA_PREPROCESSING``, as cnvrg's published blueprints read them), any other symbol is left out.
    """
    names = []
    for part in parts:
        ascii_text = unicodedata.normalize("NFKD", part).encode("ascii", "ignore").decode()
        names.append(re.sub(r"[^A-Z0-9_]", "", re.sub(r"[ -]", "_", ascii_text.strip().upper())))
    return "_".join(names)


def _upstream_vars(
    upstream: Mapping[str, Mapping[str, Mapping[str, str]]], taken: set[str], warn: Warn
) -> dict[str, str]:
    """``CNVRG_<TASK>_<TAG>`` for every param and tag before; a name two of them give is set for neither."""
    wanted: dict[str, list[tuple[str, str, str]]] = {}
    for title, info in upstream.items():
        for key, value in {**info.get("params", {}), **info.get("tags", {})}.items():
            name = env_name("CNVRG", title, key) if env_name(key) else ""
            wanted.setdefault(name, []).append((title, key, str(value)))
    values: dict[str, str] = {}
    for name, sources in wanted.items():
        said = " and ".join(f"'{t}'.'{k}'" for t, k, _ in sources)
        if not name:
            warn(f"{said} gives no variable name: its name has no letter or digit A-Z, 0-9")
        elif name in taken:
            warn(f"{name} (from {said}) is not set: the name is cnvrg's own variable, which keeps its value")
        elif len(sources) > 1:
            warn(f"{name} is not set: {said} all give this name; use {{{{ Task.tag }}}} to tell them apart")
        elif "\0" in sources[0][2]:
            warn(f"{name} is not set: {said} holds a NUL byte")
        else:
            values[name] = sources[0][2]
    return values


def experiment_env(
    *,
    params: list[list[str]],
    upstream: Mapping[str, Mapping[str, Mapping[str, str]]],
    inputs: Mapping[str, PurePath],
    passed_condition: list[PurePath],
    workdir: PurePath,
    output_dir: PurePath,
    base: Mapping[str, str],
    paths: Mapping[str, PurePath] | None = None,
    datasets: Mapping[str, PurePath] | None = None,
    sdk: PurePath = SDK_PATH,
    warn: Warn = lambda message: None,
) -> dict[str, str]:
    """The experiment's environment: ``base``, then what the flow gives it (values naming cnvrg's roots mapped).

    Paths are as the command sees them (its compute's layout); ``sdk``: the folder of the ``cnvrg`` module;
    ``passed_condition``: the input folders of the parent experiments that passed the task's condition, as
    ``CNVRG_TASKS_PASSED_CONDITION`` (spec, "Conditions") and one ``CNVRG_<FOLDER>_PASSED_CONDITION=true``
    each (what cnvrg's published compare components read: ``CNVRG_LOGISTIC_REGRESSION_PASSED_CONDITION``);
    ``datasets``: name -> its folder (cnvrg's ``/data/<name>``), as ``CNVRG_DATASET_<NAME>``.
    """
    paths = paths or {}
    own: dict[str, str] = {}
    keys: dict[str, list[str]] = {}
    for key, value in params:
        keys.setdefault(env_name("CNVRG_TAG", key), []).append(key)
        own[env_name("CNVRG_TAG", key)] = map_path(value, paths)
    for name, same in keys.items():
        if len(same) > 1:
            del own[name]
            warn(f"{name} is not set: the params {', '.join(repr(k) for k in same)} all give this name")
    for folder, path in inputs.items():
        own[env_name("INPUT", folder)] = str(path)
    for name, path in (datasets or {}).items():
        own[env_name("CNVRG_DATASET", name)] = str(path)
    if passed_condition:
        own["CNVRG_TASKS_PASSED_CONDITION"] = ",".join(str(p) for p in passed_condition)
        # what cnvrg's published compare components read: one per input folder that passed, by its name
        own.update({env_name("CNVRG", p.name, "PASSED_CONDITION"): "true" for p in passed_condition})
    own["CNVRG_WORKDIR"] = str(workdir)
    own["CNVRG_OUTPUT_DIR"] = str(output_dir)
    env = dict(base)
    spent = 0
    left_out = 0
    for name, value in _upstream_vars(upstream, set(own) | RESERVED, warn).items():
        value = map_path(value, paths)
        spent += len(name) + len(value.encode(errors="replace")) + 2
        if spent > ENV_BUDGET:
            left_out += 1
            continue
        env[name] = value
    if left_out:
        warn(f"{left_out} CNVRG_<TASK>_<TAG> variables are not set: the tags before this task take more than "
             f"{ENV_BUDGET:,} bytes, more than an environment holds")
    env.update(own)
    env["PYTHONPATH"] = str(sdk) + (f":{env['PYTHONPATH']}" if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"  # so that output and tags stream into the log as they come
    return env
