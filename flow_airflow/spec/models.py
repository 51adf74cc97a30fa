"""The flow format as pydantic models: cnvrg's documented YAML keys and its blueprint dialect.

Empty values mean "not set" (real files leave optional keys blank), layout keys are accepted
and ignored, any other key is an error. Scalars arrive as the text written in the file (see
:mod:`flow_airflow.spec.source`): text fields keep it, int, float and bool fields convert it
(pydantic's lax mode: ``yes``, ``on``, ``true`` are true). Rules that need the whole flow
(titles, relations) live in :mod:`flow_airflow.spec.checks`, those across keys of one task
(dialect-specific requirements) in :mod:`flow_airflow.spec.task_checks`, references to other
tasks in :mod:`flow_airflow.spec.references`.
"""

from __future__ import annotations

import math
import re
import shlex
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from flow_airflow.common.conditions import OBJECTIVES as METRICS
from flow_airflow.common.datasets import name_problem
from flow_airflow.common.routes import TEMPLATE as ROUTE_TEMPLATE
from flow_airflow.common.routes import split_values
from flow_airflow.spec.source import yaml_value

Scalar = str | int | float | bool
METRIC_OBJECTIVES = tuple(METRICS)  # gt, lt, eq, min, max: common.conditions.OBJECTIVES
OBJECTIVES = (*METRIC_OBJECTIVES, "human_validation")
ENDPOINT_TITLE = re.compile(r"^[A-Za-z0-9-]+$")
TEMPLATE = ROUTE_TEMPLATE  # `{{ Task.tag }}` and `{{ Task.tag | hyper }}`
RANGE_SCALES = ("linear", "log", "log2", "log10")  # of a range param
LOG_SCALES = frozenset(RANGE_SCALES[1:])
QUOTING = re.compile(r"['\"\\\\]")  # what makes splitting a value into words fail
MAX_STEPS = 100_000  # values of one range param (a flow's routes have their own limit)
ALGORITHMS = ("GridSearch",)  # cnvrg's flow page: how a task's experiments are chosen; a grid runs them all
NO_LIMIT = -1  # the flow page's `parallel_jobs` and `max_jobs` when there is no limit


def is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def scalar_text(value: Scalar) -> str:
    """A YAML scalar as the text a command line receives (true, not True)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    #: keys whose empty value ('' or []) still means something and must be kept
    keep_empty: ClassVar[frozenset[str]] = frozenset()
    #: keys whose blank value (null) is kept too
    keep_null: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _drop_empty(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {
                k: v
                for k, v in data.items()
                if not is_empty(v) or k in cls.keep_null or (v is not None and k in cls.keep_empty)
            }
        return data


class Resources(Model):
    """Blueprint ``requirements``: what one experiment asks of its compute."""

    cpu: float | None = None
    memory: float | None = None  # GiB
    gpu: float | None = None
    hpu: float | None = None


class KeyValue(Model):
    """A ``{key, value}`` pair of a blueprint deploy task's gunicorn or flask configuration."""

    key: str
    value: Scalar


def drop_empty_pairs(v: Any) -> Any:
    """A list of ``{key, value}`` pairs without the empty ones (``{key: '', value: ''}``: cnvrg's page
    exports one where nothing was filled in)."""
    if isinstance(v, list):
        return [item for item in v if not (isinstance(item, dict) and all(is_empty(x) for x in item.values()))]
    return v


def page_limit(key: str, v: int | None) -> int | None:
    """``parallel_jobs`` / ``max_jobs``: ``-1`` (no limit) or a number of experiments, at least 1."""
    if v is not None and v != NO_LIMIT and v < 1:
        raise ValueError(f"'{key}' must be -1 (no limit) or a number of experiments (at least 1), not {v}")
    return None if v == NO_LIMIT else v


class Param(Model):
    """A parameter: one value, a list or comma-separated string (a grid), or blueprint ``values``.

    An empty value (``value: []``, ``values: []``, blank) leaves the param *unset*: published
    blueprints leave such params for the user to fill; it is not passed until it has a value.
    """

    keep_empty: ClassVar[frozenset[str]] = frozenset({"value", "values"})
    keep_null: ClassVar[frozenset[str]] = frozenset({"value", "values"})
    key: str
    value: Scalar | list[Scalar] | None = None
    type: Literal["categorical", "discrete", "integer", "float"] | None = None
    values: list[Scalar] | None = None
    # a range (cnvrg's flow page and grid files): `steps` values from `min` (inclusive) to `max` (not
    # inclusive); `steps: 0` (the page's default beside listed `values`) means no range
    min: float | None = None
    max: float | None = None
    scale: Literal[RANGE_SCALES] | None = None
    steps: int | None = Field(None, ge=0, le=MAX_STEPS)

    @field_validator("key")
    @classmethod
    def _key_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("a param's 'key' cannot be blank")
        return v.strip()

    @field_validator("values", mode="before", json_schema_input_type=Scalar | list[Scalar] | None)
    @classmethod
    def _one_scalar_is_one_value(cls, v: Any) -> Any:
        return [v] if isinstance(v, str | int | float | bool) else v  # blueprints write `values: 3`

    @field_validator("value", "values", mode="before")
    @classmethod
    def _blank_is_empty(cls, v: Any) -> Any:
        return [] if v is None else v  # `value:` left blank: no value yet, as `value: []`

    @model_validator(mode="after")
    def _one_value_form(self) -> Param:
        if self.values is not None and self.value is not None:
            raise ValueError(f"param '{self.key}' has both 'value' and 'values'; use one")
        if self.is_range:
            self._check_range()
        elif self.min or self.max:  # the page writes min: 0, max: 0, steps: 0 beside listed values
            raise ValueError(f"param '{self.key}' has 'min' and 'max' but no 'steps': the number of values of "
                             "the range (or leave the range out and list the values)")
        elif not self.model_fields_set & {"value", "values"}:
            raise ValueError(f"param '{self.key}' has no 'value'")
        for value in self.grid():
            if QUOTING.search(value) and "{{" not in value:  # a reference's value is split when it is known
                try:
                    shlex.split(value)
                except ValueError as e:
                    raise ValueError(f"param '{self.key}': the value {value!r} cannot be split into words ({e}); "
                                     "cnvrg passes '--key value', the value split into words as a shell "
                                     "splits it: close the quote, or escape it with \\") from None
        return self

    @property
    def is_range(self) -> bool:
        """A range param (``steps`` above 0): its values are made from ``min``, ``max``, ``scale``, ``steps``."""
        return bool(self.steps)

    def _check_range(self) -> None:
        where = f"param '{self.key}' is a range (steps: {self.steps})"
        if self.values or (self.value is not None and self.value != []):
            raise ValueError(f"{where} and also lists values; use one: the values, or the range with 'values: []'")
        if self.type not in ("integer", "float"):
            raise ValueError(f"{where}: a range needs 'type: integer' or 'type: float', not "
                             f"{repr(self.type) if self.type else 'no type'}")
        if self.min is None or self.max is None:
            raise ValueError(f"{where}: it needs 'min' and 'max'")
        if not self.min < self.max:
            raise ValueError(f"{where}: 'min' ({self.min:g}) must be below 'max' ({self.max:g}), which is not included")
        if self.scale in LOG_SCALES and self.min <= 0:
            raise ValueError(f"{where}: a '{self.scale}' scale needs 'min' above 0, not {self.min:g}")
        values = self.range_values()
        if len(set(values)) < len(values):
            raise ValueError(f"{where}: the integers {', '.join(values)} repeat (values are floored); "
                             "use fewer steps or a wider range")

    def range_values(self) -> list[str]:
        """The values of a range param, as cnvrg makes them (its grid files: "a range of possible values between
        a minimum (inclusive) and maximum (not inclusive) values. Values are floored (0.7 => 0)", ``steps`` "the
        number of linear steps to produce"): value i of n is min + i * (max - min) / n on the linear scale, and
        min * (max / min) ** (i / n) on a log scale (evenly spaced in log space; any base gives the same values);
        integers floored, floats as Python writes them (12 significant digits).
        """
        lo, hi, n = float(self.min or 0), float(self.max or 0), int(self.steps or 0)
        if self.scale in LOG_SCALES:
            raw = [lo * (hi / lo) ** (i / n) for i in range(n)]
        else:
            raw = [lo + i * (hi - lo) / n for i in range(n)]
        if self.type == "integer":
            return [str(math.floor(v + 1e-9)) for v in raw]  # 1e-9: 0.1 * 3 steps is 0.3, not 0.29999...
        return [repr(float(f"{v:.12g}")) for v in raw]

    def describe_range(self) -> str:
        """``5, 8, 12, 16 (integer, linear, 4 steps from 5 to 20, 20 not included)``, as ``plan`` shows it."""
        bounds = f"from {self.min:g} to {self.max:g}, {self.max:g} not included"
        return f"{', '.join(self.range_values())} ({self.type}, {self.scale or 'linear'}, {self.steps} steps {bounds})"

    @property
    def unset(self) -> bool:
        """No value yet (``values: []``): the param is not passed until it is given one."""
        return not self.grid()

    def grid(self) -> list[str]:
        """The values this parameter takes, in order, as the text written in the file.

        A list gives one value per item, a comma-separated text one per non-empty item
        (``"0.1, 0.01,"`` is 0.1 and 0.01, as ``| hyper`` splits a tag), ``values`` one per item.
        """
        if self.is_range:
            return self.range_values()
        raw = self.values if self.values is not None else self.value
        if raw is None:
            return []
        if isinstance(raw, list):
            return [scalar_text(v) for v in raw]
        text = scalar_text(raw)
        if "{{" in text:
            return [text]
        return split_values(text)


class Condition(Model):
    """A metric condition (gt, lt, eq, min, max on a tag) or a human validation."""

    target: Scalar | None = None
    task: str | None = None
    objective: str = Field(json_schema_extra={"enum": list(OBJECTIVES)})
    tag_key: str | None = None
    value: str | list[str] | None = None

    @field_validator("objective")
    @classmethod
    def _known_objective(cls, v: str) -> str:
        if v not in OBJECTIVES:
            raise ValueError(f"unknown objective '{v}'; use one of {', '.join(OBJECTIVES)}")
        return v

    @model_validator(mode="after")
    def _complete(self) -> Condition:
        if self.objective == "human_validation":
            if not self.approvers:
                raise ValueError("a human_validation condition needs 'value': the usernames who may approve")
            return self
        if not self.tag_key:
            raise ValueError(f"a '{self.objective}' condition needs 'tag_key': the tag to compare")
        if METRICS[self.objective].target == "number":
            if self.target is None:
                raise ValueError(f"a '{self.objective}' condition needs a numeric 'target'")
            try:
                float(self.target)
            except (TypeError, ValueError):
                raise ValueError(
                    f"the target of a '{self.objective}' condition must be a number, not '{self.target}'"
                ) from None
        if METRICS[self.objective].target == "any" and self.target is None:
            raise ValueError(f"an '{self.objective}' condition needs a 'target' to compare with")
        return self

    @property
    def approvers(self) -> list[str]:
        raw = self.value if isinstance(self.value, list) else (self.value or "").split(",")
        return [u.strip() for u in raw if u and u.strip()]


class TaskBase(Model):
    """Keys every task has, in both dialects. ``top``, ``left`` and ``icon`` only place the card."""

    title: str
    description: str | None = None
    top: Any = None
    left: Any = None
    icon: Any = None
    # blueprint (AI Library) metadata
    library: str | None = None
    library_version: str | None = Field(None, alias="library_version")
    library_version_dash: str | None = Field(None, alias="library-version")
    confirmation: bool | None = None

    @field_validator("title")
    @classmethod
    def _title_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("a task title cannot be blank")
        return v.strip()


class RunnableTask(TaskBase):
    """Keys of tasks that run code on a compute: exec (custom) and deploy tasks."""

    computes: list[str] = Field(default_factory=list)
    image: str | None = None
    conditions: list[Condition] = Field(default_factory=list)
    git_branch: str | None = None
    git_commit: str | None = None
    commit: str | None = None
    language: str | None = None
    requirements: bool | Resources | None = None

    @field_validator("computes", mode="before", json_schema_input_type=str | list[str])
    @classmethod
    def _computes_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @property
    def resources(self) -> Resources | None:
        return self.requirements if isinstance(self.requirements, Resources) else None

    @property
    def revision(self) -> str | None:
        """The Git revision to check out; ``git_commit: latest`` (the flow page's) is the branch's newest, as empty."""
        commit = None if (self.git_commit or "").strip().lower() == "latest" else self.git_commit
        return commit or self.commit


class ExecTask(RunnableTask):
    """A custom (exec) task: a command run once per route, on the first configured compute."""

    type: Literal["exec"]
    input: str | None = None
    command: str | None = None
    params: list[Param] = Field(default_factory=list)
    mount_folders: list[str] = Field(default_factory=list)
    periodic_sync: bool | None = None
    restart_if_stuck: bool | None = None
    prerun: bool | None = None
    notify_on_error: bool | None = None
    notify_on_success: bool | None = None
    emails: list[str] = Field(default_factory=list)
    single_mode: bool = False
    output_dir: str | None = None
    # keys of cnvrg's flow page, which its exports carry (README: "Files exported from cnvrg's flow page")
    standalone_mode: bool | None = None  # the page's name of single_mode
    parallel_jobs: int | None = None  # at most this many experiments of the task at once; -1: no limit
    max_jobs: int | None = None  # at most this many experiments in the task's own grid; -1: no limit
    algorithm: str | None = Field(None, json_schema_extra={"enum": list(ALGORITHMS)})
    objective: str | None = None  # what an optimizing algorithm steers by: none here (refused when set)
    objective_goal: str | None = None
    objective_function: Literal["min", "max"] | None = None  # the page's default, beside an empty objective
    queue_slug: str | None = None  # the cnvrg queue it ran on: shown by plan, not Airflow's queue

    @model_validator(mode="before")
    @classmethod
    def _standalone_is_single(cls, data: Any) -> Any:
        if isinstance(data, dict) and is_empty(data.get("single_mode")) and not is_empty(data.get("standalone_mode")):
            return {**data, "single_mode": data["standalone_mode"]}
        return data

    @field_validator("parallel_jobs", "max_jobs")
    @classmethod
    def _limit(cls, v: int | None, info: ValidationInfo) -> int | None:
        return page_limit(info.field_name or "", v)

    @field_validator("algorithm")
    @classmethod
    def _grid_search(cls, v: str | None) -> str | None:
        if v is not None and v not in ALGORITHMS:
            raise ValueError(f"algorithm '{v}' is not run here: flow-airflow runs every route of a task's grid, "
                             "as cnvrg's GridSearch does (algorithm: GridSearch)")
        return v

    @field_validator("objective", "objective_goal")
    @classmethod
    def _no_optimizer(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None:
            raise ValueError(f"'{info.field_name}: {v}' steers an optimizing search, and a grid search runs every "
                             "route: leave it empty, and to keep the best experiment put a condition after the "
                             "task (objective: max or min, tag_key: <the tag>)")
        return v

    @field_validator("emails", mode="before", json_schema_input_type=str | list[str])
    @classmethod
    def _split_emails(cls, v: Any) -> Any:
        return [e.strip() for e in v.split(",") if e.strip()] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _one_command(self) -> ExecTask:
        if self.input and self.command:
            raise ValueError("an exec task has both 'input' and 'command'; use one")
        if not (self.input or self.command):
            raise ValueError("an exec task needs 'input' (or 'command' in the blueprint format): the command")
        if self.standalone_mode is not None and self.standalone_mode != self.single_mode:
            raise ValueError("'standalone_mode' (the flow page's name of 'single_mode') and 'single_mode' differ; "
                             "keep one")
        return self

    @property
    def script(self) -> str:
        return (self.input or self.command or "").strip()


class DataTask(TaskBase):
    """A data task: mounts a version of a dataset into the tasks it connects to."""

    type: Literal["data"]
    dataset: str
    data_commit: str | None = None
    data_query: str | None = None
    use_cached: bool | None = None
    # the flow page's: how the version's files reach the experiment; sync_all (as they are in the version)
    # is what a data task does here; sync_flatten is refused (its README row says why)
    sync_type: str | None = Field(None, json_schema_extra={"enum": ["sync_all"]})

    @field_validator("sync_type")
    @classmethod
    def _synced_as_they_are(cls, v: str | None) -> str | None:
        if v is not None and v != "sync_all":
            flat = " (every file at the top of the folder)" if v == "sync_flatten" else ""
            raise ValueError(f"sync_type '{v}'{flat} is not done here: a data task gives the dataset version's files "
                             "as they are in it, in their folders (sync_type: sync_all)")
        return v

    @field_validator("dataset")
    @classmethod
    def _a_store_name(cls, v: str) -> str:
        if problem := name_problem(v):  # as the dataset store checks it: a name never leads out of the store
            raise ValueError(problem)
        return v

    @model_validator(mode="after")
    def _commit_or_query(self) -> DataTask:
        if self.data_commit and self.data_query:
            raise ValueError("use either 'data_commit' or 'data_query', not both")
        return self


class DeployTask(RunnableTask):
    """A deploy task: publishes a predict function as a model endpoint.

    Blueprint deploy tasks also carry ``command`` (what starts the service), the predict and
    prep hooks, example input and schemas. Run by
    :class:`flow_airflow.operators.deploy.DeployTaskOperator` (README: "Deploy tasks and model endpoints").
    """

    type: Literal["deploy"]
    command: str | None = None
    kind: Literal["webservice", "webserver"] | None = None  # the flow page exports webserver: the same
    endpoint_title: str | None = Field(None, json_schema_extra={"pattern": ENDPOINT_TITLE.pattern})
    endpoint_id: str | None = None
    # the predict function; neither given: the task updates an existing endpoint (endpoint_id or endpoint_title)
    # with the code it serves now (cnvrg's flow page exports such tasks), see `serves_own_code`
    file_name: str | None = None
    function_name: str | None = None
    env_setup: Literal["python_3", "r_endpoint"] | None = None
    min_replica: int | None = Field(None, ge=0)
    max_replica: int | None = Field(None, ge=1)
    config_vars: list[str] = Field(default_factory=list)
    accept_files: bool | None = None
    prep_file: str | None = None
    prep_function: str | None = None
    input_example: Any = None
    input_schema: Any = None
    output_schema: Any = None
    gunicorn_config: list[KeyValue] = Field(default_factory=list)
    flask_config: list[KeyValue] = Field(default_factory=list)
    # a Kafka stream endpoint's keys (cnvrg's flow page): refused when set (task_checks: nothing serves them)
    kafka_brokers: Any = None
    kafka_input_topics: Any = None
    kafka_output_topics: Any = None
    nginx_config: Any = None

    @field_validator("gunicorn_config", "flask_config", "kafka_brokers", "kafka_input_topics", "kafka_output_topics",
                     "nginx_config", mode="before")
    @classmethod
    def _without_empty_pairs(cls, v: Any) -> Any:
        return drop_empty_pairs(v)

    @field_validator("input_example", "input_schema", "output_schema")
    @classmethod
    def _as_yaml_data(cls, v: Any) -> Any:
        return yaml_value(v)  # data passed on as JSON: numbers and booleans typed as YAML reads them

    @property
    def serves_own_code(self) -> bool:
        """It names its predict function; else it updates an existing endpoint, serving the code that endpoint
        serves now with this run's inputs (the new model)."""
        return bool(self.file_name or self.function_name)

    @field_validator("config_vars", mode="before", json_schema_input_type=str | list[str])
    @classmethod
    def _split_config_vars(cls, v: Any) -> Any:
        return [c.strip() for c in v.split(",") if c.strip()] if isinstance(v, str) else v

    @field_validator("config_vars")
    @classmethod
    def _key_equals_value(cls, v: list[str]) -> list[str]:
        for item in v:
            if "=" not in item:
                raise ValueError(f"config_vars entry '{item}' is not of the form KEY=VALUE")
        return v


Task = Annotated[ExecTask | DataTask | DeployTask, Field(discriminator="type")]


class Relation(Model):
    source: str = Field(alias="from")
    target: str = Field(alias="to")


class Triggers(Model):
    """Continual learning (an extension key): what else starts the flow."""

    datasets: list[str] = Field(default_factory=list)  # a new version of any of these datasets
    webhook: bool = False  # documents the REST call that starts a run (always available in Airflow)

    @field_validator("datasets", mode="before", json_schema_input_type=str | list[str])
    @classmethod
    def _names(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("datasets")
    @classmethod
    def _store_names(cls, v: list[str]) -> list[str]:
        for name in v:
            if problem := name_problem(name):
                raise ValueError(problem)
        return v


class Flow(Model):
    """A whole flow file, in the documented format (``flow:``) or the blueprint one (``title:``)."""

    flow: str | None = None
    title: str | None = None
    tasks: list[Task]
    relations: list[Relation] | None = None
    schedule: str | None = None
    recurring: str | None = None
    timezone: str | None = None  # extension: the time zone of schedule/recurring
    triggers: Triggers | None = None  # extension: continual learning triggers
    version: str | None = None
    description: str | None = None
    long_description: str | None = None
    author: str | None = None
    author_email: str | None = None
    tags: list[str] = Field(default_factory=list)
    icon: Any = None
    next_run_utc: Any = None  # the flow page's: when cnvrg would run it next (made from `recurring`)

    keep_empty: ClassVar[frozenset[str]] = frozenset({"relations", "tasks"})

    @field_validator("version", "schedule", "recurring", mode="before")
    @classmethod
    def _text(cls, v: Any) -> Any:
        return scalar_text(v) if isinstance(v, int | float) else v

    @field_validator("tags", mode="before", json_schema_input_type=str | list[str])
    @classmethod
    def _tags(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @property
    def name(self) -> str:
        return (self.flow or self.title or "").strip()

    @property
    def is_blueprint(self) -> bool:
        return self.flow is None and self.title is not None
