"""``Endpoint().log_metric`` of the stand-in cnvrg SDK inside a predict function (as cnvrg's published deploy
components call it), on the local compute through ``dag.test()``: the metric is in the endpoint's stats, its
JSON API and its page."""

from __future__ import annotations

from pathlib import Path

import pytest

from flow_airflow.endpoints import api, keys
from flow_airflow.endpoints.store import EndpointStore
from flow_airflow.local_run import run_flow
from tests.endpoints.test_deploy_local import predict

pytestmark = pytest.mark.airflow

FLOW = """
flow: Endpoint Metrics
tasks:
  - {title: Train, type: exec, input: python3 train.py, computes: [local]}
  - {title: Serve, type: deploy, endpoint_title: sdk-metrics, computes: [local], file_name: predict.py,
     function_name: predict, min_replica: 1, max_replica: 1}
relations:
  - {from: Train, to: Serve}
"""
PREDICT = """
from cnvrg import Endpoint

e = Endpoint()

def predict(data):
    score = float(data["x"]) / 10
    e.log_metric("confidence", score)
    return "churn" if score > 0.5 else "stay"
"""


def test_log_metric_in_predict_lands_in_the_endpoints_stats(
    endpoints: EndpointStore, datasets: Path, tmp_path: Path, airflow_home: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "flow.yaml").write_text(FLOW)
    (project / "predict.py").write_text(PREDICT)
    (project / "train.py").write_text("print('cnvrg_tag_trained: yes')\n")
    result = run_flow(project / "flow.yaml")
    assert result.state == "success"
    [serve] = result.of("Serve")
    key = keys.get("sdk-metrics")
    assert predict(serve.tags["endpoint_url"], {"x": 8}, key).json()["prediction"] == "churn"
    assert predict(serve.tags["endpoint_url"], {"x": 3}, key).json()["prediction"] == "stay"
    described = api.describe(endpoints.load("sdk-metrics"))
    assert described["metrics"] == {"confidence": {"count": 2, "last": 0.3, "points": [[None, 0.8], [None, 0.3]]}}
    page = api.describe_all([endpoints.load("sdk-metrics")])
    assert page[0]["metrics"]["confidence"]["last"] == 0.3
