"""The Airflow plugin: what flow-airflow adds to Airflow's processes beyond the DAG files."""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from flow_airflow.approvals import notes
from flow_airflow.web.plugin import EXTERNAL_VIEWS, FASTAPI_APP


class FlowAirflowPlugin(AirflowPlugin):
    name = "flow_airflow"
    fastapi_apps: ClassVar[list[Any]] = [FASTAPI_APP]  # the plugin's pages and their APIs, at /flow-airflow
    external_views: ClassVar[list[Any]] = EXTERNAL_VIEWS  # each page ("Approvals") in the UI's navigation
    listeners: ClassVar[list[Any]] = [notes]  # a run's note says what its approvals decided


def _preload_compiler() -> None:
    """In the DAG processor, import the flow compiler once, in the manager process.

    Airflow parses every DAG file in a process forked from the DAG processor's manager and
    pre-imports the ``airflow.*`` modules a DAG file imports there, so that no parse pays for
    them again (``[dag_processor] parsing_pre_import_modules``). The loader's own modules are
    not ``airflow.*``: without this, every parse of ``flows.py`` would import the compiler anew.
    The manager loads plugins, so importing them here does for the loader what Airflow does
    for hand-written DAG files. Other processes (workers, api-server, CLI) are left as they are.
    """
    import sys

    if sys.argv[1:2] != ["dag-processor"]:
        return
    import flow_airflow.loader
    import flow_airflow.plan.cache
    import flow_airflow.plan.flow_plan
    import flow_airflow.render.dag
    import flow_airflow.spec.load  # noqa: F401


_preload_compiler()
