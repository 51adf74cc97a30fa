"""End-to-end harness: a real ``airflow standalone`` driven through its REST API.

Fixtures
--------
``airflow_server`` (session scope)
    Starts ``airflow standalone`` once per test session in a temp ``AIRFLOW_HOME`` with its own
    dags folder, free ports and known passwords, and yields an :class:`AirflowServer`.

``airflow_server_options`` (session scope)
    Returns the :class:`ServerOptions` used to start it. Override it in a ``conftest.py`` to add
    users, environment variables or a callable that seeds the dags folder before start-up.

Typical test::

    pytestmark = pytest.mark.e2e

    def test_flow(airflow_server):
        airflow_server.add_file("flows.py", src=REPO_ROOT / "dags" / "flows.py")
        airflow_server.wait_for_dag("my_dag")               # exists, not stale, unpaused
        run_id, state = airflow_server.run_dag("my_dag", conf={"k": 1})
        assert state == "success"
        tis = airflow_server.task_instances("my_dag", run_id)  # mapped TIs: one row per map_index
        value = airflow_server.xcom("my_dag", run_id, "task", map_index=0)

The server is shared by the whole session: give every test its own dag ids / file names.

The harness lives beside this file: ``server.py`` starts and stops ``airflow standalone`` (its
environment, ports, users), ``client.py`` is its REST client (calls and waits). Nothing there
mocks Airflow. Every endpoint and config key is checked against the installed
Airflow 3.3 source (see the notes at each constant).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.client import FINISHED_RUN_STATES, AirflowClient, AirflowServerError, utcnow
from tests.e2e.server import AirflowServer, ServerOptions, User, free_port

__all__ = [
    "FINISHED_RUN_STATES",
    "REPO_ROOT",
    "AirflowClient",
    "AirflowServer",
    "AirflowServerError",
    "ServerOptions",
    "User",
    "free_port",
    "utcnow",
]

REPO_ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------------------------------
# Fixtures + reporting
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def airflow_server_options() -> ServerOptions:
    """Override in a conftest.py to change users / env / seed_dags for the shared server."""
    return ServerOptions()


@pytest.fixture(scope="session")
def airflow_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    airflow_server_options: ServerOptions,
) -> Iterator[AirflowServer]:
    server = AirflowServer(tmp_path_factory.mktemp("airflow-e2e"), airflow_server_options)
    request.config.stash[_SERVER_KEY] = server
    server.start()
    _report(
        request.config,
        f"airflow standalone up in {server.startup_seconds:.1f}s at {server.base_url} "
        f"(home {server.home}, log {server.log_path})",
    )
    try:
        yield server
    finally:
        server.stop()
        if request.session.testsfailed:
            _report(
                request.config,
                f"---- tail of {server.log_path} ----\n{server.log_tail(60)}\n---- end of log ----",
            )


_SERVER_KEY = pytest.StashKey[AirflowServer]()


def _report(config: pytest.Config, text: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        if reporter is not None:
            reporter.write_line("")
            for line in text.splitlines():
                reporter.write_line(line)
        else:
            print(text, file=sys.stderr)


_LOG_OFFSET_KEY = pytest.StashKey[int]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    """Remember where the standalone log was when the test body starts (fixtures are set up)."""
    result = yield
    server = item.config.stash.get(_SERVER_KEY, None)
    if server is not None:
        item.stash[_LOG_OFFSET_KEY] = server.log_size()
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Attach the standalone log written during a failing test (last 150 lines) to its report."""
    report = yield
    server = item.config.stash.get(_SERVER_KEY, None)
    if report.failed and server is not None and "airflow_server" in getattr(item, "fixturenames", ()):
        offset = item.stash.get(_LOG_OFFSET_KEY, 0)
        report.sections.append(("airflow standalone log during this test", server.log_since(offset, 150)))
    return report
