"""The operator of a deploy task (``type: deploy``): publishes a predict function as a model endpoint.

Per route (spec, "Deploy tasks"): the endpoint is ``endpoint_title`` (created, or updated when this
flow made it before), or ``endpoint_id`` (an existing endpoint: updated), else the task's title
made a name. A new version is prepared like an experiment (:mod:`flow_airflow.endpoints.versions`:
the project and the parents' end states, the model in ``input/<task>``), started on the task's
compute beside the version serving now, checked (``/health``, and its ``input_example`` must
answer), switched to, and the old version stopped (:mod:`flow_airflow.endpoints.rollout`); when the
new version fails its check the old one keeps serving and the route fails saying why. The record
(XCom, the experiments page) holds the endpoint: tags ``endpoint``, ``endpoint_url`` (the stable
prediction URL) and ``endpoint_version``, so that the tasks after it get
``CNVRG_<TASK>_ENDPOINT_URL``. ``min_replica`` replicas serve (at least one); the API key is an
Airflow Variable, masked in the logs (:mod:`flow_airflow.endpoints.keys`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flow_airflow.common.records import Record
from flow_airflow.operators.base import FlowTaskOperator


class DeployTaskOperator(FlowTaskOperator):
    """Deploys a new version of the task's endpoint for one route and records its URL and version (XCom)."""

    ui_color = "#fdf0e6"
    _pending: Any = None  # (store, endpoint, version) while a new version starts and is checked

    def on_kill(self) -> None:
        """The task is killed while a new version starts: stop its replicas (the old version keeps serving)."""
        if self._pending is None:
            return
        from flow_airflow import computes

        store, endpoint, version = self._pending
        if version.status != "serving":
            runner = computes.replicas_on(version.compute, store.folder(endpoint.name))
            for replica in version.replicas:
                runner.stop(replica)

    def run_route(self, ti: Any, route: dict[str, Any], index: int, parents: dict[str, list[Record]],
                  project_env: dict[str, str]) -> Record:
        """Deploy, switch, record; :class:`ExperimentFailed` saying why the endpoint was not updated."""
        from flow_airflow import settings
        from flow_airflow.common.routes import record_route, route_label
        from flow_airflow.endpoints import keys
        from flow_airflow.endpoints.rollout import RolloutFailed, predict_url
        from flow_airflow.endpoints.store import EndpointError, EndpointStore, endpoint_name
        from flow_airflow.runtime.prepare import ExperimentFailed
        from flow_airflow.spec import models

        setup, task = self.setup, self.setup.task
        assert isinstance(task, models.DeployTask)
        if index > 0:
            raise ExperimentFailed(f"'{task.title}' has several routes (this is route {index}): an endpoint serves "
                                   "one model, deployed by route 0. Put a condition (max or min) before it to "
                                   "choose the experiment it serves")
        _refuse(task)
        store = EndpointStore(settings.endpoints_root())
        name = endpoint_name(task)
        try:
            name = _resolved_name(store, task)
            endpoint, version, choice = self._deploy(store, name, ti, parents, project_env)
        except (RolloutFailed, EndpointError) as e:
            raise ExperimentFailed(f"'{task.title}' did not update endpoint {name}: {e}") from None
        url = predict_url(endpoint)
        self.log.info("endpoint %s: version %d serves at %s (%s)", name, version.version, url,
                      "open: no API key" if endpoint.open else f"API key in the header {keys.HEADER}: the Airflow "
                      f"Variable {keys.variable_name(name)}")
        label, parts = route_label(route, parents, self._varies or ())
        return Record(task=task.title, index=index, params={}, output=None,
                      tags={"endpoint": name, "endpoint_url": url, "endpoint_version": str(version.version)},
                      route=record_route(task.title, index, parents, setup.gathered), upstream={},
                      label=label, labels=parts,
                      endpoint={"name": name, "url": url, "version": version.version,
                                "compute": choice.name, "replicas": len(version.replicas)})

    def _deploy(self, store: Any, name: str, ti: Any, parents: dict[str, list[Record]],
                project_env: dict[str, str]) -> tuple[Any, Any, Any]:
        """A new version of endpoint ``name`` from this run, serving (holding the endpoint's lock): the
        endpoint, the version and the compute template it runs on. A task without a predict function of its
        own serves the code the endpoint serves now (:func:`~flow_airflow.endpoints.versions.current_code`).
        :class:`RolloutFailed` or :class:`EndpointError` when it cannot; :class:`ExperimentFailed` when
        the compute refuses the task."""
        from flow_airflow.endpoints import keys
        from flow_airflow.endpoints.rollout import roll_out
        from flow_airflow.endpoints.store import Event
        from flow_airflow.endpoints.versions import current_code, new_version, prune
        from flow_airflow.runtime.prepare import ExperimentFailed, Preparation

        setup, task = self.setup, self.setup.task
        with store.locked(name):
            endpoint = self._endpoint(store, name, task, ti.dag_id)
            spec, project_dir, choice = task, Path(setup.project_dir), setup.compute
            component = Path(setup.component) if setup.component else None
            if not task.serves_own_code:  # type: ignore[union-attr]
                spec, project_dir, choice = current_code(endpoint, task, setup.compute)  # type: ignore[arg-type]
                component = None  # the files of that version are its project folder
                self.log.info("'%s' names no predict function: the new version serves the code of version %s "
                              "(%s:%s) with this run's inputs", task.title, endpoint.current,
                              spec.file_name, spec.function_name)
            for note in [*choice.notes, *_notes(spec, choice.kind, choice.name)]:
                self.log.warning("%s", note)
            runner = choice.compute()
            if refusal := runner.refusal(spec):
                raise ExperimentFailed(refusal)
            preparation = Preparation(spec, parents, setup.gathered, project_dir,  # type: ignore[arg-type]
                                      {**os.environ, **project_env}, self.log, component, project_env)
            key = None if endpoint.open else keys.ensure(name)
            version = new_version(store, endpoint, preparation, runner, choice, dag_id=ti.dag_id,
                                  run_id=ti.run_id)
            self._pending = (store, endpoint, version)
            roll_out(store, endpoint, version, max(spec.min_replica or 1, 1), key,  # type: ignore[union-attr]
                     spec.input_example, say=self.log.info)  # type: ignore[union-attr]
            self._pending = None
            endpoint.history.append(Event(what="deployed", version=version.version,
                                          by=f"{ti.dag_id}/{ti.run_id}/{task.title}"))
            prune(endpoint, self.log)
            store.save(endpoint)
        return endpoint, version, choice

    def _endpoint(self, store: Any, name: str, task: Any, dag_id: str) -> Any:
        """The endpoint to update, or a new one (its stable port chosen now).

        :raises EndpointError: ``endpoint_id`` (or a task without code: an update) names none; ``endpoint_title``
            of a task with its code names another flow's endpoint.
        """
        from flow_airflow import settings
        from flow_airflow.computes.replicas import free_port
        from flow_airflow.endpoints import keys
        from flow_airflow.endpoints.store import Endpoint, EndpointError

        found = store.get(name)
        if found is None and (task.endpoint_id or not task.serves_own_code):  # an update: it must be there
            store.load(name)  # raises, naming the endpoints there are
        # a title another flow created is that flow's, unless the task says it updates it (endpoint_id, or no code)
        claimed = bool(task.endpoint_id) or not task.serves_own_code
        if found is not None and not claimed and found.dag_id and found.dag_id != dag_id:
            raise EndpointError(f"endpoint {name} was created by the flow {found.dag_id}: to update it from this "
                                f"flow, name it with endpoint_id: {name}")
        opened = keys.is_open(name)
        if found is not None:
            found.open = opened
            return found
        host = settings.value("endpoints_host")
        self.log.info("endpoint %s is new: %s", name, "open (no API key)" if opened else "it needs its API key")
        return Endpoint(name=name, host=host, port=free_port(host), open=opened, dag_id=dag_id)


def _refuse(task: Any) -> None:
    from flow_airflow.runtime.prepare import ExperimentFailed

    if task.env_setup == "r_endpoint":
        raise ExperimentFailed(f"'{task.title}' is an R endpoint (env_setup: r_endpoint), which flow-airflow cannot "
                               "serve: its endpoints run Python functions (env_setup: python_3)")


def _resolved_name(store: Any, task: Any) -> str:
    """The endpoint a deploy task updates: as :func:`~flow_airflow.endpoints.store.endpoint_name` says; when it
    names both ``endpoint_id`` and ``endpoint_title`` (cnvrg's flow page exports both for an update), the first of
    the two that names an endpoint here (a migrated flow's cnvrg id names none: its title does).

    :raises EndpointError: neither names one.
    """
    from flow_airflow.endpoints.store import EndpointError, endpoint_name

    if not (task.endpoint_id and task.endpoint_title):
        return endpoint_name(task)
    names = [task.endpoint_id.strip(), task.endpoint_title.strip()]
    for name in names:
        if store.get(name) is not None:
            return name
    raise EndpointError(f"it updates an existing endpoint, and neither its endpoint_id '{names[0]}' nor its "
                        f"endpoint_title '{names[1]}' names one (the endpoints: {', '.join(store.names()) or 'none'})")


def _notes(task: Any, kind: str, name: str) -> list[str]:
    """What the compute does not honour of the task (the log says it)."""
    from flow_airflow import computes

    low = max(task.min_replica or 1, 1)
    if task.max_replica and task.max_replica > low and not computes.replicas_class(kind).autoscales:
        return [f"max_replica: {task.max_replica} is not honoured on the {kind} compute '{name}': {low} "
                "replica(s) (min_replica) serve; autoscaling between min_replica and max_replica needs the "
                "Kubernetes compute"]
    return []
