"""The environment of every process the benchmarks start, and the machine they run on."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def clean_env(home: Path, dags: Path | None = None, **extra: str) -> dict[str, str]:
    """The caller's environment without Airflow settings, pointing Airflow at ``home``.

    Bytecode caching is switched back on: with ``PYTHONDONTWRITEBYTECODE`` set (as in some
    sandboxes and CI images) an editable install is compiled from source on every import,
    which costs each Airflow task process about 0.3 s and is not what a deployment sees.
    The repository itself is kept off ``PYTHONPATH`` (its ``flow_airflow.egg-info`` would register
    the plugin twice): helpers run as scripts, from a folder of the benchmark's own.
    """
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AIRFLOW__") and k not in {"AIRFLOW_HOME", "AIRFLOW_CONFIG", "PYTHONDONTWRITEBYTECODE"}}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(dags or home / "dags"),
        AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def server_env() -> dict[str, str]:
    """Extra environment for the harness' ``airflow standalone`` (see :func:`clean_env`)."""
    return {"PYTHONDONTWRITEBYTECODE": ""}


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal")))
        memory = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    airflow = subprocess.run([sys.executable, "-c", "import airflow; print(airflow.__version__)"],
                             capture_output=True, text=True, check=False).stdout.strip()
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "flow_airflow"],
                           capture_output=True, text=True, check=False).stdout.strip()
    return {
        "cpu": f"{cpu or platform.processor()} x {os.cpu_count()}",
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "airflow": airflow,
        "flow-airflow": f"{commit}{' + uncommitted changes in flow_airflow/' if dirty else ''}",
    }
