"""One experiment: a route of a flow task, run from a fresh workspace to a stored record.

Three steps: prepare (``runtime.prepare``: workspace, inputs, environment, command line, as one
:class:`~flow_airflow.computes.base.Launch` laid out for its compute) -> the compute runs it
(``computes``) -> finish (tags, the end state into the artifact store, the record).
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from flow_airflow import computes, settings
from flow_airflow.common.records import Record
from flow_airflow.common.routes import (
    Route,
    RouteError,
    label_text,
    labels,
    record_route,
    render,
    slug,
    upstream_of,
    varying,
)
from flow_airflow.computes.base import DATA, INPUT, Compute, DeferrableCompute, Launch
from flow_airflow.runtime import report, workspace
from flow_airflow.runtime.artifacts import ArtifactStore
from flow_airflow.runtime.prepare import (
    ExperimentFailed,
    Preparation,
    Staged,
    command_line,
    environment_steps,
    param_words,
    safe,
    uses_git,
)
from flow_airflow.runtime.reuse import KeyParts, Reused, ReuseIndex, experiment_key, files_digest, parent_keys
from flow_airflow.runtime.sdk_calls import commit_puts
from flow_airflow.runtime.tags import TagLog
from flow_airflow.spec import models

__all__ = ["ExperimentFailed", "ExperimentRun"]

LAST_LINES = 20
SYNC_SECONDS = 60.0


@dataclass
class ExperimentRun:
    """One try of one experiment (a route of a flow task) and everything it needs; built by the operator
    from its task instance. Not the SDK's ``cnvrg.Experiment`` (what a script calls), nor
    :class:`~flow_airflow.run_experiments.ExperimentInstance` (an experiment read back from a run)."""

    spec: models.ExecTask  # the flow task, as validated at compile time
    route: Route
    parents: dict[str, list[Record]]  # the parent experiments this route follows
    gathered: list[str]  # parents tested by a condition: their experiments come as a group
    dag_id: str
    run_id: str
    index: int
    project_dir: Path
    compute: computes.ComputeChoice  # the template chosen at compile time, and what was skipped choosing it
    base_env: Mapping[str, str]
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("flow_airflow.experiment"))
    varies: set[str] | None = None  # its params that differ between its routes in this run; None: as in the file
    # on a deferrable compute: defers the task to the trigger it is given (raises Airflow's TaskDeferred)
    defer: Callable[[Any], None] | None = None
    resume: Mapping[str, Any] | None = None  # the trigger's event: the command ran while the task was deferred
    try_number: int = 1  # the task instance's try: each try has a working directory of its own
    project_env: Mapping[str, str] = field(default_factory=dict)  # [flow_airflow] env: part of its key
    reuse: bool = False  # take an earlier experiment of the same key instead of running (runtime.reuse)
    component: Path | None = None  # the AI Library component's folder, copied over the project's files

    def __post_init__(self) -> None:
        self.slug = slug(self.spec.title)
        self._gone: bool = False  # the reuse index's entry of its key has no stored end state: replace it
        self.runner: Compute | None = None
        self.staged: Staged = {}
        self.parts: dict[str, str] | None = None  # its label's parts, once made (see plan.routes.labels)
        self.puts: list[dict[str, Any]] = []  # the versions its put_files committed (runtime.sdk_calls)

    def run(self) -> Record:
        """Prepare, run on its compute, finish: the experiment's record; :class:`ExperimentFailed` saying why not."""
        runner = self.runner = self._check_compute()
        try:
            workspace.folder_name(self.dag_id, "DAG id")
            workspace.folder_name(self.run_id, "run id")
        except ValueError as e:
            raise ExperimentFailed(f"'{self.spec.title}' cannot start: {e}") from None
        spec = self.spec
        assert isinstance(spec, models.ExecTask)
        upstream = upstream_of(self.parents)
        params = self._params(upstream)
        varies = self.varies
        if varies is None:
            varies = varying([(p.key, p.grid()) for p in spec.params])
        self.parts = labels(params, self.parents, varies)  # its varying params, then the tasks' before it
        self.route["label"] = label_text(self.parts)
        if self.resume is not None:
            if not isinstance(runner, DeferrableCompute):
                raise ExperimentFailed(f"'{spec.title}' resumed after a deferral on compute '{runner.name}', which "
                                       f"does not defer (kind '{runner.kind}'): was the compute template changed?")
            return self._resumed(runner, spec, params, upstream)
        launch, baseline = self._prepare(runner, spec, params, upstream)
        workdir = launch.workspace
        key = self._key(spec, params, workdir)
        if key and self.reuse and (reused := self._reused(key, params, upstream, workdir)):
            return reused

        def save(folder: Path) -> None:
            """The end state: without Git what the run created or changed, with Git the output folder."""
            only = None if baseline is not None else PurePosixPath(spec.output_dir or "output").as_posix()
            workspace.save_end_state(workdir, folder, baseline=baseline, only=only, warn=self.log.warning)

        report.opening(self.log, parents=self.parents, upstream=upstream, staged=self.staged, launch=launch,
                       compute=runner)
        store = self._store()
        tags = TagLog(self.log.warning, spec.title)
        try:
            launch = environment_steps(spec, launch, runner, self.log)
            if self.defer is not None and isinstance(runner, DeferrableCompute):
                self._defer(runner, launch)
            self.log.info("running on compute '%s'", runner.name)
            self._execute(lambda out, err: runner.run(launch, out, err), store, save, tags, workdir)
        except ExperimentFailed:
            self._keep_failed(store, save, tags.tags, workdir)
            raise
        return self._finish(store, save, tags, params, upstream, workdir, key)

    def _defer(self, runner: DeferrableCompute, launch: Launch) -> None:
        """Start the command on ``runner`` and defer the task while it runs (the workspace went with it)."""
        assert self.defer is not None
        started = runner.start(launch)
        trigger = runner.trigger_for(started)
        shutil.rmtree(launch.workspace, ignore_errors=True)
        self.log.info("running on compute '%s', deferrable: the task waits in Airflow's triggerer (%s), holding no "
                      "worker slot; its log, tags and outputs are read when it ends", runner.name,
                      type(trigger).__name__)
        self.defer(trigger)

    def _resumed(self, runner: DeferrableCompute, spec: models.ExecTask, params: list[list[str]],
                 upstream: dict[str, dict[str, dict[str, str]]]) -> Record:
        """After a deferral: the command's log and end state from its compute (``resume``), then as after a run."""
        assert self.resume is not None
        workdir = self._workdir()
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        only = PurePosixPath(spec.output_dir or "output").as_posix() if uses_git(spec, self.project_dir) else None

        def save(folder: Path) -> None:  # what the command made or changed: all that came back
            workspace.save_end_state(workdir, folder, baseline={}, only=only, warn=self.log.warning)

        store = self._store()
        tags = TagLog(self.log.warning, spec.title)
        self.log.info("the pod of '%s' ended (%s): its log, tags and outputs", spec.title, self.resume.get("status"))
        try:
            event = self.resume
            self._execute(lambda out, err: runner.resume(event, workdir, out), store, save, tags, workdir)
        except ExperimentFailed:
            self._keep_failed(store, save, tags.tags, workdir)
            raise
        return self._finish(store, save, tags, params, upstream, workdir)

    def _store(self) -> ArtifactStore:
        """The artifact store of ``artifacts_folder``; one it cannot open fails the experiment saying why."""
        try:
            return ArtifactStore(settings.artifacts_root())
        except ValueError as e:
            raise ExperimentFailed(f"'{self.spec.title}' cannot start: the artifact store: {e}") from None

    def _finish(self, store: ArtifactStore, save: Callable[[Path], None], tag_log: TagLog,
                params: list[list[str]], upstream: dict[str, dict[str, dict[str, str]]], workdir: Path,
                key: str | None = None) -> Record:
        """The end state into the store, the log's closing, the workspace removed: the experiment's record
        (with ``key``, also written into the reuse index)."""
        tags = tag_log.tags
        output = store.put(save, self.dag_id, self.run_id, self.slug, self.index)
        report.closing(self.log, tags, output)
        shutil.rmtree(workdir, ignore_errors=True)
        drawn: dict[str, Any] = {"series": tag_log.series, "charts": tag_log.charts}
        if tag_log.images:  # logged in the output folder: stored under its path in the workspace
            out = PurePosixPath(self.spec.output_dir or "output").as_posix()
            drawn["images"] = [f"{out}/{path}" for path in tag_log.images]
        record = self._record(params, upstream, tags, output, drawn)
        if self.puts:
            record["put_files"] = self.puts
        if key and self.puts:  # its dataset versions would not be made again: never reused
            self.log.info("not written into the reuse index: its put_files made dataset versions")
        elif key:
            record["key"] = key
            self._remember(key, record)
        return record

    def _record(self, params: list[list[str]], upstream: dict[str, dict[str, dict[str, str]]],
                tags: dict[str, str], output: str | None, drawn: Mapping[str, Any]) -> Record:
        """The record of this experiment; ``drawn``: its ``series``, ``charts`` and ``images`` (left out when empty)."""
        title = self.spec.title
        record = Record(task=title, index=self.index, params=dict(params), tags=tags, output=output,
                        route=record_route(title, self.index, self.parents, self.gathered), upstream=upstream,
                        label=self.route["label"], labels=self.parts)
        for name in ("series", "charts", "images"):
            if drawn.get(name):
                record[name] = drawn[name]  # type: ignore[literal-required]
        return record

    # --- reuse (runtime.reuse): the key of this experiment, and an earlier one of the same key -------------
    def _key(self, spec: models.ExecTask, params: list[list[str]], workdir: Path) -> str | None:
        """This experiment's key (:func:`~flow_airflow.runtime.reuse.experiment_key`); None when a parent
        experiment has none (then it is never reused, nor reused from)."""
        parents = parent_keys(self.parents)
        if parents is None:
            return None
        kind = self.compute.kind
        image = "" if kind == "local" else (spec.image or str(self.compute.settings.get("image") or ""))
        skip = (INPUT, workspace.PACKAGES, DATA)
        try:
            files = files_digest(workdir, skip)
        except OSError as e:
            self.log.warning("no reuse key: the working directory cannot be read (%s)", e)
            return None
        return experiment_key(KeyParts(script=spec.script, words=[(k, param_words(k, v)) for k, v in params],
                                       image=image, kind=kind, files=files, parents=parents, env=self.project_env))

    def _index(self) -> ReuseIndex:
        return ReuseIndex(settings.artifacts_root(), self.log)

    def _reused(self, key: str, params: list[list[str]], upstream: dict[str, dict[str, dict[str, str]]],
                workdir: Path) -> Record | None:
        """The record of an earlier experiment of ``key`` that succeeded, its end state copied as this
        experiment's; None (logged) when there is none or its end state is no longer stored: then it runs."""
        try:
            entry = self._index().get(key)
        except (OSError, ValueError) as e:
            self.log.warning("reuse asked, but the reuse index cannot be read (%s): the experiment runs", e)
            return None
        if entry is None:
            self.log.info("reuse asked: no experiment of the same key (%s) succeeded before: it runs", key[:12])
            return None
        store = self._store()
        earlier = entry.record.get("output")
        try:
            output = store.put(lambda folder: store.get(str(earlier), folder), self.dag_id, self.run_id,
                               self.slug, self.index) if earlier else None
        except (OSError, ValueError) as e:
            self.log.warning("reuse asked: %s has the same key, but its end state is no longer stored (%s): the "
                             "experiment runs", entry.mention(), e)
            self._gone = True
            return None
        shutil.rmtree(workdir, ignore_errors=True)
        self.log.info("reused: same key as %s", entry.mention())
        old = entry.record
        record = self._record(params, upstream, dict(old.get("tags") or {}), output, old)
        record["key"] = key
        record["reused"] = entry.origin()
        return record

    def _remember(self, key: str, record: Record) -> None:
        """Write the experiment that just succeeded into the reuse index (a failure to is logged, not fatal)."""
        from datetime import UTC, datetime

        entry = Reused(key=key, dag_id=self.dag_id, run_id=self.run_id, task=self.spec.title, index=self.index,
                       when=datetime.now(UTC).isoformat(timespec="seconds"), record=record)
        try:
            self._index().put(entry, replace=self._gone)
        except (OSError, ValueError) as e:
            self.log.warning("the experiment could not be written into the reuse index: %s", e)

    def _prepare(self, runner: Compute, spec: models.ExecTask, params: list[list[str]],
                 upstream: Mapping[str, Mapping[str, Mapping[str, str]]]) -> tuple[Launch, workspace.Snapshot | None]:
        """The workspace with its inputs (:class:`~flow_airflow.runtime.prepare.Preparation`), and the
        launch of the command laid out for ``runner``.

        Also the workspace's snapshot before the run (None when it came from Git: then only the
        output folder is passed on), taken before the output folder is made.
        """
        preparation = Preparation(spec, self.parents, self.gathered, self.project_dir, self.base_env, self.log,
                                  self.component, self.project_env)
        instance = preparation.prepare(self._workdir(), runner, self._store(), title=f"{spec.title} #{self.index}",
                                       params=params, upstream=upstream, fetch_datasets=runner.fetches_datasets)
        self.staged = instance.staged
        workdir = instance.workspace
        baseline = None if instance.from_git else workspace.snapshot(workdir)  # to pass on only what the run changed
        instance.output_dir.mkdir(parents=True, exist_ok=True)
        command, shown = command_line(spec, params, instance.layout.roots(), workdir / INPUT, self.log)
        name = f"{self.dag_id}.{safe(self.run_id)}.{self.slug}.{self.index}"
        return instance.launch(name, command, shown), baseline

    def _workdir(self) -> Path:
        """``<workspaces>/<dag id>/<run id>/<task slug>/<index>.try<n>``: a try never sees an earlier try's files
        (should a killed try's command still write)."""
        run = settings.workspaces_root() / self.dag_id / safe(self.run_id)
        return run / self.slug / f"{self.index}.try{self.try_number}"

    def _check_compute(self) -> Compute:
        """The task's compute; refuse what it cannot run, say what was skipped choosing it."""
        spec = self.spec
        for note in self.compute.notes:
            self.log.warning("%s", note)
        try:
            runner = self.compute.compute()
        except ValueError as e:
            raise ExperimentFailed(f"'{spec.title}' cannot start on compute '{self.compute.name}': {e}") from None
        refusal = runner.refusal(spec)
        if refusal:
            raise ExperimentFailed(refusal)
        return runner

    def _execute(self, run: Callable[[Callable[[str], None], Callable[[str], None]], int], store: ArtifactStore,
                 save: Callable[[Path], None], tags: TagLog, workdir: Path) -> None:
        """Run the command (``run(on_line, on_error_line)``, its exit code): its output into the log (stdout at
        INFO, stderr at ERROR), its tags into ``tags``; then the dataset versions its ``put_files`` staged in
        ``workdir`` are committed (also when it failed: cnvrg's are made as the call returns).

        A failure is logged at ERROR with the last lines of the output; the exception says it in one line.
        """
        last: deque[str] = deque(maxlen=LAST_LINES)

        def on_line(line: str) -> None:
            self.log.info("%s", line)
            last.append(line)
            tags.line(line)

        def on_error_line(line: str) -> None:
            self.log.error("%s", line)
            last.append(line)
            tags.line(line)

        sync = self._periodic_sync(store, save) if getattr(self.spec, "periodic_sync", False) else None
        try:
            code = run(on_line, on_error_line)
        finally:
            if sync:
                sync[0].set()
                sync[1].join()
        tags.finish()
        self.puts = commit_puts(tags.puts, workdir, self.log)
        if code != 0:
            title = self.spec.title
            self.log.error("'%s' failed: its command exited with code %d. Last lines of its output:\n%s",
                           title, code, "\n".join(last) or "(no output)")
            said = f"its last line: {report.short(last[-1])}" if last else "it printed nothing"
            raise ExperimentFailed(f"'{title}' failed: its command exited with code {code} ({said})")

    def _keep_failed(self, store: ArtifactStore, save: Callable[[Path], None], tags: dict[str, str],
                     workdir: Path) -> None:
        """Store a failed experiment's end state apart (``<index>.failed``), for debugging; log where.

        One copy is kept: the working directory is removed once its end state is stored, kept (for
        inspection) only when it could not be.
        """
        try:
            kept = store.put(save, self.dag_id, self.run_id, self.slug, self.index, failed=True)
        except OSError as e:
            self.log.error("the failed experiment's files could not be stored: %s", e)
            self.log.error("the working directory is kept for inspection: %s", workdir)
        else:
            report.closing(self.log, tags, kept, failed=True)
            shutil.rmtree(workdir, ignore_errors=True)

    def _params(self, upstream: Mapping[str, Mapping[str, Mapping[str, str]]]) -> list[list[str]]:
        """The route's params with ``{{ Task.tag }}`` replaced; a tag never logged fails the experiment."""
        params = []
        for key, value in self.route["params"]:
            try:
                params.append([key, render(value, upstream)])
            except RouteError as e:
                title = self.spec.title
                raise ExperimentFailed(f"'{title}' cannot start: its param '{key}' names a tag, but {e}") from None
            if "\0" in key or "\0" in params[-1][1]:
                raise ExperimentFailed(f"'{self.spec.title}' cannot start: its param '{key}' holds a NUL byte")
        return params

    def kill(self) -> None:
        if self.runner:
            self.runner.kill()

    def _periodic_sync(
        self, store: ArtifactStore, save: Callable[[Path], None]
    ) -> tuple[threading.Event, threading.Thread]:
        """Keep the end state in the store while the command runs (``periodic_sync``)."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(SYNC_SECONDS):
                store.put(save, self.dag_id, self.run_id, self.slug, self.index)
                self.log.info("synced the experiment's files to the artifact store")

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        return stop, thread
