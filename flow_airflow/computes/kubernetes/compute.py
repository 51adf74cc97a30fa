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
launch's workspace after it (``flow_airflow.computes.kubernetes.pod_stage`` does both ends).

Run here: the pods of the example flows are validated against Kubernetes' OpenAPI schema and their
three containers are run in order on a Docker engine (``tests/containers/test_kubernetes_pod.py``).
Not run here (no cluster can be had): :meth:`KubernetesCompute.run` and ``kill`` against an API server.
Deferrable: a task instance running one route does not hold a worker slot while its pod runs:
:meth:`KubernetesCompute.start` creates the pod, the task defers to the provider's
``KubernetesPodTrigger`` (:meth:`KubernetesCompute.trigger_for`), and on the trigger's event
:meth:`KubernetesCompute.resume` reads the command's log, deletes the pod and fetches its end state
(``flow_airflow.operators.experiment``). A task instance of several routes (``batch_routes``) runs
its pods in turn from the worker (:meth:`KubernetesCompute.run`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from flow_airflow.computes.base import (
    ComputeSettings,
    DeferrableCompute,
    ExperimentFailed,
    Launch,
    Layout,
    LineCallback,
)
from flow_airflow.computes.kubernetes.pods import (  # the pod's parts, here too for those who import them from here
    EXPERIMENT,
    nfs_volume,
    pod_dict,
    pod_for,
    pod_name,
    resources_of,
)

if TYPE_CHECKING:
    from kubernetes.client import models as k8s

    from flow_airflow.spec import models

__all__ = ["KubernetesCompute", "KubernetesSettings", "nfs_volume", "pod_dict", "pod_for", "pod_name", "resources_of"]



class KubernetesSettings(ComputeSettings):
    """A template of kind ``kubernetes``.

    ``namespace``: where the pods are made; ``image``: the default image (a task's ``image:``
    wins); ``stager_image``: flow-airflow's own image (Python with flow-airflow installed), which
    stages inputs and stores outputs; ``kubernetes_conn_id``: the Airflow Kubernetes connection
    (the provider's ``KubernetesHook``; default ``kubernetes_default``); ``service_account``,
    ``node_selector``, ``tolerations`` (Kubernetes' own shape: ``{"key", "operator", "value",
    "effect"}``), ``image_pull_secrets`` (secret names), ``stager_secrets`` (secrets whose keys become the
    stager containers' environment: the bucket's Airflow connection, ``AIRFLOW_CONN_<ID>``), ``labels``,
    ``annotations``: as on a
    pod; ``startup_timeout_seconds``: how long a pod may wait to be scheduled; ``run_timeout_seconds``:
    how long its command may run (a deferred pod's trigger gives up after it); ``poll_seconds``: how often
    the trigger looks at the pod.
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
    stager_secrets: tuple[str, ...] = ()
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startup_timeout_seconds: int = Field(600, gt=0)
    run_timeout_seconds: int = Field(7 * 24 * 3600, gt=0)
    poll_seconds: float = Field(10.0, gt=0)


class KubernetesCompute(DeferrableCompute):
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
        return Layout.container(workspace, sdk)

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
        pod = self._prepared(launch)
        code = self.run_pod(pod, on_line)
        self._fetch_end_state(pod.metadata.name, launch.workspace)
        return code

    def _prepared(self, launch: Launch) -> k8s.V1Pod:
        """The launch's pod, its workspace uploaded to its exchange (``<exchange root>/<pod name>``)."""
        from flow_airflow.computes.kubernetes import pod_stage

        try:
            name = pod_name(launch)
            exchange = f"{self.exchange_root()}/{name}"
            pod = pod_for(launch, self.settings, exchange, name)
            sdk = next(m.source for m in launch.mounts if m.target == launch.layout.sdk.as_posix())
            pod_stage.pack_to(launch.workspace, sdk, f"{exchange}/workspace.tar", self._fetch(launch))
        except (OSError, ValueError) as e:
            raise ExperimentFailed(f"the Kubernetes compute '{self.name}' cannot make the pod: {e}") from None
        return pod

    def _fetch_end_state(self, name: str, workspace: Path) -> None:
        from flow_airflow.computes.kubernetes import pod_stage

        try:
            pod_stage.unpack_from(f"{self.exchange_root()}/{name}/end.tar", workspace)
        except OSError as e:
            raise ExperimentFailed(f"the Kubernetes compute '{self.name}' cannot fetch the pod's end state: "
                                   f"{e}") from None

    # --- deferrable: the pod runs while the task is deferred (no worker slot held) -----------------

    def start(self, launch: Launch) -> k8s.V1Pod:
        """Upload the workspace and create the launch's pod, without waiting for it: the pod made."""
        pod = self._prepared(launch)
        self.create_pod(pod)
        return pod

    def trigger_for(self, pod: k8s.V1Pod) -> Any:
        """The provider's ``KubernetesPodTrigger`` waiting in Airflow's triggerer for ``pod`` to end.

        The command runs in an init container (so that ``store-outputs`` runs after it): the pod
        stays Pending while it runs, so the trigger's ``startup_timeout`` is the template's
        ``run_timeout_seconds``, its ``schedule_timeout`` ``startup_timeout_seconds``. The pod is kept
        at the end (``keep_pod``): :meth:`resume` reads its log, then deletes it.
        """
        import datetime

        from airflow.providers.cncf.kubernetes.triggers.pod import KubernetesPodTrigger

        return KubernetesPodTrigger(
            pod_name=pod.metadata.name, pod_namespace=pod.metadata.namespace, base_container_name="store-outputs",
            trigger_start_time=datetime.datetime.now(datetime.UTC), kubernetes_conn_id=self._conn_id(),
            poll_interval=self.settings.poll_seconds, get_logs=False,
            schedule_timeout=self.settings.startup_timeout_seconds, startup_timeout=self.settings.run_timeout_seconds,
            startup_check_interval=self.settings.poll_seconds, on_finish_action="keep_pod",
            on_kill_action="delete_pod",
        )

    def resume(self, event: Mapping[str, Any], workspace: Path, on_line: LineCallback) -> int:
        """After the trigger's ``event``: the experiment container's log to ``on_line``, the pod deleted,
        its end state fetched into ``workspace``; the command's exit code.

        :raises ExperimentFailed: the pod did not run to its end (a timeout, an API error), or left no exit code.
        """
        name, namespace = str(event.get("name")), str(event.get("namespace"))
        try:
            if event.get("status") not in ("success", "failed"):
                raise ExperimentFailed(f"the pod {namespace}/{name} did not run to its end ({event.get('status')}): "
                                       f"{event.get('message')}")
            try:
                lines, code = self.pod_result(name, namespace)
            except ExperimentFailed:
                raise
            except Exception as e:  # the API server's answer: one line (a failed stager leaves no log, no code)
                raise ExperimentFailed(f"the pod {namespace}/{name} ended ({event.get('status')}), but its log or "
                                       f"exit code cannot be read: {e}") from None
        finally:
            self.delete_pod(name, namespace)
        for line in lines:
            on_line(line)
        self._fetch_end_state(name, workspace)
        return code

    def _conn_id(self) -> str:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        return self.settings.kubernetes_conn_id or KubernetesHook.default_conn_name

    def _pod_manager(self) -> Any:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
        from airflow.providers.cncf.kubernetes.utils.pod_manager import PodManager

        if self._manager is None:
            self._manager = PodManager(kube_client=KubernetesHook(conn_id=self._conn_id()).core_v1_client)
        return self._manager

    def create_pod(self, pod: k8s.V1Pod) -> None:
        """Create ``pod`` through the API server. Not run here (no cluster): the tests replace it."""
        try:
            self._pod = self._pod_manager().create_pod(pod)
        except Exception as e:  # the hook or the API server refused: one line, the log has the rest
            raise ExperimentFailed(f"the Kubernetes compute '{self.name}' cannot create the pod: {e}") from None

    def pod_result(self, name: str, namespace: str) -> tuple[list[str], int]:
        """The ended pod's ``experiment`` log lines and the ``store-outputs`` exit code (the command's).
        Not run here (no cluster): the tests replace it."""
        from kubernetes.client import models as k8s

        manager = self._pod_manager()
        pod = manager.read_pod(k8s.V1Pod(metadata=k8s.V1ObjectMeta(name=name, namespace=namespace)))
        lines = [line.decode(errors="replace").rstrip("\n")
                 for line in manager.read_pod_logs(pod, EXPERIMENT, follow=False)]
        return lines, _exit_code(pod)

    def delete_pod(self, name: str, namespace: str) -> None:
        """Delete the pod (a pod already gone is no error). Not run here (no cluster): the tests replace it."""
        from kubernetes.client import models as k8s

        with contextlib.suppress(Exception):
            self._pod_manager().delete_pod(k8s.V1Pod(metadata=k8s.V1ObjectMeta(name=name, namespace=namespace)))

    def run_pod(self, pod: k8s.V1Pod, on_line: LineCallback) -> int:
        """Create ``pod`` with the provider's ``KubernetesHook``/``PodManager``, stream the experiment
        container's log, wait for the pod, delete it; the ``store-outputs`` container's exit code.

        Not run on these machines (no cluster can be had): the tests run the same pod on Docker instead.
        """
        self.create_pod(pod)
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
