"""What keeps parsing fast (bench/ measures it): big grids counted, not listed; compact task arguments;
compiled plans kept between parses; the compiler imported once by the DAG processor."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from flow_airflow.common.routes import plan_routes, stand_in_records
from flow_airflow.plan import cache
from flow_airflow.plan.flow_plan import STATIC_ROUTES_LIMIT, plan_flow
from flow_airflow.spec.load import load_flow

DIAMOND = """\
flow: Big Diamond
tasks:
  - title: R
    type: exec
    input: python3 step.py
    computes: [local]
    params:
      - key: r
        value: [1, 2]
  - title: A
    type: exec
    input: python3 step.py
    computes: [local]
    params:
      - key: a
        value: [{a}]
  - title: B
    type: exec
    input: python3 step.py
    computes: [local]
    params:
      - key: b
        value: [{b}]
  - title: C
    type: exec
    input: python3 step.py
    computes: [local]
    params:
      - key: c
        value: [x, y]
relations:
  - from: R
    to: A
  - from: R
    to: B
  - from: A
    to: C
  - from: B
    to: C
"""


def diamond(tmp_path: Path, a: int, b: int) -> Path:
    file = tmp_path / "flow.yaml"
    file.write_text(DIAMOND.format(a=", ".join(map(str, range(a))), b=", ".join(map(str, range(b)))))
    return file


def eager_counts(flow_file: Path) -> dict[str, int]:
    """Every task's routes, made one by one (what the planner did before counting)."""
    flow = load_flow(flow_file)
    made: dict[str, list] = {}
    for title in flow.graph.order:
        spec = flow.task(title)
        parents = {p: made[p] for p in flow.graph.parents[title]}
        routes = plan_routes([(p.key, p.grid()) for p in spec.params], parents)
        made[title] = stand_in_records(title, routes, parents)
    return {title: len(records) for title, records in made.items()}


def test_big_grids_are_counted_as_the_routes_they_make(tmp_path: Path) -> None:
    file = diamond(tmp_path, 20, 20)  # A, B: 40 routes; C: 2 x 20 x 20 x 2 = 1600, a diamond (not 40 x 40 x 2)
    plan = plan_flow(load_flow(file))
    assert {t.title: t.count for t in plan.tasks} == eager_counts(file) == {"R": 2, "A": 40, "B": 40, "C": 1600}
    c = plan.task("C")
    assert c.count > STATIC_ROUTES_LIMIT and c.routes is None and "planned at run time" in c.runtime_reason
    assert plan.task("A").routes is not None and len(plan.task("A").routes) == 40


def test_tasks_after_a_big_grid_are_still_counted(tmp_path: Path) -> None:
    file = diamond(tmp_path, 200, 1)  # A: 400 routes, planned at run time; C follows it
    plan = plan_flow(load_flow(file))
    assert {t.title: t.count for t in plan.tasks} == eager_counts(file) == {"R": 2, "A": 400, "B": 2, "C": 800}


def test_experiment_operator_takes_its_arguments_as_json_text() -> None:
    from flow_airflow.computes import ComputeChoice
    from flow_airflow.operators.experiment import ExperimentOperator

    route = {"params": [["lr", "0.1"]], "parents": {}, "label": "lr=0.1"}
    task = {"title": "T", "type": "exec", "input": "true"}
    setup = {"task": task, "parents": {"A": "a.run"}, "project_dir": "/p",
             "compute": {"name": "local", "kind": "local"}}
    op = ExperimentOperator(task_id="t", setup=json.dumps(setup), route=json.dumps(route))
    assert op.route == route and op.setup.task.model_dump(exclude_defaults=True) == task
    assert op.setup.compute == ComputeChoice("local", "local")
    assert op.setup.parents == {"A": "a.run"} and op.setup.gathered == [] and op.setup.project_dir == "/p"


@pytest.fixture
def cache_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__CACHE_FOLDER", str(folder))
    return folder


def test_a_kept_plan_is_used_while_the_flow_and_the_settings_stay(
    tmp_path: Path, cache_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = diamond(tmp_path, 3, 3)
    text = file.read_text()
    first = cache.plan_of(file, text)
    assert len(list(cache_folder.glob("*.pickle"))) == 1
    kept = cache.plan_of(file, text)
    assert kept is not first and [t.routes for t in kept.tasks] == [t.routes for t in first.tasks]
    assert cache.plan_of(file, text, "another_dag") == "big_diamond"  # a worker running another flow

    changed = text.replace("value: [x, y]", "value: [x, y, z]")
    assert cache.lookup(file, changed) is None
    assert cache.plan_of(file, changed).task("C").count == 2 * 3 * 3 * 3
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__COMPUTES", '{"gpu": {"kind": "local"}}')
    assert cache.lookup(file, changed) is None  # other settings, maybe another plan


def test_a_broken_or_foreign_entry_is_compiled_anew(tmp_path: Path, cache_folder: Path) -> None:
    file = diamond(tmp_path, 2, 2)
    text = file.read_text()
    cache.plan_of(file, text)
    (entry,) = cache_folder.glob("*.pickle")
    entry.write_bytes(b"not a pickle")
    assert cache.lookup(file, text) is None
    assert cache.plan_of(file, text).task("C").count == 2 * 2 * 2 * 2
    entry.write_bytes(pickle.dumps({"key": "another"}) + pickle.dumps("x"))
    assert cache.lookup(file, text) is None


def test_no_cache_folder_no_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__CACHE_FOLDER", "")
    file = diamond(tmp_path, 2, 2)
    assert cache.folder() is None
    assert cache.plan_of(file, file.read_text()).dag_id == "big_diamond"
    assert cache.lookup(file, file.read_text()) is None


@pytest.mark.parametrize("argv, loaded", [(["airflow", "dag-processor"], True), (["airflow", "scheduler"], False)])
def test_the_dag_processor_imports_the_compiler_with_the_plugin(argv: list[str], loaded: bool) -> None:
    code = (f"import sys; sys.argv = {argv!r}; import flow_airflow.plugin; "
            "print('flow_airflow.render.dag' in sys.modules, 'flow_airflow.runtime.experiment' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == [str(loaded), "False"]  # never the task-time modules


@pytest.mark.parametrize("dag_id, frozen", [("two_grid_searches", True), ("", False)])
def test_a_task_process_keeps_airflow_out_of_full_collections(tmp_path: Path, dag_id: str, frozen: bool) -> None:
    import shutil

    shutil.copytree(Path(__file__).parent / "flows" / "grid_two", tmp_path / "grid_two")
    code = ("import gc, sys; from flow_airflow.loader import load_dags; "
            f"dags = load_dags({str(tmp_path / 'flows.py')!r}); print(sorted(dags), gc.get_freeze_count() > 0)")
    env = {**os.environ, "_AIRFLOW_PARSING_CONTEXT_DAG_ID": dag_id}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert done.stdout.split()[-1] == str(frozen)  # only where a worker parses the loader to run a task
    assert "flow__two_grid_searches" in done.stdout


@pytest.mark.parametrize("flow, dags, imported", [("grid_two", 1, False), ("scheduled", 2, True)])
def test_a_parse_imports_only_the_timetable_its_flow_uses(tmp_path: Path, flow: str, dags: int, imported: bool) -> None:
    """An unscheduled flow does not pay for importing the one-shot schedule's timetable."""
    import shutil

    shutil.copytree(Path(__file__).parent / "flows" / flow, tmp_path / flow)
    code = ("import sys; import airflow.sdk; from flow_airflow.loader import load_dags; "
            f"dags = load_dags({str(tmp_path / 'flows.py')!r}); "
            "print(len(dags), 'airflow.timetables.events' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split()[-2:] == [str(dags), str(imported)]
