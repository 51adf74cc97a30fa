"""What the DAG hands a flow task's operators: one pydantic model per operator, shared by both ends.

The renderer writes each setup once per plan (``model_dump_json``:
:func:`flow_airflow.render.setups.setups_of`, kept in the plan cache beside the plan); the DAG
passes it to the operator as JSON text (one string is what Airflow serializes fastest, in every
parse of the DAG file); the operator reads it back once when its task instance runs
(``model_validate_json``) and hands its models on as they are: the flow task (:mod:`flow_airflow.spec.models`)
and the compute (:class:`~flow_airflow.computes.ComputeChoice`, the plan's own, which pydantic reads
and writes as the dataclass it is). No Airflow import here.

- :class:`TaskSetup`: the experiments of a task, ``<task>.run``
  (:mod:`flow_airflow.operators.base` and its families by task type).
- :class:`RoutesSetup`: the task that plans a task's routes at run time, ``<task>.routes`` or
  ``<task>.condition`` (:mod:`flow_airflow.operators.routes`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from flow_airflow.common.conditions import MetricCondition
from flow_airflow.computes import DEFAULT, ComputeChoice
from flow_airflow.spec import models

#: A task's params as the run plans them: ``[(key, values)]`` in the file's order, ``[]`` when not set.
Params = list[tuple[str, list[str]]]


class Setup(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def default_compute() -> ComputeChoice:
    """The default compute template (``local``): of a task that chose none (a data task runs no command)."""
    return ComputeChoice(DEFAULT, DEFAULT)


class Replan(Setup):
    """A task whose routes are a static list in the DAG but may change with the run (its params, or
    those of a task before it, from the run's ``conf``; failed parent experiments): each task instance
    plans the task's routes again and runs its share."""

    title: str
    params: Params
    single_mode: bool = False
    routes: int = 1  # how many the DAG lists: its task instances are as many, or as many batches
    max_jobs: int | None = None  # the task's cap on its own grid (cnvrg's flow page); None: no limit


class TaskSetup(Setup):
    """A flow task's experiments (``<task>.run``): the task and where its inputs come from."""

    task: models.Task  # as validated at compile time
    parents: dict[str, str] = Field(default_factory=dict)  # parent title -> its run task id
    gathered: list[str] = Field(default_factory=list)  # parents whose passing experiments come as a group
    project_dir: str
    component: str | None = None  # the folder of the AI Library component it runs in (spec.library), copied over
    compute: ComputeChoice = Field(default_factory=default_compute)  # as chosen at compile time; its notes logged
    warnings: list[str] = Field(default_factory=list)  # from the flow file: keys that have no effect
    replan: Replan | None = None


class RoutesSetup(Setup):
    """A task whose routes are planned at run time (``<task>.routes``, ``<task>.condition``)."""

    title: str
    params: Params  # its own params: the grid, ``[]`` for a param without a value
    parents: dict[str, str] = Field(default_factory=dict)  # parent title -> its run task id
    single_mode: bool = False
    tests: list[MetricCondition] = Field(default_factory=list)  # its metric conditions
    max_jobs: int | None = None  # the task's cap on its own grid (cnvrg's flow page); None: no limit
