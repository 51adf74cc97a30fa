"""The operator of a data task (``type: data``): a version of a dataset for the tasks after it.

Running data tasks is not supported yet: each route fails saying so, and the tasks after it are
skipped (the flow loads and shows the task). The data tasks issue fills :meth:`DataTaskOperator.run_route`.
"""

from __future__ import annotations

from typing import Any

from flow_airflow.common.routes import Record
from flow_airflow.operators.base import FlowTaskOperator


class DataTaskOperator(FlowTaskOperator):
    """Runs a data task for one route; today it fails, saying that data tasks cannot run yet."""

    def run_route(self, ti: Any, route: dict[str, Any], index: int, parents: dict[str, list[Record]],
                  project_env: dict[str, str]) -> Record:
        raise self.not_supported_yet()
