"""Fixtures of the endpoint tests: an endpoint store of the test's own, every endpoint stopped after it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flow_airflow.endpoints.store import EndpointStore


@pytest.fixture
def endpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EndpointStore]:
    """``[flow_airflow] endpoints_folder`` of this test; its endpoints (processes, containers) stopped after it."""
    from flow_airflow.endpoints.rollout import stop_all

    root = tmp_path / "endpoints"
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__ENDPOINTS_FOLDER", str(root))
    store = EndpointStore(root)
    yield store
    stop_all(store, "the test's end")
    from airflow.models import Variable

    from flow_airflow.endpoints.keys import variable_name

    for name in store.names():  # the keys it made (the session's metadata DB is shared)
        Variable.delete(variable_name(name))
    leftovers = [p for p in root.glob("*/run/*.pid") if p.exists()]
    assert not leftovers, f"processes left running: {leftovers}"


@pytest.fixture
def datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``[flow_airflow] datasets_folder`` of this test."""
    root = tmp_path / "datasets"
    monkeypatch.setenv("AIRFLOW__FLOW_AIRFLOW__DATASETS_FOLDER", str(root))
    return root
