"""Reuse: grid_three (2 x 3 x 5 = 35 experiments) where each experiment works ``seconds``, run again with
one value of Grid Search C changed, reuse on against reuse off (issue 28).

Each side is ``flow-airflow run`` (``dag.test()``, one task instance at a time) in its own Airflow home
with its own artifact store: a first run fills the reuse index, then the changed run is timed, with
``--reuse`` on one side and without it on the other. With reuse, only the 6 routes of the new value
run (29 of 35 are taken from the first run); the target is at most a third of the time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from bench.env import clean_env
from bench.report import Row

FLOW = """\
flow: Bench Reuse
tasks:
  - title: Grid Search A
    type: exec
    input: python3 work.py
    computes: [local]
    params: [{key: a, value: [1, 2]}]
  - title: Grid Search B
    type: exec
    input: python3 work.py
    computes: [local]
    params: [{key: b, value: [x, y, z]}]
  - title: Grid Search C
    type: exec
    input: python3 work.py
    computes: [local]
    params: [{key: c, value: [10, 20, 30, 40, 50]}]
relations:
  - {from: Grid Search A, to: Grid Search C}
  - {from: Grid Search B, to: Grid Search C}
"""
WORK = "import sys, time\ntime.sleep({seconds})\nprint('cnvrg_tag_args:', ' '.join(sys.argv[1:]))\n"
CHANGED = {"Grid Search C": {"c": ["10", "20", "30", "40", "55"]}}


def _side(root: Path, seconds: float, reuse: bool) -> tuple[float, str]:
    """Seconds of the changed run, and its summary line."""
    home, project = root / "home", root / "project"
    project.mkdir(parents=True, exist_ok=True)
    (project / "flow.yaml").write_text(FLOW)
    (project / "work.py").write_text(WORK.format(seconds=seconds))
    env = clean_env(home, AIRFLOW__FLOW_AIRFLOW__ARTIFACTS_FOLDER=str(root / "artifacts"))
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    cli = [sys.executable, "-m", "flow_airflow.cli", "run", str(project / "flow.yaml")]
    first = subprocess.run(cli, env=env, capture_output=True, text=True, check=False)
    if first.returncode:
        raise RuntimeError(f"the first run failed:\n{first.stdout[-2000:]}{first.stderr[-2000:]}")
    conf = json.dumps({**CHANGED, **({"flow_airflow": {"reuse": True}} if reuse else {})})
    started = time.perf_counter()
    again = subprocess.run([*cli, "--conf", conf], env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - started
    if again.returncode:
        raise RuntimeError(f"the changed run failed:\n{again.stdout[-2000:]}{again.stderr[-2000:]}")
    summary = next((line for line in again.stdout.splitlines() if line.startswith("DAG '")), "")
    return took, summary


def run(root: Path, seconds: float) -> list[Row]:
    on, on_summary = _side(root / "on", seconds, reuse=True)
    off, off_summary = _side(root / "off", seconds, reuse=False)
    if "29 of them reused" not in on_summary or "reused" in off_summary:
        raise RuntimeError(f"reuse did not take 29 of 35 experiments: on: {on_summary!r}; off: {off_summary!r}")
    return [Row("reuse", f"grid_three ({seconds:g} s per experiment) again with one C value changed: reuse on / off",
                on, off, target=1 / 3, ratio_of="reuse on / reuse off",
                note=f"on: {on_summary.split(': ', 1)[-1]}; off: {off_summary.split(': ', 1)[-1]}")]
