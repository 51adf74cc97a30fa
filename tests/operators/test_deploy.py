"""The deploy task's operator (operators/deploy.py): what it refuses before deploying anything.

Deploying, updating and the endpoint's record through real Airflow: tests/endpoints/test_deploy_local.py
(local compute) and tests/containers/test_docker_endpoints.py (Docker)."""

from __future__ import annotations

from typing import Any

import pytest

from flow_airflow.endpoints.store import endpoint_name
from flow_airflow.operators.deploy import DeployTaskOperator, _resolved_name
from flow_airflow.operators.setup import TaskSetup
from flow_airflow.spec.models import DeployTask

SERVE = {"title": "Serve", "type": "deploy", "file_name": "predict.py", "function_name": "predict"}


def failed(task: dict[str, Any], index: int = 0) -> str:
    op = DeployTaskOperator(task_id="run", setup=TaskSetup.model_validate({"task": task, "project_dir": "/p"}),
                            route={"params": [], "parents": {}})
    record = op._run(None, {"params": [], "parents": {}}, index, {})  # no parent: no XCom read
    assert record["failed"] == "failed: " + op._error
    return op._error


@pytest.mark.parametrize("extra, message", [
    ({"env_setup": "r_endpoint"}, "'Serve' is an R endpoint (env_setup: r_endpoint), which flow-airflow cannot serve"),
])
def test_what_a_deploy_task_refuses_before_deploying(extra: dict[str, str], message: str) -> None:
    assert failed({**SERVE, **extra}).startswith(message)


def test_only_the_first_route_deploys_an_endpoint() -> None:
    assert failed(SERVE, index=1).startswith("'Serve' has several routes (this is route 1): an endpoint serves one "
                                             "model, deployed by route 0. Put a condition (max or min) before it")


@pytest.mark.parametrize("keys, name", [
    ({"endpoint_title": "iris-classifier"}, "iris-classifier"),
    ({"endpoint_id": "existing-1"}, "existing-1"),
    ({"title": "Sentiment Service"}, "sentiment-service"),
    ({"title": "Déploiement du modèle!"}, "deploiement-du-modele"),
])
def test_the_endpoint_name(keys: dict[str, str], name: str) -> None:
    assert endpoint_name(DeployTask.model_validate({**SERVE, **keys})) == name


def test_a_deploy_task_killed_while_its_new_version_starts_stops_that_version(tmp_path: Any) -> None:
    import os
    import sys
    from pathlib import Path

    from flow_airflow.computes.local import supervise
    from flow_airflow.endpoints.store import Endpoint, EndpointStore, Replica, Version

    store = EndpointStore(tmp_path)
    pidfile = tmp_path / "iris" / "run" / "v2-r0.pid"
    supervise.start([sys.executable, "-c", "import time; time.sleep(60)"], pidfile=pidfile,
                    log=tmp_path / "iris" / "logs" / "v2-r0.log", env=dict(os.environ), cwd=Path(tmp_path))
    version = Version(version=2, dag_id="d", run_id="r", task="Serve", compute={"name": "local", "kind": "local"},
                      replicas=[Replica(url="http://127.0.0.1:1", ident=str(pidfile))])
    op = DeployTaskOperator(task_id="run", setup=TaskSetup.model_validate({"task": SERVE, "project_dir": "/p"}),
                            route={"params": [], "parents": {}})
    op._pending = (store, Endpoint(name="iris", host="127.0.0.1", port=1, versions=[version]), version)
    try:
        assert supervise.alive(pidfile)
        op.on_kill()
        assert not supervise.alive(pidfile)
    finally:
        supervise.stop(pidfile)


def test_which_endpoint_a_deploy_task_updates(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from flow_airflow import settings
    from flow_airflow.endpoints.store import Endpoint, EndpointError, EndpointStore

    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__OPEN_ENDPOINTS", '["iris"]')
    settings.reset()
    store = EndpointStore(tmp_path)
    store.save(Endpoint(name="iris", host="127.0.0.1", port=5000, dag_id="flow_a"))
    op = DeployTaskOperator(task_id="run", setup=TaskSetup.model_validate({"task": SERVE, "project_dir": "/p"}),
                            route={"params": [], "parents": {}})

    def task(**keys: str) -> DeployTask:
        return DeployTask.model_validate({**SERVE, **keys})

    same = op._endpoint(store, "iris", task(endpoint_title="iris"), "flow_a")  # a second run of its flow
    assert (same.port, same.open) == (5000, True)
    with pytest.raises(EndpointError, match="endpoint iris was created by the flow flow_a: to update it from this "
                                            "flow, name it with endpoint_id: iris"):
        op._endpoint(store, "iris", task(endpoint_title="iris"), "flow_b")
    assert op._endpoint(store, "iris", task(endpoint_id="iris"), "flow_b").dag_id == "flow_a"
    with pytest.raises(EndpointError, match=r"there is no endpoint 'nope' \(the endpoints: iris\)"):
        op._endpoint(store, "nope", task(endpoint_id="nope"), "flow_b")
    new = op._endpoint(store, "fresh", task(endpoint_title="fresh"), "flow_b")
    assert (new.dag_id, new.open, new.host) == ("flow_b", False, "127.0.0.1") and new.port > 0
    # a task without code updates the endpoint it names, whichever flow created it; one that is not there fails
    update = DeployTask.model_validate({"title": "Serve", "type": "deploy", "endpoint_title": "iris"})
    assert op._endpoint(store, "iris", update, "flow_b").dag_id == "flow_a"
    with pytest.raises(EndpointError, match=r"there is no endpoint 'gone' \(the endpoints: iris\)"):
        op._endpoint(store, "gone", update.model_copy(update={"endpoint_title": "gone"}), "flow_b")
    # cnvrg's flow page exports an update with both: its cnvrg id names none here, its title does
    assert _resolved_name(store, task(endpoint_id="xld8pojmcgej8tesugw8", endpoint_title="iris")) == "iris"
    assert _resolved_name(store, task(endpoint_id="iris", endpoint_title="other")) == "iris"
    with pytest.raises(EndpointError, match="it updates an existing endpoint, and neither its endpoint_id 'x1' nor "
                                            r"its endpoint_title 'gone' names one \(the endpoints: iris\)"):
        _resolved_name(store, task(endpoint_id="x1", endpoint_title="gone"))
    settings.reset()
