"""An endpoint on the Kubernetes compute: serve's manifests applied through the cncf-kubernetes provider's hook.

Minimal, and never run against a cluster here (no cluster on these machines): the tests check the
manifests chosen (``tests/computes/test_kubernetes_replicas.py``), not an apply. A version is one
apply of :func:`flow_airflow.computes.kubernetes.manifests.endpoint_manifests` (Secret with the key, ConfigMap,
Deployment of ``min_replica`` pods with a readiness probe on ``/health``, Service,
HorizontalPodAutoscaler between ``min_replica`` and ``max_replica``) with server-side apply: the
Deployment keeps its name across versions, so Kubernetes itself rolls the pods over, a new pod
taking requests once its readiness probe passes (no downtime). Its version's workspace travels as
``workspace.tar`` through the artifact store (object storage), as an experiment's does on this
compute. The one "replica" the front forwards to is the Service's in-cluster address: the front
must run where that resolves (an Airflow worker in the cluster). Stop deletes the manifests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flow_airflow.computes.replicas import Replica, Replicas, Served

MANAGER = "flow-airflow"  # the field manager of server-side apply
PORT = 8080  # the serving container's port (the Service's is serve's: 80)


class KubernetesReplicas(Replicas):
    """The endpoint's Deployment (one :class:`Replica` standing for all its pods, behind its Service)."""

    kind = "kubernetes"
    ready_seconds = 600.0
    autoscales = True  # its HorizontalPodAutoscaler, between min_replica and max_replica

    def __init__(self, folder: Path, compute: Any):
        from flow_airflow import computes

        super().__init__(folder, compute)
        self.cluster: Any = computes.create(compute)  # a KubernetesCompute: its settings, its exchange

    def manifests(self, version: Served, count: int, key: str | None) -> list[dict[str, Any]]:
        """The version's manifests (serve's ``endpoint_manifests``) for ``count`` replicas at least."""
        from flow_airflow.computes.kubernetes.manifests import endpoint_manifests
        from flow_airflow.serving.command import EndpointConfig

        launch = version.launch
        config = EndpointConfig.model_validate_json(Path(launch["config"]).read_text(encoding="utf-8"))
        return endpoint_manifests(
            config, settings=self.cluster.settings, flow=version.dag_id, image=launch.get("image"),
            exchange=self.exchange(version), api_key=key, min_replica=max(count, 1),
            max_replica=max(launch.get("max_replica") or count, count, 1), resources=launch.get("resources") or {},
            env=launch.get("env", {}), gunicorn_config=[tuple(pair) for pair in launch.get("gunicorn", [])],
            port=PORT)

    def exchange(self, version: Served) -> str:
        return f"{self.cluster.exchange_root()}/endpoints/{self.folder.name}/v{version.version}"

    def start(self, version: Served, count: int, key: str | None) -> list[Replica]:
        from flow_airflow.computes.base import SDK_PATH, ExperimentFailed
        from flow_airflow.computes.kubernetes import pod_stage

        if self.cluster.exchange_root() is None:
            raise ExperimentFailed(f"the Kubernetes compute '{self.cluster.name}' needs artifacts_folder on object "
                                   "storage: the endpoint's files travel through it")
        manifests = self.manifests(version, count, key)
        pod_stage.pack_to(Path(version.launch["workspace"]), SDK_PATH, f"{self.exchange(version)}/workspace.tar")
        for manifest in manifests:
            self._resource(manifest).server_side_apply(body=manifest, name=manifest["metadata"]["name"],
                                                       namespace=manifest["metadata"]["namespace"],
                                                       field_manager=MANAGER, force_conflicts=True)
        service = next(m for m in manifests if m["kind"] == "Service")
        port, service = service["spec"]["ports"][0]["port"], service["metadata"]
        return [Replica(url=f"http://{service['name']}.{service['namespace']}.svc:{port}",
                        ident=f"{service['namespace']}/{service['name']}")]

    def stop(self, replica: Replica) -> None:
        from kubernetes.client.exceptions import ApiException

        namespace, name = replica.ident.split("/", 1)
        for api_version, kind in (("autoscaling/v2", "HorizontalPodAutoscaler"), ("v1", "Service"),
                                  ("apps/v1", "Deployment"), ("v1", "ConfigMap"), ("v1", "Secret")):
            try:
                self._resource({"apiVersion": api_version, "kind": kind}).delete(name=name, namespace=namespace)
            except ApiException as e:
                if e.status != 404:
                    raise

    def alive(self, replica: Replica) -> bool:
        from kubernetes.client.exceptions import ApiException

        namespace, name = replica.ident.split("/", 1)
        try:
            self._resource({"apiVersion": "apps/v1", "kind": "Deployment"}).get(name=name, namespace=namespace)
        except ApiException:
            return False
        return True

    def log_tail(self, replica: Replica, lines: int = 40) -> str:
        return ""  # the pods' logs: kubectl logs deployment/<name> (the Deployment is named in the replica)

    def _resource(self, manifest: dict[str, Any]) -> Any:
        """The dynamic client's resource of ``manifest``'s kind, through the provider's ``KubernetesHook``."""
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
        from kubernetes.dynamic import DynamicClient

        hook = KubernetesHook(conn_id=self.cluster.settings.kubernetes_conn_id or "kubernetes_default")
        client = DynamicClient(hook.api_client)
        return client.resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
