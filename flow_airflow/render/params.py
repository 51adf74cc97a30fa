"""A flow's params as the DAG's ``params``: what Airflow's trigger form shows and checks.

One Airflow ``Param`` per flow task that has params, keyed by the task's title: an object of its
params, each a list of values (a grid), one value, or null when not set, with a JSON Schema that
Airflow checks when a run is triggered (an unknown param is refused up front).
The run's ``conf`` has the same shape; :mod:`flow_airflow.operators.overrides` applies it.
"""

from __future__ import annotations

from typing import Any

from flow_airflow.plan.flow_plan import FlowPlan, ordered_params

__all__ = ["PARAMS_DOC", "flow_params", "ordered_params"]

#: Each param's own schema: any value. The values are checked when the run starts
#: (:func:`flow_airflow.operators.overrides.values_of`); a schema per param here would cost a
#: few milliseconds in every parse of a big flow (Airflow serializes every nested schema).
VALUE_SCHEMA: dict[str, Any] = {}

LIST_LIMIT = 20  # longer grids show as one comma-separated text: quick to serialize in every parse


def _default(values: list[str]) -> Any:
    """A param's values as the trigger form shows them: null (not set), a value, a list, or CSV text."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    if len(values) > LIST_LIMIT and not any("," in v for v in values):
        return ", ".join(values)
    return values


#: What the DAG's docs say about its params (the trigger form's fields).
PARAMS_DOC = ("Trigger with other params: each task with params is a field of the trigger form, named by "
              "its title: a list of values (a grid), one value (text with commas: a grid, as in the flow file) "
              "or null (not passed). Give values as text to keep them exactly as written.")


def flow_params(plan: FlowPlan) -> dict[str, Any]:
    """The DAG's params: one ``Param`` per task with params (title -> its params' values)."""
    from airflow.sdk import Param

    result: dict[str, Any] = {}
    for task in plan.tasks:
        params = ordered_params(task)
        if not params:
            continue
        # No title or description: Airflow serializes each in every parse (4 ms for 100 tasks);
        # the form labels the field with the task's title, and the DAG's docs say what to give.
        result[task.title] = Param(
            {k: _default(v) for k, v in params},
            type="object",
            properties={k: VALUE_SCHEMA for k, _ in params},
            additionalProperties=False,
        )
    return result
