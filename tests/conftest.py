"""Test setup: an Airflow home of the session's own, set before anything imports Airflow.

Tests run the example flows of ``tests/flows`` (copied from the project's shared examples)
through real Airflow: ``dag.test()`` against a SQLite metadata database made here. Tiers: tests
that need that database or an Airflow process are marked ``airflow`` (standalone ones ``e2e``);
the others are the fast tier, ``./dev test --fast``. ``tests/<package>/test_<module>.py`` mirrors
``flow_airflow/<package>/<module>.py``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

FLOWS = Path(__file__).parent / "flows"
REPO = Path(__file__).parent.parent

_HOME = Path(tempfile.mkdtemp(prefix="flow-airflow-tests-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(_HOME / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",  # task logs reach the captured output
    }
)
(_HOME / "dags").mkdir()


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    """The session's Airflow home, with its metadata database migrated."""
    from airflow.utils.db import upgradedb

    upgradedb()
    return _HOME


@pytest.fixture
def project(tmp_path: Path) -> Callable[..., Path]:
    """Copy an example flow folder to a fresh place and return its flow file."""

    def copy(name: str, file: str = "flow.yaml") -> Path:
        target = tmp_path / name
        shutil.copytree(FLOWS / name, target)
        return target / file

    return copy


@pytest.fixture
def run(airflow_home: Path, project: Callable[..., Path]) -> Callable[..., Any]:
    """Run an example flow folder (a fresh copy) once through real Airflow: its ``RunResult``."""
    from flow_airflow.local_run import run_flow

    def go(name: str, file: str = "flow.yaml") -> Any:
        return run_flow(project(name, file))

    return go


@pytest.fixture(autouse=True)
def _no_endpoint_left() -> Any:
    """Endpoints a test's flow deployed to the session's endpoint store are stopped after it (no process
    or container left); tests of endpoints use a store of their own (tests/endpoints/conftest.py)."""
    yield
    root = _HOME / "flow_endpoints"
    if root.is_dir():
        from flow_airflow.endpoints.rollout import stop_all
        from flow_airflow.endpoints.store import EndpointStore

        stop_all(EndpointStore(root), "the test's end")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The fast tier (``./dev test --fast``: no ``airflow`` or ``e2e`` marker) needs no metadata DB:
    a test that asks for one (``airflow_home``, ``run``) without the ``airflow`` marker is refused."""
    unmarked = [
        item.nodeid
        for item in items
        if "airflow_home" in getattr(item, "fixturenames", ())
        and not any(item.iter_markers("airflow"))
        and not any(item.iter_markers("e2e"))
    ]
    if unmarked:
        raise pytest.UsageError(
            "these tests use Airflow's metadata DB: mark them @pytest.mark.airflow (or pytestmark = "
            "pytest.mark.airflow in their module): " + ", ".join(unmarked)
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_HOME, ignore_errors=True)
