"""The machine's Docker engine and the Python image do what the Docker compute relies on.

Real containers of the locally built image (tests/containers/conftest.py): Python runs, the
network is none or the host's, the project is bind-mounted read-only at ``/cnvrg`` as the working
directory, CPU and memory limits reach the container's cgroup, output streams line by line with
stdout and stderr apart, and ``docker stop`` ends a running experiment.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.containers


def run(engine: Any, ident: str, timeout: int = 60) -> tuple[int, str, str]:
    """Start a created container and wait for it: (exit code, stdout, stderr)."""
    engine.start(ident)
    code = engine.wait(ident, timeout=timeout)["StatusCode"]
    out = engine.logs(ident, stdout=True, stderr=False).decode()
    err = engine.logs(ident, stdout=False, stderr=True).decode()
    return code, out, err


def lines(chunks: Any) -> Any:
    """``(stream, line)`` for each whole line of a demuxed attach stream, as soon as it is whole."""
    pending = {"stdout": b"", "stderr": b""}
    for out, err in chunks:
        for stream, data in (("stdout", out), ("stderr", err)):
            pending[stream] += data or b""
            *whole, pending[stream] = pending[stream].split(b"\n")
            for line in whole:
                yield stream, line.decode()
    for stream, rest in pending.items():
        if rest:
            yield stream, rest.decode()


def test_python_of_the_image(docker_engine: Any, python_image: str, container: Any) -> None:
    """Debian's python3 (3.11 on bookworm) runs, with pip and venv, and the recipe is inside."""
    script = ("import ensurepip, json, sys, venv; import pip; "
              "print(json.dumps([list(sys.version_info[:2]), json.load(open('/etc/flow-airflow-image.json'))]))")
    code, out, err = run(docker_engine, container(python_image, ["python3", "-c", script], network="none"))
    assert code == 0, err
    version, recipe = json.loads(out)
    assert version == [3, 11]
    assert recipe["name"] == "python" and "python3" in recipe["packages"]


def test_the_image_is_not_built_twice(python_image: str, image_builder: Any) -> None:
    """Asking again gives the same tag at once: the engine has the image of that content key."""
    start = time.monotonic()
    assert image_builder.ensure_image("python") == python_image == image_builder.image_tag("python")
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("network", ["none", "host"])
def test_networks(docker_engine: Any, python_image: str, container: Any, network: str) -> None:
    """``none``: loopback only; ``host``: the host's interfaces. Never a bridge."""
    script = "import os; print(' '.join(sorted(os.listdir('/sys/class/net'))))"
    code, out, err = run(docker_engine, container(python_image, ["python3", "-c", script], network=network))
    assert code == 0, err
    want = ["lo"] if network == "none" else sorted(os.listdir("/sys/class/net"))
    assert out.split() == want


def test_no_bridge_network(container: Any, python_image: str) -> None:
    with pytest.raises(ValueError, match="none or host"):
        container(python_image, ["true"], network="bridge")


def test_project_mounted_read_only_as_working_directory(
    docker_engine: Any, python_image: str, container: Any, tmp_path: Path
) -> None:
    """The project at ``/cnvrg``, read-only, the working directory; a writable ``/output`` beside it."""
    (tmp_path / "project").mkdir()
    (tmp_path / "output").mkdir()
    (tmp_path / "project" / "train.py").write_text(
        "import json, os\n"
        "try:\n    open('new.txt', 'w')\n    wrote = True\nexcept OSError as e:\n    wrote = e.errno\n"
        "open('/output/result.txt', 'w').write('ok')\n"
        "print(json.dumps({'cwd': os.getcwd(), 'files': sorted(os.listdir()), 'wrote': wrote}))\n"
    )
    ident = container(
        python_image, ["python3", "train.py"], network="none", workdir="/cnvrg",
        binds={str(tmp_path / "project"): {"bind": "/cnvrg", "mode": "ro"},
               str(tmp_path / "output"): {"bind": "/output", "mode": "rw"}},
    )
    code, out, err = run(docker_engine, ident)
    assert code == 0, err
    assert json.loads(out) == {"cwd": "/cnvrg", "files": ["train.py"], "wrote": 30}  # 30: EROFS
    assert (tmp_path / "output" / "result.txt").read_text() == "ok"
    assert sorted(p.name for p in (tmp_path / "project").iterdir()) == ["train.py"]


def test_cnvrg_sdk_mounted_into_the_image(docker_engine: Any, python_image: str, container: Any) -> None:
    """The scripts' ``from cnvrg import Experiment`` works on the image's Python, the SDK mounted read-only."""
    from flow_airflow.runtime.environment import SDK_PATH

    script = "from cnvrg import Experiment; Experiment().log_param('acc', 0.9)"
    ident = container(python_image, ["python3", "-c", script], network="none",
                      env={"PYTHONPATH": "/opt/flow-airflow/sdk"},
                      binds={str(SDK_PATH): {"bind": "/opt/flow-airflow/sdk", "mode": "ro"}})
    code, out, err = run(docker_engine, ident)
    assert code == 0, err
    assert out.splitlines() == ["cnvrg_tag_acc: 0.9"]


def test_pip_installs_from_pypi_with_the_host_ca_bundle(
    docker_engine: Any, python_image: str, container: Any, tmp_path: Path
) -> None:
    """requirements.txt inside a container: host network, and the host's CA bundle mounted over the
    image's (PyPI is reached through a certificate the image's own bundle does not trust)."""
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    (tmp_path / "requirements.txt").write_text("six==1.17.0\n")
    command = ("python3 -m pip install --quiet --no-cache-dir --target /tmp/packages -r requirements.txt && "
               "PYTHONPATH=/tmp/packages python3 -c 'import six; print(six.__version__)'")
    ident = container(
        python_image, ["sh", "-c", command], network="host", workdir="/cnvrg",
        binds={str(tmp_path): {"bind": "/cnvrg", "mode": "ro"}, bundle: {"bind": bundle, "mode": "ro"}},
    )
    code, out, err = run(docker_engine, ident, timeout=120)
    assert code == 0, err
    assert out.strip() == "1.17.0"


CGROUP_LIMITS = """
import json
from pathlib import Path
v2 = Path('/sys/fs/cgroup/cpu.max')
if v2.exists():
    quota, period = v2.read_text().split()
    memory = Path('/sys/fs/cgroup/memory.max').read_text().strip()
else:
    quota = Path('/sys/fs/cgroup/cpu/cpu.cfs_quota_us').read_text().strip()
    period = Path('/sys/fs/cgroup/cpu/cpu.cfs_period_us').read_text().strip()
    memory = Path('/sys/fs/cgroup/memory/memory.limit_in_bytes').read_text().strip()
print(json.dumps({'cpus': int(quota) / int(period), 'memory': int(memory)}))
"""


def test_cpu_and_memory_limits_inside(docker_engine: Any, python_image: str, container: Any) -> None:
    """``--cpus 1.5 --memory 1.5g`` (cnvrg's ``requirements: {cpu: 1.5, memory: 1.5}``, GiB) in the cgroup."""
    ident = container(python_image, ["python3", "-c", CGROUP_LIMITS], network="none",
                      nano_cpus=1_500_000_000, mem_limit=int(1.5 * 2**30))
    code, out, err = run(docker_engine, ident)
    assert code == 0, err
    assert json.loads(out) == {"cpus": 1.5, "memory": int(1.5 * 2**30)}


def test_output_streamed_line_by_line(docker_engine: Any, python_image: str, container: Any) -> None:
    """Each line reaches the reader when printed (not at the end), stdout and stderr apart."""
    script = ("import sys, time\n"
              "print('cnvrg_tag_step: 1', flush=True)\n"
              "print('a warning', file=sys.stderr, flush=True)\n"
              "time.sleep(1.5)\n"
              "print('cnvrg_tag_step: 2', flush=True)\n")
    ident = container(python_image, ["python3", "-c", script], network="none")
    stream = docker_engine.attach(ident, stdout=True, stderr=True, stream=True, demux=True)
    start = time.monotonic()
    docker_engine.start(ident)
    seen = [(name, line, time.monotonic() - start) for name, line in lines(stream)]
    assert docker_engine.wait(ident, timeout=30)["StatusCode"] == 0
    stdout = [(line, at) for name, line, at in seen if name == "stdout"]
    assert [line for name, line, _ in seen if name == "stderr"] == ["a warning"]  # its order to stdout's: not kept
    assert [line for line, _ in stdout] == ["cnvrg_tag_step: 1", "cnvrg_tag_step: 2"]
    assert stdout[1][1] - stdout[0][1] > 1.0, f"lines came together, not as printed: {seen}"


def test_without_init_python_as_pid_1_ignores_sigterm(
    docker_engine: Any, python_image: str, container: Any
) -> None:
    """Why the compute asks for Docker's init: PID 1 ignores SIGTERM, so stop waits, then kills (137)."""
    ident = container(python_image, ["python3", "-c", "import time; time.sleep(600)"], network="none")
    docker_engine.start(ident)
    start = time.monotonic()
    docker_engine.stop(ident, timeout=1)
    assert time.monotonic() - start >= 1
    assert docker_engine.wait(ident, timeout=30)["StatusCode"] == 137


def test_docker_stop_ends_a_running_experiment(docker_engine: Any, python_image: str, container: Any) -> None:
    """With Docker's init as PID 1, ``docker stop`` delivers SIGTERM to the experiment at once."""
    script = ("import signal, sys, time\n"
              "signal.signal(signal.SIGTERM, lambda *_: (print('terminated', flush=True), sys.exit(143)))\n"
              "print('started', flush=True)\n"
              "time.sleep(600)\n")
    ident = container(python_image, ["python3", "-c", script], network="none", init=True)
    stream = docker_engine.attach(ident, stdout=True, stderr=True, stream=True, demux=True)
    docker_engine.start(ident)
    output = lines(stream)
    assert next(output) == ("stdout", "started")
    start = time.monotonic()
    docker_engine.stop(ident, timeout=20)
    assert time.monotonic() - start < 10  # SIGTERM was heard, not the 20 s grace period's SIGKILL
    assert docker_engine.wait(ident, timeout=30)["StatusCode"] == 143
    assert list(output) == [("stdout", "terminated")]
    assert docker_engine.inspect_container(ident)["State"]["Running"] is False
