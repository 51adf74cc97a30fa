"""An endpoint's Kubernetes manifests (``computes.kubernetes.manifests.endpoint_manifests``), validated strictly
against Kubernetes' OpenAPI schema (the version the pod tests use). Fast tier: no cluster, no engine;
the serving container runs on Docker in ``tests/serving/test_containers.py``.
"""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest

from flow_airflow.computes.kubernetes.compute import KubernetesSettings
from flow_airflow.computes.kubernetes.manifests import APP_FILE, endpoint_manifests, resource_name
from flow_airflow.serving.command import EndpointConfig, GunicornConfigError
from tests.computes.test_kubernetes import K8S_VERSION

SETTINGS = KubernetesSettings(
    namespace="ml", image="python:3.11", stager_image="flow-airflow:0.1", service_account="runner",
    node_selector={"pool": "cpu"}, image_pull_secrets=("regcred",), labels={"team": "vision"},
    annotations={"owner": "ml-team"},
    tolerations=({"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"},),
)
KEY = "s3cr3t-key-value"


def config(**keys: Any) -> EndpointConfig:
    return EndpointConfig(**{"title": "Iris-Classifier", "version": "4", "project_dir": "/runs/4/serve",
                             "file_name": "predict.py", "function_name": "predict",
                             "flask_config": {"THRESHOLD": 0.5}, **keys})


def manifests(**keys: Any) -> dict[str, dict[str, Any]]:
    made = endpoint_manifests(**{"config": config(), "settings": SETTINGS, "flow": "Iris To Endpoint",
                                 "image": "registry.local/iris:2", "exchange": "s3://store/.endpoints/iris/4",
                                 "api_key": KEY, "min_replica": 1, "max_replica": 3,
                                 "resources": {"cpu": 2, "memory": 4},
                                 "env": {"INPUT_TRAIN": "/input/train", "CNVRG_ENDPOINT_API_KEY": "leak"}, **keys})
    for manifest in made:
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    return {m["kind"]: m for m in made}


def test_all_manifests_are_valid_in_apply_order() -> None:
    made = endpoint_manifests(config(), settings=SETTINGS, flow="f", image=None, exchange="/x", api_key=KEY)
    assert [m["kind"] for m in made] == ["Secret", "ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler"]
    for manifest in made:
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    assert made[2]["spec"]["template"]["spec"]["containers"][0]["image"] == "python:3.11"  # the template's


def test_a_strict_schema_refuses_what_kubernetes_would() -> None:
    deployment = manifests()["Deployment"]
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_the_key_is_in_the_secret_only() -> None:
    made = manifests()
    assert made["Secret"]["stringData"] == {"api-key": KEY}
    assert made["Secret"]["metadata"]["name"] == "endpoint-iris-classifier-key"
    for kind in ("ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler"):
        assert KEY not in json.dumps(made[kind]) and "leak" not in json.dumps(made[kind])
    env = made["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "CNVRG_ENDPOINT_API_KEY", "valueFrom": {"secretKeyRef": {
        "name": "endpoint-iris-classifier-key", "key": "api-key"}}} in env


def test_the_deployment_stages_the_workspace_and_serves_with_gunicorn() -> None:
    deployment = manifests()["Deployment"]
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["selector"] == {"matchLabels": {"flow-airflow-endpoint": "Iris-Classifier"}}
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    pod = spec["template"]["spec"]
    stage, = pod["initContainers"]
    assert stage["image"] == "flow-airflow:0.1"
    assert stage["command"] == ["python3", "-m", "flow_airflow.computes.kubernetes.pod_stage", "in",
                                "s3://store/.endpoints/iris/4", "/workspace"]
    serve, = pod["containers"]
    assert serve["image"] == "registry.local/iris:2" and serve["workingDir"] == "/cnvrg"
    assert serve["command"] == ["python3", "-m", "gunicorn", "--bind", "0.0.0.0:8080", "--workers", "1",
                                "--threads", "4", "--chdir", "/cnvrg", "--pythonpath", "/opt/flow-airflow/serving",
                                "app:application"]
    assert serve["resources"] == {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}
    assert serve["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert {"name": "INPUT_TRAIN", "value": "/input/train"} in serve["env"]
    assert {"name": "CNVRG_ENDPOINT_CONFIG", "value": "/opt/flow-airflow/serving/config.json"} in serve["env"]
    assert [(m["mountPath"], m.get("subPath")) for m in serve["volumeMounts"]] == [
        ("/cnvrg", None), ("/input", "input"), ("/data", ".cnvrg_data"), ("/opt/flow-airflow/serving", None)]
    assert pod["serviceAccountName"] == "runner" and pod["nodeSelector"] == {"pool": "cpu"}
    assert pod["imagePullSecrets"] == [{"name": "regcred"}] and pod["tolerations"][0]["key"] == "dedicated"


def test_the_config_map_holds_the_app_and_its_config_for_the_container() -> None:
    data = manifests()["ConfigMap"]["data"]
    assert data["app.py"] == APP_FILE.read_text()
    assert json.loads(data["config.json"]) == {**config().model_dump(), "project_dir": "/cnvrg"}


def test_labels_name_the_flow_endpoint_and_version() -> None:
    made = manifests()
    for manifest in made.values():
        labels = manifest["metadata"]["labels"]
        assert labels["flow-airflow-flow"].startswith("IrisToEndpoint-")  # a label value cannot hold spaces
        assert manifest["metadata"]["annotations"] == {"owner": "ml-team", "flow-airflow-flow": "Iris To Endpoint"}
        assert labels["flow-airflow-endpoint"] == "Iris-Classifier" and labels["flow-airflow-version"] == "4"
        assert labels["team"] == "vision" and manifest["metadata"]["namespace"] == "ml"
    assert made["Deployment"]["spec"]["template"]["metadata"]["labels"]["flow-airflow-version"] == "4"


def test_service_and_autoscaler() -> None:
    made = manifests(min_replica=2, max_replica=5)
    assert made["Service"]["spec"]["selector"] == {"flow-airflow-endpoint": "Iris-Classifier"}
    assert made["Service"]["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    hpa = made["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "endpoint-iris-classifier"}
    assert (hpa["minReplicas"], hpa["maxReplicas"], made["Deployment"]["spec"]["replicas"]) == (2, 5, 2)
    assert hpa["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}


def test_without_a_cpu_requirement_the_pods_request_cpu_for_the_autoscaler() -> None:
    serve = manifests(resources={"memory": 1})["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert serve["resources"] == {"requests": {"memory": "1Gi", "cpu": "250m"}, "limits": {"memory": "1Gi"}}
    serve = manifests(resources=None)["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert serve["resources"] == {"requests": {"cpu": "250m"}}


def test_an_open_endpoint_has_no_secret_and_no_key() -> None:
    made = manifests(config=config(open=True), api_key=None)
    assert "Secret" not in made
    env = made["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert all(e["name"] != "CNVRG_ENDPOINT_API_KEY" for e in env)


@pytest.mark.parametrize(("keys", "message"), [
    ({"api_key": None}, "API key unless it is open"),
    ({"config": config(open=True)}, "an open one has none"),
    ({"min_replica": 0}, "does not scale to zero"),
    ({"min_replica": 3, "max_replica": 2}, r"min_replica \(3\) <= max_replica \(2\)"),
    ({"settings": KubernetesSettings(image="python:3.11")}, "stager_image"),
    ({"image": None, "settings": KubernetesSettings(stager_image="s")}, "needs an image"),
])
def test_what_cannot_be_made_is_refused(keys: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        manifests(**keys)


def test_gunicorn_config_is_checked_here_too() -> None:
    serve = manifests(gunicorn_config={"workers": 3})["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert serve["command"][serve["command"].index("--workers") + 1] == "3"
    with pytest.raises(GunicornConfigError, match="set by flow-airflow"):
        manifests(gunicorn_config={"bind": "0.0.0.0:1"})


def test_resource_names_are_dns_labels() -> None:
    assert resource_name("Iris-Classifier") == "endpoint-iris-classifier"
    long = resource_name("a" * 80)
    assert len(long) <= 50 and long != resource_name("a" * 79) and long.startswith("endpoint-aaa")
