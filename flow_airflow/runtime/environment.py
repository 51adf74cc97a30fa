"""The environment variables cnvrg gives an experiment."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

SDK_PATH = Path(__file__).parent / "sdk"  # holds the cnvrg-compatible ``cnvrg`` module


def env_name(*parts: str) -> str:
    """``CNVRG_TASK_A_MODEL_ACCURACY`` from ('CNVRG', 'Task A', 'model accuracy')."""
    return "_".join(p.strip().upper().replace(" ", "_") for p in parts)


def experiment_env(
    *,
    params: list[list[str]],
    upstream: Mapping[str, Mapping[str, Mapping[str, str]]],
    inputs: Mapping[str, Path],
    passed_condition: list[Path],
    workdir: Path,
    output_dir: Path,
    base: Mapping[str, str],
) -> dict[str, str]:
    env = dict(base)
    for title, info in upstream.items():
        for key, value in {**info.get("params", {}), **info.get("tags", {})}.items():
            env[env_name("CNVRG", title, key)] = str(value)
    for key, value in params:
        env[env_name("CNVRG_TAG", key)] = value
    for folder, path in inputs.items():
        env[env_name("INPUT", folder)] = str(path)
    if passed_condition:
        env["CNVRG_TASKS_PASSED_CONDITION"] = ",".join(str(p) for p in passed_condition)
    env["CNVRG_WORKDIR"] = str(workdir)
    env["CNVRG_OUTPUT_DIR"] = str(output_dir)
    env["PYTHONPATH"] = str(SDK_PATH) + (f":{env['PYTHONPATH']}" if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"  # so that output and tags stream into the log as they come
    return env
