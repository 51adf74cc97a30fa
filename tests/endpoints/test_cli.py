"""``flow-airflow endpoints list|rollback|logs|stop`` on endpoints that real runs deployed (local compute)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from flow_airflow.cli import main
from flow_airflow.endpoints import keys
from flow_airflow.endpoints.store import EndpointStore
from flow_airflow.local_run import run_flow

pytestmark = pytest.mark.airflow
IRIS = {"input_params": {"sepal_length": 5.0, "sepal_width": 3.4}}


def test_list_rollback_logs_stop(endpoints: EndpointStore, datasets: Path, project: Callable[..., Path],
                                 airflow_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from flow_airflow.datasets.cli import push_flow_datasets

    file = project("data_and_deploy")
    push_flow_datasets(file.parent, no_event=True)
    first = run_flow(file)
    predict_py = file.parent / "predict.py"
    predict_py.write_text(predict_py.read_text().replace("return min(", "return 'v2:' + min("))
    second = run_flow(file)
    assert (first.state, second.state) == ("success", "success")
    url = second.of("Serve")[0].tags["endpoint_url"]
    key = keys.get("iris-classifier")

    def ask() -> str:
        return httpx.post(url, json=IRIS, headers={keys.HEADER: key}, timeout=30).json()["prediction"]

    assert ask() == "v2:setosa"
    capsys.readouterr()
    assert main(["endpoints", "list"]) == 0
    out = capsys.readouterr().out
    assert f"iris-classifier: up, {url}\n" in out
    assert f"  version 2 by iris_to_endpoint run {second.run_id}; 1/1 replica(s) healthy; 1 request(s), 0 error(s)" \
        "; key: Airflow Variable flow_airflow_endpoint_iris_classifier_api_key\n" in out

    assert main(["endpoints", "rollback", "iris-classifier"]) == 0
    assert "endpoint iris-classifier serves version 1 again" in capsys.readouterr().out
    assert ask() == "setosa"  # the first model again, at the same URL
    endpoint = endpoints.load("iris-classifier")
    assert [(v.version, v.status) for v in endpoint.versions] == [(1, "serving"), (2, "retired")]
    assert [e.what for e in endpoint.history] == ["deployed", "deployed", "rolled back"]
    assert main(["endpoints", "rollback", "iris-classifier"]) == 1  # nothing before version 1
    assert "endpoint iris-classifier has no earlier version to roll back to" in capsys.readouterr().err

    assert main(["endpoints", "logs", "iris-classifier", "-n", "20"]) == 0
    out = capsys.readouterr().out
    assert "==> front <==" in out and "==> version 1 replica 0 (http://127.0.0.1:" in out
    assert "POST /api/v1/endpoints/iris-classifier 200" in out and key not in out

    assert main(["endpoints", "stop", "iris-classifier"]) == 0
    with pytest.raises(httpx.ConnectError):
        ask()
    capsys.readouterr()
    assert main(["endpoints", "list"]) == 0
    assert f"iris-classifier: stopped, {url}\n  no version serving" in capsys.readouterr().out
    assert main(["endpoints", "stop", "nope"]) == 1
    assert "there is no endpoint 'nope' (the endpoints: iris-classifier)" in capsys.readouterr().err
