"""The Kubernetes compute's pod, built with the cncf-kubernetes provider's ``kubernetes.client`` models
(see :mod:`flow_airflow.computes.kubernetes.compute` for its three containers); pure, no API server."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flow_airflow.computes.base import DATA, Launch
from flow_airflow.computes.kubernetes.pod_stage import EXIT_FILE, SDK_FOLDER

if TYPE_CHECKING:
    from kubernetes.client import models as k8s

    from flow_airflow.computes.kubernetes.compute import KubernetesSettings

STAGE = "/workspace"  # where the stager containers see the workspace volume
LABEL = "flow-airflow-experiment"
EXPERIMENT = "experiment"  # the container of the command (its logs are the experiment's)
# the command as the experiment container runs it: its exit code kept, the container ending with 0
WRAPPED = ('if command -v bash >/dev/null 2>&1; then bash -c "$1"; else sh -c "$1"; fi; '
           f'echo $? > /cnvrg/{EXIT_FILE}')
RESOURCE_NAMES = {"cpu": "cpu", "memory": "memory", "gpu": "nvidia.com/gpu", "hpu": "habana.ai/gaudi"}


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


def _stager(name: str, settings: KubernetesSettings, step: str, exchange: str) -> k8s.V1Container:
    """A stager container: flow-airflow's image, with the template's ``stager_secrets`` as its environment
    (the Airflow connection of the bucket, e.g. ``AIRFLOW_CONN_AWS_DEFAULT``: the user's command never sees it)."""
    from kubernetes.client import models as k8s

    secrets = [k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=s)) for s in settings.stager_secrets]
    return k8s.V1Container(
        name=name, image=settings.stager_image,
        command=["python3", "-m", "flow_airflow.computes.kubernetes.pod_stage", step, exchange, STAGE],
        volume_mounts=[k8s.V1VolumeMount(name="workspace", mount_path=STAGE)], env_from=secrets or None,
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
        working_dir=str(launch.cwd), env=[k8s.V1EnvVar(name=k, value=v) for k, v in launch.container_env().items()],
        resources=requirements, volume_mounts=_workspace_mounts(launch) + [m for _, m in nfs],
    )
    labels = {**settings.labels, LABEL: make_safe_label_value(launch.name)}
    return k8s.V1Pod(
        api_version="v1", kind="Pod",
        metadata=k8s.V1ObjectMeta(name=name or pod_name(launch), namespace=settings.namespace, labels=labels,
                                  annotations={**settings.annotations, LABEL: launch.name}),
        spec=k8s.V1PodSpec(
            restart_policy="Never",
            init_containers=[_stager("stage-inputs", settings, "in", exchange), command],
            containers=[_stager("store-outputs", settings, "out", exchange)],
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
