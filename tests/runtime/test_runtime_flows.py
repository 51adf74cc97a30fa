"""What an experiment finds and leaves on disk, its tags and environment: flows through real Airflow.

The flows of ``tests/flows/regressions`` and ``tests/flows/hostile`` (their READMEs say what is
right) and small flows of the same kinds, run with ``dag.test()``; the assertions are on what
the scripts received.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from flow_airflow import settings
from flow_airflow.local_run import RunResult, run_flow

pytestmark = pytest.mark.airflow


def write_flow(folder: Path, text: str, files: dict[str, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in (files or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(body)
    (folder / "flow.yaml").write_text(text)
    return folder / "flow.yaml"


def logs(capfd: pytest.CaptureFixture[str]) -> str:
    out, err = capfd.readouterr()
    return out + err


# --- Artifacts: the end state, relative paths kept -------------------------------------------------


def test_workdir_artifacts_reach_the_next_task(run: Callable[..., RunResult], capfd: pytest.CaptureFixture[str]):
    result = run("regressions/workdir_artifacts_not_passed")  # Train writes model.json into its working directory
    assert result.state == "success"
    assert [e.state for e in result.of("Predict", None)] == ["success"]
    text = logs(capfd)
    assert "loaded {'weights': [0.1, 0.2]}" in text
    assert "input/train holds: ['model.json', 'output']" in text  # the project's unchanged files are not passed again


END_STATE_FLOW = """\
flow: End State
tasks:
  - {title: Make, type: exec, input: python3 make.py, computes: [local]}
  - {title: Refine, type: exec, input: python3 refine.py, computes: [local]}
  - {title: Check, type: exec, input: python3 check.py, computes: [local]}
relations:
  - {from: Make, to: Refine}
  - {from: Refine, to: Check}
"""
END_STATE_FILES = {
    "notes/unchanged.txt": "project file\n",
    "notes/edited.txt": "before\n",
    "make.py": """\
import os
os.makedirs("models/deep", exist_ok=True)
open("output/out.txt", "w").write("from output")
open("models/deep/m.bin", "w").write("weights")
open("notes/edited.txt", "w").write("after\\n")
os.symlink("models/deep/m.bin", "latest")  # a link inside the working directory: kept, as a link
""",
    "refine.py": """\
import os
assert open("input/make/output/out.txt").read() == "from output"
assert open(os.path.join(os.environ["INPUT_MAKE"], "models", "deep", "m.bin")).read() == "weights"
assert open("input/make/notes/edited.txt").read() == "after\\n"
assert open("input/make/latest").read() == "weights" and os.path.islink("input/make/latest")
assert not os.path.exists("input/make/notes/unchanged.txt")  # unchanged: this task has its own copy
assert not os.path.exists("input/make/make.py")
open("output/refined.txt", "w").write("refined")
""",
    "check.py": """\
import os
assert sorted(os.listdir("input")) == ["refine"], os.listdir("input")
assert sorted(os.listdir("input/refine")) == ["output"], os.listdir("input/refine")  # not Make's inputs again
assert open("input/refine/output/refined.txt").read() == "refined"
print("cnvrg_tag_checked: yes")
""",
}


def test_end_state_keeps_relative_paths_and_only_what_changed(airflow_home: Path, tmp_path: Path) -> None:
    result = run_flow(write_flow(tmp_path / "p", END_STATE_FLOW, END_STATE_FILES))
    assert result.state == "success", result
    assert result.of("Check")[0].tags == {"checked": "yes"}


def test_with_git_only_the_output_folder_is_passed_on(airflow_home: Path, tmp_path: Path) -> None:
    project = tmp_path / "p"
    file = write_flow(
        project,
        """\
flow: Git End State
tasks:
  - {title: Train, type: exec, input: python3 train.py, computes: [local], git_branch: main, output_dir: results/final}
  - {title: Use, type: exec, input: python3 use.py, computes: [local]}
relations:
  - {from: Train, to: Use}
""",
        {
            "train.py": "import os\nopen('model.json', 'w').write('{}')\n"
            "open('results/final/m.txt', 'w').write('kept')\nopen('results/other.txt', 'w').write('not kept')\n",
            "use.py": "import os\nfor root, dirs, files in os.walk('input/train'):\n"
            "    for f in files:\n"
            "        print('cnvrg_tag_' + os.path.join(root, f) + ': ' + open(os.path.join(root, f)).read())\n",
        },
    )
    git = ["git", "-C", str(project), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "flow"], check=True)
    result = run_flow(file)
    assert result.state == "success", result
    assert result.of("Use")[0].tags == {"input/train/results/final/m.txt": "kept"}


def test_passed_condition_folders_hold_the_end_state(run: Callable[..., RunResult]) -> None:
    result = run("conditions")  # compare.py and publish.py read input/<task>_<n>/output/accuracy.txt
    assert result.state == "success"
    assert [e.tags for e in result.of("Publish")] == [{"published": "2"}]


# --- cnvrg's absolute paths on the local compute -----------------------------------------------------


def test_absolute_input_paths_mean_the_experiments_own_folders(
    airflow_home: Path, project: Callable[..., Path], capfd: pytest.CaptureFixture[str]
) -> None:
    file = project("regressions/absolute_input_paths")
    # prepare.py writes ratings.csv in its working directory: its end state holds it at /input/prepare/ratings.csv
    result = run_flow(file)
    assert result.state == "success"
    assert result.of("Data Validation")[0].params == {"filename": "/input/prepare/ratings.csv"}
    text = logs(capfd)
    assert "user,item,rating" in text
    assert "/data_validation/0.try1/input/prepare/ratings.csv" in text  # what validate.py was given
    assert text.count("cnvrg's absolute paths mean this experiment's own folders here: /cnvrg -> ") == 1  # once


def test_an_absolute_input_path_that_is_not_there_says_where_the_file_is(
    airflow_home: Path, project: Callable[..., Path], capfd: pytest.CaptureFixture[str]
) -> None:
    file = project("regressions/absolute_input_paths")  # names /input/prepare/ratings.csv as published
    (file.parent / "prepare.py").write_text(  # but this prepare.py writes it in output/
        "import os\nos.makedirs('output', exist_ok=True)\nopen('output/ratings.csv', 'w').write('user,item\\n')\n")
    result = run_flow(file)
    assert [e.state for e in result.of("Data Validation", None)] == ["failed"]
    assert ("/input/prepare/ratings.csv is named, but its task did not leave it (it left "
            "/input/prepare/output/ratings.csv: a task's files keep their paths)") in logs(capfd)


def test_absolute_paths_in_commands_params_and_variables(airflow_home: Path, tmp_path: Path) -> None:
    file = write_flow(
        tmp_path / "p",
        """\
flow: Absolute Paths
tasks:
  - {title: Prepare, type: exec, input: "mkdir -p output && echo 5 > output/n.txt", computes: [local]}
  - title: Use
    type: exec
    input: python3 /cnvrg/use.py /input/prepare/output/n.txt "/input/prepare/output/n.txt" /inputs/x a/input/b
    computes: [local]
    params: [{key: data, value: /input/prepare/output/n.txt}, {key: other, value: /datasets/x}]
relations:
  - {from: Prepare, to: Use}
""",
        {
            "use.py": """\
import os, sys
here = os.getcwd()
first, second, third, fourth, data_key, data, other_key, other = sys.argv[1:]
assert first == second == os.path.join(here, "input/prepare/output/n.txt") == data, sys.argv
assert (data_key, other_key) == ("--data", "--other"), sys.argv
assert (third, fourth, other) == ("/inputs/x", "a/input/b", "/datasets/x"), sys.argv
assert os.environ["CNVRG_TAG_DATA"] == os.path.join(here, "input/prepare/output/n.txt")
print("cnvrg_tag_n:", open(first).read().strip())
""",
        },
    )
    result = run_flow(file)
    assert result.state == "success", result
    use = result.of("Use")[0]
    assert use.tags == {"n": "5"}
    assert use.params == {"data": "/input/prepare/output/n.txt", "other": "/datasets/x"}  # the record keeps the text


# --- Workspace copy and links --------------------------------------------------------------------------


def test_nested_input_output_folders_are_copied(run: Callable[..., RunResult], capfd: pytest.CaptureFixture[str]):
    result = run("hostile/project_subfolders")
    assert result.state == "success"
    text = logs(capfd)
    listed = set(re.findall(r"\[info +\] (\./\S+)", text))  # what `find . -type f` printed
    assert listed == {"./data/input/train.csv", "./flow.yaml", "./lib/.venv/cfg", "./src/output/helper.txt"}
    assert re.search(r"\[info +\] 1,2 ", text) and re.search(r"\[info +\] helper ", text)


def test_an_output_folder_replaced_by_a_link_is_not_followed(
    run: Callable[..., RunResult], capfd: pytest.CaptureFixture[str]
) -> None:
    result = run("hostile/output_is_symlink")
    assert result.state == "success"
    assert [e.state for e in result.of("Harvest", None)] == ["success"]
    assert "'output' is a link to /" in logs(capfd)
    assert not list(settings.artifacts_root().rglob("secret.txt"))


def test_links_out_of_the_workspace_are_never_followed_at_any_depth(airflow_home: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    file = write_flow(
        tmp_path / "p",
        f"""\
flow: Deep Links
tasks:
  - title: Swap
    type: exec
    input: "mkdir -p output/a/b && ln -s {outside} output/a/b/away && ln -s {outside}/secret.txt output/s.txt
      && echo mine > output/a/mine.txt && ln -s ../mine.txt output/a/b/near.txt"
    computes: [local]
  - {{title: Harvest, type: exec, input: python3 harvest.py, computes: [local]}}
relations:
  - {{from: Swap, to: Harvest}}
""",
        {
            "harvest.py": """\
import os
found = sorted(os.path.join(r, f) for r, ds, fs in os.walk("input", followlinks=True) for f in fs + ds)
print("cnvrg_tag_found:", found)
print("cnvrg_tag_near:", open("input/swap/output/a/b/near.txt").read().strip())
""",
        },
    )
    result = run_flow(file)
    assert result.state == "success", result
    harvest = result.of("Harvest")[0].tags
    assert harvest["near"] == "mine"
    assert "secret" not in harvest["found"] and "away" not in harvest["found"], harvest["found"]
    assert not list(settings.artifacts_root().rglob("secret.txt"))


# --- Tags and environment --------------------------------------------------------------------------------


def test_a_tag_key_with_equals_does_not_break_the_next_task(
    run: Callable[..., RunResult], capfd: pytest.CaptureFixture[str]
) -> None:
    result = run("hostile/tag_key_equals")
    assert result.state == "success"
    assert result.of("Emit")[0].tags == {"a=b": "1"}
    assert [e.state for e in result.of("Sink", None)] == ["success"]
    assert "tag 'a=b' reaches the next tasks as CNVRG_EMIT_AB" in logs(capfd)


def test_tags_no_environment_can_hold_are_refused_where_they_are_logged(
    airflow_home: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    file = write_flow(
        tmp_path / "p",
        """\
flow: Hostile Tags
tasks:
  - {title: Emit, type: exec, input: python3 emit.py, computes: [local]}
  - {title: Tasks, type: exec, input: "echo 'cnvrg_tag_passed condition: hijack'", computes: [local]}
  - {title: A B, type: exec, input: "echo 'cnvrg_tag_C: from A B'", computes: [local]}
  - {title: A, type: exec, input: "echo 'cnvrg_tag_b c: from A'", computes: [local]}
  - {title: Sink, type: exec, input: python3 sink.py, computes: [local]}
relations:
  - {from: Emit, to: Sink}
  - {from: Tasks, to: Sink}
  - {from: A B, to: Sink}
  - {from: A, to: Sink}
""",
        {
            "emit.py": """\
print("cnvrg_tag_nul: a\\0b")
print("cnvrg_tag_huge:", "x" * 200_000)
for i in range(3000):
    print(f"cnvrg_tag_t{i}: {i}")
print("cnvrg_tag_precision: 0.9")
""",
            "sink.py": """\
import os, re
names = [n for n in os.environ if n.startswith("CNVRG_")]
assert all(re.fullmatch("[A-Z0-9_]+", n) for n in names), names
assert "CNVRG_TASKS_PASSED_CONDITION" not in os.environ  # no condition here: cnvrg's name is not taken over
assert "CNVRG_A_B_C" not in os.environ  # two different (task, tag) pairs give it: set for neither
assert "CNVRG_EMIT_HUGE" not in os.environ and "CNVRG_EMIT_NUL" not in os.environ
print("cnvrg_tag_t0:", os.environ["CNVRG_EMIT_T0"])
print("cnvrg_tag_count:", len([n for n in names if n.startswith("CNVRG_EMIT_T")]))
""",
        },
    )
    result = run_flow(file)
    assert result.state == "success", result
    emit = result.of("Emit")[0].tags
    assert "nul" not in emit and "huge" not in emit and len(emit) == 1000 and emit["t0"] == "0"
    assert result.of("Sink")[0].tags == {"t0": "0", "count": "1000"}
    text = logs(capfd)
    assert "tag 'nul' not kept: it holds a NUL byte" in text
    assert "tag 'huge' not kept: its value is 200,000 bytes" in text
    assert "2003 tags were not kept in all" in text  # the NUL, the huge one, 2,001 over the count
    assert "CNVRG_TASKS_PASSED_CONDITION (from 'Tasks'.'passed condition') is not set" in text
    assert "CNVRG_A_B_C is not set: 'A B'.'C' and 'A'.'b c' all give this name" in text


def test_a_tag_never_logged_fails_the_experiment_in_one_sentence(
    airflow_home: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    file = write_flow(
        tmp_path / "p",
        """\
flow: Missing Tag
tasks:
  - {title: Train, type: exec, input: "echo 'cnvrg_tag_loss: 0.1'", computes: [local]}
  - title: Report
    type: exec
    input: "echo never"
    computes: [local]
    params: [{key: acc, value: "{{ Train.accuracy }}"}]
relations:
  - {from: Train, to: Report}
""",
    )
    result = run_flow(file)
    assert result.state == "failed"
    assert [e.state for e in result.of("Report", None)] == ["failed"]
    text = logs(capfd)
    assert ("'Report' cannot start: its param 'acc' names a tag, but 'Train' did not log the tag 'accuracy' "
            "(tags it logged: loss)") in text
    assert "RouteError" not in text and "flow_airflow/common/routes.py" not in text
