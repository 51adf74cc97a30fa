"""The docker-compose deployment (docker-compose.yaml) started for real: images, S3 server, the stack.

No registry is reachable here, so the test builds the bases itself (docker/images/build.py:
``postgres`` and ``redis`` from Debian's packages, ``airflow`` = Debian's Python 3.11 with Airflow
pip-installed like the official image) and the repository's Dockerfile on ``airflow``
(``--build-arg AIRFLOW_IMAGE``), every image cached by content. The stack runs with
docker/host_network.py (host networking only, free ports) and Debian's ``docker-compose``
(``./dev test`` installs it); its artifacts go to moto's S3 server on 127.0.0.1.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.containers.conftest import images
from tests.e2e.client import AirflowClient, AirflowServerError
from tests.e2e.server import User, free_port

ROOT = Path(__file__).parents[2]
BUCKET, PREFIX = "flow-artifacts", "flows"
USERS = (User("admin", "admin"), User("alice", "user"), User("bob", "user"))
STARTUP_TIMEOUT = 300


@dataclass
class Options:
    users: tuple[User, ...] = USERS


@dataclass
class ComposeStack(AirflowClient):
    """The running stack: the REST client of its api-server, ``compose(...)``, the S3 client."""

    project: str
    file: Path  # docker-compose.yaml on the host's network (docker/host_network.py)
    env: dict[str, str]
    base_url: str
    s3_endpoint: str
    timings: dict[str, float] = field(default_factory=dict)
    options: Options = field(default_factory=Options)

    def __post_init__(self) -> None:
        AirflowClient.__init__(self)
        self.api_url = f"{self.base_url}/api/v2"

    def compose(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        argv = ["docker-compose", "-p", self.project, "--project-directory", str(ROOT),
                "--env-file", str(ROOT / "docker" / "host-network.env"), "-f", str(self.file)]
        done = subprocess.run([*argv, *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        if check and done.returncode != 0:
            raise AirflowServerError(f"docker-compose {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done

    def log_tail(self, lines: int = 60) -> str:
        return self.compose("logs", "--no-color", "--tail", str(lines), check=False).stdout

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).stdout.strip()

    def s3(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.s3_endpoint, aws_access_key_id="testing",
                            aws_secret_access_key="testing", region_name="us-east-1")

    def keys(self, prefix: str) -> list[str]:
        pages = self.s3().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


@pytest.fixture(scope="session")
def compose_images(request: pytest.FixtureRequest) -> dict[str, str]:
    """The tags of the postgres, redis and project images (built unless cached), and build times."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    builder = images()

    def log(message: str) -> None:
        if reporter:
            reporter.write_line(f"[compose] {message}")

    start = time.monotonic()
    builds = {"postgres": lambda: builder.ensure_image("postgres", log),
              "redis": lambda: builder.ensure_image("redis", log),
              "airflow": lambda: builder.ensure_project_image("airflow", log)}
    try:  # side by side: debootstrap and pip mostly wait on downloads
        with ThreadPoolExecutor(len(builds)) as pool:
            futures = {name: pool.submit(build) for name, build in builds.items()}
            tags = {name: future.result() for name, future in futures.items()}
    except builder.ImageError as e:
        pytest.fail(f"the compose stack's images cannot be had: {e}")
    log(f"images ready in {time.monotonic() - start:.0f} s: {tags}")
    return tags


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (the containers reach it on the host's network), with the bucket."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    import boto3

    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                 region_name="us-east-1").create_bucket(Bucket=BUCKET)
    try:
        yield endpoint
    finally:
        server.stop()


def host_network(text: str) -> dict[str, Any]:
    """docker/host_network.py's ``host_network``: the compose file with every service on the host's network."""
    spec = importlib.util.spec_from_file_location("flow_airflow_host_network", ROOT / "docker" / "host_network.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.host_network(text)


def _dags_folder(root: Path) -> Path:
    """The repository's dags/ (loader + examples) and the test's own flows, readable by uid 50000."""
    dags = root / "dags"
    shutil.copytree(ROOT / "dags", dags, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(Path(__file__).parent / "flows", dags / "compose_tests")
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return dags


def _stack_env(tags: dict[str, str], dags: Path, s3_endpoint: str, api_port: int) -> dict[str, str]:
    ports = {name: str(free_port()) for name in ("POSTGRES_PORT", "REDIS_PORT", "AIRFLOW_SCHEDULER_HEALTH_PORT",
                                                  "AIRFLOW_TRIGGERER_LOG_PORT", "AIRFLOW_WORKER_1_LOG_PORT",
                                                  "AIRFLOW_WORKER_2_LOG_PORT")}
    connection = {"conn_type": "aws", "login": "testing", "password": "testing",
                  "extra": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"}}
    return {
        **os.environ, **ports,
        "AIRFLOW_API_PORT": str(api_port),
        "FLOW_AIRFLOW_IMAGE": tags["airflow"], "POSTGRES_IMAGE": tags["postgres"], "REDIS_IMAGE": tags["redis"],
        "FLOW_DAGS_FOLDER": str(dags),
        "FLOW_ARTIFACTS_FOLDER": f"s3://flow_s3@{BUCKET}/{PREFIX}",
        "FLOW_S3_CONNECTION": json.dumps(connection),
        "AIRFLOW_WORKER_CONCURRENCY": "3",
        # a killed worker's task is failed after 20 s without heartbeat, and retried 1 s later
        "AIRFLOW_HEARTBEAT_TIMEOUT": "20",
        "FLOW_RESTART_RETRY_DELAY": "1",
    }


def _wait_healthy(stack: ComposeStack, timeout: float) -> None:
    """Until the api-server answers and every component reports healthy (``/api/v2/monitor/health``)."""
    deadline, body = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            body = httpx.get(f"{stack.base_url}/api/v2/monitor/health", timeout=5).json()
            if all(part.get("status") == "healthy" for key, part in body.items()
                   if key in ("metadatabase", "scheduler", "triggerer", "dag_processor")):
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(2)
    raise AirflowServerError(f"the stack is not healthy after {timeout} s: {body}\n{stack.log_tail(40)}")


@pytest.fixture(scope="module")
def stack(compose_images: dict[str, str], s3_server: str, request: pytest.FixtureRequest) -> Iterator[ComposeStack]:
    """docker-compose.yaml up on the host's network (free ports), torn down with its volume at the end;
    its folder (dags, the compose file, the services' logs) is kept under /var/tmp when a test failed."""
    root = Path(tempfile.mkdtemp(prefix="flow-airflow-compose-", dir="/var/tmp"))
    api_port = free_port()
    file = root / "docker-compose.host.yaml"
    file.write_text(yaml.safe_dump(host_network((ROOT / "docker-compose.yaml").read_text()), sort_keys=False))
    stack = ComposeStack(project=f"flowairflowtest{os.getpid()}", file=file,
                         env=_stack_env(compose_images, _dags_folder(root), s3_server, api_port),
                         base_url=f"http://127.0.0.1:{api_port}", s3_endpoint=s3_server)
    start = time.monotonic()
    try:
        stack.compose("up", "-d", "--no-build")
        _wait_healthy(stack, STARTUP_TIMEOUT)
        stack.timings["stack up"] = time.monotonic() - start
        yield stack
    finally:
        (root / "compose.log").write_text(stack.compose("logs", "--no-color", check=False).stdout)
        stack.close_sessions()
        stack.compose("down", "-v", "--remove-orphans", "--timeout", "10", check=False)
        failed = request.session.testsfailed > 0
        print(f"\n[compose] timings (s): { {k: round(v) for k, v in stack.timings.items()} }; "
              f"logs: {root / 'compose.log' if failed else 'removed (every test passed)'}")
        if not failed:
            shutil.rmtree(root, ignore_errors=True)
