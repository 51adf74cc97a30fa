"""Registers the flow-airflow plugin for deployments that copy plugins instead of installing
the package's ``airflow.plugins`` entry point (both may be present: Airflow loads it once)."""

from flow_airflow.plugin import FlowAirflowPlugin

__all__ = ["FlowAirflowPlugin"]
