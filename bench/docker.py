"""The Docker compute's cost per experiment against the same command under ``docker run`` by hand.

One 1-second experiment (``python3`` sleeps a second and logs a tag) in the locally built Python
image (``docker/images/build.py``), with cnvrg's layout bound (the workspace at ``/cnvrg``, its
``input`` at ``/input``, ``.cnvrg_data`` at ``/data``, the SDK read-only), Docker's init, no network:

- flow-airflow: a fresh :class:`~flow_airflow.computes.docker.compute.DockerCompute` per experiment (as a
  task makes one), ``run`` of the launch: the client from ``DockerHook``, create, start, both log
  streams followed line by line, wait, remove;
- by hand: ``docker run --rm --init --network none -v ... -w /cnvrg <image> sh -c <command>``, its
  output read to the end.

The two alternate, after one warm-up each; each figure is the median wall time of an experiment.
"""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.report import Row

REPO = Path(__file__).parent.parent
COMMAND = "python3 -c 'import time; time.sleep(1); print(\"cnvrg_tag_slept: 1\")'"


def image() -> str:
    """The Python image's tag, built first if the engine lacks it (``docker/images/build.py``)."""
    spec = importlib.util.spec_from_file_location("flow_airflow_images", REPO / "docker" / "images" / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.ensure_image("python", log=lambda m: print(m, file=sys.stderr))


def _compute(workspace: Path, tag: str) -> float:
    from flow_airflow.computes.base import Launch
    from flow_airflow.computes.docker.compute import DockerCompute
    from flow_airflow.runtime.environment import SDK_PATH

    start = time.perf_counter()
    compute = DockerCompute("docker", {"kind": "docker", "image": tag, "network_mode": "none"})
    layout = compute.layout(workspace, SDK_PATH)
    launch = Launch(name="bench.docker", command=COMMAND, shown=COMMAND, workspace=workspace, cwd=layout.cnvrg,
                    env={"PYTHONPATH": str(layout.sdk)}, layout=layout)
    lines: list[str] = []
    code = compute.run(launch, lines.append)
    assert code == 0 and lines == ["cnvrg_tag_slept: 1"], (code, lines)
    return time.perf_counter() - start


def _by_hand(workspace: Path, tag: str) -> float:
    from flow_airflow.runtime.environment import SDK_PATH

    start = time.perf_counter()
    binds = [f"{workspace}:/cnvrg", f"{workspace / 'input'}:/input", f"{workspace / '.cnvrg_data'}:/data",
             f"{SDK_PATH}:/opt/flow-airflow/sdk:ro"]
    done = subprocess.run(
        ["docker", "run", "--rm", "--init", "--network", "none", *(a for b in binds for a in ("-v", b)),
         "-w", "/cnvrg", "-e", "PYTHONPATH=/opt/flow-airflow/sdk", tag, "sh", "-c", COMMAND],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0 and done.stdout.splitlines() == ["cnvrg_tag_slept: 1"], done
    return time.perf_counter() - start


def run(root: Path, reps: int) -> list[Row]:
    """Alternate ``reps`` experiments of each side after a warm-up: one row, with the target 1.2."""
    tag = image()
    workspace = root / "workspace"
    for folder in (workspace / "input", workspace / ".cnvrg_data"):
        folder.mkdir(parents=True, exist_ok=True)
    _compute(workspace, tag), _by_hand(workspace, tag)  # warm-up: imports, the image's layers in the page cache
    flow: list[float] = []
    hand: list[float] = []
    for _ in range(reps):
        flow.append(_compute(workspace, tag))
        hand.append(_by_hand(workspace, tag))
    return [Row("docker", f"a 1-second experiment on the Docker compute vs `docker run` by hand, median of {reps}",
                statistics.median(flow), statistics.median(hand), target=1.2,
                ratio_of="Docker compute / docker run", samples={"flow": flow, "hand": hand})]
