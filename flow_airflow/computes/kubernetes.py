"""The Kubernetes compute: each command of an experiment runs in a pod, in the task's image.

A template ``{"kind": "kubernetes", "namespace": ..., "image": ..., "stager_image": ..., ...}`` in
``[flow_airflow] computes`` (the keys: :class:`KubernetesSettings`). The pod is built by
:func:`pod_for` (the cncf-kubernetes provider's ``kubernetes.client`` models, serialised by its
``PodGenerator``) and has three containers, run one after the other:

1. ``stage-inputs`` (init, the *stager* image: flow-airflow's own, never the user's): fetches
   ``<exchange>/workspace.tar`` — the workspace the worker prepared (the project, ``input/<task>``
   with the parents' end states, the SDK) — and unpacks it into the pod's ``workspace`` volume (an
   ``emptyDir``); then fetches the datasets of the data tasks before it (``Launch.datasets``) from
   the dataset store (``datasets_folder`` on object storage) into ``.cnvrg_data/<name>``.
2. ``experiment`` (init, the task's image): the command, with cnvrg's layout — the volume at
   ``/cnvrg`` (working directory), its ``input`` at ``/input``, ``.cnvrg_data`` at ``/data``, the
   SDK read-only — the experiment's variables, ``requirements`` as resources (``cpu``,
   ``memory`` in GiB -> ``Gi``, ``gpu`` -> ``nvidia.com/gpu``, ``hpu`` -> ``habana.ai/gaudi``) and
   ``mount_folders`` (``<ip>:/<folder>``) as NFS volumes at ``/<folder>``. It writes the command's
   exit code to ``/cnvrg/.flow-airflow-exit`` and ends with 0, so that step 3 runs whatever it gave.
3. ``store-outputs`` (the stager image): packs the workspace into ``<exchange>/end.tar`` and ends
   with the command's exit code.

``<exchange>`` is a folder of the artifact store (``artifacts_folder`` on object storage, e.g.
``s3://...``) per launch: inputs and outputs travel through it, the user's image needs nothing but
``/bin/sh``. The worker uploads ``workspace.tar`` before the pod and unpacks ``end.tar`` into the
launch's workspace after it (``flow_airflow.computes.pod_stage`` does both ends).

Run here: the pods of the example flows are validated against Kubernetes' OpenAPI schema and their
three containers are run in order on a Docker engine (``tests/containers/test_kubernetes_pod.py``).
Not run here (no cluster can be had): :meth:`KubernetesCompute.run` and ``kill`` against an API server.
Pods hold a worker slot while they run (not deferrable yet).
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from flow_airflow.computes.base import DATA, Compute, ComputeSettings, ExperimentFailed, Launch, Layout, LineCallback
from flow_airflow.computes.docker import container_env
from flow_airflow.computes.pod_stage import EXIT_FILE, SDK_FOLDER

if TYPE_CHECKING:
    from kubernetes.client import models as k8s

    from flow_airflow.spec import models

SDK_TARGET = "/opt/flow-airflow/sdk"
STAGE = "/workspace"  # where the stager containers see the workspace volume
LABEL = "flow-airflow-experiment"
EXPERIMENT = "experiment"  # the container of the command (its logs are the experiment's)
# the command as the experiment container runs it: its exit code kept, the container ending with 0
WRAPPED = ('if command -v bash >/dev/null 2>&1; then bash -c "$1"; else sh -c "$1"; fi; '
           f'echo $? > /cnvrg/{EXIT_FILE}')
RESOURCE_NAMES = {"cpu": "cpu", "memory": "memory", "gpu": "nvidia.com/gpu", "hpu": "habana.ai/gaudi"}


class KubernetesSettings(ComputeSettings):
    """A template of kind ``kubernetes``.

    ``namespace``: where the pods are made; ``image``: the default image (a task's ``image:``
    wins); ``stager_image``: flow-airflow's own image (Python with flow-airflow installed), which
    stages inputs and stores outputs; ``kubernetes_conn_id``: the Airflow Kubernetes connection
    (the provider's ``KubernetesHook``; default ``kubernetes_default``); ``service_account``,
    ``node_selector``, ``tolerations`` (Kubernetes' own shape: ``{"key", "operator", "value",
    "effect"}``), ``image_pull_secrets`` (secret names), ``labels``, ``annotations``: as on a
    pod; ``startup_timeout_seconds``: how long a pod may stay pending.
    """

    kind: Literal["kubernetes"] = "kubernetes"
    namespace: str = Field("default", min_length=1)
    image: str | None = None
    stager_image: str | None = None
    kubernetes_conn_id: str | None = None
    service_account: str | None = None
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    image_pull_secrets: tuple[str, ...] = ()
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startup_timeout_seconds: int = Field(600, gt=0)


def resources_of(resources: Mapping[str, float]) -> dict[str, str]:
    """cnvrg's ``requirements`` as Kubernetes quantities: ``{"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"}``.

    Memory is in GiB as cnvrg means it; GPUs and HPUs are whole devices (rounded up).
    """
    quantities = {}
    for key, name in RESOURCE_NAMES.items():
        value = resources.get(key)
        if not value:
            continue
        if key in ("gpu", "hpu"):
            quantities[name] = str(math.ceil(value))
        else:
            quantities[name] = f"{value:g}Gi" if key == "memory" else f"{value:g}"
    return quantities


def nfs_volume(folder: str, index: int) -> tuple[k8s.V1Volume, k8s.V1VolumeMount]:
    """``<ip>:/<folder>`` (cnvrg's ``mount_folders``) as an NFS volume, mounted at ``/<folder>``.

    :raises ValueError: the entry is not ``<server>:/<path>``.
    """
    from kubernetes.client import models as k8s

    server, _, path = folder.partition(":")
    if not server or not path.startswith("/"):
        raise ValueError(f"mount_folders '{folder}': a network folder is '<ip>:/<folder>'")
    name = f"nfs-{index}"
    return (k8s.V1Volume(name=name, nfs=k8s.V1NFSVolumeSource(server=server, path=path)),
            k8s.V1VolumeMount(name=name, mount_path=path))


def _workspace_mounts(launch: Launch) -> list[k8s.V1VolumeMount]:
    """The launch's mounts as mounts of the ``workspace`` volume (a mount outside the workspace: the SDK)."""
    from kubernetes.client import models as k8s

    mounts = []
    for mount in launch.mounts:
        if mount.target == launch.layout.sdk.as_posix():
            sub = SDK_FOLDER
        elif mount.source.is_relative_to(launch.workspace):
            sub = mount.source.relative_to(launch.workspace).as_posix()
        else:
            raise ValueError(f"the Kubernetes compute cannot mount {mount.source} (outside the workspace) "
                             f"at {mount.target}")
        mounts.append(k8s.V1VolumeMount(name="workspace", mount_path=mount.target, read_only=mount.read_only or None,
                                        sub_path=None if sub == "." else sub))
    for dataset in launch.datasets:  # use_cached: the fetched copy read-only for the command
        if dataset.get("read_only"):
            mounts.append(k8s.V1VolumeMount(name="workspace", read_only=True,
                                            mount_path=(launch.layout.data / dataset["name"]).as_posix(),
                                            sub_path=f"{DATA}/{dataset['name']}"))
    return mounts


def _stager(name: str, image: str, step: str, exchange: str) -> k8s.V1Container:
    from kubernetes.client import models as k8s

    return k8s.V1Container(
        name=name, image=image, command=["python3", "-m", "flow_airflow.computes.pod_stage", step, exchange, STAGE],
        volume_mounts=[k8s.V1VolumeMount(name="workspace", mount_path=STAGE)],
    )


def pod_name(launch: Launch) -> str:
    """A DNS-1123 name for the launch's pod, with a random suffix (at most 63 characters)."""
    from airflow.providers.cncf.kubernetes.kubernetes_helper_functions import add_unique_suffix

    base = re.sub(r"[^a-z0-9-]+", "-", launch.name.lower()).strip("-")[:50].strip("-") or "experiment"
    return add_unique_suffix(name=base, max_len=63)


def pod_for(launch: Launch, settings: KubernetesSettings, exchange: str, name: str | None = None) -> k8s.V1Pod:
    """The pod of ``launch`` (see the module's docstring for its three containers); pure.

    ``exchange``: the artifact store's folder (a URL) where ``workspace.tar`` is and ``end.tar`` goes.
    :raises ValueError: no image, no stager image, a mount or network folder that cannot be made.
    """
    from airflow.providers.cncf.kubernetes.pod_generator import make_safe_label_value
    from kubernetes.client import models as k8s

    image = launch.image or settings.image
    if not image or not settings.stager_image:
        raise ValueError("the Kubernetes compute needs an image (the task's or the template's \"image\") and "
                         "the template's \"stager_image\" (flow-airflow's own image)")
    nfs = [nfs_volume(folder, i) for i, folder in enumerate(launch.mount_folders)]
    quantities = resources_of(launch.resources)
    requirements = k8s.V1ResourceRequirements(limits=quantities, requests=quantities) if quantities else None
    command = k8s.V1Container(
        name=EXPERIMENT, image=image, command=["/bin/sh", "-c", WRAPPED, "sh", launch.command],
        working_dir=str(launch.cwd), env=[k8s.V1EnvVar(name=k, value=v) for k, v in container_env(launch).items()],
        resources=requirements, volume_mounts=_workspace_mounts(launch) + [m for _, m in nfs],
    )
    labels = {**settings.labels, LABEL: make_safe_label_value(launch.name)}
    return k8s.V1Pod(
        api_version="v1", kind="Pod",
        metadata=k8s.V1ObjectMeta(name=name or pod_name(launch), namespace=settings.namespace, labels=labels,
                                  annotations={**settings.annotations, LABEL: launch.name}),
        spec=k8s.V1PodSpec(
            restart_policy="Never",
            init_containers=[_stager("stage-inputs", settings.stager_image, "in", exchange), command],
            containers=[_stager("store-outputs", settings.stager_image, "out", exchange)],
            volumes=[k8s.V1Volume(name="workspace", empty_dir=k8s.V1EmptyDirVolumeSource())] + [v for v, _ in nfs],
            service_account_name=settings.service_account,
            node_selector=settings.node_selector or None,
            tolerations=[k8s.V1Toleration(**t) for t in settings.tolerations] or None,
            image_pull_secrets=[k8s.V1LocalObjectReference(name=s) for s in settings.image_pull_secrets] or None,
        ),
    )


def pod_dict(pod: k8s.V1Pod) -> dict[str, Any]:
    """The pod as Kubernetes' JSON (camelCase keys), by the provider's ``PodGenerator.serialize_pod``."""
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator

    return PodGenerator.serialize_pod(pod)


class KubernetesCompute(Compute):
    """Runs each command of an experiment in its own pod (created, its logs streamed, waited for, deleted)."""

    kind = "kubernetes"
    Settings = KubernetesSettings
    settings: KubernetesSettings
    fetches_datasets = True  # the stage-inputs container fetches them from the dataset store

    def __init__(self, name: str | None = None, settings: ComputeSettings | Mapping[str, Any] | None = None):
        super().__init__(name, settings)
        self._pod: Any = None
        self._manager: Any = None
        self._killed = threading.Event()

    def image_of(self, task: models.Task) -> str | None:
        """The image ``task`` runs in: its ``image:``, else the template's default."""
        return getattr(task, "image", None) or self.settings.image

    def refusal(self, task: models.Task) -> str | None:
        if not self.image_of(task):
            return (f"'{task.title}' names no image and the Kubernetes compute '{self.name}' has no default "
                    "image (its template's \"image\")")
        if not self.settings.stager_image:
            return (f"the Kubernetes compute '{self.name}' has no \"stager_image\" (flow-airflow's own image, "
                    "which brings inputs into the pod and outputs out of it)")
        if self.exchange_root() is None:
            return (f"the Kubernetes compute '{self.name}' needs artifacts_folder on object storage "
                    "(s3://..., gs://...): inputs and outputs travel through it")
        return None

    def plan_notes(self, task: models.Task, texts: Sequence[str]) -> list[str]:
        refusal = self.refusal(task)
        return [f"it cannot run: {refusal}"] if refusal else []

    def layout(self, workspace: Path, sdk: Path) -> Layout:
        return Layout.container(workspace, sdk, SDK_TARGET)

    def ignores(self, launch: Launch) -> dict[str, str]:
        return {} if launch.image else {"image": f"runs in the compute's default image {self.settings.image}"}

    def exchange_root(self) -> str | None:
        """Where pods' workspaces travel: ``<artifacts_folder>/.pods``; None when that is not object storage."""
        from flow_airflow import settings

        root = settings.artifacts_root()
        return f"{root.rstrip('/')}/.pods" if isinstance(root, str) else None

    def dataset_root(self) -> str | None:
        """Where pods fetch datasets from: ``datasets_folder``; None when that is not object storage."""
        from flow_airflow import settings

        root = settings.datasets_root()
        return root if isinstance(root, str) else None

    def _fetch(self, launch: Launch) -> dict[str, Any] | None:
        """What the pod's ``stage-inputs`` fetches (``pod_stage.FETCH``); None when no dataset.

        :raises ValueError: the dataset store is not on object storage (a pod cannot reach the worker's folder).
        """
        if not launch.datasets:
            return None
        root = self.dataset_root()
        if root is None:
            raise ValueError("datasets reach pods from the dataset store on object storage: set datasets_folder "
                             "to a URL (s3://<conn id>@bucket/prefix) and push the datasets there")
        return {"store": root, "datasets": [dict(d) for d in launch.datasets]}

    def run(self, launch: Launch, on_line: LineCallback, on_error_line: LineCallback | None = None) -> int:
        """Upload the workspace, run the launch's pod (:meth:`run_pod`), fetch its end state into the workspace.

        stdout and stderr arrive as one stream (the pod's log), all to ``on_line``.
        :raises ExperimentFailed: the workspace cannot be uploaded or fetched, the pod cannot be made.
        """
        from flow_airflow.computes import pod_stage

        try:
            name = pod_name(launch)
            exchange = f"{self.exchange_root()}/{name}"
            pod = pod_for(launch, self.settings, exchange, name)
            sdk = next(m.source for m in launch.mounts if m.target == launch.layout.sdk.as_posix())
            pod_stage.pack_to(launch.workspace, sdk, f"{exchange}/workspace.tar", self._fetch(launch))
        except (OSError, ValueError) as e:
            raise ExperimentFailed(f"the Kubernetes compute '{self.name}' cannot make the pod: {e}") from None
        code = self.run_pod(pod, on_line)
        try:
            pod_stage.unpack_from(f"{exchange}/end.tar", launch.workspace)
        except OSError as e:
            raise ExperimentFailed(f"the Kubernetes compute '{self.name}' cannot fetch the pod's end state: "
                                   f"{e}") from None
        return code

    def run_pod(self, pod: k8s.V1Pod, on_line: LineCallback) -> int:
        """Create ``pod`` with the provider's ``KubernetesHook``/``PodManager``, stream the experiment
        container's log, wait for the pod, delete it; the ``store-outputs`` container's exit code.

        Not run on these machines (no cluster can be had): the tests run the same pod on Docker instead.
        """
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
        from airflow.providers.cncf.kubernetes.utils.pod_manager import PodManager

        try:
            hook = KubernetesHook(conn_id=self.settings.kubernetes_conn_id or KubernetesHook.default_conn_name)
            self._manager = PodManager(kube_client=hook.core_v1_client)
            self._pod = self._manager.create_pod(pod)
        except Exception as e:  # the hook or the API server refused: one line, the log has the rest
            raise ExperimentFailed(f"the Kubernetes compute '{self.name}' cannot create the pod: {e}") from None
        try:
            if self._killed.is_set():
                return 143
            self._await_experiment(pod)
            for line in self._manager.read_pod_logs(pod, EXPERIMENT, follow=True):
                on_line(line.decode(errors="replace").rstrip("\n"))
            return _exit_code(self._manager.await_pod_completion(pod, container_name="store-outputs"))
        finally:
            self._manager.delete_pod(pod)
            self._pod = None

    def _await_experiment(self, pod: k8s.V1Pod) -> None:
        """Wait until the ``experiment`` (init) container has started or the pod has ended."""
        deadline = time.monotonic() + self.settings.startup_timeout_seconds
        while time.monotonic() < deadline:
            remote = self._manager.read_pod(pod)
            if remote.status.phase in ("Succeeded", "Failed"):
                return
            for status in remote.status.init_container_statuses or []:
                if status.name == EXPERIMENT and status.state and (status.state.running or status.state.terminated):
                    return
            time.sleep(1)
        raise ExperimentFailed(f"the pod {pod.metadata.name} did not start its experiment within "
                               f"{self.settings.startup_timeout_seconds} s (startup_timeout_seconds)")

    def kill(self) -> None:
        """Delete the running pod (Kubernetes sends SIGTERM, then SIGKILL after the grace period)."""
        self._killed.set()
        if self._pod is not None and self._manager is not None:
            self._manager.delete_pod(self._pod)


def _exit_code(pod: Any) -> int:
    """The ``store-outputs`` container's exit code: the command's (see ``pod_stage``)."""
    for status in pod.status.container_statuses or []:
        if status.state and status.state.terminated:
            return int(status.state.terminated.exit_code)
    raise ExperimentFailed(f"the pod {pod.metadata.name} ended without an exit code")
