"""The operator of a deploy task (``type: deploy``): publishes a predict function as a model endpoint.

Running deploy tasks is not supported yet: each route fails saying so, and the tasks after it are
skipped (the flow loads and shows the task). The deploy tasks issue fills
:meth:`DeployTaskOperator.run_route`.
"""

from __future__ import annotations

from typing import Any

from flow_airflow.common.routes import Record
from flow_airflow.operators.base import FlowTaskOperator


class DeployTaskOperator(FlowTaskOperator):
    """Runs a deploy task for one route; today it fails, saying that deploy tasks cannot run yet."""

    def run_route(self, ti: Any, route: dict[str, Any], index: int, parents: dict[str, list[Record]],
                  project_env: dict[str, str]) -> Record:
        raise self.not_supported_yet()
