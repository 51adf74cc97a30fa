"""A thousand flows in one dags folder, parsed by Airflow's real DAG processor, against hand-written DAG files.

Three dags folders, each with its own Airflow home (SQLite, migrated) and Airflow's default
timeouts (``[core] dagbag_import_timeout`` 30 s, ``[dag_processor] dag_file_processor_timeout``
50 s, two parsing processes):

- shares: ``flows`` flow folders (a YAML file of ``tasks`` tasks and its script each) and the 16
  loader files ``flow-airflow import`` installs (``flows_01_of_16.py`` ...), each compiling its share;
- hand: ``flows`` hand-written DAG files of the same tasks, mapping and commands;
- one loader (``--thousand-one-loader``): the same flow folders under a single ``flows.py``, as
  before the shares.

Each folder is parsed twice by ``airflow dag-processor --num-runs 1`` (every file once, then
exit): cold (no plan cache, no bytecode of the DAG files, an empty database) and warm (both
kept). Measured: the wall time of the processor, its CPU time with its parsing processes
(``wait4``), the DAGs listed in the database afterwards (not stale), import errors, and the
longest parse of one file (``DagModel.last_parse_duration``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.env import clean_env
from bench.report import Row
from bench.workloads import Workload, pipelines

QUERY = r"""
import json
from sqlalchemy import func, select
from airflow.models.dag import DagModel
from airflow.models.errors import ParseImportError
from airflow.utils.session import create_session
with create_session() as s:
    listed = s.scalar(select(func.count()).select_from(DagModel).where(DagModel.is_stale.is_(False)))
    longest = s.scalar(select(func.max(DagModel.last_parse_duration)))
    files = s.scalar(select(func.count(func.distinct(DagModel.relative_fileloc))))
    errors = [e.filename for e in s.scalars(select(ParseImportError))]
print(json.dumps({"listed": listed, "longest": longest or 0.0, "files": files, "errors": errors}))
"""


def prepare(root: Path, flows: int, tasks: int, one_loader: bool) -> dict[str, Path]:
    """The dags folders: {"shares": ..., "hand": ..., ("one loader": ...)}."""
    from flow_airflow.cli import LOADER
    from flow_airflow.shares import share_files

    base = pipelines(tasks)
    folders = {"shares": root / "shares" / "dags", "hand": root / "hand" / "dags"}
    if one_loader:
        folders["one loader"] = root / "one" / "dags"
    project = root / "hand" / "project"
    for i in range(flows):
        workload = Workload(f"Bench Flow {i:04d}", base.tasks)
        workload.write_flow(folders["shares"] / f"flow_{i:04d}")
        if one_loader:
            workload.write_flow(folders["one loader"] / f"flow_{i:04d}")
        workload.write_hand(folders["hand"] / f"hand_{i:04d}.py", f"hand_{i:04d}", project)
    for loader in share_files(folders["shares"]):
        loader.write_text(LOADER)
    if one_loader:
        (folders["one loader"] / "flows.py").write_text(LOADER)
    return folders


def _airflow(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True,
                          check=False, cwd=env["AIRFLOW_HOME"])


def process(env: dict[str, str]) -> dict[str, Any]:
    """One ``airflow dag-processor --num-runs 1``: wall and CPU seconds (with its children), and the DB after it."""
    log = Path(env["AIRFLOW_HOME"]) / "dag-processor.log"
    with log.open("a") as out:
        started = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "airflow", "dag-processor", "--num-runs", "1"], env=env,
                                 stdout=out, stderr=subprocess.STDOUT, cwd=env["AIRFLOW_HOME"])
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise RuntimeError(f"airflow dag-processor exited with {child.returncode}; see {log}")
    query = subprocess.run([sys.executable, "-c", QUERY], env=env, capture_output=True, text=True, check=False)
    if query.returncode:
        raise RuntimeError(f"reading the metadata DB failed:\n{query.stderr[-3000:]}")
    db = json.loads(query.stdout.strip().splitlines()[-1])
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, **db}


def measure(root: Path, folders: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Every folder parsed cold, then warm: {"<side> cold": figures, "<side> warm": figures}."""
    results: dict[str, dict[str, Any]] = {}
    for side, dags in folders.items():
        home = dags.parent / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = clean_env(home, dags, AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="True")
        migrated = _airflow(["db", "migrate"], env)
        if migrated.returncode:
            raise RuntimeError(f"airflow db migrate failed:\n{migrated.stderr[-3000:]}")
        for state in ("cold", "warm"):
            results[f"{side} {state}"] = process(env)
            shown = {k: v for k, v in results[f"{side} {state}"].items() if k != "errors"}
            print(f"  {side} {state}: {json.dumps(shown)}", file=sys.stderr, flush=True)
    return results


def run(root: Path, flows: int, tasks: int, one_loader: bool) -> list[Row]:
    folders = prepare(root, flows, tasks, one_loader)
    results = measure(root, folders)
    rows = []
    for state in ("cold", "warm"):
        shares, hand = results[f"shares {state}"], results[f"hand {state}"]
        for side, figures in (("shares", shares), ("hand", hand)):
            if figures["listed"] != flows or figures["errors"]:
                raise AssertionError(f"{side} {state}: {figures['listed']} of {flows} DAGs listed, "
                                     f"import errors {figures['errors'][:5]}")
        rows.append(Row(
            "thousand",
            f"{flows:,} flows of {tasks} tasks, {state}: DAG processor CPU per flow (all {flows:,} listed)",
            shares["cpu"] / flows, hand["cpu"] / flows, target=1.2,
            note=(f"{state}: 16 loader files against {flows:,} hand-written files; processor wall time "
                  f"{shares['wall']:.0f} s vs {hand['wall']:.0f} s, CPU {shares['cpu']:.0f} s vs {hand['cpu']:.0f} s; "
                  f"longest parse of one file {shares['longest']:.1f} s vs {hand['longest']:.1f} s "
                  "(dagbag_import_timeout 30 s, dag_file_processor_timeout 50 s); import errors 0 and 0"),
            samples={"flow": [shares["cpu"]], "hand": [hand["cpu"]]}))
        rows.append(Row(
            "thousand", f"{flows:,} flows, {state}: longest parse of one loader file (second column: Airflow's "
            "dagbag_import_timeout)",
            shares["longest"], 30.0, target=1.0, ratio_of="longest parse / dagbag_import_timeout"))
    if one_loader:
        for state in ("cold", "warm"):
            one = results[f"one loader {state}"]
            rows.append(Row(
                "thousand", f"{flows:,} flows under one loader file (before the shares), {state}: DAGs listed "
                "(second column: flows)",
                float(one["listed"]), float(flows), unit="", ratio_of="listed / flows",
                note=(f"one loader, {state}: {one['listed']} of {flows:,} listed, {len(one['errors'])} import errors, "
                      f"parse of the loader {one['longest']:.1f} s, processor wall {one['wall']:.0f} s")))
    return rows
