"""The project of tests/library/components.py (AI Library components beside the flow, as cnvrg publishes them) on
the Docker compute: each task in its component's image with the component's files in ``/cnvrg``, the parents' in
``/input/<task>``, the same argv and tags as on the local compute, and its deploy component's endpoint answering
from a container."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flow_airflow.local_run import run_flow
from tests.containers.test_docker_flows import docker_template  # noqa: F401 (a fixture)
from tests.library.components import blueprint

pytestmark = [pytest.mark.airflow, pytest.mark.containers]


def test_components_run_in_their_images_on_docker(
    airflow_home: Path, tmp_path: Path, python_image: str, docker_template: Any,  # noqa: F811 (the fixture)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flow_airflow.endpoints import keys
    from flow_airflow.endpoints.rollout import stop_all
    from flow_airflow.endpoints.store import EndpointStore
    from tests.endpoints.test_deploy_local import predict

    docker_template(network_mode="host")
    # a project variable ([flow_airflow] env) reaches the container even when the worker has the same value
    monkeypatch.setenv("REGION", "eu-west")
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__ENV", json.dumps({"REGION": "eu-west"}))
    endpoints = tmp_path / "endpoints"
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__ENDPOINTS_FOLDER", str(endpoints))
    flow = blueprint(tmp_path / "p")
    for component in flow.parent.glob("*/library.yaml"):  # each component's image: the machine's Python image
        component.write_text(component.read_text().replace("image: python:3.11-slim", f"image: {python_image}"))
    text = flow.read_text().replace("Tiny Churn", "Tiny Churn Docker")
    for kind in ("exec", "deploy"):
        text = text.replace(f"    type: {kind}\n", f"    type: {kind}\n    computes: [docker]\n")
    flow.write_text(text)
    try:
        result = run_flow(flow)
        assert result.state == "success", [(e.task, e.state, e.record) for e in result.experiments]
        [connector] = result.of("Tiny Connector")
        [argv] = Path(connector.record["output"]).rglob("argv.json")
        assert json.loads(argv.read_text()) == [
            "--endpoint", "http://127.0.0.1:9", "download", "--bucketname", "libhub-readme"]
        assert connector.tags == {"connected": "yes", "region": "eu-west"}
        [prep] = result.of("Data-Prep")
        assert prep.tags == {"prep_version": "1.2.0", "label": "churn+flag", "rows": "3", "churned": "2",
                             "prerun_ran": "True"}
        [old] = result.of("Old Prep")
        assert old.tags["prep_version"] == "1.0.0" and old.tags["rows"] == "3"
        [inference] = result.of("Inference")
        key = keys.get("inference")
        assert predict(inference.tags["endpoint_url"], {"x": 0.9}, key).json()["prediction"] == "churn"
    finally:
        stop_all(EndpointStore(endpoints), "the test's end")
