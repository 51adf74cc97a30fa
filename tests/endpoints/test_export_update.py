"""A deploy task as cnvrg's flow page exports an update of an endpoint (``endpoint_id`` and ``endpoint_title``, no
code of its own) through real Airflow (``dag.test()``, issue 26): the endpoint's code serves the run's new model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from flow_airflow.endpoints import keys
from flow_airflow.endpoints.store import EndpointStore
from flow_airflow.local_run import run_flow

pytestmark = pytest.mark.airflow


def predict(store: EndpointStore, word: str) -> dict[str, object]:
    endpoint = store.load("qa-bot")
    answer = httpx.post(f"{endpoint.url}/api/v1/endpoints/qa-bot", json={"input_params": {"word": word}},
                        headers={keys.HEADER: keys.get("qa-bot") or ""}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["prediction"]


def test_an_exported_update_serves_the_endpoints_code_with_the_new_model(
    endpoints: EndpointStore, datasets: Path, project: Callable[..., Path], airflow_home: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from flow_airflow.datasets.cli import push_flow_datasets

    create = project("exports/endpoint_update", "create.yaml")
    push_flow_datasets(create.parent, no_event=True)
    result = run_flow(create)
    assert result.state == "success", "".join(capfd.readouterr())[-4000:]
    assert predict(endpoints, "banana") == {"greeting": "hello", "known": True}
    # the export's own project has no predict.py: the update serves the code the endpoint serves
    (create.parent / "predict.py").unlink()
    result = run_flow(create.parent / "flow.yaml")
    text = "".join(capfd.readouterr())
    assert result.state == "success", text[-4000:]
    [bot] = result.of("QA Bot")
    assert (bot.tags["endpoint"], bot.tags["endpoint_version"]) == ("qa-bot", "2")  # the cnvrg id names none here
    assert predict(endpoints, "banana") == {"greeting": "bonjour", "known": True}
    assert predict(endpoints, "kiwi") == {"greeting": "bonjour", "known": False}
    endpoint = endpoints.load("qa-bot")
    assert [v.status for v in endpoint.versions] == ["retired", "serving"]
    assert endpoint.versions[1].compute["name"] == "local" and len(endpoint.versions[1].replicas) == 1
    assert "the new version serves the code of version 1 (predict.py:predict) with this run's inputs" in text


def test_an_update_of_an_endpoint_that_is_not_there_fails_saying_so(
    endpoints: EndpointStore, datasets: Path, project: Callable[..., Path], airflow_home: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from flow_airflow.datasets.cli import push_flow_datasets

    file = project("exports/endpoint_update")
    push_flow_datasets(file.parent, no_event=True)
    result = run_flow(file)
    assert result.state == "failed"
    assert ("'QA Bot' did not update endpoint xk2d8exampleendpoint: it updates an existing endpoint, and neither its "
            "endpoint_id 'xk2d8exampleendpoint' nor its endpoint_title 'qa-bot' names one (the endpoints: none)"
            ) in "".join(capfd.readouterr())
