"""Parse time: the loader and its flows against hand-written DAG files with the same tasks and mapping.

For every size, two DAG folders: a loader file (``flows.py``; dags/ holds one per share) with one
flow of ``n`` tasks, and a hand-written DAG file of the same tasks, mapped over the same routes. Both
are parsed in turn, ``reps`` times, by :mod:`bench.parse_worker` (as the DAG processor does, and cold). Also: a
10,000-route grid against a 3-route one, and which provider modules the loader imports.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.env import clean_env
from bench.report import Row
from bench.server import LOADER, median
from bench.workloads import Workload, pipelines, single_grid

WORKER = Path(__file__).with_name("parse_worker.py")


@dataclass
class Case:
    label: str
    workload: Workload
    flow_file: Path  # the loader, alone with the flow in its folder
    hand_file: Path


def prepare(root: Path, workloads: list[tuple[str, Workload]]) -> list[Case]:
    cases = []
    for label, workload in workloads:
        name = workload.dag_id
        folder = root / "flows" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "flows.py").write_text(LOADER)
        workload.write_flow(folder / "flow")
        hand = root / "hand" / name / "dag.py"
        workload.write_hand(hand, f"hand_{name}", root / "hand" / name / "project")
        cases.append(Case(label, workload, folder / "flows.py", hand))
    return cases


def measure(files: list[Path], mode: str, reps: int, env: dict[str, str]) -> dict[str, Any]:
    request = json.dumps({"mode": mode, "reps": reps, "files": [str(f) for f in files]})
    done = subprocess.run([sys.executable, str(WORKER)], input=request, capture_output=True, text=True, env=env,
                          cwd=env["AIRFLOW_HOME"], check=False)
    if done.returncode:
        raise RuntimeError(f"bench.parse_worker ({mode}) failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


CHECK = r"""
import json, re, sys
import airflow.sdk, airflow.dag_processing.processor  # Airflow's own imports are not the loader's
before = set(sys.modules)
import flow_airflow.plugin
from flow_airflow.loader import load_dags
counts = {}
for loader in json.loads(sys.argv[1]):
    for dag in load_dags(loader).values():
        rows = dict(re.findall(r"^\| (.+?) \| (\d+) routes?", dag.doc_md or "", re.M))
        static = {t.task_id: len(t.expand_input.value["route"]) for t in dag.tasks
                  if t.task_id.endswith(".run") and isinstance(t.expand_input.value.get("route"), list)}
        counts[dag.dag_id] = {"plan": {k: int(v) for k, v in rows.items()}, "static": static}
new = sorted(set(sys.modules) - before)
hit = lambda m: re.search(r"(^|\.)(kubernetes|docker)(\.|$)", m)
print(json.dumps({"counts": counts, "providers": [m for m in new if hit(m)],
                  "airflow_itself": sorted(m for m in before if hit(m))}))
"""


def check(cases: list[Case], env: dict[str, str]) -> dict[str, Any]:
    """Same mapping as the hand-written files, and no Kubernetes or Docker provider imported."""
    done = subprocess.run([sys.executable, "-c", CHECK, json.dumps([str(c.flow_file) for c in cases])],
                          capture_output=True, text=True, env=env, cwd=env["AIRFLOW_HOME"], check=False)
    if done.returncode:
        raise RuntimeError(f"loading the flows failed:\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for case in cases:
        compiled = result["counts"].get(case.workload.dag_id)
        if compiled is None:
            raise AssertionError(f"the loader made no DAG of {case.workload.title!r}")
        expected = case.workload.route_counts()
        if compiled["plan"] != expected:
            raise AssertionError(f"{case.workload.title}: flow-airflow plans {compiled['plan']}, expected {expected}")
        by_slug = {t.slug: expected[t.title] for t in case.workload.tasks}
        for task_id, n in compiled["static"].items():
            if n != by_slug[task_id.rsplit(".", 1)[0]]:
                raise AssertionError(f"{case.workload.title}: {task_id} maps {n} routes")
    if result["providers"]:
        raise AssertionError(f"importing the loader and building the flows imported {result['providers']}")
    return result


def run(root: Path, sizes: list[int], grids: tuple[int, int], reps: int, cold_reps: int) -> list[Row]:
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = clean_env(home, root)
    sized = prepare(root, [(f"{n} tasks", pipelines(n)) for n in sizes])
    small, big = grids
    gridded = prepare(root, [(f"{g}-route grid", single_grid(g)) for g in (small, big)])
    checked = check(sized + gridded, env)
    files = [f for c in sized + gridded for f in (c.flow_file, c.hand_file)]
    warm = measure(files, "processor", reps, env)
    cold = measure([f for c in sized for f in (c.flow_file, c.hand_file)], "cold", cold_reps, env) if cold_reps else {}

    def cpu(times: dict[str, Any], file: Path) -> list[float]:
        return [c for _, c in times[str(file)]]

    def wall(times: dict[str, Any], file: Path) -> list[float]:
        return [w for w, _ in times[str(file)]]

    rows = []
    for case in sized:
        n_routes = case.workload.total_routes()
        for mode, times, n_reps in (("DAG processor", warm, reps), ("cold import", cold, cold_reps)):
            if not times:
                continue
            flow, hand = cpu(times, case.flow_file), cpu(times, case.hand_file)
            rows.append(Row(
                "parse", f"{case.label}, {n_routes} routes: CPU time of a parse ({mode}), median of {n_reps}",
                median(flow), median(hand), target=1.2 if mode == "DAG processor" else None,
                note=f"wall time {median(wall(times, case.flow_file)) * 1000:.0f} ms vs "
                     f"{median(wall(times, case.hand_file)) * 1000:.0f} ms",
                samples={"flow": flow, "hand": hand}))
    g_small, g_big = gridded
    flow_small, flow_big = cpu(warm, g_small.flow_file), cpu(warm, g_big.flow_file)
    hand_small, hand_big = cpu(warm, g_small.hand_file), cpu(warm, g_big.hand_file)
    rows.append(Row(
        "parse", f"{big:,}-route grid vs {small}-route grid: CPU time of a parse (DAG processor), median of {reps}",
        median(flow_big), median(flow_small),
        target=1.2, ratio_of=f"{big:,} / {small} routes",
        note=(f"both columns are flow-airflow ({big:,} routes, {small} routes); hand-written files of the same "
              f"grids take {median(hand_big) * 1000:.0f} ms and {median(hand_small) * 1000:.0f} ms"),
        samples={"flow_big": flow_big, "flow_small": flow_small, "hand_big": hand_big, "hand_small": hand_small}))
    providers = checked["providers"]
    rows.append(Row(
        "parse", "Kubernetes/Docker provider modules imported by the loader", float(len(providers)), None,
        unit="",
        note=("none (Airflow itself imports " + (", ".join(checked["airflow_itself"]) or "none") + ")")
        if not providers else ", ".join(providers)))
    return rows
