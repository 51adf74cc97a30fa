"""flow-airflow as Airflow sees a provider: what it declares (the ``[flow_airflow]`` configuration section).

Registered through the ``apache_airflow_provider`` entry point (pyproject.toml), as Airflow's own
providers are: ``airflow config list --section flow_airflow`` then lists every key with its
description, and ``airflow providers list`` shows flow-airflow. Called in every Airflow process
that discovers providers, so it stays light: the settings model only.
"""

from __future__ import annotations

import logging
from typing import Any


def get_provider_info() -> dict[str, Any]:
    """The provider info (Airflow's ``provider_info.schema.json``): name, description, config.

    Airflow does not guard this call (an exception here would stop every Airflow command), so a
    failure to describe the settings leaves the section undeclared, logging why.
    """
    info: dict[str, Any] = {
        "package-name": "flow-airflow",
        "name": "flow-airflow",
        "description": "Runs cnvrg flow YAML files as Apache Airflow DAGs.",
    }
    try:
        from flow_airflow.settings import config_description

        info["config"] = config_description()
    except Exception:
        logging.getLogger(__name__).exception("flow-airflow cannot declare its [flow_airflow] settings to Airflow")
    return info
