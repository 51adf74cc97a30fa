"""The serving app in containers, on the machine's Docker engine (host network; no cluster here).

1. The test image (Debian's python3 with Debian's Flask and gunicorn, ``docker/images/build.py``)
   serves ``app.py`` bind-mounted from this checkout: the blueprint sentiment endpoint answers.
2. The Kubernetes Deployment's pod, run as the kubelet would: its ``stage-inputs`` init container
   unpacks the deploy task's ``workspace.tar`` (made by ``computes.kubernetes.pod_stage.pack_to``) into the
   pod's ``emptyDir``, then its ``serve`` container runs with the manifest's command, environment
   (the key from the Secret manifest), working directory and mounts (the ConfigMap's files, the
   workspace at ``/cnvrg``, ``/input``, ``/data``). The iris endpoint answers ``setosa``.

What differs from a cluster: the stager image is the test image with flow-airflow's source bound in
(as in ``tests/containers/test_kubernetes_pods.py``), the exchange is a local folder, the network is
the host's (the port a free one), and nothing is sent to a Kubernetes API server.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flow_airflow.computes.kubernetes.compute import KubernetesSettings
from flow_airflow.computes.kubernetes.manifests import endpoint_manifests
from flow_airflow.computes.kubernetes.pod_stage import pack_to
from flow_airflow.serving.command import EndpointConfig, gunicorn_argv
from tests.containers.conftest import container, docker_engine, image_builder, python_image  # noqa: F401 (fixtures)
from tests.serving.conftest import APP_DIR, FLOWS, KEY, free_port

pytestmark = pytest.mark.containers
SOURCE = Path(__file__).parents[2] / "flow_airflow"


def answer(url: str, body: dict[str, Any] | None = None, key: str | None = KEY) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", **({"Cnvrg-Api-Key": key} if key else {})}
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def wait_ready(client: Any, ident: str, url: str, timeout: float = 90) -> None:
    """Until ``/health`` answers 200; fails with the container's log when it ends or never gets ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.inspect_container(ident)["State"]["Status"] == "exited":
            pytest.fail(f"the container ended:\n{client.logs(ident).decode(errors='replace')[-3000:]}")
        try:
            if answer(url + "/health")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"not ready within {timeout} s:\n{client.logs(ident).decode(errors='replace')[-3000:]}")


def test_the_test_image_serves_the_bind_mounted_app(python_image: str, docker_engine: Any,  # noqa: F811
                                                    container: Callable[..., str], tmp_path: Path) -> None:  # noqa: F811
    port = free_port()
    config = EndpointConfig(title="sentiment", version="1", project_dir="/cnvrg", file_name="predict.py",
                            function_name="predict")
    (tmp_path / "config.json").write_text(config.model_dump_json())
    argv = gunicorn_argv(config, bind=f"127.0.0.1:{port}", app_dir="/opt/flow-airflow/serving")
    ident = container(python_image, argv, network="host", env={
        "CNVRG_ENDPOINT_CONFIG": "/etc/endpoint/config.json", "CNVRG_ENDPOINT_API_KEY": KEY}, binds={
        str(APP_DIR): {"bind": "/opt/flow-airflow/serving", "mode": "ro"},
        str(FLOWS / "realworld" / "deploy_webservice"): {"bind": "/cnvrg", "mode": "ro"},
        str(tmp_path): {"bind": "/etc/endpoint", "mode": "ro"}})
    docker_engine.start(ident)
    url = f"http://127.0.0.1:{port}"
    wait_ready(docker_engine, ident, url)
    assert answer(f"{url}/api/v1/endpoints/sentiment", {"input_params": {"text": "great food"}}) == (
        200, {"prediction": {"label": "positive"}})
    assert answer(f"{url}/api/v1/endpoints/sentiment", {"input_params": {"text": "x"}}, key=None)[0] == 401
    log = docker_engine.logs(ident).decode(errors="replace")
    assert "POST /api/v1/endpoints/sentiment 200" in log and KEY not in log


def _pod_binds(container_spec: dict[str, Any], volumes: dict[str, str]) -> dict[str, dict[str, str]]:
    """The container's ``volumeMounts`` as Docker binds: ``volumes`` maps a volume's name to its folder."""
    binds = {}
    for mount in container_spec["volumeMounts"]:
        source = Path(volumes[mount["name"]]) / mount.get("subPath", "")
        source.mkdir(parents=True, exist_ok=True)  # the kubelet makes a missing subPath
        binds[str(source)] = {"bind": mount["mountPath"], "mode": "ro" if mount.get("readOnly") else "rw"}
    return binds


def _env(container_spec: dict[str, Any], secret: dict[str, Any]) -> dict[str, str]:
    env = {}
    for item in container_spec["env"]:
        if "valueFrom" in item:
            ref = item["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"]
            env[item["name"]] = secret["stringData"][ref["key"]]
        else:
            env[item["name"]] = item["value"]
    return env


def _stage(client: Any, stager: dict[str, Any], volumes: dict[str, str], exchange: Path) -> None:
    """The init container, as in the pod tests: flow-airflow's source bound in, the exchange a folder."""
    binds = _pod_binds(stager, volumes)
    binds[str(SOURCE)] = {"bind": "/opt/flow-airflow/src/flow_airflow", "mode": "ro"}
    binds[str(exchange)] = {"bind": str(exchange), "mode": "rw"}
    ident = client.create_container(stager["image"], stager["command"], environment={
        "PYTHONPATH": "/opt/flow-airflow/src"}, host_config=client.create_host_config(binds=binds, network_mode="none"))
    try:
        client.start(ident)
        code = client.wait(ident)["StatusCode"]
        assert code == 0, client.logs(ident).decode(errors="replace")
    finally:
        client.remove_container(ident, force=True)


def test_the_deployments_pod_answers_a_prediction(python_image: str, docker_engine: Any,  # noqa: F811
                                                   container: Callable[..., str], iris_project: Path,  # noqa: F811
                                                   tmp_path: Path) -> None:
    exchange = tmp_path / "exchange"
    pack_to(iris_project, None, str(exchange / "workspace.tar"))  # what the deploy operator uploads
    port = free_port()
    config = EndpointConfig(title="iris-classifier", version="1", project_dir=str(iris_project),
                            file_name="predict.py", function_name="predict", input_example={"sepal_length": 5.0})
    made = {m["kind"]: m for m in endpoint_manifests(
        config, settings=KubernetesSettings(image=python_image, stager_image=python_image, namespace="flows"),
        flow="Iris To Endpoint", image=None, exchange=str(exchange), api_key=KEY, port=port)}
    pod = made["Deployment"]["spec"]["template"]["spec"]
    app_folder = tmp_path / "configmap"
    app_folder.mkdir()
    for name, text in made["ConfigMap"]["data"].items():
        (app_folder / name).write_text(text)
    volumes = {"workspace": str(tmp_path / "emptydir"), "app": str(app_folder)}
    _stage(docker_engine, pod["initContainers"][0], volumes, exchange)
    serve = pod["containers"][0]
    ident = container(serve["image"], serve["command"], network="host", workdir=serve["workingDir"],
                      env=_env(serve, made["Secret"]), binds=_pod_binds(serve, volumes))
    docker_engine.start(ident)
    url = f"http://127.0.0.1:{port}"
    wait_ready(docker_engine, ident, url)  # the readiness probe's request
    assert answer(f"{url}/api/v1/endpoints/iris-classifier",
                  {"input_params": {"sepal_length": 5.0, "sepal_width": 3.4}}) == (200, {"prediction": "setosa"})
    assert answer(f"{url}/stats")[1]["requests"] == 1  # the liveness probe's request
