"""Fixtures of the serving tests: real gunicorn processes serving ``flow_airflow/serving/app.py``.

``serve(config, env=...)`` writes the endpoint's JSON configuration, starts
``gunicorn_argv(...)`` (this interpreter's gunicorn) on a free port of 127.0.0.1, waits until it
listens and returns an :class:`Endpoint`; every process started is stopped at the end of the test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flow_airflow.serving.command import EndpointConfig, gunicorn_argv

APP_DIR = Path(__file__).parents[2] / "flow_airflow" / "serving"
FLOWS = Path(__file__).parents[1] / "flows"
KEY = "test-key-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Endpoint:
    """A served endpoint: its base URL, its process and the file its output goes to."""

    url: str
    title: str
    process: subprocess.Popen
    log: Path

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                timeout: float = 30) -> tuple[int, Any]:
        """``(status, JSON answer)`` of one HTTP request (errors included)."""
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def predict(self, input_params: Any, key: str | None = KEY) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json", **({"Cnvrg-Api-Key": key} if key else {})}
        return self.request("POST", f"/api/v1/endpoints/{self.title}", json.dumps({"input_params": input_params})
                            .encode(), headers)


def wait_listening(url: str, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    """Until ``GET /health`` answers (any status); fails with the server's output when it ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn ended with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url + "/health", timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answers (503: the module did not import)
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"gunicorn did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # gunicorn's graceful stop
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Endpoint]]:
    started: list[subprocess.Popen] = []

    def start(config: EndpointConfig, env: dict[str, str] | None = None,
              gunicorn_config: Any = ()) -> Endpoint:
        folder = tmp_path / f"endpoint-{len(started)}"
        folder.mkdir()
        (folder / "config.json").write_text(config.model_dump_json())
        port = free_port()
        argv = gunicorn_argv(config, bind=f"127.0.0.1:{port}", app_dir=str(APP_DIR), python=sys.executable,
                             gunicorn_config=gunicorn_config)
        log = folder / "server.log"
        process_env = {**os.environ, "CNVRG_ENDPOINT_CONFIG": str(folder / "config.json"),
                       "CNVRG_ENDPOINT_API_KEY": KEY, "PYTHONUNBUFFERED": "1", **(env or {})}
        with log.open("wb") as out:
            process = subprocess.Popen(argv, env=process_env, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_listening(url, process, log)
        return Endpoint(url=url, title=config.title, process=process, log=log)

    yield start
    for process in started:
        stop(process)


@pytest.fixture
def iris_project(tmp_path: Path) -> Path:
    """``data_and_deploy``'s files with Train's end state at ``input/train``: ``output/model.json`` made by train.py."""
    project = tmp_path / "iris"
    shutil.copytree(FLOWS / "data_and_deploy", project, ignore=shutil.ignore_patterns("datasets"))
    train = project / "input" / "train"
    train.mkdir(parents=True)
    dataset = FLOWS / "data_and_deploy" / "datasets" / "iris" / "v1"
    subprocess.run([sys.executable, str(project / "train.py")], cwd=train, check=True, capture_output=True,
                   env={**os.environ, "CNVRG_DATASET_IRIS": str(dataset)})
    assert (train / "output" / "model.json").is_file()
    return project
