"""Tests that run on each metadata database Airflow supports here: SQLite and PostgreSQL.

A test that takes the ``database`` fixture runs once per database. The test session's own
Airflow is configured for one database (SQLite, see tests/conftest.py) before anything imports
Airflow, so the PostgreSQL run of a test is the same test node run again by a child pytest whose
``[database] sql_alchemy_conn`` is a fresh PostgreSQL database of this session, migrated by the
child's ``airflow_home`` fixture. The server: ``FLOW_AIRFLOW_TEST_POSTGRES`` (a
``postgresql://`` URL), which ``./dev test`` sets after starting Debian's PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent.parent
DATABASES = ("sqlite", "postgres")
SERVER = "FLOW_AIRFLOW_TEST_POSTGRES"


def current_database() -> str:
    """The database this process's Airflow uses: 'sqlite' or 'postgres'."""
    url = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "sqlite")
    return "postgres" if url.startswith("postgres") else "sqlite"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test session (dropped at its end)."""
    server = os.environ.get(SERVER)
    if not server:
        message = f"no PostgreSQL server: {SERVER} is not set (./dev test starts one and sets it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    import psycopg2

    name = f"flow_airflow_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(server)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        yield server.rsplit("/", 1)[0] + "/" + name
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


@pytest.fixture(params=DATABASES)
def database(request: pytest.FixtureRequest) -> str:
    """The metadata database the test runs on ('sqlite' or 'postgres')."""
    if request.param != current_database():
        assert request.param == "postgres", "a child run on PostgreSQL runs only the PostgreSQL case"
        request.node.stash[_CHILD_URL] = request.getfixturevalue("postgres_url")
        return request.param
    from airflow import settings

    request.getfixturevalue("airflow_home")
    assert settings.engine.dialect.name == {"sqlite": "sqlite", "postgres": "postgresql"}[request.param]
    return request.param


_CHILD_URL = pytest.StashKey[str]()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run a test's PostgreSQL case in a child pytest configured for PostgreSQL."""
    url = pyfuncitem.stash.get(_CHILD_URL, None)
    if url is None:
        return None
    env = {**os.environ, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url}
    env.pop("PYTEST_ADDOPTS", None)
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", pyfuncitem.nodeid],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )
    if child.returncode != 0 or " passed" not in child.stdout:
        pytest.fail(f"on PostgreSQL ({url}):\n{child.stdout[-6000:]}\n{child.stderr[-3000:]}", pytrace=False)
    return True
