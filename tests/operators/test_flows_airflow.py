"""The example flows run through real Airflow (``dag.test()`` on a SQLite metadata DB)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from flow_airflow.local_run import RunResult, run_flow

pytestmark = pytest.mark.airflow


def write_flow(tmp_path: Path, text: str, scripts: dict[str, str] | None = None) -> Path:
    for name, body in (scripts or {}).items():
        (tmp_path / name).write_text(body)
    file = tmp_path / "flow.yaml"
    file.write_text(text)
    return file


def test_grid_two(run: Callable[..., RunResult]) -> None:
    result = run("grid_two")
    assert result.state == "success"
    a, b = result.of("Grid Search A"), result.of("Grid Search B")
    assert len(a) == 3 and len(b) == 9
    assert [e.label for e in a] == ["lr=0.1", "lr=0.01", "lr=0.001"]
    assert sorted(e.tags["args"] for e in b) == sorted(f"--depth {d}" for d in (2, 4, 8) for _ in range(3))
    lrs = ("0.1", "0.01", "0.001")
    assert {e.label for e in b} == {f"depth={d} | Grid Search A: lr={lr}" for d in (2, 4, 8) for lr in lrs}


def test_grid_three(run: Callable[..., RunResult]) -> None:
    result = run("grid_three")
    assert result.state == "success"
    assert [len(result.of(t)) for t in ("Grid Search A", "Grid Search B", "Grid Search C")] == [2, 3, 30]
    args = {e.tags["args"] for e in result.of("Grid Search C")}
    assert args == {f"--c {c} --fixed same-for-all" for c in (10, 20, 30, 40, 50)}
    labels = {e.label for e in result.of("Grid Search C")}
    assert len(labels) == 30 and not any("fixed=" in label for label in labels)  # the same on every route


def test_single_mode(run: Callable[..., RunResult], airflow_home: Path) -> None:
    result = run("single_mode")
    assert result.state == "success"
    counts = {t: len(result.of(t)) for t in ("Grid Search A", "Grid Search B", "Single mode C", "Single Grid D")}
    assert counts == {"Grid Search A": 2, "Grid Search B": 3, "Single mode C": 1, "Single Grid D": 5}
    assert [e.params for e in result.of("Single Grid D")] == [{"d": str(i)} for i in range(1, 6)]


def test_single_mode_stages_no_inputs(airflow_home: Path, tmp_path: Path) -> None:
    file = write_flow(
        tmp_path,
        """\
flow: Single Inputs
tasks:
  - {title: A, type: exec, input: "mkdir -p output && echo a > output/a.txt", computes: [local]}
  - title: S
    type: exec
    input: python3 check.py
    computes: [local]
    single_mode: true
  - {title: N, type: exec, input: python3 check.py, computes: [local]}
relations:
  - {from: A, to: S}
  - {from: A, to: N}
""",
        {
            "check.py": """\
import os
print("cnvrg_tag_inputs:", sorted(os.listdir("input")) if os.path.isdir("input") else "none")
print("cnvrg_tag_env:", os.environ.get("INPUT_A", "unset"))
"""
        },
    )
    result = run_flow(file)
    assert result.state == "success"
    assert result.of("S")[0].tags == {"inputs": "none", "env": "unset"}
    assert result.of("N")[0].tags["inputs"] == "['a']"
    assert result.of("N")[0].tags["env"].endswith("/input/a")


def test_dynamic_routes(run: Callable[..., RunResult]) -> None:
    result = run("dynamic_routes")
    assert result.state == "success"
    assert result.of("Params")[0].tags == {"route": "1,2,3"}
    dynamic = result.of("Dynamic")
    assert [e.params for e in dynamic] == [{"route": "1"}, {"route": "2"}, {"route": "3"}]
    assert [e.tags["args"] for e in dynamic] == ["--route 1", "--route 2", "--route 3"]
    assert [e.label for e in dynamic] == ["route=1", "route=2", "route=3"]


def test_artifacts_and_tags(run: Callable[..., RunResult]) -> None:
    result = run("artifacts_tags")  # check_inputs.py asserts the artifact, the variables and the argument
    assert result.state == "success"
    assert result.of("Task A")[0].tags == {"model accuracy": "0.93", "Stage": "trained"}
    processing = result.of("Processing the Data")[0]
    assert processing.tags == {"checked": "yes"}
    assert processing.params == {"accuracy_from_a": "0.93"}


def test_conditions(run: Callable[..., RunResult]) -> None:
    result = run("conditions")  # compare.py and publish.py assert what they receive
    assert result.state == "success"
    assert len(result.of("Train")) == 3
    assert [e.tags for e in result.of("Compare")] == [{"winner_accuracy": "0.95"}]
    assert [e.tags for e in result.of("Publish")] == [{"published": "2"}]


def test_blueprint(run: Callable[..., RunResult]) -> None:
    result = run("blueprint")
    assert result.state == "success"
    counts = {t: len(result.of(t)) for t in ("Prepare", "Logistic Regression", "Random Forest", "Compare")}
    assert counts == {"Prepare": 1, "Logistic Regression": 2, "Random Forest": 3, "Compare": 1}
    models = result.of("Logistic Regression") + result.of("Random Forest")
    best = max(models, key=lambda e: float(e.tags["accuracy_score"]))
    assert result.of("Compare")[0].label == f"{best.task}: {best.label}"  # the winner it gathered, named
    # found as cnvrg's compare components find it: CNVRG_<TASK>_PASSED_CONDITION=true
    assert result.of("Compare")[0].tags == {"winner_task": best.task.lower().replace(" ", "_")}


def test_condition_that_nothing_passes_skips_downstream(airflow_home: Path, tmp_path: Path) -> None:
    file = write_flow(
        tmp_path,
        """\
flow: Nothing Passes
tasks:
  - title: Train
    type: exec
    input: python3 -c "import sys; print('cnvrg_tag_acc:', sys.argv[2])"
    computes: [local]
    params: [{key: acc, value: [0.1, 0.2]}]
  - title: Deploy
    type: exec
    input: "true"
    computes: [local]
    conditions: [{task: Train, objective: gt, target: 0.9, tag_key: acc}]
  - {title: After Deploy, type: exec, input: "true", computes: [local]}
relations:
  - {from: Train, to: Deploy}
  - {from: Deploy, to: After Deploy}
""",
    )
    result = run_flow(file)
    assert result.state == "success"
    assert len(result.of("Train")) == 2
    assert [e.state for e in result.of("Deploy", None)] == ["skipped"]
    assert [e.state for e in result.of("After Deploy", None)] == ["skipped"]
    # their mapped tasks never expanded (Airflow shows no label): the summary says why
    assert [e.label for e in result.of("Deploy", None) + result.of("After Deploy", None)] == [
        "routes never planned", "routes never planned"]


def test_failing_command_fails_the_experiment(
    airflow_home: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    file = write_flow(
        tmp_path,
        """\
flow: Failing
tasks:
  - {title: Boom, type: exec, input: "echo preparing; echo something broke >&2; exit 3", computes: [local]}
  - {title: Never, type: exec, input: "true", computes: [local]}
relations:
  - {from: Boom, to: Never}
""",
    )
    result = run_flow(file)
    assert result.state == "failed"
    assert [e.state for e in result.of("Boom", None)] == ["failed"]
    assert [(e.label, e.state) for e in result.of("Never", None)] == [("route 0, not run", "upstream_failed")]
    output = capfd.readouterr()
    text = output.out + output.err
    assert "'Boom' failed: its command exited with code 3" in text
    assert "something broke" in text


def test_params_never_reach_a_shell_unquoted(airflow_home: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    file = write_flow(
        tmp_path,
        f"""\
flow: Quoting
tasks:
  - title: A
    type: exec
    input: python3 show.py
    computes: [local]
    params:
      - key: evil
        value: ["$(touch {marker})", "`touch {marker}`; touch {marker}", "\\"it's quoted\\" & | > x $HOME *"]
relations: []
""",
        {"show.py": "import json, sys\nprint('cnvrg_tag_arg:', json.dumps(sys.argv[1:]))\n"},
    )
    result = run_flow(file)
    assert result.state == "success"
    assert not marker.exists()
    # each value split into words as a shell splits it (cnvrg's "--key value"), never run by one
    assert [json.loads(e.tags["arg"]) for e in result.of("A")] == [
        ["--evil", "$(touch", f"{marker})"],
        ["--evil", "`touch", f"{marker}`;", "touch", str(marker)],
        ["--evil", "it's quoted", "&", "|", ">", "x", "$HOME", "*"],
    ]


def test_environment_sdk_and_output_dir(airflow_home: Path, tmp_path: Path) -> None:
    file = write_flow(
        tmp_path,
        """\
title: Environment
tasks:
  - title: Make Model
    type: exec
    command: python3 make.py
    output_dir: results
    params: [{key: Learning Rate, values: ['0.5'], type: discrete}]
  - title: Use Model
    type: exec
    command: python3 use.py
relations:
  - {from: Make Model, to: Use Model}
""",
        {
            "make.py": """\
import os
from cnvrg import Experiment
assert os.environ["CNVRG_TAG_LEARNING_RATE"] == "0.5"
assert os.environ["CNVRG_OUTPUT_DIR"] == os.path.join(os.environ["CNVRG_WORKDIR"], "results")
assert os.getcwd() == os.environ["CNVRG_WORKDIR"]
assert os.path.exists("make.py")  # the project folder is the working directory
open(os.path.join(os.environ["CNVRG_OUTPUT_DIR"], "model.txt"), "w").write("m1")
e = Experiment()
e.log_param("kind", "linear")
e.log_metric("loss", Ys=[0.9, 0.5, 0.25])
""",
            "use.py": """\
import os
# the end state, paths kept: what make.py wrote to its output folder 'results' is at input/make_model/results/
assert open(os.path.join(os.environ["INPUT_MAKE_MODEL"], "results", "model.txt")).read() == "m1"
assert os.environ["INPUT_MAKE_MODEL"] == os.path.abspath("input/make_model")
assert os.environ["CNVRG_MAKE_MODEL_KIND"] == "linear"
assert os.environ["CNVRG_MAKE_MODEL_LOSS"] == "0.25"
assert os.environ["CNVRG_MAKE_MODEL_LEARNING_RATE"] == "0.5"
print("cnvrg_tag_ok: yes")
""",
        },
    )
    result = run_flow(file)
    assert result.state == "success", result
    assert result.of("Make Model")[0].tags == {"kind": "linear", "loss": "0.25"}
    assert result.of("Use Model")[0].tags == {"ok": "yes"}


def test_a_data_task_of_a_dataset_never_pushed_fails_saying_so(
    run: Callable[..., RunResult], capfd: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The example's iris dataset is not in the (empty) store: the data task fails in plain words.
    Pushed, Train reads it: tests/datasets/test_data_task.py."""
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__DATASETS_FOLDER", str(tmp_path / "empty_store"))
    result = run("data_and_deploy")
    assert result.state == "failed"
    assert [e.state for e in result.of("Iris", None)] == ["failed"]
    text = "".join(capfd.readouterr())
    assert "'Iris' cannot use dataset 'iris': there is no dataset 'iris' in the dataset store" in text
    assert "push one with: flow-airflow dataset push iris FOLDER. The flow's folder holds " in text
    assert "datasets/iris: 'flow-airflow import' of the flow pushes it" in text


def test_the_tiny_ml_example_of_dags(airflow_home: Path, tmp_path: Path) -> None:
    project = tmp_path / "tiny_ml"
    shutil.copytree(Path(__file__).parents[2] / "dags" / "examples" / "tiny_ml", project)
    result = run_flow(project / "flow.yaml")
    assert result.state == "success"
    fits = result.of("Fit")
    assert len(fits) == 6 and len(result.of("Report")) == 1
    best = min(fits, key=lambda e: float(e.tags["mse"]))
    assert result.of("Report")[0].label == f"Fit: {best.label}"
    assert abs(float(result.of("Report")[0].tags["a"]) - 3) < 0.1


def test_names_as_published_blueprints_read_them(airflow_home: Path, tmp_path: Path) -> None:
    """Issue 25, item 3: a hyphen in a title is an underscore in ``/input/<task>``, ``INPUT_<TASK>`` and
    ``CNVRG_<TASK>_<TAG>`` (``Data-Preprocessing`` -> ``input/data_preprocessing``, as cnvrg's churn blueprint
    reads it), and the spaced reference form of cnvrg's documentation, ``{ { Task.tag | hyper } }``, is a
    reference: one route per value, each value reaching the script."""
    file = write_flow(
        tmp_path,
        """\
flow: Published Names
tasks:
  - title: Data-Preprocessing
    type: exec
    input: python3 emit.py
    computes: [local]
  - title: Train-Valid Split
    type: exec
    input: python3 read.py
    computes: [local]
    params:
      - key: route
        value: "{ { Data-Preprocessing.route | hyper } }"
      - key: rows
        value: "{ {Data-Preprocessing.rows} }"
relations:
  - {from: Data-Preprocessing, to: Train-Valid Split}
""",
        {
            "emit.py": """\
import os
os.makedirs("output", exist_ok=True)
open("output/clean.csv", "w").write("x\\n1\\n")
print("cnvrg_tag_route: a,b")
print("cnvrg_tag_rows: 1")
""",
            "read.py": """\
import os, sys
print("cnvrg_tag_csv:", open("/input/data_preprocessing/output/clean.csv".lstrip("/")).read().split()[1])
print("cnvrg_tag_input:", os.environ["INPUT_DATA_PREPROCESSING"].endswith("input/data_preprocessing"))
print("cnvrg_tag_rows_env:", os.environ["CNVRG_DATA_PREPROCESSING_ROWS"])
print("cnvrg_tag_argv:", " ".join(sys.argv[1:]))
""",
        },
    )
    result = run_flow(file)
    assert result.state == "success"
    split = result.of("Train-Valid Split")
    assert [e.tags["argv"] for e in split] == ["--route a --rows 1", "--route b --rows 1"]
    assert all(e.tags["csv"] == "1" and e.tags["input"] == "True" and e.tags["rows_env"] == "1" for e in split)
