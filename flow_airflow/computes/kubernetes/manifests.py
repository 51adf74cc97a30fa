"""A model endpoint on the Kubernetes compute: its manifests (Secret, ConfigMap, Deployment, Service, HPA).

:func:`endpoint_manifests` gives, in the order to apply them:

1. ``Secret`` ``endpoint-<title>-key`` with the API key (``stringData.api-key``); none for an open
   endpoint. The Deployment only refers to it (``secretKeyRef``): the key is never in the Deployment.
2. ``ConfigMap`` ``endpoint-<title>-app``: ``app.py`` (the serving app, standard library and Flask
   only) and ``config.json`` (its :class:`~flow_airflow.serving.command.EndpointConfig`, with
   ``project_dir: /cnvrg``), mounted read-only at ``/opt/flow-airflow/serving``.
3. ``Deployment`` ``endpoint-<title>`` with ``min_replica`` replicas. Each pod stages the deploy task's
   workspace as the Kubernetes compute's pods do (init container ``stage-inputs``, the stager image,
   ``<exchange>/workspace.tar`` into an ``emptyDir``: the project at ``/cnvrg``, the parents' end
   states at ``/input/<task>``, datasets at ``/data``), then container ``serve`` (the task's image)
   runs gunicorn (:func:`~flow_airflow.serving.command.gunicorn_argv`) on ``port``.
   ``requirements`` are requests = limits (``computes.kubernetes.pods.resources_of``); without a ``cpu``
   requirement the container requests ``250m`` CPU (no limit), as the autoscaler measures CPU
   against the request. Readiness: ``GET /health`` (200 once the predict module imported);
   liveness: ``GET /stats`` (the process answers). Updates roll (``maxUnavailable: 0``): a new
   version's pods serve only once ready, the old ones stop after.
4. ``Service`` ``endpoint-<title>`` (ClusterIP, port 80 to the pods' ``http`` port).
5. ``HorizontalPodAutoscaler`` (``autoscaling/v2``) between ``min_replica`` and ``max_replica`` on
   70 % average CPU utilisation.

Labels: ``flow-airflow-endpoint`` (the selector: stable across versions), ``flow-airflow-flow``,
``flow-airflow-version`` and ``app.kubernetes.io/name: flow-airflow-endpoint`` (values made
label-safe by the provider's ``make_safe_label_value``; the flow's title as written is the annotation
``flow-airflow-flow``), plus the template's ``labels``; the template's ``namespace``,
``annotations``, ``service_account``, ``node_selector``, ``tolerations``, ``image_pull_secrets``
apply as on experiment pods.

Validated against Kubernetes' OpenAPI schema and the ``serve`` container run on Docker in the tests;
nothing here sends them to a cluster (none can be had where this is built).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from flow_airflow.computes.kubernetes.compute import KubernetesSettings
from flow_airflow.computes.kubernetes.pods import STAGE, resources_of
from flow_airflow.serving.command import APP_FILE, EndpointConfig, gunicorn_argv

APP_DIR = "/opt/flow-airflow/serving"  # where the ConfigMap is mounted in the serving container
PROJECT = "/cnvrg"
KEY_NAME = "api-key"  # the Secret's key holding the endpoint's API key
DEFAULT_CPU_REQUEST = "250m"
CPU_TARGET = 70  # % of the CPU request, averaged over the pods: the autoscaler's target
ENDPOINT_LABEL = "flow-airflow-endpoint"
WORKSPACE_MOUNTS = ((PROJECT, None), ("/input", "input"), ("/data", ".cnvrg_data"))  # as Layout.container


def resource_name(title: str) -> str:
    """``endpoint-<title>`` in lower case, a DNS-1035 label (at most 50 characters: room for suffixes)."""
    name = "endpoint-" + re.sub(r"[^a-z0-9-]+", "-", title.lower()).strip("-")
    if len(name) > 50:
        name = f"{name[:41].rstrip('-')}-{hashlib.sha256(title.encode()).hexdigest()[:8]}"
    return name


def endpoint_manifests(config: EndpointConfig, *, settings: KubernetesSettings, flow: str, image: str | None,
                       exchange: str, api_key: str | None, min_replica: int = 1, max_replica: int | None = None,
                       resources: Mapping[str, float] | None = None, env: Mapping[str, str] | None = None,
                       gunicorn_config: Iterable[tuple[str, Any]] | Mapping[str, Any] = (),
                       port: int = 8080) -> list[dict[str, Any]]:
    """The manifests of ``config``'s endpoint (module docstring), as Kubernetes' JSON; pure.

    ``flow``: the flow's title (a label); ``image``: the task's image (else the template's);
    ``exchange``: the artifact store's folder holding the deploy task's ``workspace.tar``;
    ``api_key``: the key (None only for an open endpoint); ``env``: the deploy task's variables
    (``INPUT_<TASK>``, ``CNVRG_*``) as the container sees them.
    :raises ValueError: no image or stager image, a key missing or given for an open endpoint,
        replicas out of range; ``GunicornConfigError`` for a bad ``gunicorn_config``.
    """
    image = image or settings.image
    if not image or not settings.stager_image:
        raise ValueError("an endpoint on Kubernetes needs an image (the task's or the template's \"image\") and "
                         "the template's \"stager_image\" (flow-airflow's own image)")
    if config.open == bool(api_key):
        raise ValueError("an endpoint has an API key unless it is open, and an open one has none")
    max_replica = max_replica or min_replica
    if not 1 <= min_replica <= max_replica:
        raise ValueError(f"replicas: 1 <= min_replica ({min_replica}) <= max_replica ({max_replica}) "
                         "(the autoscaler does not scale to zero)")
    served = config.model_copy(update={"project_dir": PROJECT})
    # the flow's title as written (a label value cannot hold it all) on every manifest and pod
    settings = settings.model_copy(update={"annotations": {**settings.annotations, "flow-airflow-flow": flow}})
    name = resource_name(config.title)
    labels = _labels(settings, flow, config)
    container = _serving_container(served, image, name, port, resources or {}, env or {}, gunicorn_config)
    manifests = [] if config.open else [_secret(name, settings, labels, api_key or "")]
    manifests += [
        _config_map(name, settings, labels, served),
        _deployment(name, settings, labels, container, exchange, min_replica),
        _service(name, settings, labels),
        _autoscaler(name, settings, labels, min_replica, max_replica),
    ]
    return manifests


def _labels(settings: KubernetesSettings, flow: str, config: EndpointConfig) -> dict[str, str]:
    from airflow.providers.cncf.kubernetes.pod_generator import make_safe_label_value

    return {**settings.labels, "app.kubernetes.io/name": "flow-airflow-endpoint",
            ENDPOINT_LABEL: make_safe_label_value(config.title), "flow-airflow-flow": make_safe_label_value(flow),
            "flow-airflow-version": make_safe_label_value(config.version)}


def _metadata(name: str, settings: KubernetesSettings, labels: dict[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": settings.namespace, "labels": labels}
    if settings.annotations:
        meta["annotations"] = dict(settings.annotations)
    return meta


def _secret(name: str, settings: KubernetesSettings, labels: dict[str, str], key: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": _metadata(f"{name}-key", settings, labels),
            "type": "Opaque", "stringData": {KEY_NAME: key}}


def _config_map(name: str, settings: KubernetesSettings, labels: dict[str, str],
                served: EndpointConfig) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _metadata(f"{name}-app", settings, labels),
            "data": {"app.py": APP_FILE.read_text(), "config.json": served.model_dump_json()}}


def _serving_container(served: EndpointConfig, image: str, name: str, port: int, resources: Mapping[str, float],
                       env: Mapping[str, str], gunicorn_config: Any) -> dict[str, Any]:
    argv = gunicorn_argv(served, bind=f"0.0.0.0:{port}", app_dir=APP_DIR, python="python3",
                         gunicorn_config=gunicorn_config)
    variables = [{"name": k, "value": v} for k, v in env.items()
                 if k not in ("CNVRG_ENDPOINT_CONFIG", "CNVRG_ENDPOINT_API_KEY")]
    variables.append({"name": "CNVRG_ENDPOINT_CONFIG", "value": f"{APP_DIR}/config.json"})
    if not served.open:
        variables.append({"name": "CNVRG_ENDPOINT_API_KEY",
                          "valueFrom": {"secretKeyRef": {"name": f"{name}-key", "key": KEY_NAME}}})
    quantities = resources_of(resources)
    requests = quantities if "cpu" in quantities else {**quantities, "cpu": DEFAULT_CPU_REQUEST}
    mounts = [{"name": "workspace", "mountPath": path, **({"subPath": sub} if sub else {})}
              for path, sub in WORKSPACE_MOUNTS]
    return {
        "name": "serve", "image": image, "command": argv, "workingDir": PROJECT, "env": variables,
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "resources": {"requests": requests, **({"limits": quantities} if quantities else {})},
        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 5,
                           "timeoutSeconds": 3, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/stats", "port": "http"}, "initialDelaySeconds": 30,
                          "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 6},
        "volumeMounts": [*mounts, {"name": "app", "mountPath": APP_DIR, "readOnly": True}],
    }


def _deployment(name: str, settings: KubernetesSettings, labels: dict[str, str], container: dict[str, Any],
                exchange: str, replicas: int) -> dict[str, Any]:
    stager = {"name": "stage-inputs", "image": settings.stager_image,
              "command": ["python3", "-m", "flow_airflow.computes.kubernetes.pod_stage", "in", exchange, STAGE],
              "volumeMounts": [{"name": "workspace", "mountPath": STAGE}]}
    if settings.stager_secrets:  # the bucket's connection, as the experiments' stager has it (computes.kubernetes.pods)
        stager["envFrom"] = [{"secretRef": {"name": secret}} for secret in settings.stager_secrets]
    spec: dict[str, Any] = {
        "initContainers": [stager], "containers": [container],
        "volumes": [{"name": "workspace", "emptyDir": {}},
                    {"name": "app", "configMap": {"name": f"{name}-app"}}],
    }
    if settings.service_account:
        spec["serviceAccountName"] = settings.service_account
    if settings.node_selector:
        spec["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        spec["tolerations"] = [dict(t) for t in settings.tolerations]
    if settings.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in settings.image_pull_secrets]
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _metadata(name, settings, labels),
        "spec": {
            "replicas": replicas, "selector": {"matchLabels": {ENDPOINT_LABEL: labels[ENDPOINT_LABEL]}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": labels, **_annotations(settings)}, "spec": spec},
        },
    }


def _annotations(settings: KubernetesSettings) -> dict[str, Any]:
    return {"annotations": dict(settings.annotations)} if settings.annotations else {}


def _service(name: str, settings: KubernetesSettings, labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": _metadata(name, settings, labels),
            "spec": {"type": "ClusterIP", "selector": {ENDPOINT_LABEL: labels[ENDPOINT_LABEL]},
                     "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}}


def _autoscaler(name: str, settings: KubernetesSettings, labels: dict[str, str], low: int,
                high: int) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(name, settings, labels),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": low, "maxReplicas": high,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": CPU_TARGET}}}],
        },
    }
