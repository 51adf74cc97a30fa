"""The Airflow plugin: what flow-airflow adds to Airflow's processes beyond the DAG files."""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from flow_airflow.approvals.ui import APPROVALS_APP, APPROVALS_VIEW


class FlowAirflowPlugin(AirflowPlugin):
    name = "flow_airflow"
    fastapi_apps: ClassVar[list[Any]] = [APPROVALS_APP]  # the approvals page and its API, at /flow-airflow
    external_views: ClassVar[list[Any]] = [APPROVALS_VIEW]  # "Approvals" in the UI's navigation
