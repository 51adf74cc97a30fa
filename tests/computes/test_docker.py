"""The Docker compute without an engine: its template's keys, what it refuses and says, the container's
environment and limits, and the line splitting of its output. The containers themselves run in
tests/containers/test_docker_compute.py (a real engine)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest
from pydantic import ValidationError

from flow_airflow import computes
from flow_airflow.computes.base import MAX_LINE, Launch, decoded, lines
from flow_airflow.computes.docker.compute import DockerCompute
from flow_airflow.spec.models import ExecTask


def task(**keys: object) -> ExecTask:
    return ExecTask.model_validate({"title": "Train", "type": "exec", "input": "python3 train.py", **keys})


def test_registered_as_kind_docker_with_its_keys() -> None:
    compute = computes.create({"name": "gpu", "kind": "docker", "settings": {"image": "python:3.11"}})
    assert isinstance(compute, DockerCompute) and compute.name == "gpu"
    assert compute.settings.network_mode == "host" and compute.settings.pull == "missing"
    assert compute.settings.mounts == () and compute.settings.user is None


@pytest.mark.parametrize(("keys", "said"), [
    ({"pull": "sometimes"}, "'missing', 'always' or 'never'"),
    ({"mounts": ["relative:/x"]}, "a mount is '/path/on/worker:/path/in/container'"),
    ({"mounts": ["/a:/b:rx"]}, "a mount is"),
    ({"network_mode": ""}, "at least 1 character"),
    ({"imgae": "python"}, "Extra inputs are not permitted"),
])
def test_template_mistakes_are_refused(keys: dict, said: str) -> None:
    with pytest.raises(ValidationError, match=said):
        DockerCompute("docker", {"kind": "docker", **keys})


def test_the_setting_reads_a_docker_template(monkeypatch: pytest.MonkeyPatch) -> None:
    from flow_airflow import settings

    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__COMPUTES", '{"docker": {"kind": "docker", "pull": "never"}}')
    settings.reset()
    try:
        assert computes.templates()["docker"]["pull"] == "never"
        monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__COMPUTES", '{"docker": {"kind": "docker", "pull": "no"}}')
        settings.reset()
        with pytest.raises(ValueError, match="pull"):
            computes.templates()
    finally:
        settings.reset()


def test_image_of_a_task_else_the_default_else_refused() -> None:
    compute = DockerCompute("docker", {"kind": "docker", "image": "base:1"})
    assert compute.image_of(task(image="mine:2")) == "mine:2"
    assert compute.image_of(task()) == "base:1"
    assert compute.refusal(task()) is None
    bare = DockerCompute("docker", {"kind": "docker"})
    assert bare.refusal(task()) == ("'Train' names no image and the Docker compute 'docker' has no default image "
                                   "(its template's \"image\")")
    assert bare.refusal(task(image="mine:2")) is None


def test_what_plan_warns_of() -> None:
    compute = DockerCompute("docker", {"kind": "docker", "image": "base:1"})
    notes = compute.plan_notes(task(requirements={"cpu": 1, "hpu": 2}, mount_folders=["10.0.0.1:/data"]),
                               ["python3 train.py --path /data/iris/x.csv"])
    assert notes == [
        "it cannot run: 'Train' mounts network folders (10.0.0.1:/data), which the Docker compute 'docker' "
        "cannot do yet",
        "requirements hpu: 2 is not honoured by the Docker compute 'docker'",
    ]  # /data paths: datasets are staged by data tasks; plan warns of one no data task gives (runtime.paths)
    assert compute.plan_notes(task(requirements={"cpu": 1, "gpu": 1}), ["python3 train.py"]) == []


def launch(env: dict[str, str], **keys: object) -> Launch:
    compute = DockerCompute("docker", {"kind": "docker", "image": "base:1"})
    layout = compute.layout(Path("/ws"), Path("/sdk"))
    return Launch(name="n", command="true", shown="true", workspace=Path("/ws"), cwd=layout.cnvrg, env=env,
                  layout=layout, **keys)  # type: ignore[arg-type]


def test_layout_is_cnvrgs_own(tmp_path: Path) -> None:
    compute = DockerCompute("docker", {"kind": "docker", "image": "base:1", "mounts": ["/etc/x:/etc/x:ro"]})
    layout = compute.layout(tmp_path, Path("/sdk"))
    assert (layout.cnvrg, layout.input, layout.data) == tuple(PurePosixPath(p) for p in ("/cnvrg", "/input", "/data"))
    assert compute._binds(launch({})) == ["/ws:/cnvrg:rw", "/ws/input:/input:rw", "/ws/.cnvrg_data:/data:rw",
                                          "/sdk:/opt/flow-airflow/sdk:ro", "/etc/x:/etc/x:ro"]


def test_the_container_gets_the_experiments_variables_not_the_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/worker/lib:/worker/site")
    monkeypatch.setenv("HOME", "/root")
    env = {"HOME": "/root", "PATH": "/usr/bin", "CNVRG_WORKDIR": "/cnvrg", "PROJECT_KEY": "v",
           "PYTHONPATH": "/opt/flow-airflow/sdk:/worker/lib:/worker/site"}
    monkeypatch.setenv("PATH", "/usr/bin")
    assert launch(env).container_env() == {"CNVRG_WORKDIR": "/cnvrg", "PROJECT_KEY": "v",
                                          "PYTHONPATH": "/opt/flow-airflow/sdk"}


def test_requirements_become_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    compute = DockerCompute("docker", {"kind": "docker", "image": "base:1"})
    monkeypatch.setattr(compute, "_engine_cpus", 2)
    limits = compute._limits({"cpu": 1.5, "memory": 0.5, "gpu": 1, "hpu": 1})
    assert limits["nano_cpus"] == 1_500_000_000 and limits["mem_limit"] == 2**29
    assert [(r["Count"], r["Capabilities"]) for r in limits["device_requests"]] == [(1, [["gpu"]])]
    assert compute._limits({"cpu": 8})["nano_cpus"] == 2_000_000_000  # at most the engine's CPUs
    assert compute.ignores(launch({}, resources={"cpu": 8, "hpu": 1}, image="x")) == {
        "requirements": "hpu is not honoured by the Docker compute; cpu limited to the engine's 2 CPUs"}
    assert compute.ignores(launch({})) == {"image": "runs in the compute's default image base:1"}


def test_lines_as_printed_whatever_the_chunks() -> None:
    chunks = [b"cnvrg_tag_a: 1\ncnvrg_", b"tag_b: 2\n", b"caf\xc3", b"\xa9\n", b"no newline at the end"]
    assert list(lines(decoded(chunks))) == ["cnvrg_tag_a: 1", "cnvrg_tag_b: 2", "café", "no newline at the end"]


def test_a_huge_line_is_cut_memory_bounded() -> None:
    def chunks():
        yield b"start\n"
        for _ in range(10):
            yield b"x" * MAX_LINE
        yield b"\nafter\n"

    out = list(lines(decoded(chunks())))
    assert out[0] == "start" and out[2] == "after" and len(out) == 3
    assert out[1].startswith("x" * 100) and out[1].endswith(f"[line cut: {9 * MAX_LINE:,} more characters not shown]")


def test_reading_and_choosing_a_docker_template_imports_no_docker_module() -> None:
    """DAG parse time reads the templates and plans on them: the provider and the SDK wait for a container."""
    import json
    import os
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from flow_airflow import computes, settings\n"
        "from flow_airflow.spec.models import ExecTask\n"
        "choice = computes.choose(['gpu', 'docker'], computes.templates())\n"
        "task = ExecTask.model_validate({'title': 'T', 'type': 'exec', 'input': 'true', 'requirements': {'cpu': 1}})\n"
        "compute = choice.compute()\n"
        "assert (choice.kind, compute.plan_notes(task, ['true']), compute.refusal(task)) == ('docker', [], None)\n"
        "heavy = ('airflow.providers.docker.hooks', 'airflow.providers.docker.operators')\n"  # not its provider info
        "print([m for m in sys.modules if m.split('.')[0] == 'docker' or m.startswith(heavy)])\n"
    )
    env = {**os.environ, "AIRFLOW__FLOW_AIRFLOW__COMPUTES": json.dumps({"docker": {"kind": "docker", "image": "x"}})}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
