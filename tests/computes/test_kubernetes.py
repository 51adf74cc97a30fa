"""The Kubernetes compute's pod (``computes.kubernetes.pods.pod_for``), validated against Kubernetes' OpenAPI schema.

Fast tier: no Airflow process, no cluster. The pods of the example flows, run on Docker, are in
``tests/containers/test_kubernetes_pods.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from flow_airflow.computes import compute_class
from flow_airflow.computes.base import Launch, Layout
from flow_airflow.computes.kubernetes.compute import (
    KubernetesCompute,
    KubernetesSettings,
    pod_dict,
    pod_for,
    resources_of,
)

K8S_VERSION = "1.35.0"  # a current Kubernetes that kubernetes-validate ships the schema of


def validate(pod: dict[str, Any]) -> None:
    """Raises ``kubernetes_validate.ValidationError`` when ``pod`` is not a valid v1 Pod (strict: no unknown keys)."""
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)


def launch(tmp_path: Path, **keys: Any) -> Launch:
    workspace = tmp_path / "ws"
    layout = Layout.container(workspace, tmp_path / "sdk")
    return Launch(name="flow.manual__2026-11-30T21:00:00+00:00.train.3", command="python3 train.py --lr 0.1",
                  shown="python3 train.py --lr 0.1", workspace=workspace, cwd=layout.cnvrg,
                  env={"CNVRG_WORKDIR": "/cnvrg", "INPUT_PREPARE": "/input/prepare"}, layout=layout, **keys)


SETTINGS = KubernetesSettings(
    namespace="ml", image="python:3.11", stager_image="flow-airflow:0.1", service_account="runner",
    node_selector={"pool": "gpu"}, image_pull_secrets=("regcred",),
    tolerations=({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},),
)


def test_the_kind_is_registered() -> None:
    assert compute_class("kubernetes") is KubernetesCompute


def test_requirements_become_quantities() -> None:
    assert resources_of({"cpu": 1.5, "memory": 0.5, "gpu": 1.2, "hpu": 8}) == {
        "cpu": "1.5", "memory": "0.5Gi", "nvidia.com/gpu": "2", "habana.ai/gaudi": "8"}
    assert resources_of({}) == {}


def test_the_pod_is_valid_and_says_what_the_template_and_task_ask(tmp_path: Path) -> None:
    pod = pod_dict(pod_for(launch(tmp_path, image="pytorch:2", resources={"cpu": 2, "memory": 4, "gpu": 1},
                                  mount_folders=("10.0.0.5:/datasets",)), SETTINGS, "s3://bucket/.pods/p"))
    validate(pod)
    spec = pod["spec"]
    assert pod["metadata"]["namespace"] == "ml" and len(pod["metadata"]["name"]) <= 63
    assert [c["name"] for c in spec["initContainers"]] == ["stage-inputs", "experiment"]
    assert [c["name"] for c in spec["containers"]] == ["store-outputs"]
    stage, experiment = spec["initContainers"]
    assert stage["image"] == spec["containers"][0]["image"] == "flow-airflow:0.1"  # never the user's image
    assert stage["command"][-2:] == ["s3://bucket/.pods/p", "/workspace"]
    assert experiment["image"] == "pytorch:2" and experiment["workingDir"] == "/cnvrg"
    assert experiment["command"][-1] == "python3 train.py --lr 0.1"
    assert experiment["resources"]["limits"] == {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"}
    mounts = {m["mountPath"]: (m.get("subPath"), m.get("readOnly")) for m in experiment["volumeMounts"]}
    assert mounts == {"/cnvrg": (None, None), "/input": ("input", None), "/data": (".cnvrg_data", None),
                      "/opt/flow-airflow/sdk": (".flow-airflow-sdk", True), "/datasets": (None, None)}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["workspace"]["emptyDir"] == {}
    assert volumes["nfs-0"]["nfs"] == {"server": "10.0.0.5", "path": "/datasets"}
    assert spec["serviceAccountName"] == "runner" and spec["nodeSelector"] == {"pool": "gpu"}
    assert spec["imagePullSecrets"] == [{"name": "regcred"}] and spec["restartPolicy"] == "Never"
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert {e["name"]: e["value"] for e in experiment["env"]}["INPUT_PREPARE"] == "/input/prepare"


def test_hpu_and_the_default_image(tmp_path: Path) -> None:
    pod = pod_dict(pod_for(launch(tmp_path, resources={"hpu": 1}), SETTINGS, "s3://b/p"))
    validate(pod)
    experiment = pod["spec"]["initContainers"][1]
    assert experiment["image"] == "python:3.11"
    assert experiment["resources"]["requests"] == {"habana.ai/gaudi": "1"}


def test_an_invalid_pod_is_caught_by_the_schema(tmp_path: Path) -> None:
    """The validation is real: a pod the API server would refuse fails it."""
    pod = pod_dict(pod_for(launch(tmp_path), SETTINGS, "s3://b/p"))
    pod["spec"]["initContainers"][1]["workingDir"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(pod)


@pytest.mark.parametrize("keys, error", [
    ({"mount_folders": ("datasets",)}, "'<ip>:/<folder>'"),
])
def test_what_cannot_be_made_is_refused(tmp_path: Path, keys: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        pod_for(launch(tmp_path, **keys), SETTINGS, "s3://b/p")
    with pytest.raises(ValueError, match="stager_image"):
        pod_for(launch(tmp_path), KubernetesSettings(image="python:3.11"), "s3://b/p")


def test_unknown_template_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="nodeSelector"):
        KubernetesSettings.model_validate({"kind": "kubernetes", "nodeSelector": {}})


def test_the_deferral_trigger_waits_for_the_pod_and_survives_serialization(tmp_path: Path) -> None:
    """The provider's ``KubernetesPodTrigger``, as Airflow stores it for the triggerer (``serialize``) and
    builds it again there: the pod, its namespace, the container whose end is the pod's, the timeouts."""
    from airflow.providers.cncf.kubernetes.triggers.pod import KubernetesPodTrigger
    from airflow.sdk.serde import deserialize, serialize

    compute = KubernetesCompute("k8s", {**SETTINGS.model_dump(), "kubernetes_conn_id": "k8s_conn",
                                        "startup_timeout_seconds": 300, "run_timeout_seconds": 7200})
    assert compute.deferrable and compute.fetches_datasets
    pod = pod_for(launch(tmp_path), compute.settings, "s3://bucket/.pods/p")
    classpath, kwargs = compute.trigger_for(pod).serialize()
    assert classpath == "airflow.providers.cncf.kubernetes.triggers.pod.KubernetesPodTrigger"
    again = KubernetesPodTrigger(**deserialize(serialize(kwargs)))  # what the triggerer runs
    assert (again.pod_name, again.pod_namespace, again.base_container_name) == (pod.metadata.name, "ml",
                                                                              "store-outputs")
    assert (again.kubernetes_conn_id, again.schedule_timeout, again.startup_timeout) == ("k8s_conn", 300, 7200)
    assert again.on_finish_action.value == "keep_pod" and again.get_logs is False


def test_resume_after_a_timeout_fails_saying_so_and_deletes_the_pod(tmp_path: Path) -> None:
    from flow_airflow.computes.base import ExperimentFailed

    deleted = []
    compute = KubernetesCompute("k8s", SETTINGS)
    compute.delete_pod = lambda name, namespace: deleted.append((namespace, name))  # type: ignore[method-assign]
    event = {"status": "timeout", "name": "p-1", "namespace": "ml", "message": "Pod took too long to start"}
    with pytest.raises(ExperimentFailed, match=r"the pod ml/p-1 did not run to its end \(timeout\): Pod took too"):
        compute.resume(event, tmp_path, print)
    assert deleted == [("ml", "p-1")]


def test_plan_says_the_kubernetes_compute_is_deferrable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from flow_airflow import settings
    from flow_airflow.cli import main

    template = {"kind": "kubernetes", "image": "python:3.11", "stager_image": "flow-airflow:0.1"}
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__COMPUTES", json.dumps({"k8s": template}))
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__ARTIFACTS_FOLDER", "s3://aws_default@bucket/flows")
    settings.reset()
    (tmp_path / "flow.yaml").write_text("flow: K\ntasks:\n  - {title: T, type: exec, input: 'true', computes: [k8s]}\n"
                                        "relations: []\n")
    try:
        assert main(["plan", str(tmp_path / "flow.yaml")]) == 0
    finally:
        settings.reset()
    out = capsys.readouterr().out
    assert "      compute: k8s (kubernetes)\n      deferrable: while its command runs, a task instance of one route " \
           "waits in Airflow's triggerer, holding no worker slot" in out


def test_the_stagers_get_the_buckets_connection_from_secrets_the_command_does_not(tmp_path: Path) -> None:
    settings = SETTINGS.model_copy(update={"stager_secrets": ("flow-airflow-s3",)})
    pod = pod_dict(pod_for(launch(tmp_path, datasets=({"name": "iris", "files": {}, "read_only": True},)),
                           settings, "s3://b/p"))
    validate(pod)
    containers = {c["name"]: c for c in pod["spec"]["initContainers"] + pod["spec"]["containers"]}
    for name in ("stage-inputs", "store-outputs"):
        assert containers[name]["envFrom"] == [{"secretRef": {"name": "flow-airflow-s3"}}]
    assert "envFrom" not in containers["experiment"]
    [data] = [m for m in containers["experiment"]["volumeMounts"] if m["mountPath"] == "/data/iris"]
    assert data == {"name": "workspace", "mountPath": "/data/iris", "subPath": ".cnvrg_data/iris", "readOnly": True}


def test_resume_of_a_pod_whose_log_cannot_be_read_fails_in_one_line_and_deletes_it(tmp_path: Path) -> None:
    from flow_airflow.computes.base import ExperimentFailed

    deleted = []
    compute = KubernetesCompute("k8s", SETTINGS)
    compute.delete_pod = lambda name, namespace: deleted.append(name)  # type: ignore[method-assign]

    def unreadable(name: str, namespace: str) -> tuple[list[str], int]:
        raise RuntimeError("container experiment is waiting to start: PodInitializing")

    compute.pod_result = unreadable  # type: ignore[method-assign]
    with pytest.raises(ExperimentFailed, match=r"the pod ml/p-2 ended \(failed\), but its log or exit code cannot be "
                                               r"read: container experiment is waiting"):
        compute.resume({"status": "failed", "name": "p-2", "namespace": "ml", "message": "pod failed"}, tmp_path, print)
    assert deleted == ["p-2"]
