"""An endpoint's replicas on the Docker compute: one container per replica, from the task's image.

Each container runs gunicorn with the serving app bind-mounted read-only at ``/opt/flow-airflow/serving``
and the version's files in cnvrg's layout (the workspace at ``/cnvrg``, its ``input`` at ``/input``,
``.cnvrg_data`` at ``/data``, as for an experiment on this compute:
``computes.base.Layout.container``); the app's configuration at ``/opt/flow-airflow/endpoint.json``.
The network is the host's (the template's ``network_mode`` when set to another; a replica listens on
127.0.0.1:<a free port>, which the front reaches on the host network only), the restart policy
``unless-stopped`` (the engine starts a replica that dies again, and after an engine restart), the
user the worker's. The engine, its connection and the image pulling are the Docker compute's
(:class:`~flow_airflow.computes.docker.compute.DockerCompute`). The image needs python3 with Flask and
gunicorn (the ``python`` test image has them).
"""

from __future__ import annotations

import contextlib
import re
import secrets
from pathlib import Path
from typing import Any

from flow_airflow.computes.replicas import (
    LOCALHOST,
    Replica,
    Replicas,
    Served,
    argv,
    free_port,
    serving_dir,
    serving_env,
)

APP_TARGET = "/opt/flow-airflow/serving"
CONFIG_TARGET = "/opt/flow-airflow/endpoint.json"
LABEL = "flow-airflow.endpoint"
STOP_SECONDS = 30  # docker stop: gunicorn finishes the requests it holds, SIGKILL after this


LOG_CONFIG = {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "4"}}  # rotated, as local logs are


class DockerReplicas(Replicas):
    """Replicas as containers of the Docker compute's engine (see the module's docstring)."""

    kind = "docker"
    ready_seconds = 120.0

    def __init__(self, folder: Path, compute: Any):
        from flow_airflow import computes

        super().__init__(folder, compute)
        self.docker: Any = computes.create(compute)  # a DockerCompute: its engine, its image pulling

    def start(self, version: Served, count: int, key: str | None) -> list[Replica]:
        from docker.errors import APIError, ImageNotFound

        from flow_airflow.computes.base import ExperimentFailed

        network = self.docker.settings.network_mode
        if network != "host":
            raise ExperimentFailed(f"the Docker compute '{self.docker.name}' has network_mode {network}: its "
                                   "endpoints need the host's network (the endpoint's front reaches its replicas "
                                   "at 127.0.0.1), network_mode host")
        client = self.docker.engine()
        launch = version.launch
        image = launch.get("image") or self.docker.settings.image
        if not image:
            raise ExperimentFailed(f"no image: the Docker compute '{self.docker.name}' has no default image")
        started: list[Replica] = []
        try:
            self.docker.ensure_image(client, image)
            for index in range(count):
                started.append(self._start_one(client, version, image, index, key))
            return started
        except (APIError, ImageNotFound) as e:
            for replica in started:  # none is left running when one cannot start
                self.stop(replica)
            raise ExperimentFailed(f"the Docker compute '{self.docker.name}' cannot start a replica: "
                                   f"{getattr(e, 'explanation', None) or e}") from None

    def _start_one(self, client: Any, version: Served, image: str, index: int, key: str | None) -> Replica:
        from flow_airflow.computes.base import SDK_PATH, Layout
        from flow_airflow.computes.docker.compute import worker_user

        launch = version.launch
        port = free_port()
        workspace = Path(launch["workspace"])
        layout = Layout.container(workspace, SDK_PATH)
        binds = [f"{m.source}:{m.target}:{'ro' if m.read_only else 'rw'}" for m in layout.mounts]
        binds += [f"{source}:{target}:{'ro' if ro else 'rw'}" for source, target, ro in launch.get("mounts", [])]
        binds += [f"{serving_dir()}:{APP_TARGET}:ro", f"{launch['config']}:{CONFIG_TARGET}:ro",
                  *self.docker.settings.mounts]
        env = serving_env(launch, CONFIG_TARGET, key)
        config = client.create_host_config(binds=binds, network_mode="host", init=True,
                                           restart_policy={"Name": "unless-stopped"}, log_config=LOG_CONFIG)
        name = re.sub(r"[^a-zA-Z0-9_.-]", "_", f"endpoint.{self.folder.name}.v{version.version}.r{index}")
        ident = client.create_container(
            image, command=argv(launch, port, python="python3", app_dir=APP_TARGET), working_dir="/cnvrg",
            environment=env, user=self.docker.settings.user or worker_user(), host_config=config,
            labels={LABEL: self.folder.name, f"{LABEL}.version": str(version.version)},
            name=f"{name}.{secrets.token_hex(3)}",
        )["Id"]
        client.start(ident)
        return Replica(url=f"http://{LOCALHOST}:{port}", ident=ident)

    def stop(self, replica: Replica) -> None:
        from docker.errors import APIError, NotFound

        client = self.docker.engine()
        with contextlib.suppress(NotFound, APIError):
            client.stop(replica.ident, timeout=STOP_SECONDS)
        with contextlib.suppress(NotFound, APIError):
            client.remove_container(replica.ident, force=True)

    def alive(self, replica: Replica) -> bool:
        from docker.errors import APIError, NotFound

        try:
            state = self.docker.engine().inspect_container(replica.ident)["State"]
        except (NotFound, APIError):
            return False
        return bool(state.get("Running") or state.get("Restarting"))

    def log_tail(self, replica: Replica, lines: int = 40) -> str:
        from docker.errors import APIError, NotFound

        try:
            return self.docker.engine().logs(replica.ident, tail=lines).decode(errors="replace")
        except (NotFound, APIError):
            return ""
