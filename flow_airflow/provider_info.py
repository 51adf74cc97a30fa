"""flow-airflow as Airflow sees a provider: what it declares (the ``[flow_airflow]`` configuration section).

Registered through the ``apache_airflow_provider`` entry point (pyproject.toml), as Airflow's own
providers are: ``airflow config list --section flow_airflow`` then lists every key with its
description, and ``airflow providers list`` shows flow-airflow. Called in every Airflow process
that discovers providers, so it stays light: the settings model only.
"""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    """The provider info (Airflow's ``provider_info.schema.json``): name, description, config."""
    from flow_airflow.settings import config_description

    return {
        "package-name": "flow-airflow",
        "name": "flow-airflow",
        "description": "Runs cnvrg flow YAML files as Apache Airflow DAGs.",
        "config": config_description(),
    }
