"""A new version of an endpoint, prepared like an experiment: its files, its environment, its app configuration.

The version's folder ``versions/<n>/`` in the endpoint store holds ``workspace/`` (a copy of the
project, or of its Git revision, with the parents' end states staged in ``input/<task>`` and data
tasks' datasets in ``.cnvrg_data/<name>``: ``runtime.prepare``, as for an experiment) and
``endpoint_config.json`` (the serving app's :class:`~flow_airflow.serving.command.EndpointConfig`).
Paths are as the replicas see them on the task's compute (its :class:`~flow_airflow.computes.base.Layout`:
the workspace itself on the local compute, ``/cnvrg`` and ``/input`` in a container), so that
``predict.py`` finds its model where cnvrg puts it (``/input/<task>``, ``$INPUT_<TASK>``).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flow_airflow.common.records import Record
from flow_airflow.common.routes import upstream_of
from flow_airflow.computes.base import Compute
from flow_airflow.endpoints.store import Endpoint, EndpointStore, Version
from flow_airflow.spec import models

KEEP_VERSIONS = 3  # versions whose files are kept (the current one, and those a roll back may return to)


def new_version(store: EndpointStore, endpoint: Endpoint, *, spec: models.DeployTask, parents: dict[str, list[Record]],
                gathered: list[str], project_dir: Path, runner: Compute, compute: Mapping[str, Any], dag_id: str,
                run_id: str, base_env: Mapping[str, str], log: logging.Logger) -> Version:
    """The next version of ``endpoint`` from the deploy task ``spec`` of this run, its files ready.

    :raises ExperimentFailed: its workspace or inputs cannot be made (the project, a Git revision, a dataset).
    """
    from flow_airflow import settings
    from flow_airflow.runtime import workspace
    from flow_airflow.runtime.artifacts import ArtifactStore
    from flow_airflow.runtime.environment import SDK_PATH, experiment_env
    from flow_airflow.runtime.prepare import ExperimentFailed, make_workspace, seen, stage_datasets, stage_inputs

    number = max((v.version for v in endpoint.versions), default=0) + 1
    folder = store.folder(endpoint.name) / "versions" / str(number)
    shutil.rmtree(folder, ignore_errors=True)
    try:
        workdir, _ = make_workspace(spec, folder / "workspace", project_dir, log)  # type: ignore[arg-type]
    except workspace.WorkspaceError as e:
        raise ExperimentFailed(f"'{spec.title}' cannot start: {e}") from None
    inputs, _, staged = stage_inputs(spec, parents, gathered, workdir,  # type: ignore[arg-type]
                                     ArtifactStore(settings.artifacts_root()))
    for name, (_, which, _) in staged.items():
        log.info("input/%s: the end state of %s (the model this version serves)", name, which)
    layout = runner.layout(workdir, SDK_PATH)
    datasets, mounts = stage_datasets(parents, workdir, layout, log)
    env = experiment_env(
        params=[], upstream=upstream_of(parents),
        inputs={name: seen(path, workdir, layout) for name, path in inputs.items()}, passed_condition=[],
        workdir=layout.cnvrg, output_dir=seen(workdir / "output", workdir, layout), base=base_env,
        paths=layout.roots(), datasets={name: seen(path, workdir, layout) for name, path in datasets.items()},
        sdk=layout.sdk, warn=log.warning,
    )
    env["CNVRG_EXPERIMENT_TITLE"] = f"{spec.title} (endpoint {endpoint.name} v{number})"
    config = _write_config(folder, spec, endpoint, number, str(layout.cnvrg))
    own = {k: v for k, v in env.items() if os.environ.get(k) != v}
    worker_path = os.environ.get("PYTHONPATH")
    if layout.mounts and worker_path and "PYTHONPATH" in own:  # a container: not the worker's folders
        own["PYTHONPATH"] = ":".join(p for p in own["PYTHONPATH"].split(":") if p not in worker_path.split(":"))
    return Version(
        version=number, dag_id=dag_id, run_id=run_id, task=spec.title, compute=dict(compute),
        folder=str(folder),
        launch={
            "config": str(config), "env": own, "cwd": str(workdir), "workspace": str(workdir), "image": spec.image,
            "gunicorn": [[kv.key, kv.value] for kv in spec.gunicorn_config], "example": spec.input_example,
            "max_replica": spec.max_replica,
            "resources": spec.resources.model_dump(exclude_none=True) if spec.resources else {},
            "mounts": [[str(m.source), m.target, m.read_only] for m in mounts],
        },
    )


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
