"""A new compute kind is one folder (here one module, ``toy_kind.py``) and one entry of ``computes.KINDS``:
through real Airflow (``dag.test()``), an exec task runs on the toy kind's compute and a deploy task
serves its endpoint from the toy kind's replicas, which answer; nothing else names the kind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from flow_airflow import computes
from flow_airflow.endpoints.store import EndpointStore

pytestmark = pytest.mark.airflow

FLOW = """
flow: Toy Kind
tasks:
  - title: Train
    type: exec
    input: python3 train.py
    computes: [toy]
  - title: Serve
    type: deploy
    endpoint_title: toy-endpoint
    computes: [toy]
    file_name: predict.py
    function_name: predict
    min_replica: 1
    max_replica: 1
relations:
  - from: Train
    to: Serve
"""
TRAIN = """import json, os
os.makedirs("output", exist_ok=True)
json.dump({"scale": 3}, open("output/model.json", "w"))
print("cnvrg_tag_model: ready")
"""
PREDICT = """import json, os
def predict(data):
    with open(os.path.join(os.environ["INPUT_TRAIN"], "output", "model.json")) as f:
        return json.load(f)["scale"] * float(data["x"])
"""


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModuleType, EndpointStore]]:
    """The kind ``toy`` registered (its module ``toy_kind``), a template ``toy`` of it, and an endpoint store
    of the test's own (its endpoints stopped after the test, while the kind is still registered)."""
    from flow_airflow.endpoints.rollout import stop_all
    from tests.computes import toy_kind

    monkeypatch.setitem(computes.KINDS, "toy", computes.Kind("tests.computes.toy_kind:ToyCompute",
                                                            "tests.computes.toy_kind:ToyReplicas"))
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__COMPUTES", json.dumps({"toy": {"kind": "toy"}}))
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__ENDPOINTS_FOLDER", str(tmp_path / "endpoints"))
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__OPEN_ENDPOINTS", '["toy-endpoint"]')  # no key: no Variable left
    toy_kind.CALLS.clear()
    store = EndpointStore(tmp_path / "endpoints")
    try:
        yield toy_kind, store
    finally:
        stop_all(store, "the test's end")
        computes.compute_class.cache_clear()
        computes.replicas_class.cache_clear()


def test_a_toy_kind_runs_an_exec_and_a_deploy_task_from_its_registry_entry_alone(
    toy: tuple[ModuleType, EndpointStore], tmp_path: Path, airflow_home: Path, capfd: pytest.CaptureFixture[str],
) -> None:
    from flow_airflow.endpoints.rollout import stop_all
    from flow_airflow.local_run import run_flow

    toy_kind, endpoints = toy
    project = tmp_path / "project"
    project.mkdir()
    for name, text in {"flow.yaml": FLOW, "train.py": TRAIN, "predict.py": PREDICT}.items():
        (project / name).write_text(text)
    result = run_flow(project / "flow.yaml")
    assert result.state == "success", "".join(capfd.readouterr())[-4000:]
    [train], [serve] = result.of("Train"), result.of("Serve")
    assert train.tags == {"model": "ready"}
    [version] = endpoints.load("toy-endpoint").versions
    assert version.compute["kind"] == "toy" and version.status == "serving"
    [replica] = version.replicas
    [(ran, launch), started] = toy_kind.CALLS
    assert ran == "run" and launch.endswith(".train.0") and started == ("start", replica.url)
    answer = httpx.post(serve.tags["endpoint_url"], json={"input_params": {"x": 2}}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["prediction"] == 6.0
    stop_all(endpoints, "the test's end")
    assert toy_kind.CALLS[-1] == ("stop", replica.url)
