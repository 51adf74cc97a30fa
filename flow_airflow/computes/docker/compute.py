"""The Docker compute: each command of an experiment runs in a container of the task's image.

A template ``{"kind": "docker", "image": ..., ...}`` in ``[flow_airflow] computes`` (the keys:
:class:`DockerSettings`). The container has cnvrg's layout (``computes.base.Layout.container``):
the workspace bound at ``/cnvrg`` (the working directory), its ``input`` folder at ``/input``, its
``.cnvrg_data`` at ``/data``, the cnvrg-compatible SDK read-only. It runs as the worker's user
(the workspace's files stay the worker's), with Docker's init as PID 1 (so that ``docker stop``
ends the command at once), and the experiment's own variables only (``Launch.own_env``: not the
worker's ``PATH`` or ``HOME``). ``requirements`` become limits: ``cpu`` -> CPUs (at most the
engine's), ``memory`` -> GiB, ``gpu`` -> a GPU device request; ``hpu`` is not honoured (the log
and ``plan`` say so). Output is streamed line by line, stdout and stderr apart (their order to
each other is not kept by Docker); the container is removed when it ends.

The client comes from the docker provider's ``DockerHook`` (imported when a container is run,
never at DAG parse time): ``base_url`` (default ``DOCKER_HOST``, else the local socket) and
``docker_conn_id``, an Airflow connection to log in to a registry.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import secrets
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from flow_airflow.computes.base import (
    Compute,
    ComputeSettings,
    ExperimentFailed,
    Launch,
    Layout,
    LineCallback,
    decoded,
    lines,
    supervisor_pid,
)

if TYPE_CHECKING:
    from flow_airflow.spec import models

LABEL = "flow-airflow.experiment"  # each container carries its launch's name: stray ones can be found
STOP_SECONDS = 10  # docker stop: SIGTERM, then SIGKILL after this grace period
# The container's guard, a process of its own session beside the task process: it holds the read end of a
# pipe whose write end only the task process has. The task process writes "d" once it is done with the
# container (removed by run()); when the pipe ends without it, the task process died (even by SIGKILL,
# which never reaches on_kill): the guard removes the container (force: SIGKILL to its processes) and the
# try's working directory, as the local compute's guard does. Under a real worker it also watches the
# task's Airflow supervisor (a pidfd): killing it leaves the task process blocked on the container's log.
GUARD = """
import os, select, shutil, sys
import docker
fds = [int(sys.argv[1])]
try:
    fds += [os.pidfd_open(int(sys.argv[5]))] if int(sys.argv[5]) else []
except ProcessLookupError:  # the supervisor is gone already
    fds = []
except OSError:  # no pidfd here: the task process alone is watched
    pass
ready = select.select(fds, [], [])[0] if fds else []
if not (fds[:1] and fds[0] in ready and os.read(fds[0], 1) == b"d"):
    try:
        docker.APIClient(base_url=sys.argv[2]).remove_container(sys.argv[3], force=True)
    except Exception as e:
        print(f"flow-airflow: the container {sys.argv[3]} of a killed task could not be removed: {e}", file=sys.stderr)
    else:
        shutil.rmtree(sys.argv[4], ignore_errors=True)
"""
# the shell line runs with bash where the image has it (as on the local compute), else sh
SHELL = 'if command -v bash >/dev/null 2>&1; then exec bash -c "$1"; fi; exec sh -c "$1"'
# Stopping, as ``killpg`` does on the local compute, but in an order that keeps the container alive until
# the command's processes have handled SIGTERM (Docker's init ends the container when the shell, its only
# child, ends): the shell (init's child) is stopped so that it starts nothing more, its descendants get
# SIGTERM, and once they have ended (zombies of the stopped shell count as ended; at most $1 tenths of a
# second) the shell gets SIGTERM and SIGCONT. A lone command (``exec``'d by the shell) is the init's child
# itself: it gets SIGTERM. POSIX sh reading /proc only, so it works in any image.
STOP = r"""
self=$$ shells= kids=
for status in /proc/[0-9]*/status; do
    pid=${status#/proc/}; pid=${pid%/status}
    if [ "$pid" = 1 ] || [ "$pid" = "$self" ]; then continue; fi
    ppid=
    while read -r key value; do
        if [ "$key" = PPid: ]; then ppid=$value; break; fi
    done < "$status" 2>/dev/null || continue
    case $ppid in 0|'') ;; 1) shells="$shells $pid" ;; *) kids="$kids $pid" ;; esac
done
[ -n "$shells" ] && kill -STOP $shells 2>/dev/null
[ -n "$kids" ] && kill -TERM $kids 2>/dev/null
tenths=0
while [ -n "$kids" ] && [ "$tenths" -lt "$1" ]; do
    alive=
    for pid in $kids; do
        stat=; read -r stat < "/proc/$pid/stat" 2>/dev/null
        state=${stat##*") "}
        case $state in ''|Z*|X*) ;; *) alive=1 ;; esac
    done
    [ -z "$alive" ] && break
    sleep 0.1; tenths=$((tenths + 1))
done
[ -n "$shells" ] && kill -TERM $shells 2>/dev/null && kill -CONT $shells 2>/dev/null
exit 0
"""


class DockerSettings(ComputeSettings):
    """A template of kind ``docker``.

    ``image``: the default image (a task's ``image:`` wins); ``base_url``: the engine (default
    ``DOCKER_HOST``, else ``unix://var/run/docker.sock``); ``docker_conn_id``: an Airflow Docker
    connection to log in to a registry; ``network_mode``: ``host`` (the default: cnvrg's
    experiments have network, to install ``requirements.txt`` for one, and ``host`` works on
    every engine, also one started without a bridge) or ``none``, ``bridge``, a network's name;
    ``mounts``: more binds, ``/worker/path:/container/path[:ro]``; ``pull``: ``missing`` (pull
    an image the engine lacks), ``always`` or ``never``; ``user``: who the command runs as
    (default: the worker's ``uid:gid``, so that the workspace stays the worker's).
    """

    kind: Literal["docker"] = "docker"
    image: str | None = None
    base_url: str | None = None
    docker_conn_id: str | None = None
    network_mode: str = Field("host", min_length=1)
    mounts: tuple[str, ...] = ()
    pull: Literal["missing", "always", "never"] = "missing"
    user: str | None = None

    @field_validator("mounts")
    @classmethod
    def _binds(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for bind in v:
            parts = bind.split(":")
            if len(parts) not in (2, 3) or not all(p.startswith("/") for p in parts[:2]) or parts[2:] not in (
                [], ["ro"], ["rw"]
            ):
                raise ValueError(f"mount '{bind}': a mount is '/path/on/worker:/path/in/container' with ':ro' "
                                 "or ':rw' after it if wanted")
        return v


class DockerCompute(Compute):
    """Runs each command of an experiment in its own container (created, streamed, waited for, removed)."""

    kind = "docker"
    Settings = DockerSettings
    settings: DockerSettings

    def __init__(self, name: str | None = None, settings: ComputeSettings | Mapping[str, Any] | None = None):
        super().__init__(name, settings)
        self._client: Any = None
        self._container: str | None = None
        self._killed = threading.Event()
        self._engine_cpus: int | None = None

    # --- what plan and the log say ------------------------------------------------------------------
    def image_of(self, task: models.Task) -> str | None:
        """The image ``task`` runs in: its ``image:``, else the template's default; None when neither names one."""
        return getattr(task, "image", None) or self.settings.image

    def plan_notes(self, task: models.Task, texts: Sequence[str]) -> list[str]:
        notes = []
        refusal = self.refusal(task)
        if refusal:
            notes.append(f"it cannot run: {refusal}")
        resources = getattr(task, "resources", None)
        if resources is not None and resources.hpu:
            notes.append(f"requirements hpu: {resources.hpu:g} is not honoured by the Docker compute '{self.name}'")
        return notes

    def refusal(self, task: models.Task) -> str | None:
        folders = getattr(task, "mount_folders", None)
        if folders:
            return (f"'{task.title}' mounts network folders ({', '.join(folders)}), which the Docker compute "
                    f"'{self.name}' cannot do yet")
        if not self.image_of(task):
            return (f"'{task.title}' names no image and the Docker compute '{self.name}' has no default "
                    "image (its template's \"image\")")
        return None

    def layout(self, workspace: Path, sdk: Path) -> Layout:
        return Layout.container(workspace, sdk)

    def ignores(self, launch: Launch) -> dict[str, str]:
        said = []
        if launch.resources.get("hpu"):
            said.append("hpu is not honoured by the Docker compute")
        cpus = launch.resources.get("cpu")
        if cpus and (engine := self._cpus_of_engine()) is not None and cpus > engine:
            said.append(f"cpu limited to the engine's {engine} CPUs")
        ignored = {"requirements": "; ".join(said)} if said else {}
        if not launch.image:
            ignored["image"] = f"runs in the compute's default image {self.settings.image}"
        return ignored

    # --- running ----------------------------------------------------------------------------------------
    def run(self, launch: Launch, on_line: LineCallback, on_error_line: LineCallback | None = None) -> int:
        """Create the launch's container, stream its output, wait for its exit code, remove it.

        :raises ExperimentFailed: the image cannot be had, or the engine refuses the container.
        """
        from docker.errors import APIError, ImageNotFound

        client = self.engine()
        image = launch.image or self.settings.image
        if not image:
            raise ExperimentFailed(f"no image: the Docker compute '{self.name}' has no default image")
        try:
            self.ensure_image(client, image)
            ident = self._create(client, launch, image)
        except (APIError, ImageNotFound) as e:
            raise ExperimentFailed(f"the Docker compute '{self.name}' cannot start the container: "
                                   f"{_explain(e)}") from None
        guard, done = self._guard(ident, launch)
        try:
            if self._killed.is_set():
                return 143
            client.start(ident)
            _stream(client, ident, on_line, on_error_line)
            return int(client.wait(ident, timeout=None)["StatusCode"])
        except APIError as e:
            raise ExperimentFailed(f"the Docker compute '{self.name}' could not run the container: "
                                   f"{_explain(e)}") from None
        finally:
            self._container = None
            try:
                client.remove_container(ident, force=True)
            finally:
                os.write(done, b"d")
                os.close(done)
                guard.wait()  # it ends on reading that

    def _guard(self, ident: str, launch: Launch) -> tuple[subprocess.Popen[bytes], int]:
        """Start the container's guard (:data:`GUARD`); it, and the write end of its pipe (run() says it is done)."""
        watched, done = os.pipe()
        try:
            guard = subprocess.Popen(
                [sys.executable, "-c", GUARD, str(watched), self._url(), ident, str(launch.workspace),
                 str(supervisor_pid())],
                pass_fds=(watched,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                start_new_session=True,  # not in the task's process group, which may be killed
            )
        finally:
            os.close(watched)
        return guard, done

    def _url(self) -> str:
        """The engine's address (``base_url``, else ``DOCKER_HOST``, else the local socket)."""
        return self.settings.base_url or os.environ.get("DOCKER_HOST") or "unix://var/run/docker.sock"

    def kill(self) -> None:
        """Stop the running container: SIGTERM to every process in it, the shell's children first (see
        :data:`STOP`), then ``docker stop`` (SIGKILL after ``STOP_SECONDS``)."""
        self._killed.set()
        ident = self._container
        if ident and self._client is not None:
            from docker.errors import APIError

            with contextlib.suppress(APIError):  # it ended meanwhile, or was removed
                user = self.settings.user or worker_user()
                self._client.exec_start(self._client.exec_create(ident, ["/bin/sh", "-c", STOP, "stop",
                                                                         str(STOP_SECONDS * 10)], user=user))
            with contextlib.suppress(APIError):
                self._client.stop(ident, timeout=STOP_SECONDS)

    def engine(self) -> Any:
        """The ``docker.APIClient`` of the template's engine, from the docker provider's ``DockerHook`` (also what
        the endpoints' Docker replicas use, ``computes.docker.replicas``)."""
        if self._client is None:
            from airflow.providers.docker.hooks.docker import DockerHook

            url = self._url()
            try:
                self._client = DockerHook(docker_conn_id=self.settings.docker_conn_id, base_url=url).api_client
            except Exception as e:  # the hook raises AirflowException, a connection error, ...
                raise ExperimentFailed(f"the Docker compute '{self.name}' cannot reach the engine at {url}: "
                                       f"{e}") from None
        return self._client

    def _cpus_of_engine(self) -> int | None:
        """The engine's CPU count (a limit above it is refused by Docker), None when it cannot be asked."""
        if self._engine_cpus is None:
            try:
                self._engine_cpus = int(self.engine().info()["NCPU"])
            except Exception:  # the log's compute section does without it; run() says why it cannot run
                return None
        return self._engine_cpus

    def ensure_image(self, client: Any, image: str) -> None:
        """Pull ``image`` as the template's ``pull`` says."""
        from docker.errors import ImageNotFound

        pull = self.settings.pull
        if pull != "always":
            try:
                client.inspect_image(image)
                return
            except ImageNotFound:
                if pull == "never":
                    raise ExperimentFailed(f"the image {image} is not on the Docker engine, and the Docker "
                                           f"compute '{self.name}' does not pull (\"pull\": \"never\")") from None
        # docker-py splits "repo:tag" and "repo@digest" itself (no tag: latest); streamed, so no read timeout
        for progress in client.pull(image, stream=True, decode=True):
            if "error" in progress:
                raise ExperimentFailed(f"the Docker compute '{self.name}' cannot pull {image}: {progress['error']}")

    def _create(self, client: Any, launch: Launch, image: str) -> str:
        """The container of ``launch`` (created, not started); its id, kept for :meth:`kill`."""
        for mount in launch.mounts:  # Docker would make a missing folder itself, owned by root
            if not mount.read_only:
                mount.source.mkdir(parents=True, exist_ok=True)
        config = client.create_host_config(
            binds=self._binds(launch), network_mode=self.settings.network_mode, init=True,
            **self._limits(launch.resources),
        )
        name = re.sub(r"[^a-zA-Z0-9_.-]", "_", launch.name)[:200]
        ident = client.create_container(
            image, command=[launch.command], entrypoint=["/bin/sh", "-c", SHELL, "sh"],
            working_dir=str(launch.cwd), environment=launch.container_env(), user=self.settings.user or worker_user(),
            host_config=config, labels={LABEL: launch.name}, name=f"{name}.{secrets.token_hex(3)}",
        )["Id"]
        self._container = ident
        return ident

    def _binds(self, launch: Launch) -> list[str]:
        binds = [f"{m.source}:{m.target}:{'ro' if m.read_only else 'rw'}" for m in launch.mounts]
        return binds + list(self.settings.mounts)

    def _limits(self, resources: Mapping[str, float]) -> dict[str, Any]:
        """cnvrg's ``requirements`` as the host config's keys: CPUs, memory (GiB), GPUs."""
        from docker.types import DeviceRequest

        limits: dict[str, Any] = {}
        cpus = resources.get("cpu")
        if cpus:
            engine = self._cpus_of_engine()
            limits["nano_cpus"] = int(min(cpus, engine or cpus) * 1e9)
        if resources.get("memory"):
            limits["mem_limit"] = int(resources["memory"] * 2**30)
        if resources.get("gpu"):
            limits["device_requests"] = [DeviceRequest(count=math.ceil(resources["gpu"]), capabilities=[["gpu"]])]
        return limits


def worker_user() -> str:
    """``uid:gid`` of the worker: who containers run as, so that the files they write stay the worker's."""
    return f"{os.getuid()}:{os.getgid()}"


def _explain(error: Exception) -> str:
    explanation = getattr(error, "explanation", None)
    return str(explanation or error)


def _stream(client: Any, ident: str, on_line: LineCallback, on_error_line: LineCallback | None) -> None:
    """The container's stdout into ``on_line``, its stderr into ``on_error_line`` (``on_line`` when None),
    line by line as printed, from two followed log streams; callbacks are never called at once."""
    lock = threading.Lock()

    def pump(stdout: bool, callback: Callable[[str], None]) -> None:
        chunks = client.logs(ident, stdout=stdout, stderr=not stdout, stream=True, follow=True)
        for line in lines(decoded(chunks)):  # split on "\n" only (a "\r" stays in its line)
            with lock:
                callback(line)

    errors = threading.Thread(target=pump, args=(False, on_error_line or on_line), daemon=True)
    errors.start()
    pump(True, on_line)
    errors.join()
