"""flow-airflow's settings: the ``[flow_airflow]`` section of the Airflow configuration, one typed model.

Every setting can also be given as an environment variable, the Airflow way:
``AIRFLOW__FLOW_AIRFLOW__<KEY>``. The section is declared to Airflow (``flow_airflow.provider_info``),
so ``airflow config list --section flow_airflow`` lists its keys with their descriptions.

:class:`FlowAirflowSettings` defines every key: its type, default and what it expects. A key is
read through Airflow's configuration when asked for (:func:`value`; an environment variable set
meanwhile is seen, as Airflow sees it) and validated once per distinct text (cached; :func:`reset`
clears it). A bad value fails only what reads that key, with a :class:`SettingError` in plain
words: ``[flow_airflow] batch_routes must be a whole number >= 1 (or a JSON object of them), got 'x'``.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator
from pydantic_core import PydanticCustomError

SECTION = "flow_airflow"
ENV_VARIABLE = "flow_airflow_env"
DEFAULT_APPROVAL_TIMEOUT = 7 * 24 * 3600.0  # as long as Airflow lets a sensor wait ([sensors] default_timeout)

Routes = Annotated[StrictInt, Field(ge=1)]
Seconds = Annotated[float, Field(ge=0)]


def _expects(text: str, example: str | None = None) -> dict[str, Any]:
    """What a key expects, in words (its error messages say it), and an example for Airflow's listing."""
    return {"expects": text, "example": example}


class SettingError(ValueError):
    """A ``[flow_airflow]`` setting has a value it cannot take; the message names it and what it expects."""


class FlowAirflowSettings(BaseModel):
    """The ``[flow_airflow]`` section. JSON keys take JSON text; a blank value means the default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    computes: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Compute templates by name, JSON. The template 'local' (a subprocess on the worker) always "
        "exists. A task uses the first of its computes that is configured.",
        json_schema_extra=_expects('a JSON object of template name -> settings ({"kind": ...})',
                                   '{"gpu": {"kind": "local"}}'),
    )
    artifacts_folder: str = Field(
        "", description="Where experiments' end states are kept (empty: $AIRFLOW_HOME/flow_artifacts): a folder, "
        "or object storage shared by every worker as a URL of Airflow's ObjectStoragePath, its connection id "
        "before the bucket (s3://aws_default@bucket/prefix; s3 needs flow-airflow[s3]).",
        json_schema_extra=_expects("a folder or a URL (s3://<conn id>@<bucket>/<prefix>)",
                                   "s3://aws_default@my-bucket/flow-artifacts"))
    workspaces_folder: str = Field(
        "", description="Experiments' working directories, removed when the experiment ends (kept only when a failed "
        "one's files could not be stored) or its task process dies (empty: $AIRFLOW_HOME/flow_workspaces).",
        json_schema_extra=_expects("a folder"))
    retention_days: Annotated[float, Field(gt=0)] | None = Field(
        None, description="flow-airflow gc removes the stored end states of runs that ended more than this many days "
        "ago (empty: whatever their age).", json_schema_extra=_expects("a number of days > 0", "30"))
    retention_runs: Annotated[int, Field(ge=1)] | None = Field(
        None, description="flow-airflow gc keeps the stored end states of this many newest runs of each flow, removes "
        "older ones (empty: however many).", json_schema_extra=_expects("a whole number >= 1", "20"))
    datasets_folder: str = Field(
        "", description="The dataset store: datasets' versions, files and saved queries (empty: "
        "$AIRFLOW_HOME/flow_datasets): a folder, or object storage shared by every worker as a URL of Airflow's "
        "ObjectStoragePath, as artifacts_folder (s3://aws_default@bucket/prefix).",
        json_schema_extra=_expects("a folder or a URL (s3://<conn id>@<bucket>/<prefix>)"))
    datasets_cache_folder: str = Field(
        "", description="The worker's read-only copies of dataset versions for use_cached (empty: the cache folder "
        "of a datasets_folder that is a folder, else $AIRFLOW_HOME/flow_datasets_cache).",
        json_schema_extra=_expects("a folder"))
    datasets_cache_gib: Annotated[float, Field(ge=0)] | None = Field(
        None, description="GiB the worker's use_cached copies may hold: making a copy evicts the least recently "
        "used ones not in use (empty: no bound).", json_schema_extra=_expects("a number of GiB >= 0"))
    batch_routes: Routes | dict[str, Routes] = Field(
        1, description="Routes one task instance runs in turn, JSON: a number for every flow, or one per DAG id "
        "with '*' for the others.",
        json_schema_extra=_expects("a whole number >= 1 (or a JSON object of them)", '{"big_grid": 100, "*": 1}'))
    reuse: bool = Field(
        False, description="Whether a run reuses an earlier experiment of the same key (everything that decides its "
        "result: command line, image, files, parents, environment) that succeeded, instead of running it; a run's "
        'conf {"flow_airflow": {"reuse": true|false}} overrides it.',
        json_schema_extra=_expects("true or false"))
    cache_folder: str | None = Field(
        None, description="Compiled plans of unchanged flow files ($AIRFLOW_HOME/flow_cache when not set; "
        "set empty: no cache).", json_schema_extra=_expects("a folder, or empty for no cache"))
    env: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict, description="Environment variables of every experiment, JSON (the Airflow Variable "
        "flow_airflow_env adds to them).",
        json_schema_extra=_expects("a JSON object of variable name -> value", '{"REGION": "eu-west"}'))
    restart_if_stuck_retries: Annotated[int, Field(ge=0)] = Field(
        2, description="Retries of an experiment of a task with restart_if_stuck: true.",
        json_schema_extra=_expects("a whole number >= 0"))
    restart_if_stuck_retry_delay: Seconds = Field(
        60.0, description="Seconds between those retries.", json_schema_extra=_expects("a number of seconds >= 0"))
    file_budget_seconds: Annotated[float, Field(gt=0)] = Field(
        5.0, description="Seconds the loader may spend on one flow file (per 64 KiB of it) before it becomes an "
        "import error.", json_schema_extra=_expects("a number of seconds > 0"))
    approver_emails: dict[str, str | None] = Field(
        default_factory=dict, description="Email addresses of approvers, JSON; users missing from it get no mail.",
        json_schema_extra=_expects("a JSON object of username -> email address", '{"alice": "alice@example.com"}'))
    approval_timeout: Seconds = Field(
        DEFAULT_APPROVAL_TIMEOUT, description="Seconds a human validation gate waits for a decision before the run "
        "fails.", json_schema_extra=_expects("a number of seconds >= 0"))
    endpoints_folder: str = Field(
        "", description="The endpoint store: each model endpoint's versions, history, files and logs "
        "(empty: $AIRFLOW_HOME/flow_endpoints).", json_schema_extra=_expects("a folder"))
    endpoints_host: str = Field(
        "127.0.0.1", min_length=1, description="The address model endpoints listen on and their URLs name "
        "(0.0.0.0 listens on every interface, and the URLs then name this machine's host name).",
        json_schema_extra=_expects("a host name or IP address", "0.0.0.0"))
    library_folders: list[str] = Field(
        default_factory=list, description="Folders of AI Library components (folders with a library.yaml), JSON, "
        "looked in after the flow's own folder, in their order, for a task's 'library: <slug>'.",
        json_schema_extra=_expects("a JSON list of folders", '["/opt/cnvrg-components"]'))
    open_endpoints: list[str] = Field(
        default_factory=list, description="Model endpoints served without an API key, JSON: their names, or "
        '"*" for every endpoint (by default every endpoint needs its key).',
        json_schema_extra=_expects("a JSON list of endpoint names", '["iris-classifier"]'))
    endpoint_max_body_mib: Annotated[float, Field(gt=0)] = Field(
        64.0, description="MiB a request body to a model endpoint may have: the endpoint's front answers a larger "
        "one 413 (read only after the key was checked).", json_schema_extra=_expects("a number of MiB > 0"))
    endpoint_timeout: Annotated[float, Field(gt=0)] = Field(
        300.0, description="Seconds a model endpoint may take to answer a request: the front answers 504 after "
        "them, and the replica ends the prediction's worker and starts a new one.",
        json_schema_extra=_expects("a number of seconds > 0"))
    approval_poll_interval: Annotated[float, Field(gt=0)] = Field(
        10.0, description="Seconds between the gate's looks at the approval (a decision resumes it at once).",
        json_schema_extra=_expects("a number of seconds > 0"))

    @field_validator("computes", "batch_routes", "env", "approver_emails", "open_endpoints",
                     "library_folders", mode="before")
    @classmethod
    def _json(cls, v: Any) -> Any:
        if not isinstance(v, str):
            return v
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            raise PydanticCustomError("json_invalid", "not JSON") from None

    @field_validator("artifacts_folder", "datasets_folder", mode="after")
    @classmethod
    def _folder_or_url(cls, v: str) -> str:
        """A ``<scheme>://`` URL needs a bucket (``file://`` a path); its filesystem is checked when used."""
        from urllib.parse import urlsplit

        if "://" not in v:
            return v
        parts = urlsplit(v)
        if not re.fullmatch(r"[a-z][a-z0-9+.-]*", parts.scheme) or parts.scheme != v.partition("://")[0].lower():
            raise PydanticCustomError("url", "not a URL")
        if parts.scheme in ("file", "local") and not parts.path.startswith("/"):
            raise PydanticCustomError("url", "not a URL")
        if parts.scheme not in ("file", "local") and not parts.netloc.rpartition("@")[2]:
            raise PydanticCustomError("url", "a URL without its bucket")
        return v


# Keys whose blank value is a value of its own rather than "the default".
_BLANK_MEANS_ITSELF = frozenset({"cache_folder"})


def value(key: str) -> Any:
    """The validated value of ``key`` (as :class:`FlowAirflowSettings` types it); its default when not set."""
    from airflow.configuration import conf

    return _parse(key, conf.get(SECTION, key, fallback=None))


@functools.lru_cache(maxsize=128)
def _parse(key: str, raw: str | None) -> Any:
    field = FlowAirflowSettings.model_fields[key]
    if raw is None or (not raw.strip() and key not in _BLANK_MEANS_ITSELF):
        return field.get_default(call_default_factory=True)
    try:
        return getattr(FlowAirflowSettings.model_validate({key: raw}), key)
    except ValidationError as e:
        raise SettingError(_message(key, raw, e)) from None


def current() -> FlowAirflowSettings:
    """The whole section, every key validated (the first bad one raises :class:`SettingError`)."""
    return FlowAirflowSettings.model_construct(**{key: value(key) for key in FlowAirflowSettings.model_fields})


def reset() -> None:
    """Forget the values validated so far (tests that change airflow.cfg between reads)."""
    _parse.cache_clear()


def _message(key: str, raw: str, error: ValidationError) -> str:
    extra = FlowAirflowSettings.model_fields[key].json_schema_extra
    expects = extra.get("expects") if isinstance(extra, dict) else "another value"
    shown = raw if len(raw) <= 200 else raw[:199] + "…"
    return f"[flow_airflow] {key} must be {expects}, got {shown!r}"


def template_error(name: str, kind: str, error: ValidationError, model: type[BaseModel]) -> SettingError:
    """What is wrong with the compute template ``name`` of ``computes`` (its kind's ``model`` refused it):
    the key and the mistake, in words (``computes.templates`` checks each template against its kind)."""
    extra = FlowAirflowSettings.model_fields["computes"].json_schema_extra
    expects = extra.get("expects") if isinstance(extra, dict) else "another value"
    return SettingError(f"[flow_airflow] computes must be {expects}: template '{name}' (kind {kind}): "
                        f"{_detail(error, model)}")


def _detail(error: ValidationError, model: type[BaseModel]) -> str:
    """A compute template's first mistake in words: the key, and what is wrong with it."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the template"
    if first["type"] == "extra_forbidden":
        return f"'{where}' is not one of its settings ({', '.join(model.model_fields)})"
    return f"'{where}': {first['msg'][0].lower()}{first['msg'][1:]}, got {first['input']!r}"


def config_description() -> dict[str, Any]:
    """The section as Airflow's provider info declares configuration (``config.yml``'s schema)."""
    options = {}
    for key, field in FlowAirflowSettings.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        options[key] = {
            "description": f"{field.description} Expects {extra.get('expects')}.",
            "version_added": None,
            "type": "string",
            "example": extra.get("example"),
            "default": None,  # each default is flow-airflow's (the description says it): what is unset stays unset
        }
    return {SECTION: {"description": "flow-airflow: cnvrg flow files as Airflow DAGs (see its README).",
                      "options": options}}


# --- accessors: what callers read ---------------------------------------------------------------------


def get(key: str, default: str = "") -> str:
    """The raw text of ``key`` (``default`` when not set or blank), not validated."""
    from airflow.configuration import conf

    return conf.get(SECTION, key, fallback=default) or default


def airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")


def artifacts_root() -> Path | str:
    """Where experiments' end states are kept (``artifacts_folder``): a local folder, or an object-storage URL.

    ``file://`` URLs are local folders; another ``<scheme>://`` stays a URL
    (``flow_airflow.runtime.artifacts.ArtifactStore`` takes both).
    """
    folder = value("artifacts_folder")
    if not folder:
        return airflow_home() / "flow_artifacts"
    if folder.startswith(("file://", "local://")):
        from urllib.parse import urlsplit

        return Path(urlsplit(folder).path)
    return folder if "://" in folder else Path(folder).expanduser()


def datasets_root() -> Path | str:
    """Where the dataset store keeps datasets (``datasets_folder``): a local folder, or an object-storage URL."""
    folder = value("datasets_folder")
    if "://" in folder and not folder.startswith(("file://", "local://")):
        return folder
    if folder.startswith(("file://", "local://")):
        from urllib.parse import urlsplit

        return Path(urlsplit(folder).path)
    return Path(folder or str(airflow_home() / "flow_datasets")).expanduser()


def datasets_cache_root() -> Path:
    """The worker's read-only copies for ``use_cached`` (``datasets_cache_folder``; see its description)."""
    folder = value("datasets_cache_folder")
    if folder:
        return Path(folder).expanduser()
    root = datasets_root()
    return root / "cache" if isinstance(root, Path) else airflow_home() / "flow_datasets_cache"


def workspaces_root() -> Path:
    """Where experiments get their working directories (``workspaces_folder``)."""
    return Path(value("workspaces_folder") or str(airflow_home() / "flow_workspaces")).expanduser()


def retention() -> tuple[float | None, int | None]:
    """What ``flow-airflow gc`` keeps: runs that ended within ``retention_days``, the newest ``retention_runs``
    of each flow (None: no bound)."""
    return value("retention_days"), value("retention_runs")


def batch_routes(dag_id: str) -> int:
    """Routes one task instance runs in turn (``batch_routes``), for the flow of ``dag_id``.

    JSON: a number for every flow, or ``{"<dag id>": n, "*": n}``; 1 (a task instance per
    route) by default. A flow's tasks all run the same number of routes per task instance.
    """
    routes = value("batch_routes")
    return routes.get(dag_id, routes.get("*", 1)) if isinstance(routes, dict) else routes


def restart_if_stuck() -> tuple[int, float]:
    """Retries of an experiment with ``restart_if_stuck: true``, and the seconds between them."""
    return value("restart_if_stuck_retries"), value("restart_if_stuck_retry_delay")


def project_env() -> dict[str, str]:
    """Variables every experiment gets, like cnvrg's project environment variables.

    From the ``env`` setting (JSON object) and, over it, the Airflow Variable ``flow_airflow_env``
    (JSON object, editable in the UI under Admin > Variables).
    """
    values: dict[str, object] = dict(value("env"))
    from airflow.sdk import Variable

    values.update(Variable.get(ENV_VARIABLE, default={}, deserialize_json=True) or {})
    return {str(k): str(v) for k, v in values.items()}


def library_folders() -> list[Path]:
    """``library_folders``: where AI Library components are looked for after a flow's own folder."""
    return [Path(p).expanduser() for p in value("library_folders")]


def endpoints_root() -> Path:
    """Where the endpoint store keeps model endpoints (``endpoints_folder``)."""
    return Path(value("endpoints_folder") or str(airflow_home() / "flow_endpoints")).expanduser()
