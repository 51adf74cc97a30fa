"""The Airflow plugin: what flow-airflow adds to Airflow's processes beyond the DAG files."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


class FlowAirflowPlugin(AirflowPlugin):
    name = "flow_airflow"
