"""The flow-airflow command as a user runs it (a real subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FLOWS = Path(__file__).parent.parent / "flows"


def cli(*args: str, home: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, **env}
    if home:
        environ["AIRFLOW_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "flow_airflow.cli", *args], capture_output=True, text=True,
                          env=environ, timeout=600)


def test_validate_prints_every_mistake_and_exits_1() -> None:
    done = cli("validate", str(FLOWS / "grid_two" / "flow.yaml"), str(FLOWS / "invalid"))
    assert done.returncode == 1
    assert f"{FLOWS}/grid_two/flow.yaml: OK, flow 'Two Grid Searches' with 2 task(s)" in done.stdout
    errors = done.stderr.splitlines()
    assert f"{FLOWS}/invalid/cycle.yaml:7:5: the relations make a cycle: A -> B -> A" in errors
    assert len([e for e in errors if "bad_endpoint.yaml" in e]) == 2  # endpoint_id beside endpoint_title: an update
    assert "Traceback" not in done.stderr


def test_a_bad_setting_is_one_sentence_not_a_traceback() -> None:
    done = cli("plan", str(FLOWS / "grid_two" / "flow.yaml"),
               AIRFLOW__FLOW_AIRFLOW__COMPUTES='{"local": {"kind": "docker", "image": "x", "env": {"A": "1"}}}')
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("flow-airflow: [flow_airflow] computes") and \
        "'env' is not one of its settings" in done.stderr, done.stderr


def test_validate_ok() -> None:
    done = cli("validate", str(FLOWS / "blueprint"))
    assert done.returncode == 0 and "OK, flow 'Churn Lite Train' with 4 task(s)" in done.stdout


def test_plan_shows_counts_conditions_and_unconfigured_computes(tmp_path: Path) -> None:
    done = cli("plan", str(FLOWS / "grid_three" / "flow.yaml"))
    assert done.returncode == 0, done.stderr
    assert "  Grid Search C [exec after Grid Search A, Grid Search B]: 30 routes (2 x 3 x 5)" in done.stdout
    assert "runs: when triggered (UI, CLI or REST API)" in done.stdout

    done = cli("plan", str(FLOWS / "conditions" / "flow.yaml"))
    assert "  Compare [exec after Train]: known at run time: it runs on what passes its condition: " \
           "the highest 'accuracy' of 'Train'" in done.stdout
    assert done.stdout.count("'accuracy' > 0.8 on 'Train'") == 1  # on the count line, not again below it

    flow = tmp_path / "flow.yaml"
    flow.write_text("flow: Computes\nrecurring: '30 * * * *'\ntasks:\n"
                    "  - {title: A, type: exec, input: 'true', computes: [gpu, big]}\n"
                    "  - {title: B, type: exec, input: 'true', computes: [gpu, medium]}\nrelations: []\n")
    done = cli("plan", str(flow), AIRFLOW__FLOW_AIRFLOW__COMPUTES='{"medium": {"kind": "local"}}')
    assert "runs: on the cron schedule '30 * * * *' (utc)" in done.stdout
    lines = done.stdout.splitlines()
    a, b = lines.index("  A [exec]: 1 route"), lines.index("  B [exec]: 1 route")
    assert lines[a + 1:b] == [
        "      compute: local (local)",
        "      warning: compute template 'gpu' is not configured here; skipped",
        "      warning: compute template 'big' is not configured here; skipped",
        "      warning: none of gpu, big is configured: running on the default compute 'local'",
    ]
    assert lines[b + 1:] == ["      compute: medium (local)",
                             "      warning: compute template 'gpu' is not configured here; skipped"]



def test_plan_warns_of_a_grid_past_max_map_length(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text("flow: Big\ntasks:\n  - title: Grid\n    type: exec\n    input: 'true'\n    computes: [local]\n"
                    f"    params:\n      - {{key: x, value: {list(range(50))}}}\n"
                    f"      - {{key: y, value: {list(range(40))}}}\nrelations: []\n")
    warning = ("      warning: 2000 routes are more task instances than Airflow's [core] max_map_length (1024): "
               "set [flow_airflow] batch_routes to at least 2")
    assert warning in cli("plan", str(flow)).stdout.splitlines()
    batched = cli("plan", str(flow), AIRFLOW__FLOW_AIRFLOW__BATCH_ROUTES="100").stdout
    assert "  100 routes per task instance ([flow_airflow] batch_routes)" in batched and "max_map_length" not in batched

@pytest.mark.airflow
def test_import_copies_the_project_and_installs_the_loader(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    done = cli("import", str(FLOWS / "artifacts_tags" / "flow.yaml"), "--dags-folder", str(dags))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (dags / "artifacts_and_tags").iterdir()) == ["check_inputs.py", "flow.yaml",
                                                                              "task_a.py"]
    loaders = sorted(p.name for p in dags.glob("*.py"))
    assert loaders == [f"flows_{k:02d}_of_16.py" for k in range(1, 17)]
    assert all("load_dags(__file__)" in (dags / name).read_text() for name in loaders)
    again = cli("import", str(FLOWS / "artifacts_tags" / "flow.yaml"), "--dags-folder", str(dags))
    assert again.returncode == 1 and "exists; use --force" in again.stderr
    assert cli("import", str(FLOWS / "invalid" / "cycle.yaml"), "--dags-folder", str(dags)).returncode == 1


def test_a_command_that_would_make_a_fresh_airflow_home_says_so(tmp_path: Path) -> None:
    """Without AIRFLOW_HOME, Airflow makes ~/airflow: a new, empty instance, not the one ./dev up serves."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")} | {"HOME": str(tmp_path / "user")}
    repo = tmp_path / "repo"
    (repo / "airflow-home").mkdir(parents=True)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "flow_airflow.cli", *args], capture_output=True, text=True,
                              env=environ, cwd=repo, timeout=600)

    flow = str(FLOWS / "grid_two" / "flow.yaml")
    first = run("plan", flow)
    assert first.returncode == 0, first.stderr
    assert first.stderr.splitlines()[0] == (
        f"note: AIRFLOW_HOME is not set and {tmp_path}/user/airflow does not exist: Airflow makes a new, empty home "
        "there (its own metadata DB and dags folder); for the instance ./dev up serves, export AIRFLOW_HOME as its "
        "banner says")
    assert (tmp_path / "user" / "airflow").is_dir()
    assert "note:" not in run("plan", flow).stderr  # made once: said once
    (tmp_path / "user" / "airflow").rename(tmp_path / "user" / "old")
    (repo / "airflow-home" / "airflow.cfg").write_text("[core]\n")  # ./dev up's home, run from the repository
    assert f"the home ./dev up serves is {repo}/airflow-home: export AIRFLOW_HOME={repo}/airflow-home" in run(
        "validate", flow).stderr
    assert run("schema").stderr == ""  # needs no Airflow home
    environ["AIRFLOW_HOME"] = str(repo / "airflow-home")
    assert "note:" not in run("plan", flow).stderr


PLAN_DATA = """\
flow: Sizes
tasks:
  - {title: Data, type: data, dataset: iris}
  - {title: Params, type: exec, input: python3 params.py, computes: [local]}
  - title: Train
    type: exec
    input: python3 train.py
    computes: [local]
    params:
      - {key: size, value: "{{ Params.sizes | hyper }}"}
      - {key: seed, value: [1, 2]}
relations:
  - {from: Data, to: Params}
  - {from: Params, to: Train}
"""


def test_plan_says_the_whole_dynamic_count_and_whether_the_dataset_is_in_the_store(tmp_path: Path) -> None:
    """Issue 27, item 12: a dynamic route times a grid said only the dynamic part; a dataset not pushed yet
    was found only when the run failed."""
    flow = tmp_path / "flow.yaml"
    flow.write_text(PLAN_DATA)
    store = {"AIRFLOW__FLOW_AIRFLOW__DATASETS_FOLDER": str(tmp_path / "datasets")}
    done = cli("plan", str(flow), **store)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "  Train [exec after Params]: known at run time: one route per value of the tag 'sizes' of 'Params' " \
           "(param 'size') x 2 (seed)" in lines
    data = lines[lines.index("  Data [data]: 1 route") + 1]
    assert data.startswith("      warning: there is no dataset 'iris' in the dataset store ") and data.endswith(
        "push one with: flow-airflow dataset push iris FOLDER; the task fails at run time unless it is there by then")
    (tmp_path / "iris").mkdir()
    (tmp_path / "iris" / "a.csv").write_text("1,2\n")
    pushed = cli("dataset", "push", "iris", str(tmp_path / "iris"), **store)
    assert pushed.returncode == 0, pushed.stderr
    lines = cli("plan", str(flow), **store).stdout.splitlines()
    data = lines[lines.index("  Data [data]: 1 route") + 1]
    assert data.startswith("      dataset: iris@") and data.endswith(", 1 file(s)")
