"""Endpoints on the Kubernetes compute (computes/kubernetes/replicas.py): the manifests chosen for a version.

No cluster here: applying them (server-side apply through the provider's KubernetesHook) is not run. The
manifests themselves are validated against Kubernetes' schema by tests/serving (serve's endpoint_manifests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flow_airflow import settings
from flow_airflow.computes.kubernetes.replicas import KubernetesReplicas
from flow_airflow.endpoints.store import Version
from flow_airflow.serving.command import EndpointConfig

COMPUTE = {"name": "k8s", "kind": "kubernetes",
           "settings": {"kind": "kubernetes", "namespace": "models", "image": "python:3.11", "stager_image": "fa:1"}}


def test_a_version_becomes_serves_manifests_with_its_replicas_key_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__ARTIFACTS_FOLDER", "s3://aws_default@bucket/flow")
    settings.reset()
    config = tmp_path / "endpoint_config.json"
    config.write_text(EndpointConfig(title="iris-classifier", version="3", project_dir="/cnvrg",
                                     file_name="predict.py", function_name="predict").model_dump_json())
    version = Version(version=3, dag_id="iris_to_endpoint", run_id="r1", task="Serve", compute=COMPUTE, launch={
        "config": str(config), "env": {"INPUT_TRAIN": "/input/train"}, "workspace": str(tmp_path), "image": None,
        "gunicorn": [["workers", "2"]], "max_replica": 4, "resources": {"cpu": 1}})
    replicas = KubernetesReplicas(tmp_path / "iris-classifier", COMPUTE)
    manifests = replicas.manifests(version, 2, "the-key")
    settings.reset()
    assert [m["kind"] for m in manifests] == ["Secret", "ConfigMap", "Deployment", "Service",
                                              "HorizontalPodAutoscaler"]
    assert {m["metadata"]["namespace"] for m in manifests} == {"models"}
    deployment = next(m for m in manifests if m["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 2
    [serve] = deployment["spec"]["template"]["spec"]["containers"]
    assert serve["image"] == "python:3.11"  # the template's: the task names none
    assert {"name": "INPUT_TRAIN", "value": "/input/train"} in serve["env"]
    assert "--workers" in serve["command"] and serve["command"][serve["command"].index("--workers") + 1] == "2"
    assert serve["readinessProbe"]["httpGet"]["path"] == "/health"
    hpa = next(m for m in manifests if m["kind"] == "HorizontalPodAutoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)
    exchange = "s3://aws_default@bucket/flow/.pods/endpoints/iris-classifier/v3"
    assert replicas.exchange(version) == exchange
    assert exchange in str(deployment["spec"]["template"]["spec"]["initContainers"])
