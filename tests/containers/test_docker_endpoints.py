"""Deploy tasks on the Docker compute through real Airflow (``dag.test()``) and the machine's engine:
one container per replica of the test image, restart policy set, updated without a failed request."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flow_airflow import settings
from flow_airflow.computes.docker.replicas import LABEL
from flow_airflow.endpoints import keys
from flow_airflow.endpoints.store import EndpointStore
from flow_airflow.local_run import run_flow
from tests.containers.conftest import docker_engine, image_builder, python_image  # noqa: F401 (fixtures)
from tests.endpoints.conftest import datasets, endpoints  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.containers, pytest.mark.airflow]
IRIS = {"sepal_length": 5.0, "sepal_width": 3.4}


@pytest.fixture
def on_docker(python_image: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:  # noqa: F811
    """``[flow_airflow] computes`` = ``{"docker": {"kind": "docker", "image": <python image>}}`` (host network)."""
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__COMPUTES", json.dumps({"docker": {"kind": "docker",
                                                                                 "image": python_image}}))
    settings.reset()
    yield
    settings.reset()


def containers_of(engine: Any, name: str) -> list[dict[str, Any]]:
    return engine.containers(all=True, filters={"label": f"{LABEL}={name}"})


def test_data_and_deploy_on_docker_serves_and_updates_without_a_failed_request(
    endpoints: EndpointStore, datasets: Path, on_docker: None, docker_engine: Any,  # noqa: F811
    project: Callable[..., Path], airflow_home: Path, capfd: pytest.CaptureFixture[str],
) -> None:
    from flow_airflow.datasets.cli import push_flow_datasets
    from flow_airflow.endpoints.rollout import stop_endpoint

    file = project("data_and_deploy")
    push_flow_datasets(file.parent, no_event=True)
    file.write_text(file.read_text().replace("computes: [local]", "computes: [docker]"))
    first = run_flow(file)
    assert first.state == "success", "".join(capfd.readouterr())[-5000:]
    url = first.of("Serve")[0].tags["endpoint_url"]
    key = keys.get("iris-classifier")
    [replica] = containers_of(docker_engine, "iris-classifier")
    inspected = docker_engine.inspect_container(replica["Id"])
    assert inspected["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert inspected["HostConfig"]["NetworkMode"] == "host"
    answer = httpx.post(url, json={"input_params": IRIS}, headers={keys.HEADER: key}, timeout=30)
    assert answer.json() == {"prediction": "setosa"}

    answers: list[tuple[int, str]] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                reply = http.post(url, json={"input_params": IRIS}, headers={keys.HEADER: key})
                answers.append((reply.status_code, reply.text))

    thread = threading.Thread(target=client)
    thread.start()
    try:
        predict_py = file.parent / "predict.py"
        predict_py.write_text(predict_py.read_text().replace("return min(", "return 'v2:' + min("))
        second = run_flow(file)
    finally:
        stop.set()
        thread.join()
    assert second.state == "success", "".join(capfd.readouterr())[-5000:]
    assert not [a for a in answers if a[0] != 200][:5]
    said = [json.loads(text)["prediction"] for _, text in answers]
    assert said[0] == "setosa" and said[-1] == "v2:setosa" and len(said) > 20
    [replica2] = containers_of(docker_engine, "iris-classifier")  # the old container is gone
    assert replica2["Id"] != replica["Id"]

    stop_endpoint(endpoints, "iris-classifier", "the test")
    assert containers_of(docker_engine, "iris-classifier") == []
    with pytest.raises(httpx.ConnectError):
        httpx.post(url, json={"input_params": IRIS}, headers={keys.HEADER: key}, timeout=5)
