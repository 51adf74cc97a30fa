"""Flows on the Docker compute, through real Airflow (``dag.test``) and the machine's Docker engine.

The example flows give the same routes, tags and artifacts on the Docker compute as on the local
one; a flow asserts from inside its containers that it is in one, in cnvrg's layout, with its
limits; ``computes: [gpu, docker]`` with only ``docker`` configured runs on Docker and ``plan``
says so; ``requirements.txt`` and ``prerun.sh`` run inside the container.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flow_airflow import settings
from flow_airflow.local_run import RunResult, run_flow

pytestmark = [pytest.mark.airflow, pytest.mark.containers]

BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # pip reaches PyPI here only with the host's CA bundle


@pytest.fixture
def docker_template(python_image: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Configure ``[flow_airflow] computes`` = ``{"docker": {"kind": "docker", "image": <python image>, ...}}``."""

    def configure(**keys: Any) -> None:
        template = {"kind": "docker", "image": python_image, "network_mode": "none", **keys}
        monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__COMPUTES", json.dumps({"docker": template}))
        settings.reset()

    configure()
    yield configure
    settings.reset()


def on_docker(file: Path, computes: str = "[docker]") -> Path:
    """The flow with every task asking ``computes: <computes>`` instead of ``[local]``, in a folder beside it."""
    text = file.read_text()
    if "computes: [local]" in text:
        text = text.replace("computes: [local]", f"computes: {computes}")
    else:  # a blueprint naming no computes
        assert "computes" not in text
        text = text.replace("    type: exec\n", f"    type: exec\n    computes: {computes}\n")
    folder = file.parent.with_name(file.parent.name + "_docker")
    subprocess.run(["cp", "-a", str(file.parent), str(folder)], check=True)
    (folder / file.name).write_text(text)
    return folder / file.name


def outcome(result: RunResult) -> list[tuple[Any, ...]]:
    """Each experiment's task, index, state, params, tags, and its stored files with their contents."""
    rows = []
    for e in sorted(result.experiments, key=lambda e: (e.task, e.index)):
        output = Path(e.record["output"]) if e.record else None
        files = sorted((str(p.relative_to(output)), p.read_bytes()) for p in output.rglob("*") if p.is_file()) \
            if output else []
        rows.append((e.task, e.index, e.state, e.params, e.tags, files))
    return rows


EXAMPLES = ["grid_two", "grid_three", "dynamic_routes", "conditions", "artifacts_tags"]
# the regression flows that run (tests/flows/regressions/README.md says what is right for each)
REGRESSIONS = ["yaml_typed_param_values", "date_params_rejected", "merge_key_override", "csv_trailing_comma",
               "absolute_input_paths", "workdir_artifacts_not_passed", "eq_condition_bool_target",
               "nan_wins_max_condition", "skipped_gate_skips_max_join"]


@pytest.mark.parametrize("name", EXAMPLES + [f"regressions/{name}" for name in REGRESSIONS])
def test_example_flows_give_the_same_on_docker_as_on_local(
    name: str, airflow_home: Path, project: Callable[..., Path], docker_template: Any, docker_engine: Any,
    capfd: pytest.CaptureFixture[str],
) -> None:
    local_file = project(name)
    docker_file = on_docker(local_file)
    local = run_flow(local_file)
    capfd.readouterr()
    docker = run_flow(docker_file)
    ran = [e for e in docker.experiments if e.record]
    assert capfd.readouterr().out.count("running on compute 'docker'") == len(ran) > 0
    assert local.state == docker.state == "success", capfd.readouterr()
    assert outcome(docker) == outcome(local)
    assert not left_behind(docker_engine, docker)  # every container of this run removed


def left_behind(engine: Any, run: Any) -> list[str]:
    """Containers of ``run``'s experiments still on the engine (others' containers, run at the same time, aside)."""
    from flow_airflow.computes.docker.compute import LABEL

    return [c["Id"] for c in engine.containers(all=True, filters={"label": LABEL})
            if c["Labels"][LABEL].startswith(f"{run.dag_id}.")]


INSIDE_FLOW = """\
flow: Inside
tasks:
  - {title: Prepare, type: exec, input: python3 prepare.py, computes: [docker]}
  - title: Check
    type: exec
    input: python3 check.py --data=/input/prepare/output/p.txt
    computes: [gpu, docker]
    requirements: {cpu: 1.5, memory: 0.5}
relations:
  - {from: Prepare, to: Check}
"""
PREPARE_PY = "open('output/p.txt', 'w').write('prepared')\n"
CHECK_PY = """\
import json, os, sys
from pathlib import Path
assert os.getcwd() == "/cnvrg", os.getcwd()
assert os.path.exists("/.dockerenv")
assert open("/input/prepare/output/p.txt").read() == "prepared"
assert sys.argv[1:] == ["--data=/input/prepare/output/p.txt"], sys.argv
v2 = Path('/sys/fs/cgroup/cpu.max')
if v2.exists():
    quota, period = v2.read_text().split()
    memory = Path('/sys/fs/cgroup/memory.max').read_text().strip()
else:
    quota = Path('/sys/fs/cgroup/cpu/cpu.cfs_quota_us').read_text().strip()
    period = Path('/sys/fs/cgroup/cpu/cpu.cfs_period_us').read_text().strip()
    memory = Path('/sys/fs/cgroup/memory/memory.limit_in_bytes').read_text().strip()
print("cnvrg_tag_cpus:", int(quota) / int(period))
print("cnvrg_tag_memory:", memory)
print("cnvrg_tag_input:", os.environ["INPUT_PREPARE"])
print("cnvrg_tag_workdir:", os.environ["CNVRG_WORKDIR"], os.environ["CNVRG_OUTPUT_DIR"])
print("cnvrg_tag_user:", f"{os.getuid()}:{os.getgid()}")
print("cnvrg_tag_worker_path:", ".venv" in os.environ["PATH"] or "/flow_workspaces/" in os.environ["PATH"])
from cnvrg import Experiment
Experiment().log_param("sdk", "yes")
open("output/made.txt", "w").write("inside")
"""


def test_inside_the_container_cnvrgs_layout_and_limits(
    airflow_home: Path, tmp_path: Path, docker_template: Any, python_image: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """Also: ``computes: [gpu, docker]`` with only ``docker`` configured runs on Docker."""
    folder = tmp_path / "inside"
    folder.mkdir()
    (folder / "flow.yaml").write_text(INSIDE_FLOW)
    (folder / "prepare.py").write_text(PREPARE_PY)
    (folder / "check.py").write_text(CHECK_PY)
    result = run_flow(folder / "flow.yaml")
    assert result.state == "success", capfd.readouterr()
    check = result.of("Check")[0]
    assert check.tags == {"cpus": "1.5", "memory": str(2**29), "input": "/input/prepare",
                          "workdir": "/cnvrg /cnvrg/output", "user": f"{os.getuid()}:{os.getgid()}",
                          "worker_path": "False", "sdk": "yes"}
    made = Path(check.record["output"]) / "output" / "made.txt"
    assert made.read_text() == "inside" and made.stat().st_uid == os.getuid()
    text = capfd.readouterr().out
    assert "compute template 'gpu' is not configured here; skipped" in text
    assert "running on compute 'docker'" in text
    assert "requirements: cpu=1.5, memory=0.5 [" in text  # nothing of it left out
    assert f"image: none named (runs in the compute's default image {python_image})" in text
    assert "working directory: /cnvrg (" in text


def test_plan_says_gpu_docker_runs_on_docker_in_its_image(tmp_path: Path, python_image: str) -> None:
    (tmp_path / "flow.yaml").write_text(INSIDE_FLOW.replace("input: python3 prepare.py",
                                                            "input: python3 prepare.py, image: mine:1"))
    env = {**os.environ, "AIRFLOW__FLOW_AIRFLOW__COMPUTES": json.dumps(
        {"docker": {"kind": "docker", "image": python_image}})}
    done = subprocess.run([sys.executable, "-m", "flow_airflow.cli", "plan", str(tmp_path / "flow.yaml")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    prepare = lines.index("  Prepare [exec]: 1 route")
    check = lines.index("  Check [exec after Prepare]: 1 route")
    assert lines[prepare + 1:check] == ["      compute: docker (docker)", "      image: mine:1"]
    assert lines[check + 1:] == [
        "      compute: docker (docker)",
        "      warning: compute template 'gpu' is not configured here; skipped",
        f"      image: {python_image} (the compute's default)",
    ]


SETUP_FLOW = """\
flow: Setup
tasks:
  - {title: Use, type: exec, input: python3 use.py, computes: [docker]}
relations: []
"""


def test_requirements_and_prerun_run_inside_the_container(
    airflow_home: Path, tmp_path: Path, docker_template: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    """cnvrg's defaults: ``requirements.txt`` installed, then ``prerun.sh`` run, in the task's container
    (pip needs the network: the template's ``network_mode: host`` and the host's CA bundle mounted)."""
    docker_template(network_mode="host", mounts=[f"{BUNDLE}:{BUNDLE}:ro"])
    folder = tmp_path / "setup"
    folder.mkdir()
    (folder / "flow.yaml").write_text(SETUP_FLOW)
    (folder / "requirements.txt").write_text("six==1.17.0\n")
    (folder / "prerun.sh").write_text("test -f /.dockerenv && echo in-container > prerun.txt\n")
    (folder / "use.py").write_text("import six\nprint('cnvrg_tag_six:', six.__version__)\n"
                                   "print('cnvrg_tag_prerun:', open('prerun.txt').read().strip())\n"
                                   "print('cnvrg_tag_from:', six.__file__.split('/')[1])\n")
    result = run_flow(folder / "flow.yaml")
    assert result.state == "success", capfd.readouterr()
    assert result.of("Use")[0].tags == {"six": "1.17.0", "prerun": "in-container", "from": "cnvrg"}
