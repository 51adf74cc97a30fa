"""The plugin's pages in headless Chromium without an ``airflow standalone``: the plugin's own app
(``flow_airflow.web.app.create_app``) served by uvicorn on 127.0.0.1, mounted at ``URL_PREFIX`` as the
api-server mounts it, over the test session's metadata DB (runs made with ``dag.test()``).

The caller is the one seam (as in tests/experiments/test_api.py): Airflow's auth manager needs the
api-server's app, so the pages get a signed-in caller of a known name who may read every DAG, and edit
its runs. Airflow's login itself is covered by the e2e tests (tests/e2e).

Import the fixtures into a test module: ``from tests.web.browser import browser, pages  # noqa: F401``.
Screenshots go to ``pages.shots`` (under pytest's tmp dir), printed at the end of the module.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from flow_airflow.web import URL_PREFIX
from flow_airflow.web.auth import Caller, caller

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


class _User:
    def __init__(self, name: str):
        self.name = name

    def get_name(self) -> str:
        return self.name

    def get_id(self) -> str:
        return self.name


class Reader(Caller):
    """A signed-in caller who may read every DAG of the metadata DB."""

    def __init__(self, name: str):
        super().__init__(_User(name))

    def readable_dag_ids(self, session: Any) -> set[str]:
        from airflow.models.dag import DagModel
        from sqlalchemy import select

        return set(session.scalars(select(DagModel.dag_id)))


@dataclass
class Pages:
    """The served pages: ``url(path)`` is ``http://127.0.0.1:<port>/flow-airflow<path>``; ``user`` the caller."""

    base: str
    shots: Path
    user: list[str] = field(default_factory=lambda: ["bob"])

    def url(self, path: str) -> str:
        return f"{self.base}{URL_PREFIX}{path}"

    def shot(self, browser: Any, name: str) -> Path:
        """A screenshot of the browser's page, kept as ``<shots>/<name>.png``."""
        path = self.shots / f"{name}.png"
        browser.save_screenshot(str(path))
        return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pages(airflow_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pages]:
    """The plugin's app on a free port of 127.0.0.1 (uvicorn in a thread of this process)."""
    import uvicorn
    from fastapi import FastAPI

    from flow_airflow.experiments import api
    from flow_airflow.web.app import create_app

    app = create_app()
    served = Pages(base="", shots=tmp_path_factory.mktemp("screenshots"))
    app.dependency_overrides[caller] = lambda: Reader(served.user[0])
    parent = FastAPI()
    parent.mount(URL_PREFIX, app)
    patch = pytest.MonkeyPatch()
    patch.setattr(api, "may_edit_runs", lambda user, dag_id: True)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(parent, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    served.base = f"http://127.0.0.1:{port}"
    try:
        yield served
    finally:
        server.should_exit = True
        thread.join(10)
        patch.undo()
        print(f"\n[pages] screenshots in {served.shots}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's, driven by its chromedriver) with a fresh profile."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("needs Debian's chromium and chromium-driver (./dev test installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1000",
                    f"--user-data-dir={profile}"):
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        driver.set_page_load_timeout(60)
        try:
            yield driver
        finally:
            driver.quit()


def rows(browser: Any, open: bool = True) -> list[dict[str, str]]:
    """The experiments table's rows as {column key: cell text} (the page's ``data-key`` of each header);
    ``open``: each row opened first (a row is one line until opened)."""
    return browser.execute_script("""
        if (arguments[0]) document.querySelectorAll('#experiments tbody tr').forEach((tr) => tr.classList.add('open'));
        const keys = [...document.querySelectorAll('#experiments th')].map((th) => th.dataset.key);
        return [...document.querySelectorAll('#experiments tbody tr')].map((tr) => Object.fromEntries(
            [...tr.cells].map((td, i) => [keys[i], td.innerText.trim()]).concat([['class', tr.className]])));""", open)


def wait_rows(browser: Any, count: int, timeout: float = 60) -> list[dict[str, str]]:
    """The table's rows once it has ``count`` of them."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout).until(lambda b: len(rows(b)) == count)
    return rows(browser)


@contextlib.contextmanager
def waiting_gate(file: Path, which: Callable[[Any], bool]) -> Iterator[tuple[Any, subprocess.Popen[str]]]:
    """``flow-airflow run <file>`` in another process (as a user runs it beside the api-server) until a
    gate of it waits: that approval (the first pending one ``which`` accepts) and the process."""
    from airflow.utils.session import create_session

    from flow_airflow.approvals import store

    env = {**os.environ, "AIRFLOW__FLOW_AIRFLOW__APPROVAL_POLL_INTERVAL": "0.2"}
    child = subprocess.Popen([sys.executable, "-m", "flow_airflow.cli", "run", str(file)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 180
    try:
        while True:
            with create_session() as session:
                waiting = [a for a in store.pending(session) if which(a)]
            if waiting:
                break
            if child.poll() is not None or time.monotonic() > deadline:
                child.kill()
                pytest.fail(f"no gate waits; flow-airflow run said:\n{child.communicate()[0][-4000:]}")
            time.sleep(0.3)
        yield waiting[0], child
    finally:
        if child.poll() is None:
            child.terminate()
            try:
                child.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
        child.communicate(timeout=60)
