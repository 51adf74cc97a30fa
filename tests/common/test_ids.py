"""DAG, TaskGroup and task ids from titles in any script; Airflow's limits refused by ``validate``."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flow_airflow.common.routes import slug
from flow_airflow.plan.flow_plan import dag_id_for

FLOWS = Path(__file__).parents[1] / "flows"
REGRESSIONS = FLOWS / "regressions"


def test_latin_titles_keep_their_ids() -> None:
    assert dag_id_for("Two Grid Searches") == "two_grid_searches"
    assert dag_id_for("  My-Flow v1.2 ") == "my-flow_v1.2"
    assert slug("Grid Search C") == "grid_search_c"
    assert slug("Train!") == "train" and slug("!!!") == ""  # '' is refused by the checks


def test_titles_in_any_script_get_valid_stable_distinct_ids() -> None:
    from airflow.sdk.definitions._internal.node import validate_group_key, validate_key

    titles = ["客户流失预测", "客户流失預測", "תחזית נטישה", "Прогноз оттока", "Обучение модели",
              "Prévision des ventes", "Prevision des ventes", "Prévision dés ventes", "数据准备", "Шаг 1", "Шаг 2",
              "→→"]
    dag_ids = [dag_id_for(t) for t in titles]
    slugs = [slug(t) for t in titles[:-1]]
    assert len(set(dag_ids)) == len(titles) and len(set(slugs)) == len(slugs)
    for dag_id, group in zip(dag_ids, slugs, strict=False):
        validate_key(dag_id)
        validate_group_key(group)
        assert dag_id.isascii() and group.isascii()
    assert dag_ids[3].startswith("prognoz_ottoka_") and dag_ids[0].startswith("ke_hu_liu_shi_yu_ce_")
    assert dag_id_for("Prevision des ventes") == "prevision_des_ventes"  # ASCII: as always
    assert dag_id_for("Prévision des ventes").startswith("prevision_des_ventes_")  # not the same flow
    script = "from flow_airflow.plan.flow_plan import dag_id_for; print(dag_id_for('客户流失预测'))"
    again = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert again.stdout.strip() == dag_ids[0]  # stable across processes (no hash seed)
    assert slug("→→") == ""


@pytest.mark.airflow
def test_non_latin_flows_load_as_distinct_dags_showing_their_titles(tmp_path: Path, airflow_home: Path) -> None:
    from airflow.dag_processing.dagbag import BundleDagBag

    from flow_airflow.cli import LOADER

    folder = tmp_path / "dags"
    shutil.copytree(REGRESSIONS / "non_latin_titles", folder)
    (folder / "flows.py").write_text(LOADER)
    bag = BundleDagBag(dag_folder=str(folder), bundle_path=folder, bundle_name="test")
    assert not bag.import_errors
    shown = {dag.dag_display_name: dag for dag in bag.dags.values()}
    assert set(shown) == {"客户流失预测", "תחזית נטישה", "Прогноз оттока", "Обучение модели"}
    assert len(bag.dags) == 4
    chinese = shown["客户流失预测"]
    run = {t.task_display_name: t for t in chinese.tasks if t.task_id.endswith(".run")}
    assert set(run) == {"数据准备", "模型训练"}
    assert run["模型训练"].upstream_task_ids == {run["数据准备"].task_id}


@pytest.mark.airflow
def test_a_chinese_flow_runs(airflow_home: Path, tmp_path: Path) -> None:
    from flow_airflow.local_run import run_flow

    shutil.copy(REGRESSIONS / "non_latin_titles" / "flow.yaml", tmp_path / "flow.yaml")
    result = run_flow(tmp_path / "flow.yaml")
    assert result.state == "success" and result.dag_id == dag_id_for("客户流失预测")
    assert [len(result.of(t)) for t in ("数据准备", "模型训练")] == [1, 1]


def test_validate_reports_every_name_airflow_refuses_with_its_line(tmp_path: Path) -> None:
    folder = REGRESSIONS / "long_title_partial_dag"
    files = [folder / "flow.yaml", folder / "long_flow_title.yaml",
             FLOWS / "hostile" / "a18_long_title_valid_but_no_dag.yaml"]
    done = subprocess.run([sys.executable, "-m", "flow_airflow.cli", "validate", *map(str, files)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    errors = done.stderr.splitlines()
    assert any(e.startswith(f"{folder}/flow.yaml:7:12: task 'Train gradient") and "of 252 characters; Airflow "
               "allows at most 200" in e for e in errors), errors
    assert any(e.startswith(f"{folder}/long_flow_title.yaml:1:7: the flow title gives the DAG id") and "of 272" in e
               for e in errors), errors
    assert done.stdout.splitlines()[-1] == "3 flow files, 3 with errors"
    tags = tmp_path / "tags.yaml"
    tags.write_text("flow: Tags\nversion: '" + "1" * 95 + "'\ntags: [ok, '" + "t" * 101 + "']\ntasks:\n"
                    "  - {title: \"A\\x07\", type: exec, input: echo, computes: [local]}\nrelations: []\n")
    done = subprocess.run([sys.executable, "-m", "flow_airflow.cli", "validate", str(tags)], capture_output=True,
                          text=True, timeout=300)
    assert f"{tags}:2:10: 'version:' and the version: 103 characters; Airflow allows at most 100" in done.stderr
    assert f"{tags}:3:12: the DAG tag 'ttt" in done.stderr
    assert f"{tags}:5:13: task 'A\x07': the title contains the control character '\\x07'" in done.stderr


def _chain(n: int) -> str:
    lines = ["flow: Chain", "tasks:"]
    for i in range(n):
        lines += [f"  - title: T{i}", "    type: exec", "    input: echo hi", "    computes: [local]"]
    return "\n".join([*lines, "relations:", *(f"  - {{from: T{i}, to: T{i + 1}}}" for i in range(n - 1))]) + "\n"


def test_a_chain_of_5000_tasks_validates_and_plans(tmp_path: Path) -> None:
    """Recursion depth never limits the flow's size (graph walks, checks, planning)."""
    file = tmp_path / "chain.yaml"
    file.write_text(_chain(5000))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "flow_airflow.cli", "plan", str(file)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert time.perf_counter() - start < 60
    assert "  T4999 [exec after T4998]: 1 route" in done.stdout
    cycle = tmp_path / "cycle.yaml"
    cycle.write_text(_chain(5000).replace("relations:\n", "relations:\n  - {from: T4999, to: T0}\n"))
    done = subprocess.run([sys.executable, "-m", "flow_airflow.cli", "validate", str(cycle)], capture_output=True,
                          text=True, timeout=300)
    assert ":20004:5: the relations make a cycle: T0 -> T1 -> " in done.stderr and "RecursionError" not in done.stderr
