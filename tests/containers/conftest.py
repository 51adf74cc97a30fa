"""Fixtures of the container tests: the machine's Docker engine and the locally built Python image.

No registry is reachable here: the image is built on the machine by ``docker/images/build.py``
(debootstrap + ``docker import``, cached in the engine by a content key). CI runs these tests, so
nothing is skipped: when the engine or the image cannot be had, the tests fail saying why
(``./dev test`` installs Debian's docker.io and starts dockerd; README "Containers on this machine").
Containers run with the host network or none, never a bridge network (``container`` refuses others).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BUILDER = Path(__file__).parents[2] / "docker" / "images" / "build.py"
NETWORKS = ("none", "host")  # the only networks these machines allow


def images() -> ModuleType:
    """The image builder, ``docker/images/build.py`` (a script, not a package: loaded by path)."""
    name = "flow_airflow_images"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BUILDER)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the file runs
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def docker_engine() -> Any:
    """A ``docker.APIClient`` on the machine's engine, from the docker provider's ``DockerHook``
    (no Airflow connection: ``DOCKER_HOST`` or the local socket). Fails when no engine answers."""
    from airflow.providers.docker.hooks.docker import DockerHook

    url = os.environ.get("DOCKER_HOST", "unix://var/run/docker.sock")
    try:
        client = DockerHook(docker_conn_id=None, base_url=url, timeout=120).api_client
        client.ping()
    except Exception as e:  # any reason is reported as the failure
        pytest.fail(f"no Docker engine answers at {url}: {e}\n"
                    "'./dev test' installs Debian's docker.io and starts dockerd (as root on Debian)")
    return client


@pytest.fixture(scope="session")
def image_builder() -> ModuleType:
    """``docker/images/build.py``: ``ensure_image(name)``, ``image_tag(name)``, ``RECIPES``, ``ImageError``."""
    return images()


@pytest.fixture(scope="session")
def python_image(docker_engine: Any, image_builder: ModuleType, request: pytest.FixtureRequest) -> str:
    """The tag of the Python image (Debian's python3), built once per machine (about 70 s)."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    builder = image_builder
    try:
        return builder.ensure_image("python", log=lambda m: reporter.write_line(m) if reporter else None)
    except builder.ImageError as e:
        pytest.fail(f"the Python image cannot be had: {e}")


@pytest.fixture
def container(docker_engine: Any) -> Iterator[Callable[..., str]]:
    """Create (not start) a container, ``create(image, command, network=..., **host_config)`` -> id;
    every container made is removed at the end of the test, running or not."""
    made: list[str] = []

    def create(image: str, command: list[str], *, network: str, workdir: str | None = None,
               env: dict[str, str] | None = None, **host_config: Any) -> str:
        if network not in NETWORKS:
            raise ValueError(f"network '{network}': containers here use {' or '.join(NETWORKS)}")
        config = docker_engine.create_host_config(network_mode=network, **host_config)
        made.append(docker_engine.create_container(
            image, command, working_dir=workdir, environment=env, host_config=config)["Id"])
        return made[-1]

    yield create
    for ident in made:
        docker_engine.remove_container(ident, force=True)
