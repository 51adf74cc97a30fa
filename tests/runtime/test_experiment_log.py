"""What an experiment's log says, through real Airflow (``dag.test()``): its opening and closing sections,
stderr at ERROR, a failure told once without Airflow's frames after it, a failed experiment's files kept.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from flow_airflow import settings
from flow_airflow.local_run import run_flow
from flow_airflow.runtime.artifacts import ArtifactStore

pytestmark = pytest.mark.airflow

SECRET = "hunter2-very-secret"
FLOW = """\
flow: Log Sections
tasks:
  - title: Prepare
    type: exec
    input: python3 prepare.py
    computes: [local]
    image: python:3.11-slim
    params:
      - {key: api_token, value: "SECRET"}
      - {key: size, value: ["10"]}
      - {key: password, value: "abc"}
  - title: Train
    type: exec
    input: python3 train.py
    computes: [local]
relations:
  - {from: Prepare, to: Train}
""".replace("SECRET", SECRET)
SCRIPTS = {
    "prepare.py": """\
import os, sys, time
open("output/data.csv", "w").write("1,2\\n")
print("cnvrg_tag_rows: 2", flush=True)
time.sleep(0.2)
print("careful: few rows", file=sys.stderr, flush=True)
time.sleep(0.2)
print("done preparing", flush=True)
""",
    "train.py": "print('cnvrg_tag_accuracy: 0.9')\n",
}


def write_flow(folder: Path, text: str, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    for name, body in files.items():
        (folder / name).write_text(body)
    (folder / "flow.yaml").write_text(text)
    return folder / "flow.yaml"


def messages(text: str) -> list[tuple[str, str]]:
    """(level, message) of each console log line of the captured output (dag.test() logs to the console)."""
    found = []
    for line in text.splitlines():
        m = re.match(r"^\S+Z \[(\w+)\s*\] (.*?)(?:\s+\[[\w.]+\](?: \S+=\S+)*)?$", line)
        if m:
            found.append((m[1], m[2].rstrip()))
        else:
            found.append(("", line))
    return found


def section(found: list[tuple[str, str]], title: str) -> list[str]:
    """The lines of the log group whose title starts with ``title``."""
    start = next(i for i, (_, m) in enumerate(found) if m.startswith(f"::group::{title}"))
    end = next(i for i in range(start, len(found)) if found[i][1] == "::endgroup::")
    return [m for _, m in found[start + 1 : end]]


def test_the_log_opens_with_route_inputs_variables_compute_and_ends_with_tags_and_artifacts(
    airflow_home: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    result = run_flow(write_flow(tmp_path / "p", FLOW, SCRIPTS))
    assert result.state == "success", result
    found = messages(capfd.readouterr().out)
    store = ArtifactStore(settings.artifacts_root())
    prepare_kept = store.location("log_sections", result.run_id, "prepare", 0)
    train_kept = store.location("log_sections", result.run_id, "train", 0)
    text = [m for _, m in found]
    train = text.index(next(m for m in text if m.startswith("::group::Route: after Prepare #0")))
    prepare, train_log = found[:train], found[train:]

    # the first experiment: the first of its route, its own params as variables, the secret masked
    assert section(prepare, "Route: the first task of its route") == ["no task before it"]
    assert section(prepare, "Inputs: 0 folder(s)") == ["none staged"]
    variables = section(prepare, "Variables: ")
    assert "CNVRG_TAG_API_TOKEN=***" in variables and "CNVRG_TAG_SIZE=10" in variables
    assert "CNVRG_TAG_PASSWORD=***" in variables  # too short for the masker: these sections hide it themselves
    assert "CNVRG_EXPERIMENT_TITLE=Prepare #0" in variables
    compute = section(prepare, "Compute: local (local), image python:3.11-slim")
    assert "image: python:3.11-slim (not used by the local compute: the command runs on the worker)" in compute
    assert "command: python3 prepare.py --api_token '***' --size 10 --password '***'" in compute
    # said nowhere in its log (but in the route's label, which Airflow's XCom line shows: labels are not masked yet)
    assert not [m for _, m in prepare if SECRET in m and not m.startswith("Pushing xcom")]
    # the masked values are registered with Airflow's secrets masker, which hides them in every task log line
    from airflow.sdk._shared.secrets_masker import redact

    assert redact(f"token {SECRET}") == "token ***"
    # stdout at INFO, stderr at ERROR (the "Error" filter of Airflow's log view shows it)
    assert ("info", "cnvrg_tag_rows: 2") in prepare and ("info", "done preparing") in prepare
    assert ("error", "careful: few rows") in prepare
    assert text.index("running on compute 'local'") > \
        text.index("::group::Compute: local (local), image python:3.11-slim")
    assert section(prepare, "Tags recorded: 1") == ["rows=2"]
    assert ("info", f"artifacts stored at {prepare_kept}") in prepare
    assert (prepare_kept / "output" / "data.csv").read_text() == "1,2\n"
    ends = [m for _, m in prepare if m.startswith("::") or m.startswith("artifacts stored")]
    post = ends.index("::group::Post Execute")  # Airflow's own section after execute
    assert ends[post - 3 : post] == ["::group::Tags recorded: 1", "::endgroup::", f"artifacts stored at {prepare_kept}"]

    # the second: its route (each task before it, params and tags), the inputs staged, the upstream variables
    assert section(train_log, "Route: after Prepare #0") == [
        "Prepare #0: params api_token=***, size=10, password=***; tags rows=2"]
    inputs = section(train_log, "Inputs: 1 folder(s)")
    workdir = Path(os.environ.get("AIRFLOW_HOME", "")) / "flow_workspaces"
    assert len(inputs) == 1 and inputs[0].startswith(f"input/prepare (INPUT_PREPARE={workdir}")
    assert inputs[0].endswith(f"/train/0.try1/input/prepare): the files of Prepare #0, from {prepare_kept}")
    variables = section(train_log, "Variables: ")
    assert {"CNVRG_PREPARE_API_TOKEN=***", "CNVRG_PREPARE_ROWS=2", "CNVRG_PREPARE_SIZE=10"} <= set(variables)
    assert section(train_log, "Compute: local (local)")[:2] == ["compute: local (local)", "image: none named"]
    assert section(train_log, "Tags recorded: 1") == ["accuracy=0.9"]
    assert ("info", f"artifacts stored at {train_kept}") in train_log
    assert not [m for _, m in found if SECRET in m and not m.startswith("Pushing xcom")]


FAILING = """\
flow: Failing Log
tasks:
  - {title: Boom, type: exec, input: "python3 boom.py", computes: [local]}
  - {title: Never, type: exec, input: "true", computes: [local]}
relations:
  - {from: Boom, to: Never}
"""
BOOM = """\
import sys, time
open("output/partial.txt", "w").write("half done")
open("notes.txt", "w").write("what it saw")
print("cnvrg_tag_epoch: 3", flush=True)
time.sleep(0.2)
print("loading data", flush=True)
time.sleep(0.2)
raise SystemExit("out of memory at epoch 3")
"""


def test_the_local_compute_gives_stderr_lines_apart(tmp_path: Path) -> None:
    from flow_airflow.computes.base import Launch
    from flow_airflow.computes.local.compute import LocalCompute

    out: list[str] = []
    err: list[str] = []
    command = Launch.local("echo one; echo two >&2; sleep 0.1; echo three", tmp_path, dict(os.environ))
    code = LocalCompute().run(command, out.append, err.append)
    assert (code, out, err) == (0, ["one", "three"], ["two"])
    both: list[str] = []
    assert LocalCompute().run(command, both.append) == 0
    assert sorted(both) == ["one", "three", "two"]  # without on_error_line: one stream, as before


def test_a_failure_is_told_at_error_once_without_airflow_frames_after_it_and_its_files_are_kept(
    airflow_home: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    result = run_flow(write_flow(tmp_path / "p", FAILING, {"boom.py": BOOM}))
    assert result.state == "failed"
    assert [e.state for e in result.of("Never", None)] == ["upstream_failed"]
    text = capfd.readouterr().out
    found = messages(text)
    # the command's stderr, and the failure with its last lines, at ERROR
    assert ("error", "out of memory at epoch 3") in found
    assert ("info", "loading data") in found
    message = "'Boom' failed: its command exited with code 1. Last lines of its output:"
    told = [i for i, (level, m) in enumerate(found) if level == "error" and m.startswith(message)]
    assert len(told) == 1
    assert [m for _, m in found[told[0] + 1 : told[0] + 3]] == ["cnvrg_tag_epoch: 3", "loading data"]
    # the failed experiment's files: stored apart, marked failed, the log says where; nothing for the next tasks
    store = ArtifactStore(settings.artifacts_root())
    kept = store.location("failing_log", result.run_id, "boom", 0, failed=True)
    assert kept.name == "0.failed"
    assert (kept / "output" / "partial.txt").read_text() == "half done"
    assert (kept / "notes.txt").read_text() == "what it saw"
    assert not store.location("failing_log", result.run_id, "boom", 0).exists()
    after = [m for _, m in found[told[0] :]]
    assert section(found[told[0] :], "Tags recorded: 1") == ["epoch=3"]
    assert ("error", f"the failed experiment's files are stored at {kept} (for debugging: no task after it uses "
                     "them)") in found
    # what follows the message: no stack frame until Airflow's own "Task failed with exception" line, whose
    # exception says the failure in one line, without the output's last lines
    runner = next(i for i, m in enumerate(after) if m.startswith("Task failed with exception"))
    assert not [m for m in after[:runner] if m.startswith(("Traceback", "  File "))]
    exception = next(m for m in after[runner:] if m.startswith("airflow.sdk.exceptions.AirflowException: "))
    assert exception == ("airflow.sdk.exceptions.AirflowException: 'Boom' failed: its command exited with code 1 "
                         "(its last line: out of memory at epoch 3)")
    assert after[after.index(exception) + 1] != "cnvrg_tag_epoch: 3"
