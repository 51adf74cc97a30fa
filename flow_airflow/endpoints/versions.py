"""A new version of an endpoint: a task instance prepared as for an experiment, plus its serving config.

The version's folder ``versions/<n>/`` in the endpoint store holds ``workspace/`` (the task instance
of :class:`~flow_airflow.runtime.prepare.Preparation`: a copy of the project, or of its Git revision,
with the parents' end states staged in ``input/<task>`` and data tasks' datasets in
``.cnvrg_data/<name>``) and ``endpoint_config.json`` (the serving app's
:class:`~flow_airflow.serving.command.EndpointConfig`). Paths are as the replicas see them on the
task's compute (its :class:`~flow_airflow.computes.base.Layout`: the workspace itself on the local
compute, ``/cnvrg`` and ``/input`` in a container), so that ``predict.py`` finds its model where
cnvrg puts it (``/input/<task>``, ``$INPUT_<TASK>``).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path

from flow_airflow.computes import ComputeChoice
from flow_airflow.computes.base import Compute
from flow_airflow.endpoints.store import Endpoint, EndpointStore, Version
from flow_airflow.runtime.prepare import Preparation, environment_steps
from flow_airflow.spec import models

KEEP_VERSIONS = 3  # versions whose files are kept (the current one, and those a roll back may return to)


def new_version(store: EndpointStore, endpoint: Endpoint, preparation: Preparation, runner: Compute,
                choice: ComputeChoice, *, dag_id: str, run_id: str) -> Version:
    """The next version of ``endpoint`` from the deploy task of ``preparation`` in this run, its files ready
    for its replicas on ``runner`` (of the template ``choice``).

    :raises ExperimentFailed: its workspace or inputs cannot be made (the project, a Git revision, a dataset).
    """
    from flow_airflow import settings
    from flow_airflow.common.routes import upstream_of
    from flow_airflow.runtime.artifacts import ArtifactStore

    spec, log = preparation.spec, preparation.log
    assert isinstance(spec, models.DeployTask)
    number = max((v.version for v in endpoint.versions), default=0) + 1
    folder = store.folder(endpoint.name) / "versions" / str(number)
    shutil.rmtree(folder, ignore_errors=True)
    instance = preparation.prepare(folder / "workspace", runner, ArtifactStore(settings.artifacts_root()),
                                   title=f"{spec.title} (endpoint {endpoint.name} v{number})", params=[],
                                   upstream=upstream_of(preparation.parents))
    for name, (_, which, _) in instance.staged.items():
        log.info("input/%s: the end state of %s (the model this version serves)", name, which)
    launch = instance.launch(f"{endpoint.name}.v{number}")  # no command: its replicas run the serving app
    # requirements.txt and prerun.sh, once for the version, on its compute: its replicas share what they made
    launch = environment_steps(spec, launch, runner, log)
    config = _write_config(folder, spec, endpoint, number, str(launch.cwd))
    workdir = instance.workspace
    env = launch.container_env() if launch.mounts else launch.own_env()  # a container: no PYTHONPATH of the worker
    return Version(
        version=number, dag_id=dag_id, run_id=run_id, task=spec.title, compute=dataclasses.asdict(choice),
        folder=str(folder),
        launch={
            "config": str(config), "env": env,
            "cwd": str(workdir), "workspace": str(workdir), "image": launch.image,
            "gunicorn": [[kv.key, kv.value] for kv in spec.gunicorn_config], "example": spec.input_example,
            "max_replica": spec.max_replica, "resources": dict(launch.resources),
            "mounts": [[str(m.source), m.target, m.read_only] for m in instance.dataset_mounts],
        },
    )


def current_code(endpoint: Endpoint, task: models.DeployTask,
                 choice: ComputeChoice) -> tuple[models.DeployTask, Path, ComputeChoice]:
    """What a deploy task without a predict function of its own deploys (cnvrg's flow page exports an update of an
    existing endpoint as ``endpoint_id`` alone): the code of the version serving now with this run's inputs.

    :returns: the task with the serving version's predict function, prep hook, ``accept_files``, flask and
        gunicorn settings, ``input_example`` and replicas wherever the task gives none; the project folder to
        copy (that version's workspace: its ``input/`` is left out and staged again from this run's parents);
        the compute template (the task's when it names ``computes``, else that version's).
    :raises EndpointError: no version serves now, or its files are gone.
    """
    from flow_airflow.endpoints.store import EndpointError
    from flow_airflow.serving.command import EndpointConfig

    serving = endpoint.serving()
    config = Path(serving.launch.get("config", "")) if serving else None
    workspace = Path(serving.launch.get("workspace", "")) if serving else None
    if serving is None or not (config and config.is_file() and workspace and workspace.is_dir()):
        raise EndpointError(f"'{task.title}' names no predict function (file_name, function_name): it serves the "
                            f"code endpoint {endpoint.name} serves now with this run's inputs, and no version of "
                            "it serves now (or its files are gone); deploy it first with a task that names them")
    served = EndpointConfig.model_validate_json(config.read_text(encoding="utf-8"))
    given = task.model_fields_set
    update: dict[str, object] = {"file_name": served.file_name, "function_name": served.function_name,
                                 "prep_file": served.prep_file, "prep_function": served.prep_function}
    defaults = {
        "accept_files": served.accept_files,
        "input_example": served.input_example,
        "flask_config": [models.KeyValue(key=k, value=v) for k, v in served.flask_config.items()
                         if isinstance(v, str | int | float | bool)],
        "gunicorn_config": [models.KeyValue(key=k, value=v) for k, v in serving.launch.get("gunicorn", [])],
        "min_replica": len(serving.replicas) or 1,
        "max_replica": serving.launch.get("max_replica"),
    }
    update |= {key: value for key, value in defaults.items() if key not in given}
    compute = choice if task.computes else ComputeChoice(**{**serving.compute, "notes": ()})
    return task.model_copy(update=update), workspace, compute


def _write_config(folder: Path, spec: models.DeployTask, endpoint: Endpoint, number: int, project_dir: str) -> Path:
    """``endpoint_config.json``: what the serving app reads (``CNVRG_ENDPOINT_CONFIG``)."""
    from flow_airflow import settings
    from flow_airflow.serving.command import EndpointConfig

    config = EndpointConfig.for_task(spec, title=endpoint.name, version=str(number), project_dir=project_dir,
                                     open=endpoint.open, timeout=settings.value("endpoint_timeout"))
    path = folder / "endpoint_config.json"
    path.write_text(config.model_dump_json(indent=1), encoding="utf-8")
    return path


def prune(endpoint: Endpoint, log: logging.Logger) -> None:
    """Remove the files of versions older than the last ``KEEP_VERSIONS`` that do not serve (their records stay)."""
    kept = {v.version for v in endpoint.versions[-KEEP_VERSIONS:]} | {endpoint.current}
    for version in endpoint.versions:
        if version.version not in kept and version.folder and Path(version.folder).exists():
            shutil.rmtree(version.folder, ignore_errors=True)
            log.info("removed the files of version %d of endpoint %s", version.version, endpoint.name)
