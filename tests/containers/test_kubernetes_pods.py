"""The Kubernetes compute's pods, run on the machine's Docker engine (no cluster can be had here).

The example flows run through real Airflow (``dag.test``) on a ``kubernetes`` template; only
``KubernetesCompute.run_pod`` (the API server's part) is replaced by :func:`run_on_docker`, which
runs the pod's containers in order, as the kubelet would: the same images, commands, environment,
working directory and volume mounts, the ``workspace`` emptyDir being a fresh folder bound where the
pod mounts it (``subPath`` included). Every pod is also validated against Kubernetes' schema. The
routes, tags and stored files must be those of the local compute.

What differs from a cluster: the stager image is the test's Python image with flow-airflow's source
bound at ``/opt/flow-airflow/src`` (``PYTHONPATH``), and the exchange is a folder of the worker (bound
at the same path) instead of object storage; containers run as the worker's user, with no network.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.cncf.kubernetes.triggers.pod import KubernetesPodTrigger

from flow_airflow import settings
from flow_airflow.computes.base import decoded, lines
from flow_airflow.computes.kubernetes.compute import KubernetesCompute, pod_dict
from flow_airflow.local_run import run_flow
from tests.computes.test_kubernetes import validate
from tests.containers.test_docker_flows import EXAMPLES, outcome

pytestmark = [pytest.mark.airflow, pytest.mark.containers]

SOURCE = Path(__file__).parents[2]  # the repository: flow_airflow/ is the stager's code
STAGERS = ("stage-inputs", "store-outputs")
TRIGGERS: list[tuple[str, dict[str, Any]]] = []  # the triggers the deferred tasks waited with, serialized


def _binds(container: dict[str, Any], volumes: dict[str, Any], workspace: Path) -> dict[str, dict[str, str]]:
    binds = {}
    for mount in container.get("volumeMounts", []):
        assert "emptyDir" in volumes[mount["name"]], "only the workspace emptyDir can be had on Docker"
        source = workspace / mount.get("subPath", "")
        binds[str(source)] = {"bind": mount["mountPath"], "mode": "ro" if mount.get("readOnly") else "rw"}
    return binds


def run_on_docker(client: Any, pod: dict[str, Any], workspace: Path, exchange: Path,
                  on_line: Callable[[str], None], datasets: Path | None = None) -> int:
    """Run ``pod``'s init containers then its container, in order, on Docker; the last one's exit code
    (an init container that fails ends the pod, as on Kubernetes). The ``experiment`` container's log
    goes to ``on_line``. ``datasets``: the dataset store's folder, bound (read-only) into the stagers
    at its own path, as the exchange is."""
    spec = pod["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    code = 0
    for container in spec["initContainers"] + spec["containers"]:
        binds = _binds(container, volumes, workspace)
        env = {e["name"]: e["value"] for e in container.get("env", [])}
        if container["name"] in STAGERS:  # the stand-in of flow-airflow's image, and the exchange
            binds[str(SOURCE / "flow_airflow")] = {"bind": "/opt/flow-airflow/src/flow_airflow", "mode": "ro"}
            binds[str(exchange)] = {"bind": str(exchange), "mode": "rw"}
            if datasets is not None:
                binds[str(datasets)] = {"bind": str(datasets), "mode": "ro"}
            env["PYTHONPATH"] = "/opt/flow-airflow/src"
        ident = client.create_container(
            container["image"], entrypoint=container["command"], command=container.get("args"),
            working_dir=container.get("workingDir"), environment=env, user=f"{os.getuid()}:{os.getgid()}",
            host_config=client.create_host_config(binds=binds, network_mode="none"),
        )["Id"]
        try:
            client.start(ident)
            if container["name"] == "experiment":
                for line in lines(decoded(client.logs(ident, stream=True, follow=True))):
                    on_line(line)
            code = int(client.wait(ident)["StatusCode"])
            if code and container["name"] != "experiment":
                print(client.logs(ident).decode(errors="replace"))
        finally:
            client.remove_container(ident, force=True)
        if code:
            return code
    return code


@pytest.fixture
def on_pods(python_image: str, docker_engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """A ``kubernetes`` template on the Python image; pods run by :func:`run_on_docker`; the pods made."""
    exchange = tmp_path / "exchange"
    datasets = tmp_path / "datasets"  # the dataset store, a folder here (object storage on a cluster)
    datasets.mkdir()
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__DATASETS_FOLDER", str(datasets))
    pods: list[dict[str, Any]] = []

    def run_pod(self: KubernetesCompute, pod: Any, on_line: Callable[[str], None]) -> int:
        rendered = pod_dict(pod)
        validate(rendered)
        pods.append(rendered)
        workspace = tmp_path / "pods" / rendered["metadata"]["name"]
        workspace.mkdir(parents=True)
        return run_on_docker(docker_engine, rendered, workspace, exchange, on_line, datasets)

    monkeypatch.setattr(KubernetesCompute, "run_pod", run_pod)
    ended: dict[str, tuple[list[str], int]] = {}  # pod name -> its experiment log and exit code

    def create_pod(self: KubernetesCompute, pod: Any) -> None:  # the deferrable path: the pod runs now
        said: list[str] = []
        code = run_pod(self, pod, said.append)
        ended[pod.metadata.name] = (said, code)

    async def trigger_run(self: Any) -> Any:  # what KubernetesPodTrigger yields when the pod has ended
        from airflow.triggers.base import TriggerEvent

        triggers.append(self.serialize())
        code = ended[self.pod_name][1]
        yield TriggerEvent({"status": "success" if code == 0 else "failed", "namespace": self.pod_namespace,
                            "name": self.pod_name, "message": "pod ended"})

    triggers = TRIGGERS
    triggers.clear()
    monkeypatch.setattr(KubernetesCompute, "create_pod", create_pod)
    monkeypatch.setattr(KubernetesCompute, "pod_result", lambda self, name, namespace: ended[name])
    monkeypatch.setattr(KubernetesCompute, "delete_pod", lambda self, name, namespace: ended.pop(name, None))
    monkeypatch.setattr(KubernetesPodTrigger, "run", trigger_run)
    monkeypatch.setattr(KubernetesCompute, "exchange_root", lambda self: str(exchange))
    monkeypatch.setattr(KubernetesCompute, "dataset_root", lambda self: str(datasets))
    template = {"kind": "kubernetes", "image": python_image, "stager_image": python_image, "namespace": "flows"}
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__COMPUTES", json.dumps({"k8s": template}))
    settings.reset()
    yield pods
    settings.reset()


def on_kubernetes(file: Path) -> Path:
    """The flow with every task asking ``computes: [k8s]``, in a folder beside it."""
    text = file.read_text()
    if "computes: [local]" in text:
        text = text.replace("computes: [local]", "computes: [k8s]")
    else:
        assert "computes" not in text
        text = text.replace("    type: exec\n", "    type: exec\n    computes: [k8s]\n")
    folder = file.parent.with_name(file.parent.name + "_k8s")
    subprocess.run(["cp", "-a", str(file.parent), str(folder)], check=True)
    (folder / file.name).write_text(text)
    return folder / file.name


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_flows_give_the_same_in_pods_as_on_local(
    name: str, airflow_home: Path, project: Callable[..., Path], on_pods: list[dict[str, Any]],
    capfd: pytest.CaptureFixture[str],
) -> None:
    local_file = project(name)
    pod_file = on_kubernetes(local_file)
    local = run_flow(local_file)
    capfd.readouterr()
    pods = run_flow(pod_file)
    ran = [e for e in pods.experiments if e.record]
    said = capfd.readouterr().out
    assert said.count("running on compute 'k8s'") == len(ran) == len(on_pods) > 0, said[-3000:]
    assert local.state == pods.state == "success", said[-3000:]
    assert outcome(pods) == outcome(local)


def test_a_pod_gives_back_the_exit_code_the_log_and_only_what_changed(
    on_pods: list[dict[str, Any]], tmp_path: Path, python_image: str
) -> None:
    """``KubernetesCompute.run`` (all but the API server): workspace out, pod run, end state back."""
    from flow_airflow.computes.base import Launch, Layout

    workspace = tmp_path / "ws"
    (workspace / "input" / "prepare").mkdir(parents=True)
    (workspace / "input" / "prepare" / "p.txt").write_text("prepared")
    (workspace / "kept.txt").write_text("kept")
    sdk = tmp_path / "sdk"
    sdk.mkdir()
    layout = Layout.container(workspace, sdk)
    command = ("pwd; cat /input/prepare/p.txt; echo; echo $CNVRG_X; mkdir -p output; echo made > output/made.txt;"
               " echo changed > kept2.txt; exit 3")
    launch = Launch(name="f.r.t.0", command=command, shown=command, workspace=workspace, cwd=layout.cnvrg,
                    env={"CNVRG_X": "x1"}, layout=layout, image=python_image)
    said: list[str] = []
    compute = KubernetesCompute("k8s", {"kind": "kubernetes", "stager_image": python_image})
    assert compute.run(launch, said.append) == 3
    assert said == ["/cnvrg", "prepared", "x1"]
    assert (workspace / "output" / "made.txt").read_text() == "made\n"
    assert (workspace / "kept2.txt").read_text() == "changed\n"
    import tarfile

    with tarfile.open(next((tmp_path / "exchange").glob("*/end.tar"))) as archive:
        assert sorted(archive.getnames()) == ["kept2.txt", "output", "output/made.txt"]


DATA_FLOW = """
flow: Pod Data
tasks:
  - {title: Data, type: data, dataset: numbers, data_commit: v1}
  - {title: Cached, type: data, dataset: numbers, use_cached: true}
  - {title: Read, type: exec, input: python3 read.py /data/numbers, computes: [k8s]}
  - title: Read Cached
    type: exec
    input: python3 read.py /data/numbers
    computes: [k8s]
    params: [{key: n, value: [1, 2]}]
relations:
  - {from: Data, to: Read}
  - {from: Cached, to: Read Cached}
"""
READ = """import os, sys
root = sys.argv[1]
files = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, names in os.walk(root) for f in names)
print("cnvrg_tag_files:", ",".join(files))
print("cnvrg_tag_total:", sum(int(open(os.path.join(root, f)).read()) for f in files))
print("cnvrg_tag_cwd:", os.getcwd())
try:
    open(os.path.join(root, "a.txt"), "a").close()
    print("cnvrg_tag_writable: yes")
except OSError:
    print("cnvrg_tag_writable: no")
"""


def test_datasets_are_fetched_into_the_pod_by_the_stager(
    airflow_home: Path, on_pods: list[dict[str, Any]], tmp_path: Path, capfd: pytest.CaptureFixture[str],
) -> None:
    """The worker stages no dataset file: ``stage-inputs`` fetches each from the dataset store into
    ``/data/<name>`` (read-only with ``use_cached``), checked against its SHA-256."""
    from flow_airflow.datasets.store import configured

    data = tmp_path / "numbers"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("40")
    (data / "sub" / "b.txt").write_text("2")
    commit, _ = configured().push("numbers", data, "v1")
    project = tmp_path / "project"
    project.mkdir()
    (project / "read.py").write_text(READ)
    (project / "flow.yaml").write_text(DATA_FLOW)
    result = run_flow(project / "flow.yaml")
    said = capfd.readouterr().out
    assert result.state == "success", said[-3000:]
    assert [e.tags for e in result.of("Data")] == [{"dataset": "numbers", "commit": commit}]
    want = {"files": "a.txt,sub/b.txt", "total": "42", "cwd": "/cnvrg"}
    assert [e.tags for e in result.of("Read")] == [{**want, "writable": "yes"}]
    assert [e.tags for e in result.of("Read Cached")] == [{**want, "writable": "no"}] * 2
    assert len(on_pods) == 3
    # each task instance deferred while its pod ran, waiting with the provider's trigger on that pod
    assert said.count("deferrable: the task waits in Airflow's triggerer (KubernetesPodTrigger)") == 3
    waited = [(path, kw["pod_namespace"], kw["base_container_name"], kw["on_finish_action"]) for path, kw in TRIGGERS]
    trigger = "airflow.providers.cncf.kubernetes.triggers.pod.KubernetesPodTrigger"
    assert waited == [(trigger, "flows", "store-outputs", "keep_pod")] * 3
    assert sorted(kw["pod_name"] for _, kw in TRIGGERS) == sorted(pod["metadata"]["name"] for pod in on_pods)
    data_mounts = sorted((m["mountPath"], m.get("subPath"), bool(m.get("readOnly"))) for pod in on_pods
                         for c in pod["spec"]["initContainers"] if c["name"] == "experiment"
                         for m in c["volumeMounts"] if m["mountPath"].startswith("/data/"))
    assert data_mounts == [("/data/numbers", ".cnvrg_data/numbers", True)] * 2  # use_cached: read-only
    assert said.count("fetched by the compute from the dataset store") == 3
    assert said.count("use_cached: read-only, but a copy per pod") == 2
    for pod in on_pods:  # the worker sent no dataset file: the workspace.tar holds only the list
        import tarfile

        exchange = tmp_path / "exchange" / pod["metadata"]["name"]
        with tarfile.open(exchange / "workspace.tar") as archive:
            names = archive.getnames()
        assert ".cnvrg_data/numbers" in names and not [n for n in names if n.startswith(".cnvrg_data/numbers/")]
        assert ".flow-airflow-sdk/datasets.json" in names


GRID_FLOW = """
flow: Pod Grid
tasks:
  - title: Grid
    type: exec
    input: python3 grid.py
    computes: [k8s]
    params: [{key: n, value: [1, 2]}]
relations: []
"""
GRID = """import os, sys
n = sys.argv[2]
os.makedirs("output", exist_ok=True)
open("output/n.txt", "w").write(n)
print("cnvrg_tag_n:", n)
if n == "2":
    print("n=2 is refused")
    sys.exit(3)
"""


@pytest.mark.parametrize("batch", [1, 2])
def test_a_failing_pod_fails_its_route_deferred_or_batched(
    batch: int, airflow_home: Path, on_pods: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """One route per task instance: deferred (the trigger's "failed" event, then the log and exit code read);
    a batch of routes: its pods run in turn from the worker (no trigger). Either way the failing route fails
    with the command's exit code and last line, its end state kept apart, and the other route succeeds."""
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__BATCH_ROUTES", str(batch))
    settings.reset()
    project = tmp_path / "project"
    project.mkdir()
    (project / "grid.py").write_text(GRID)
    (project / "flow.yaml").write_text(GRID_FLOW)
    result = run_flow(project / "flow.yaml")
    said = "".join(capfd.readouterr())
    assert len(on_pods) == 2
    assert said.count("deferrable: the task waits in Airflow's triggerer") == (2 if batch == 1 else 0)
    assert len(TRIGGERS) == (2 if batch == 1 else 0)
    assert "'Grid' failed: its command exited with code 3 (its last line: n=2 is refused)" in said
    grid = {e.index: e for e in result.of("Grid", None)}
    assert grid[0].tags == {"n": "1"}
    if batch == 1:
        assert (grid[0].state, grid[1].state) == ("success", "failed")
    from flow_airflow.runtime.prepare import safe

    kept = airflow_home / "flow_artifacts" / result.dag_id / safe(result.run_id) / "grid" / "1.failed"
    assert (kept / "output" / "n.txt").read_text() == "2"
