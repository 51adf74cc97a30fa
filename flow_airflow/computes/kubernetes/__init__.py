"""The Kubernetes compute kind: each command of an experiment in a pod (``compute``; the pod is built by
``pods``, its workspace carried in and out by ``pod_stage``); an endpoint as a Deployment behind a Service
with a HorizontalPodAutoscaler (``replicas``, its manifests by ``manifests``).

Only the standard library here: the pod's stager containers run ``python3 -m
flow_airflow.computes.kubernetes.pod_stage``, which imports this package first.
"""
